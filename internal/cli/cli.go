// Package cli is homelabctl, the operator's command line: the state of Groups and Machines,
// powering a machine by hand, a Machine's effective spec, energy figures, importing machines,
// and talking to the cloud-provider gRPC server the way cluster-autoscaler does. It is also the
// kubectl plugin `kubectl homelab` (the same binary, installed as kubectl-homelab).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/version"
)

// Env is where a command reads and writes; tests replace it.
type Env struct {
	In       io.Reader
	Out, Err io.Writer
	// Name is how the user called the program, shown in help and completion: "homelabctl"
	// (the default), or "kubectl homelab" when kubectl runs it as a plugin.
	Name string
}

// ErrUsage marks a command line that could not be understood (exit code 2).
var ErrUsage = errors.New("usage")

// Extension adds a command that reaches the cluster through the root's connection flags; the
// program passes the commands that live in packages of their own (the dashboard).
type Extension func(k *Kube) *cobra.Command

// PluginName is the kubectl plugin's name: installed as kubectl-homelab, the binary is `kubectl
// homelab`.
const PluginName = "kubectl homelab"

// Invocation reads how the program was started (argv, program name first): the name to show
// and the arguments to run. kubectl runs a plugin by its file name, kubectl-homelab; to complete
// `kubectl homelab ...` on the command line it runs kubectl_complete-homelab with the words
// typed so far, which is the same binary (a link) asked for cobra's completions.
func Invocation(argv []string) (name string, args []string) {
	if len(argv) == 0 {
		return "homelabctl", nil
	}
	base := argv[0][strings.LastIndexAny(argv[0], `/\`)+1:]
	switch {
	case strings.HasPrefix(base, "kubectl_complete-"):
		return PluginName, append([]string{cobra.ShellCompRequestCmd}, argv[1:]...)
	case strings.HasPrefix(base, "kubectl-"):
		return PluginName, argv[1:]
	default:
		return "homelabctl", argv[1:]
	}
}

// NewCommand is homelabctl's root command with its subcommands and the extensions.
func NewCommand(ctx context.Context, env *Env, ext ...Extension) *cobra.Command {
	if env.In == nil {
		env.In = os.Stdin
	}
	k := NewKube()
	root := &cobra.Command{
		Use:   "homelabctl",
		Short: "Operate homelab-autoscaler",
		Long: `homelabctl operates homelab-autoscaler: the state of Groups and Machines, a machine powered by
hand, a Machine's effective spec, energy used and saved, machines imported from a list, and the
cloud-provider gRPC server called the way cluster-autoscaler calls it.

It reaches the cluster as kubectl does (the same kubeconfig, context and flags) and with the
user's own RBAC. Installed as kubectl-homelab on the PATH it is also 'kubectl homelab'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprint(c.ErrOrStderr(), c.UsageString())
			return fmt.Errorf("%w: name a command", ErrUsage)
		},
	}
	if env.Name != "" && env.Name != "homelabctl" {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: env.Name}
	}
	root.SetIn(env.In)
	root.SetOut(env.Out)
	root.SetErr(env.Err)
	root.SetContext(ctx)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %w", ErrUsage, err) })
	k.AddFlags(root.PersistentFlags())
	k.registerFlagCompletion(root)
	root.AddCommand(
		statusCommand(env, k),
		powerCommand(env, k),
		effectiveCommand(env, k),
		energyCommand(env, k),
		cloudProviderCommand(env, k),
		importCommand(env, k),
		wolCommand(env, k),
		versionCommand(env),
	)
	for _, e := range ext {
		root.AddCommand(e(k))
	}
	return root
}

// Run executes homelabctl with args (without the program name). A command line that could not
// be understood returns an error wrapping ErrUsage.
func Run(ctx context.Context, env *Env, args []string, ext ...Extension) error {
	root := NewCommand(ctx, env, ext...)
	// Errors before a command runs (an unknown command, a wrong number of arguments) are
	// usage errors; those a command returns are its own.
	ran := false
	root.PersistentPreRun = func(*cobra.Command, []string) { ran = true }
	root.SetArgs(args)
	err := root.Execute()
	if err != nil && !ran && !errors.Is(err, ErrUsage) {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return err
}

func versionCommand(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "The release this homelabctl was built from",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(env.Out, "homelabctl %s (%s)\n", version.String(), version.Platform())
			return err
		},
	}
}

// parent makes cmd a command that only groups subcommands: an unknown one is a usage error,
// where cobra would print the help and succeed.
func parent(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			// The usage goes with the error to stderr: stdout stays for output.
			fmt.Fprint(c.ErrOrStderr(), c.UsageString())
			return fmt.Errorf("%w: %s needs one of its commands", ErrUsage, c.CommandPath())
		}
		return fmt.Errorf("%w: unknown command %q for %q", ErrUsage, args[0], c.CommandPath())
	}
	return cmd
}

// usageErr is a usage error about cmd's arguments.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// exactArgs is cobra.ExactArgs with a message that says what the arguments are.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			got := fmt.Sprintf("%d arguments", len(args))
			if len(args) == 1 {
				got = "1 argument"
			}
			return usageErr("%s needs %s; got %s", c.CommandPath(), what, got)
		}
		return nil
	}
}

// outputFlag binds -o/--output with the formats a command prints.
func outputFlag(cmd *cobra.Command, dst *string, def string, formats ...string) {
	cmd.Flags().StringVarP(dst, "output", "o", def, "Output format: "+strings.Join(formats, ", ")+".")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// checkOutput refuses an -o value the command does not print.
func checkOutput(got string, formats ...string) error {
	for _, f := range formats {
		if got == f {
			return nil
		}
	}
	return usageErr("-o must be %s, not %q", strings.Join(formats, ", "), got)
}

// writeJSON prints v as indented JSON, for scripts (-o json).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeYAML prints v as YAML (-o yaml), through its JSON form so the field names are the same.
func writeYAML(w io.Writer, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("writing YAML: %w", err)
	}
	_, err = w.Write(data)
	return err
}

// table prints rows in aligned columns.
func table(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	line := func(cells []string) {
		parts := make([]string, len(cells))
		for i, c := range cells {
			if i == len(cells)-1 {
				parts[i] = c
			} else {
				parts[i] = c + strings.Repeat(" ", widths[i]-len(c))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(strings.Join(parts, "  "), " "))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
}
