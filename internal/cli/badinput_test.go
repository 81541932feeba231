package cli_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// TestBadCommandLines runs every refused command line of docs/bad-input.md: each is a usage
// error with the documented message and prints nothing on standard output. A kubeconfig that
// names no cluster shows that none of them reaches one.
func TestBadCommandLines(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{
		"cli-unknown-command":     "frobnicate",
		"cli-unknown-subcommand":  "import nodes x.yaml",
		"cli-no-subcommand":       "wol",
		"cli-unknown-flag":        "status --bogus",
		"cli-bad-output":          "status -o csv",
		"cli-power-action":        "power standby w1",
		"cli-power-arguments":     "power on",
		"cli-energy-period":       "energy --period year",
		"cli-scale-up-count":      "cloudprovider scale-up default/workers zero",
		"cli-grpc-no-credentials": "cloudprovider check --address 10.0.0.5:8086",
	}
	cases := map[string]func(t *testing.T) string{}
	for id, line := range lines {
		cases[id] = func(t *testing.T) string {
			out, _, err := run(t, append(strings.Fields(line), "--kubeconfig", "/dev/null")...)
			if !errors.Is(err, cli.ErrUsage) {
				t.Fatalf("homelabctl %s: %v, want a usage error", line, err)
			}
			if out != "" {
				t.Fatalf("homelabctl %s printed %q", line, out)
			}
			return err.Error()
		}
	}
	doctable.Check(t, root, "cli-", cases)
}
