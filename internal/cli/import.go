package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/importer"
)

const importUsage = `usage: homelabctl import upstream [-n NAMESPACE] FILE...|-
       homelabctl import inventory [-n NAMESPACE] [--no-groups] FILE|-

Converts infra.homecluster.dev/v1alpha1 Group and Node manifests (upstream), or a CSV or YAML
list of machines (inventory), into Groups and Machines, written as YAML to stdout. "-" reads
stdin. Warnings go to stderr; when any object cannot be converted, every problem is listed
there and nothing is written. See docs/import.md.`

// runImport is homelabctl import. It needs no cluster: it only reads files and writes YAML.
func runImport(_ context.Context, env *Env, args []string) error {
	if len(args) == 0 || (args[0] != "upstream" && args[0] != "inventory") {
		fmt.Fprintln(env.Err, importUsage)
		return fmt.Errorf("%w: import needs upstream or inventory", ErrUsage)
	}
	what := args[0]
	fs := flags(env, "import "+what)
	var opts importer.Options
	fs.StringVar(&opts.Namespace, "n", "", "Namespace of every object written (default: the input's).")
	fs.StringVar(&opts.Namespace, "namespace", "", "Same as -n.")
	if what == "inventory" {
		fs.BoolVar(&opts.NoGroups, "no-groups", false, "Write the Machines only, not one Group per group named.")
	}
	fs.Usage = func() {
		fmt.Fprintln(env.Err, importUsage)
		fmt.Fprintln(env.Err, "\nFlags:")
		fs.PrintDefaults()
	}
	files, help, err := parseArgs(fs, args[1:])
	if help || err != nil {
		return err
	}
	if opts.Namespace != "" {
		if err := importer.CheckNamespace(opts.Namespace); err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	switch {
	case len(files) == 0:
		fs.Usage()
		return fmt.Errorf("%w: import %s needs a file, or - for stdin", ErrUsage, what)
	case what == "inventory" && len(files) > 1:
		return fmt.Errorf("%w: import inventory reads one file, got %d", ErrUsage, len(files))
	}
	inputs, err := readInputs(files)
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
func readInputs(files []string) ([]importer.Input, error) {
	if i := slices.Index(files, "-"); i >= 0 && slices.Contains(files[i+1:], "-") {
		return nil, fmt.Errorf("%w: - (stdin) given twice", ErrUsage)
	}
	var inputs []importer.Input
	for _, f := range files {
		if f == "-" {
			data, err := io.ReadAll(os.Stdin)
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
