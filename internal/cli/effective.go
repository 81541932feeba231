package cli

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

const effectiveUsage = `usage: homelabctl effective NAME [-n NAMESPACE] [-o yaml|json]

Prints Machine NAME's effective spec: its own fields, then its Group's machineDefaults, then the
built-in defaults, merged as the manager merges them before it powers the machine. When the
result cannot be powered on or off (no driver, or a BMC without address or credentials), the
problems go to stderr and the exit status is 1.`

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

func runEffective(ctx context.Context, env *Env, args []string) error {
	fs := flags(env, "effective")
	var kf kubeFlags
	kf.bind(fs)
	output := fs.String("o", "yaml", "Output: yaml or json.")
	fs.Usage = func() {
		fmt.Fprintln(env.Err, effectiveUsage)
		fmt.Fprintln(env.Err, "\nFlags:")
		fs.PrintDefaults()
	}
	positional, help, err := parseArgs(fs, args)
	if help || err != nil {
		return err
	}
	if len(positional) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: effective needs exactly one Machine name", ErrUsage)
	}
	if *output != "yaml" && *output != "json" {
		return fmt.Errorf("%w: -o must be yaml or json", ErrUsage)
	}
	c, ns, err := kf.client()
	if err != nil {
		return err
	}
	m := &infrav1.Machine{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: positional[0]}, m); err != nil {
		return fmt.Errorf("reading Machine %s/%s: %w", ns, positional[0], err)
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
	if *output == "json" {
		err = writeJSON(env.Out, out)
	} else {
		err = writeYAML(env, out)
	}
	if err != nil {
		return err
	}
	if err := machines.Check(eff); err != nil {
		return fmt.Errorf("the effective spec of Machine %s/%s cannot be powered: %w", eff.Namespace, eff.Name, err)
	}
	return nil
}

func writeYAML(env *Env, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	_, err = env.Out.Write(data)
	return err
}
