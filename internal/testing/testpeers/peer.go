// Package testpeers starts real peer programs (a BMC simulator, ...) on loopback for tests, so
// that the power driver tests and the reconciler's end-to-end tests talk to the same peers
// through the same code. It is imported by _test.go files only.
//
// A peer whose program is not installed fails the test with a message naming the program and
// hack/install-test-deps.sh: a machine without it must go red, never skip.
package testpeers

import (
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// RequireBinary finds a peer program on PATH or fails the test.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: this test runs it as a real peer. Run hack/install-test-deps.sh (make test-deps) first", name)
	}
	return path
}

// FreeUDPPort returns a loopback UDP port nothing listens on (closed again before returning).
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	_ = c.Close()
	return port
}

// Peer is a program a test started; it is stopped by its process group when the test ends.
type Peer struct {
	Name string
	// Out collects the program's stdout and stderr.
	Out  *testenv.SyncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPeer starts name with args in its own process group. When the test ends the group gets
// SIGTERM, then SIGKILL after five seconds; a failed test logs the program's output.
func StartPeer(t testing.TB, name string, args ...string) *Peer {
	t.Helper()
	cmd := exec.Command(name, args...) //nolint:gosec // starting the program a test names is the point
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that stopping it also stops what it spawned (chassis scripts,
	// sshd's per-connection children).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Peer{Name: name, Out: out, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return p
}

// Exited reports whether the program has exited.
func (p *Peer) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
