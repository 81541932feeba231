package testenv

import (
	"context"
	"os/exec"
	"testing"
)

// Kubectl returns a builder of commands that run the built kubectl against this control plane
// with a kubeconfig of their own, as a user would: tests that check what users see (kubectl's
// messages, columns, wait) use the real client, not a Go client standing in for it.
func (e *Env) Kubectl(t testing.TB) func(ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	kubectl := e.binary(t, "kubectl")
	kubeconfig, err := e.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatalf("writing a kubeconfig for kubectl: %v", err)
	}
	return func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...) //nolint:gosec // the test's own arguments to the built kubectl
	}
}
