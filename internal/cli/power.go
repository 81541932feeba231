package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

func powerCommand(env *Env, k *Kube) *cobra.Command {
	return &cobra.Command{
		Use:   "power on|off MACHINE",
		Short: "Set a Machine's spec.online: the manager powers it on or off",
		Long: `Sets Machine MACHINE's spec.online to true (on) or false (off). The manager then powers the
machine on or off and reports what it observed in status; 'homelabctl status' shows both. The
write is optimistic: a fresh read, a resourceVersion precondition, retried on conflict.`,
		Example: `  homelabctl power on worker-02 -n homelab`,
		Args:    exactArgs(2, "on or off and a Machine name"),
		ValidArgsFunction: func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			switch len(args) {
			case 0:
				return []cobra.Completion{"on", "off"}, cobra.ShellCompDirectiveNoFileComp
			case 1:
				return k.completeNames(true)(c, args[1:], prefix)
			default:
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		},
		RunE: func(c *cobra.Command, args []string) error {
			action, name := infrav1.PowerAction(args[0]), args[1]
			if action != infrav1.PowerActionOn && action != infrav1.PowerActionOff {
				return usageErr("power takes on or off, not %q", args[0])
			}
			online := action == infrav1.PowerActionOn
			cl, ns, err := k.connect()
			if err != nil {
				return err
			}
			changed, progress, err := SetOnline(c.Context(), cl, ns, name, online)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(env.Out, "Machine %s/%s: online is already %t (progress %s)\n", ns, name, online, dash(progress))
				return nil
			}
			fmt.Fprintf(env.Out, "Machine %s/%s: online set to %t\n", ns, name, online)
			return nil
		},
	}
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
