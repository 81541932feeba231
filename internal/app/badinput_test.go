package app_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The manager-flag rows of docs/bad-input.md, through the command's own parsing and validation
// (app.BindFlags, then Options.Validate, as cmd/homelab-autoscaler runs them).
func TestBadInputTableFlags(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tlsFlags := "--grpc-tls-cert=" + dir + "/tls.crt --grpc-tls-key=" + dir + "/tls.key --grpc-client-ca=" + dir + "/ca.crt"
	run := func(args string) func(t *testing.T) string {
		return func(t *testing.T) string {
			fs := flag.NewFlagSet("homelab-autoscaler", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o, _ := app.BindFlags(fs)
			if err := fs.Parse(strings.Fields(args)); err != nil {
				return err.Error()
			}
			if err := o.Validate(); err != nil {
				return err.Error()
			}
			t.Fatalf("flags %q were accepted", args)
			return ""
		}
	}
	doctable.Check(t, root, "flag-", map[string]func(*testing.T) string{
		"flag-grpc-no-allowed-clients":   run(tlsFlags),
		"flag-grpc-allowed-and-any":      run(tlsFlags + " --grpc-allowed-clients=cn:cluster-autoscaler --grpc-allow-any-client"),
		"flag-grpc-allowed-insecure":     run("--grpc-insecure --grpc-allowed-clients=cn:a"),
		"flag-grpc-allowed-no-kind":      run("--grpc-allowed-clients=cluster-autoscaler"),
		"flag-grpc-allowed-empty-name":   run("--grpc-allowed-clients=cn:"),
		"flag-grpc-streams-zero":         run("--grpc-insecure --grpc-max-concurrent-streams=0"),
		"flag-power-on-rate-negative":    run("--grpc-insecure --power-on-rate=-1"),
		"flag-power-on-burst-zero":       run("--grpc-insecure --power-on-rate=5 --power-on-burst=0"),
		"flag-profiling-address-no-port": run("--grpc-insecure --profiling-bind-address=6060"),
	})
}
