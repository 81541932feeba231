package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/importer"
)

// importCommand is homelabctl import. It needs no cluster: it only reads files and writes YAML.
func importCommand(env *Env, k *Kube) *cobra.Command {
	cmd := parent(&cobra.Command{
		Use:   "import",
		Short: "Convert upstream manifests or a machine list into Groups and Machines (YAML)",
		Long: `Converts infra.homecluster.dev/v1alpha1 Group and Node manifests (upstream), or a CSV or YAML
list of machines (inventory), into Groups and Machines, written as YAML to stdout. "-" reads
stdin. Warnings go to stderr; when any object cannot be converted, every problem is listed
there and nothing is written. The namespace of every object written is --namespace when given,
else the input's. See docs/import.md.`,
	})
	var noGroups bool
	sub := func(what, use, short string, args cobra.PositionalArgs) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: args,
			ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return []cobra.Completion{"yaml", "yml", "csv"}, cobra.ShellCompDirectiveFilterFileExt
			},
			RunE: func(_ *cobra.Command, files []string) error {
				return runImport(env, what, files, importer.Options{Namespace: k.explicitNamespace(), NoGroups: noGroups})
			},
		}
	}
	upstream := sub("upstream", "upstream FILE...|-", "Convert upstream Group and Node manifests",
		func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("import upstream needs a file, or - for stdin")
			}
			return nil
		})
	inventory := sub("inventory", "inventory FILE|-", "Convert a CSV or YAML list of machines",
		exactArgs(1, "one file, or - for stdin"))
	inventory.Flags().BoolVar(&noGroups, "no-groups", false, "Write the Machines only, not one Group per group named.")
	cmd.AddCommand(upstream, inventory)
	return cmd
}

func runImport(env *Env, what string, files []string, opts importer.Options) error {
	if opts.Namespace != "" {
		if err := importer.CheckNamespace(opts.Namespace); err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	inputs, err := readInputs(env.In, files)
	if err != nil {
		return err
	}

	var res *importer.Result
	if what == "upstream" {
		res, err = importer.Upstream(inputs, opts)
	} else {
		res, err = importer.Inventory(inputs[0], opts)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(env.Err, "skipped: %s\n", s)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(env.Err, "warning: %s\n", w)
	}
	if ie, ok := errors.AsType[*importer.Error](err); ok {
		for _, p := range ie.Problems {
			fmt.Fprintf(env.Err, "error: %s\n", p)
		}
		return fmt.Errorf("import %s: %d problems in the input; nothing was written", what, len(ie.Problems))
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", what, err)
	}
	out, err := res.YAML()
	if err != nil {
		return fmt.Errorf("import %s: %w", what, err)
	}
	_, err = env.Out.Write(out)
	return err
}

// readInputs reads the files, "-" being stdin (once).
func readInputs(stdin io.Reader, files []string) ([]importer.Input, error) {
	if i := slices.Index(files, "-"); i >= 0 && slices.Contains(files[i+1:], "-") {
		return nil, fmt.Errorf("%w: - (stdin) given twice", ErrUsage)
	}
	var inputs []importer.Input
	for _, f := range files {
		if f == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			inputs = append(inputs, importer.Input{Name: "stdin", Data: data})
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, importer.Input{Name: f, Data: data})
	}
	return inputs, nil
}
