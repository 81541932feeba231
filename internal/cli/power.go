package cli

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	changed, progress, err := SetOnline(ctx, c, ns, name, online)
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(env.Out, "Machine %s/%s: online is already %t (progress %s)\n", ns, name, online, dash(progress))
		return nil
	}
	fmt.Fprintf(env.Out, "Machine %s/%s: online set to %t\n", ns, name, online)
	return nil
}

// SetOnline sets a Machine's spec.online through the optimistic write path (a fresh read and a
// resourceVersion precondition, retried on conflict). changed is false when it already had that
// value; progress is the machine's status.progress as read.
func SetOnline(ctx context.Context, c client.Client, ns, name string, online bool) (changed bool, progress string, err error) {
	w, err := optimistic.New(c, c)
	if err != nil {
		return false, "", err
	}
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	res, err := optimistic.Update(ctx, w, m, func(m *infrav1.Machine) error {
		m.Spec.Online = online
		return nil
	}, optimistic.Operation("homelabctl-power"))
	if err != nil {
		return false, "", fmt.Errorf("setting spec.online of Machine %s/%s to %t: %w", ns, name, online, err)
	}
	return !res.Skipped, string(m.Status.Progress), nil
}
