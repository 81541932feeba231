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
		return fmt.Errorf("%w: power needs on|off and a Machine name", ErrUsage)
	}
	action, name := infrav1.PowerAction(args[0]), args[1]
	if action != infrav1.PowerActionOn && action != infrav1.PowerActionOff {
		return fmt.Errorf("%w: power takes on or off, not %q", ErrUsage, args[0])
	}
	online := action == infrav1.PowerActionOn
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
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	res, err := optimistic.Update(ctx, w, m, func(m *infrav1.Machine) error {
		m.Spec.Online = online
		return nil
	}, optimistic.Operation("homelabctl-power"))
	if err != nil {
		return fmt.Errorf("setting spec.online of Machine %s/%s to %t: %w", ns, name, online, err)
	}
	if res.Skipped {
		fmt.Fprintf(env.Out, "Machine %s/%s: online is already %t (progress %s)\n", ns, name, online, dash(string(m.Status.Progress)))
		return nil
	}
	fmt.Fprintf(env.Out, "Machine %s/%s: online set to %t\n", ns, name, online)
	return nil
}
