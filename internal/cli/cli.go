// Package cli is homelabctl, the operator's command line: the state of Groups and Machines,
// powering a machine by hand, a Machine's effective spec, and talking to the cloud-provider gRPC
// server the way cluster-autoscaler does.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// Env is where a command reads and writes; tests replace it.
type Env struct {
	Out, Err io.Writer
}

// ErrUsage marks a command line that could not be understood (exit code 2).
var ErrUsage = errors.New("usage")

func commands() []command {
	return []command{
		{"status", "Groups and Machines as a table: online, observed power, progress, since, last repair, last error", runStatus},
		{"power", "power on|off NAME: set a Machine's spec.online", runPower},
		{"effective", "effective NAME: a Machine's spec with its Group's machineDefaults and the built-in defaults applied", runEffective},
		{"cloudprovider", "check | scale-up GROUP N | scale-down GROUP MACHINE...: act like cluster-autoscaler over gRPC", runCloudProvider},
		{"energy", "energy [GROUP] [--period day|week|month|all]: hours on, kWh used and saved, money saved, a power timeline; --svg|--png FILE draws it", runEnergy},
		{"import", "upstream FILE... | inventory FILE: convert upstream manifests or a machine list into Groups and Machines (YAML)", runImport},
		{"wol", "wol test MACHINE: send a machine's wake through its configured path and say which homelab-agent sent it", runWOL},
	}
}

// Run executes homelabctl with args (without the program name).
func Run(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Out)
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	usage(env.Err)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "homelabctl: operate homelab-autoscaler")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'homelabctl COMMAND -h' for a command's flags.")
}

// flags is a FlagSet that reports errors instead of exiting.
func flags(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("homelabctl "+name, flag.ContinueOnError)
	fs.SetOutput(env.Err)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return nil
}

// parseArgs parses flags wherever they stand among the positional arguments, as in
// "scale-up default/g 2 --insecure" or "import upstream a.yaml -n homelab b.yaml"; after "--"
// everything is positional. The flag set itself tells a flag's value from a positional argument,
// so a boolean flag never swallows the argument after it. help is true when -h printed the usage.
func parseArgs(fs *flag.FlagSet, args []string) (positional []string, help bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, nil
			}
			return nil, false, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		if fs.NArg() == 0 {
			return positional, false, nil
		}
		if consumed := len(args) - fs.NArg(); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, fs.Args()...), false, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// writeJSON prints v as indented JSON, for scripts (-o json).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
