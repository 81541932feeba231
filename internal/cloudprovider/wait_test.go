package cloudprovider_test

import (
	"testing"
	"time"
)

// waitFor polls cond until it holds or 20 s pass. Only for reads whose source is updated
// asynchronously by the test itself (objects it just created reaching the server's cache);
// a write RPC's effect is never waited for: it must show at once.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
