package cloudprovider_test

import (
	"testing"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// waitFor waits up to 20 s for cond. Only for reads whose source is updated asynchronously by the
// test itself (objects it just created reaching the server's cache); a write RPC's effect is
// never waited for: it must show at once.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, what, cond)
}
