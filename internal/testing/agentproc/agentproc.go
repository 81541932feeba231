// Package agentproc builds homelab-agent as users get it and runs it as a separate process
// against a test cluster, for tests that need the real binary: several agents at once, an agent
// killed with SIGKILL.
package agentproc

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Build builds cmd/homelab-agent into dir and returns the binary's path.
func Build(t *testing.T, dir string) string {
	t.Helper()
	return testenv.Build(t, dir, "homelab-agent", "")
}

// Process is a running homelab-agent.
type Process struct {
	Identity  string
	ProbeAddr string
	Cmd       *exec.Cmd
	Out       *testenv.SyncBuffer
	exited    chan struct{}
}

// Run starts the agent binary with args (and the environment variables extra) until the test
// ends; its metrics are off and its probes on a free loopback port.
func Run(t *testing.T, bin, identity string, extra []string, args ...string) *Process {
	t.Helper()
	p := &Process{Identity: identity, ProbeAddr: FreeAddr(t), Out: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, append(args, "--metrics-bind-address", "0", "--health-probe-bind-address", p.ProbeAddr)...) //nolint:gosec // the project's own binary
	p.Cmd.Env = append(os.Environ(), extra...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("agent %s output:\n%s", identity, p.Out.String())
		}
	})
	return p
}

// WaitReady waits until the agent's readiness probe passes: its informers have synced.
func (p *Process) WaitReady(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, time.Minute, "agent "+p.Identity+" to be ready", func() bool {
		resp, err := http.Get("http://" + p.ProbeAddr + "/readyz") //nolint:noctx // a loopback probe in a test
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Kill ends the agent with SIGKILL, the stop it cannot clean up after, and waits for it to exit.
func (p *Process) Kill(t *testing.T) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// FreeAddr is a loopback address with a port nothing listens on.
func FreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
