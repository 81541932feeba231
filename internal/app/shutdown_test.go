package app_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// exitBound is how long a test waits for the manager to exit after SIGTERM: far above the
// --shutdown-timeout the tests give, so that only a manager that does not exit at all fails.
const exitBound = 30 * time.Second

// TestShutdown runs the built manager and stops it with SIGTERM.
//
// "unresponsive apiserver" reproduces a SIGTERM during start-up while the apiserver accepts
// connections and never answers (a frozen apiserver, or a network path that drops its replies).
// controller-runtime's manager constructor discovers the API through a REST mapper that takes no
// context, and the Kubernetes client sets no timeout of its own, so the cancelled signal context
// is never seen: before the command ended itself after --shutdown-timeout, this manager kept
// running after SIGTERM until killed. It must now exit, with status 1 and a log line saying it
// did not stop gracefully.
//
// "graceful": with a working apiserver, SIGTERM stops the manager through the graceful path,
// with status 0 and without the forced exit.
func TestShutdown(t *testing.T) {
	bin := buildManager(t)

	t.Run("unresponsive apiserver", func(t *testing.T) {
		hole := blackHole(t)
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		writeKubeconfig(t, kubeconfig, "http://"+hole.addr)
		p := startManager(t, bin, kubeconfig)
		// The manager is in start-up, waiting on the apiserver, and its signal handler is in
		// place (installed before the manager is built): a SIGTERM now is handled, not fatal by
		// default.
		select {
		case <-hole.accepted:
		case <-p.exited:
			t.Fatalf("the manager exited before reaching the apiserver:\n%s", p.out.String())
		case <-time.After(exitBound):
			t.Fatalf("the manager never connected to the apiserver:\n%s", p.out.String())
		}
		err := p.stop(t)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("the manager ended with %v, want exit status 1:\n%s", err, p.out.String())
		}
		if !strings.Contains(p.out.String(), forcedExit) {
			t.Fatalf("the manager did not say why it exited:\n%s", p.out.String())
		}
	})

	t.Run("graceful", func(t *testing.T) {
		kubeconfig, err := env.WriteKubeconfig(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		p := startManager(t, bin, kubeconfig)
		testenv.Eventually(t, exitBound, "the manager to serve gRPC", func() bool {
			return strings.Contains(p.out.String(), "serving cluster-autoscaler's externalgrpc cloud provider")
		})
		if err := p.stop(t); err != nil {
			t.Fatalf("the manager ended with %v, want exit status 0:\n%s", err, p.out.String())
		}
		if strings.Contains(p.out.String(), forcedExit) {
			t.Fatalf("the graceful stop was cut short:\n%s", p.out.String())
		}
	})
}

// forcedExit is the message of the command's last-resort exit.
const forcedExit = "exiting without a graceful stop"

// buildManager builds cmd/homelab-autoscaler into the test's temporary directory.
func buildManager(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "homelab-autoscaler")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/homelab-autoscaler")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}
	return bin
}

// hole is a TCP listener that accepts connections and never reads or answers on them.
type hole struct {
	addr     string
	accepted chan struct{}
}

func blackHole(t *testing.T) *hole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hole{addr: l.Addr().String(), accepted: make(chan struct{})}
	var (
		mu    sync.Mutex
		conns []net.Conn
		once  sync.Once
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			once.Do(func() { close(h.accepted) })
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return h
}

func writeKubeconfig(t *testing.T, path, server string) {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, server)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// process is a running manager.
type process struct {
	cmd    *exec.Cmd
	out    *testenv.SyncBuffer
	exited chan struct{}
	err    error
}

// startManager runs the manager with a short shutdown timeout, plaintext gRPC on a free loopback
// port and neither metrics nor probes; the test's cleanup kills it if it still runs.
func startManager(t *testing.T, bin, kubeconfig string) *process {
	t.Helper()
	p := &process{out: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "--kubeconfig", kubeconfig, "--shutdown-timeout", "2s",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--grpc-insecure", "--grpc-bind-address", "127.0.0.1:0")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// stop sends SIGTERM and returns how the process ended, failing the test if it is still running
// after exitBound.
func (p *process) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(exitBound):
		t.Fatalf("the manager still runs %s after SIGTERM:\n%s", exitBound, p.out.String())
		return nil
	}
}
