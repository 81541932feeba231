package cli

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

func runPower(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "power")
	var kf kubeFlags
	kf.bind(fs)
	fs.Usage = func() { fmt.Fprintln(env.Err, "usage: homelabctl power on|off NAME [-n NAMESPACE]") }
	if len(args) < 2 {
		fs.Usage()
		return fmt.Errorf("%w: power needs on|off and a machine name", ErrUsage)
	}
	state, name := infrav1.PowerAction(args[0]), args[1]
	if state != infrav1.PowerActionOn && state != infrav1.PowerActionOff {
		return fmt.Errorf("%w: power state must be on or off, not %q", ErrUsage, args[0])
	}
	if err := parse(fs, args[2:]); err != nil {
		return err
	}
	c, ns, err := kf.client()
	if err != nil {
		return err
	}
	w, err := optimistic.New(c, c)
	if err != nil {
		return err
	}
	n := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	res, err := optimistic.Update(ctx, w, n, func(n *infrav1.Machine) error {
		n.Spec.Online = state == infrav1.PowerActionOn
		return nil
	}, optimistic.Operation("homelabctl-power"))
	if err != nil {
		return fmt.Errorf("setting %s/%s to %s: %w", ns, name, state, err)
	}
	if res.Skipped {
		fmt.Fprintf(env.Out, "%s/%s is already desired %s (progress %s)\n", ns, name, state, dash(string(n.Status.Progress)))
		return nil
	}
	fmt.Fprintf(env.Out, "%s/%s: desired power state %s\n", ns, name, state)
	return nil
}
