package cloudprovider_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// batchCall is one call of a lined-up batch.
type batchCall func(pb.CloudProviderClient) error

// lineUp makes the calls of one batch: lead starts alone and its ledger write is held until every
// call of queued waits behind it on the replica, so that they are decided together by the next
// ledger write. during, if set, runs at the start of each attempt of that second batch's decision
// (attempt counts from 1). It returns the queued calls' errors, in order, and lead's error.
func lineUp(t *testing.T, r *replica, ns string, lead batchCall, queued []batchCall, during func(attempt int)) (errs []error, leadErr error) {
	t.Helper()
	var invocations atomic.Int32
	held := make(chan struct{})
	cloudprovider.SetBatchHook(r.srv, func(calls int) {
		n := invocations.Add(1)
		switch n {
		case 1:
			close(held)
			// The lead's batch: wait until the others are queued behind it.
			for deadline := time.Now().Add(20 * time.Second); cloudprovider.Queued(r.srv, ns, "g") < len(queued); {
				if time.Now().After(deadline) {
					t.Errorf("only %d of %d calls queued behind the held batch", cloudprovider.Queued(r.srv, ns, "g"), len(queued))
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		default:
			if calls != len(queued) {
				t.Errorf("a batch of %d calls, want the %d queued ones together", calls, len(queued))
			}
			if during != nil {
				during(int(n) - 1)
			}
		}
	})
	t.Cleanup(func() { cloudprovider.SetBatchHook(r.srv, nil) })

	clients := clientsOver(t, []*replica{r}, len(queued)+1)
	errs = make([]error, len(queued))
	var wg sync.WaitGroup
	wg.Go(func() { leadErr = lead(clients[0]) })
	<-held
	for i, call := range queued {
		wg.Go(func() { errs[i] = call(clients[i+1]) })
	}
	wg.Wait()
	cloudprovider.SetBatchHook(r.srv, nil)
	return errs, leadErr
}

func repeat(n int, c batchCall) []batchCall {
	out := make([]batchCall, n)
	for i := range out {
		out[i] = c
	}
	return out
}

func increaseBy(t *testing.T, id string, delta int32) batchCall {
	return func(c pb.CloudProviderClient) error { return increase(t, c, id, delta) }
}

// codeCount counts errors by gRPC code.
func codeCount(errs []error) map[codes.Code]int {
	out := map[codes.Code]int{}
	for _, err := range errs {
		out[status.Code(err)]++
	}
	return out
}

// ledgerStats reads a replica's ledger-write metrics: writes by outcome, and the number of
// batches and of calls in them.
type ledgerStats struct {
	written, unchanged, failed float64
	batches                    uint64
	calls                      float64
}

func ledgerWritesOf(t *testing.T, r *replica) ledgerStats {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.metrics.LedgerWrites, r.metrics.LedgerBatch)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var s ledgerStats
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				s.batches, s.calls = h.GetSampleCount(), h.GetSampleSum()
				continue
			}
			for _, l := range m.GetLabel() {
				switch l.GetValue() {
				case "written":
					s.written = m.GetCounter().GetValue()
				case "unchanged":
					s.unchanged = m.GetCounter().GetValue()
				case "failed":
					s.failed = m.GetCounter().GetValue()
				}
			}
		}
	}
	return s
}

// Calls on one group that arrive while its ledger write is in flight are recorded together by
// one ledger write, each granted exactly what it asked: scale-ups get machines of their own,
// deletions of one machine count once.
func TestGroupCommitBatchesConcurrentCalls(t *testing.T) {
	r := startReplica(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	ms := createMachines(t, ns, "g", 20, func(i int, m *infrav1.Machine) { m.Spec.Online = i < 4 })
	id := gid(ns, "g")
	r.sync(t, ns)

	del := func(n *pb.ExternalGrpcNode) batchCall {
		return func(c pb.CloudProviderClient) error { return deleteNodes(t, c, id, n) }
	}
	queued := append(repeat(6, increaseBy(t, id, 1)),
		del(node(ms[0])), del(node(ms[0])), del(fakeNode(ms[1], "unregistered")), increaseBy(t, id, 2))
	errs, leadErr := lineUp(t, r, ns, increaseBy(t, id, 1), queued, nil)
	if leadErr != nil {
		t.Fatal(leadErr)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("queued call %d: %v", i, err)
		}
	}

	// 4 on, +1 +6 +2 powered on, 2 powered off: every grant has machines of its own.
	on := desiredOn(t, ns)
	if len(on) != 11 || on[ms[0].Name] || on[ms[1].Name] {
		t.Fatalf("desired on %v: want 11, without %s and %s", on, ms[0].Name, ms[1].Name)
	}
	for _, m := range ms[:2] {
		if f := fresh(t, m); f.Generation != m.Generation+1 {
			t.Fatalf("%s at generation %d, want its power-off written once (generation %d)", m.Name, f.Generation, m.Generation+1)
		}
	}
	if got := targetSize(t, r.client(t), id); got != 11 {
		t.Fatalf("target %d right after the calls, want 11", got)
	}
	// The ten queued calls shared one ledger write.
	if s := ledgerWritesOf(t, r); s.written != 2 || s.batches != 2 || s.calls != 11 {
		t.Fatalf("ledger writes %+v: want 2 written for 11 calls in 2 batches", s)
	}
}

// A refused call of a batch is refused alone, with its own status, and records nothing; the
// other calls of the batch are granted. A batch refused whole writes nothing.
func TestGroupCommitRefusesAlone(t *testing.T) {
	r := startReplica(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g", maxSize(10))
	createMachines(t, ns, "g", 20, nil)
	id := gid(ns, "g")
	r.sync(t, ns)

	// The decrease is refused whatever its place in the batch: the machines the batch powers on
	// are still in flight when it is decided, and the lead's is one machine, not five.
	queued := append(repeat(6, increaseBy(t, id, 1)), increaseBy(t, id, 20),
		func(c pb.CloudProviderClient) error { return decrease(t, c, id, -5) })
	errs, leadErr := lineUp(t, r, ns, increaseBy(t, id, 1), queued, nil)
	if leadErr != nil {
		t.Fatal(leadErr)
	}
	for i, err := range errs[:6] {
		if err != nil {
			t.Fatalf("increase %d of the batch: %v", i, err)
		}
	}
	if st := status.Convert(errs[6]); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "+ 20 would exceed its maxSize 10") {
		t.Fatalf("increase by 20: %v, want ResourceExhausted past maxSize 10", errs[6])
	}
	if st := status.Convert(errs[7]); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "decreasing the target by 5") {
		t.Fatalf("decrease by 5: %v, want FailedPrecondition", errs[7])
	}
	if on := desiredOn(t, ns); len(on) != 7 {
		t.Fatalf("%d machines desired on, want 7", len(on))
	}
	if s := ledgerWritesOf(t, r); s.written != 2 || s.calls != 9 {
		t.Fatalf("ledger writes %+v: want 2 written for 9 calls", s)
	}

	// A batch whose every call is refused writes nothing.
	errs, leadErr = lineUp(t, r, ns, increaseBy(t, id, 1), repeat(3, increaseBy(t, id, 20)), nil)
	if leadErr != nil {
		t.Fatal(leadErr)
	}
	if got := codeCount(errs); got[codes.ResourceExhausted] != 3 {
		t.Fatalf("codes %v, want 3 ResourceExhausted", got)
	}
	if on := desiredOn(t, ns); len(on) != 8 {
		t.Fatalf("%d machines desired on, want 8", len(on))
	}
	if s := ledgerWritesOf(t, r); s.written != 3 || s.unchanged != 1 {
		t.Fatalf("ledger writes %+v: want 3 written and 1 unchanged", s)
	}
	if got := targetSize(t, r.client(t), id); got != 8 {
		t.Fatalf("target %d, want 8", got)
	}
}

// A write to the Group between a batch's decision and its ledger write (another replica's
// decision, a human lowering maxSize) makes the write conflict, and the whole batch is decided
// again on the fresh Group: the answers are those of the group as it is, not as it was.
func TestGroupCommitConflictRedecides(t *testing.T) {
	t.Run("another replica", func(t *testing.T) {
		a, b := startReplica(t), startReplica(t)
		ns := newNamespace(t)
		createGroup(t, ns, "g", maxSize(5))
		createMachines(t, ns, "g", 10, nil)
		id := gid(ns, "g")
		a.sync(t, ns)
		b.sync(t, ns)
		other := b.client(t)
		var otherErr error
		errs, leadErr := lineUp(t, a, ns, increaseBy(t, id, 1), repeat(4, increaseBy(t, id, 1)), func(attempt int) {
			if attempt == 1 {
				otherErr = increase(t, other, id, 3)
			}
		})
		if leadErr != nil || otherErr != nil {
			t.Fatalf("lead: %v; the other replica's call: %v", leadErr, otherErr)
		}
		// 1 + 3 granted before the batch's write: one more fits under maxSize 5.
		if got := codeCount(errs); got[codes.OK] != 1 || got[codes.ResourceExhausted] != 3 {
			t.Fatalf("codes %v, want 1 OK and 3 ResourceExhausted", got)
		}
		if on := desiredOn(t, ns); len(on) != 5 {
			t.Fatalf("%d machines desired on, want 5", len(on))
		}
		if writeConflicts(t, a) == 0 {
			t.Fatal("the batch's ledger write met no conflict")
		}
	})
	t.Run("a human lowers maxSize", func(t *testing.T) {
		r := startReplica(t)
		ns := newNamespace(t)
		g := createGroup(t, ns, "g", maxSize(10))
		createMachines(t, ns, "g", 10, nil)
		id := gid(ns, "g")
		r.sync(t, ns)
		errs, leadErr := lineUp(t, r, ns, increaseBy(t, id, 1), repeat(4, increaseBy(t, id, 1)), func(attempt int) {
			if attempt != 1 {
				return
			}
			if _, err := optimistic.Update(context.Background(), testWriter, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: g.Name}},
				func(g *infrav1.Group) error {
					g.Spec.MaxSize = ptr(int32(3))
					return nil
				}); err != nil {
				t.Error(err)
			}
		})
		if leadErr != nil {
			t.Fatal(leadErr)
		}
		if got := codeCount(errs); got[codes.OK] != 2 || got[codes.ResourceExhausted] != 2 {
			t.Fatalf("codes %v, want 2 OK and 2 ResourceExhausted under the new maxSize 3", got)
		}
		if on := desiredOn(t, ns); len(on) != 3 {
			t.Fatalf("%d machines desired on, want 3", len(on))
		}
		if writeConflicts(t, r) == 0 {
			t.Fatal("the batch's ledger write met no conflict")
		}
	})
}

// A batch whose ledger write fails for another reason than a conflict fails every call of it,
// and none of them changes a machine.
func TestGroupCommitFailedWriteRecordsNothing(t *testing.T) {
	r := startReplica(t)
	ns := newNamespace(t)
	g := createGroup(t, ns, "g")
	createMachines(t, ns, "g", 10, nil)
	id := gid(ns, "g")
	r.sync(t, ns)
	errs, leadErr := lineUp(t, r, ns, increaseBy(t, id, 1), repeat(4, increaseBy(t, id, 1)), func(attempt int) {
		if attempt == 1 {
			// The Group has no finalizer: it is gone at once, and the ledger write finds nothing.
			if err := env.Client.Delete(context.Background(), &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: g.Name}}); err != nil {
				t.Error(err)
			}
		}
	})
	if leadErr != nil {
		t.Fatal(leadErr)
	}
	if got := codeCount(errs); got[codes.NotFound] != 4 {
		t.Fatalf("codes %v, want every call of the batch NotFound", got)
	}
	if on := desiredOn(t, ns); len(on) != 1 {
		t.Fatalf("%d machines desired on, want only the lead's", len(on))
	}
	if s := ledgerWritesOf(t, r); s.written != 1 || s.failed != 1 {
		t.Fatalf("ledger writes %+v: want 1 written and 1 failed", s)
	}
}

// writeConflicts sums the 409 answers a replica's writes met.
func writeConflicts(t *testing.T, r *replica) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.writes.Conflicts)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
