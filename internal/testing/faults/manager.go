package faults

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// BuildManager builds cmd/homelab-autoscaler into dir and returns the binary's path: the
// harness runs the real manager as a process, so that a kill is a real SIGKILL.
func BuildManager(dir string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "homelab-autoscaler")
	// The go command that runs the tests is on PATH (make and go test put it there).
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the manager needs the go command: %w", err)
	}
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/homelab-autoscaler") //nolint:gosec // the project's own build
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the manager: %w\n%s", err, b)
	}
	return out, nil
}

// FreePort returns a loopback port nothing listens on now. A manager keeps its gRPC port
// across restarts, as a Service's target port stays, so clients reconnect by themselves.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Manager is one manager replica: a process that can be started, killed and started again
// with the same arguments. Its output accumulates over every run.
type Manager struct {
	// Name tells replicas apart in logs and reports.
	Name string
	// GRPCAddress is where it serves cluster-autoscaler's API (the same on every run).
	GRPCAddress string

	bin  string
	args []string
	out  *testenv.SyncBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// NewManager describes a replica; nothing runs until Start.
func NewManager(name, bin, grpcAddress string, args []string) *Manager {
	return &Manager{Name: name, GRPCAddress: grpcAddress, bin: bin, args: args, out: &testenv.SyncBuffer{}}
}

// Start runs the manager. It does not wait for it to serve.
func (m *Manager) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("manager %s is running", m.Name)
	}
	m.starts++
	_, _ = fmt.Fprintf(m.out, "=== run %d of %s\n", m.starts, m.Name)
	cmd := exec.Command(m.bin, m.args...) //nolint:gosec // the project's own binary
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting manager %s: %w", m.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	return nil
}

// Kill sends SIGKILL, the crash a clean shutdown never rehearses, and waits until the process
// is gone.
func (m *Manager) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	err := m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
	m.cmd = nil
	if errors.Is(err, os.ErrProcessDone) {
		err = nil
	}
	return err
}

// Running reports whether the process is alive.
func (m *Manager) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Output is everything the replica printed, over every run.
func (m *Manager) Output() string { return m.out.String() }
