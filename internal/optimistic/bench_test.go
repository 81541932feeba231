package optimistic_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// BenchmarkWrite compares, with 1, 8 and 32 writers incrementing one counter on one object, the
// optimistic write path with a plain read-then-Update (which fails on a conflict) and a blind merge
// patch without precondition (which silently loses increments). It reports conflicts, failures and
// lost increments per write.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("optimistic/writers=%d", writers), func(b *testing.B) {
			w, m := newWriter(b, env.Client, optimistic.WithBackoff(optimistic.Backoff{
				Attempts: 1000, Base: optimisticBase, Cap: optimisticCap, Factor: 2, Jitter: 1,
			}))
			benchIncrements(b, writers, func(ctx context.Context, g *infrav1.Group) error {
				// A key-only object: every write starts from a fresh read, as a plain Update does.
				key := &infrav1.Group{}
				key.Name, key.Namespace = g.Name, g.Namespace
				_, err := optimistic.Update(ctx, w, key, increment)
				return err
			}, func() float64 {
				return testutil.ToFloat64(m.Conflicts.WithLabelValues(groupsResource, optimistic.OpUpdate))
			})
		})
		b.Run(fmt.Sprintf("plain-update/writers=%d", writers), func(b *testing.B) {
			benchIncrements(b, writers, func(ctx context.Context, g *infrav1.Group) error {
				cur := &infrav1.Group{}
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), cur); err != nil {
					return err
				}
				_ = increment(cur)
				return env.Client.Update(ctx, cur) // fails on a conflict, never retried
			}, func() float64 { return 0 })
		})
		b.Run(fmt.Sprintf("blind-patch/writers=%d", writers), func(b *testing.B) {
			benchIncrements(b, writers, func(ctx context.Context, g *infrav1.Group) error {
				cur := &infrav1.Group{}
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), cur); err != nil {
					return err
				}
				base := cur.DeepCopy()
				_ = increment(cur)
				return env.Client.Patch(ctx, cur, client.MergeFrom(base)) // no precondition: last writer wins
			}, func() float64 { return 0 })
		})
	}
}

const (
	optimisticBase = 1_000_000  // 1 ms
	optimisticCap  = 50_000_000 // 50 ms
)

func benchIncrements(b *testing.B, writers int, write func(context.Context, *infrav1.Group) error, conflicts func() float64) {
	ctx := context.Background()
	g := newGroup(b)
	var next atomic.Int64
	var failed atomic.Int64
	before := conflicts()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := write(ctx, g); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	got := &infrav1.Group{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), got); err != nil {
		b.Fatal(err)
	}
	n, _ := strconv.Atoi(got.Annotations[counterKey])
	b.ReportMetric((conflicts()-before)/float64(b.N), "conflicts/write")
	b.ReportMetric(float64(int64(b.N)-int64(n)-failed.Load())/float64(b.N), "lost/write")
	b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/write")
}
