package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// EffectiveMachine is the output of homelabctl effective: the Machine as the manager acts on it.
// Only the spec is merged, so status and server-set metadata are left out.
type EffectiveMachine struct {
	APIVersion string              `json:"apiVersion"`
	Kind       string              `json:"kind"`
	Metadata   EffectiveMetadata   `json:"metadata"`
	Spec       infrav1.MachineSpec `json:"spec"`
}

// EffectiveMetadata names the Machine an EffectiveMachine was computed for.
type EffectiveMetadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

func effectiveCommand(env *Env, k *Kube) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "effective MACHINE",
		Short: "A Machine's spec with its Group's machineDefaults and the built-in defaults applied",
		Long: `Prints Machine MACHINE's effective spec: its own fields, then its Group's machineDefaults, then
the built-in defaults, merged as the manager merges them before it powers the machine. When the
result cannot be powered on or off (no driver, or a BMC without address or credentials), the
problems go to stderr and the exit status is 1.`,
		Args:              exactArgs(1, "exactly one Machine name"),
		ValidArgsFunction: k.completeNames(true),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(output, "yaml", "json"); err != nil {
				return err
			}
			cl, ns, err := k.connect()
			if err != nil {
				return err
			}
			return effective(c.Context(), env, cl, ns, args[0], output)
		},
	}
	outputFlag(cmd, &output, "yaml", "yaml", "json")
	return cmd
}

func effective(ctx context.Context, env *Env, c client.Client, ns, name, output string) error {
	m := &infrav1.Machine{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
		return fmt.Errorf("reading Machine %s/%s: %w", ns, name, err)
	}
	// Without its Group the manager applies the built-in defaults alone; so does this.
	var group *infrav1.Group
	g := &infrav1.Group{}
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: m.Spec.Group}, g); {
	case err == nil:
		group = g
	case apierrors.IsNotFound(err):
		fmt.Fprintf(env.Err, "warning: Group %s/%s does not exist: only the built-in defaults apply\n", ns, m.Spec.Group)
	default:
		return fmt.Errorf("reading Group %s/%s of Machine %s/%s: %w", ns, m.Spec.Group, ns, m.Name, err)
	}
	eff := machines.Effective(m, group)
	out := EffectiveMachine{
		APIVersion: infrav1.GroupVersion.String(), Kind: "Machine",
		Metadata: EffectiveMetadata{Name: eff.Name, Namespace: eff.Namespace},
		Spec:     eff.Spec,
	}
	var err error
	if output == "json" {
		err = writeJSON(env.Out, out)
	} else {
		err = writeYAML(env.Out, out)
	}
	if err != nil {
		return err
	}
	if err := machines.Check(eff); err != nil {
		return fmt.Errorf("the effective spec of Machine %s/%s cannot be powered: %w", eff.Namespace, eff.Name, err)
	}
	return nil
}
