package faults

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Cluster-autoscaler through both replicas (scale-ups and scale-downs) and a human flipping
// spec.online, all at once on one group: every grant is applied once (the target size
// equals the machines desired on), the last writer of each machine wins, and every machine
// ends as its final spec says.
func concurrentWriters(t *testing.T, kc string) {
	w := NewWorld(t, env, managerBin, kc, rng(500), Options{Machines: 6, Replicas: 2, Lease: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		bad     []error
		refused int
	)
	// No call starts in the last second of the window: one that did could be cut short by the
	// window's end in the client itself (its rate limiter refuses a wait that would pass the
	// deadline), which is not the server's failure.
	deadline, _ := ctx.Deadline()
	writer := func(op func(context.Context) error) {
		wg.Go(func() {
			for time.Until(deadline) > time.Second {
				err := op(ctx)
				switch status.Code(err) {
				case codes.OK:
				case codes.Internal, codes.Unknown:
					if ctx.Err() == nil {
						mu.Lock()
						bad = append(bad, err)
						mu.Unlock()
					}
				default:
					// Refused or cut short (a conflict used up its retries, the call's own
					// deadline): cluster-autoscaler asks again in its next loop.
					mu.Lock()
					refused++
					mu.Unlock()
				}
				time.Sleep(time.Duration(50+w.IntN(250)) * time.Millisecond)
			}
		})
	}
	for i := range w.Managers {
		writer(func(ctx context.Context) error { _, err := w.ScaleUp(ctx, i); return err })
		writer(func(ctx context.Context) error { _, err := w.ScaleDown(ctx, i); return err })
	}
	writer(func(ctx context.Context) error { _, err := w.HumanEdit(ctx); return err })
	wg.Wait()
	t.Logf("%d calls refused or cut short", refused)
	for _, err := range bad {
		t.Errorf("a writer failed: %v", err)
	}
	w.Finish(context.Background(), 90*time.Second, NoFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}
