package testenv

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// Poll checks cond every interval until it holds (true) or timeout passes (false). It is for
// tests, benchmarks and the fault harness, which wait through it (or Eventually) instead of loops
// of their own; product code waits on watches and requeues instead.
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

// Eventually polls cond every 50 ms until it holds, failing the test after timeout. It returns how
// long that took.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if !Poll(timeout, 50*time.Millisecond, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
	return time.Since(start)
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers, for a process's or logger's output.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogger returns a debug-level logger whose output is printed, under name, only when the
// test fails.
func TestLogger(t testing.TB, name string) *slog.Logger {
	t.Helper()
	w := &SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, w.String())
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
