package cloudprovider_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// clientsOver gives n clients, each on its own connection, spread over the replicas in turn.
func clientsOver(t testing.TB, replicas []*replica, n int) []pb.CloudProviderClient {
	t.Helper()
	out := make([]pb.CloudProviderClient, n)
	for i := range out {
		out[i] = replicas[i%len(replicas)].client(t)
	}
	return out
}

// together runs call once per client, all released at the same instant, and counts the codes.
func together(clients []pb.CloudProviderClient, call func(pb.CloudProviderClient) error) map[codes.Code]int {
	var mu sync.Mutex
	out := map[codes.Code]int{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			<-start
			err := call(c)
			mu.Lock()
			out[status.Code(err)]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return out
}

func TestConcurrentIncreaseSize(t *testing.T) {
	cases := []struct {
		name               string
		replicas           int
		clients, machines  int
		delta              int32
		max                *int32
		wantOK, wantRefuse int
	}{
		{name: "20 clients, 30 machines", replicas: 1, clients: 20, machines: 30, delta: 1, wantOK: 20},
		{name: "40 clients, 30 machines", replicas: 1, clients: 40, machines: 30, delta: 1, wantOK: 30, wantRefuse: 10},
		{name: "20 clients, 30 machines, two replicas", replicas: 2, clients: 20, machines: 30, delta: 1, wantOK: 20},
		{name: "40 clients, 30 machines, two replicas", replicas: 2, clients: 40, machines: 30, delta: 1, wantOK: 30, wantRefuse: 10},
		{name: "20 clients, maxSize 10 below 30 machines, two replicas", replicas: 2, clients: 20, machines: 30, delta: 1,
			max: ptr(int32(10)), wantOK: 10, wantRefuse: 10},
		{name: "12 clients of 3, maxSize 20, two replicas", replicas: 2, clients: 12, machines: 30, delta: 3,
			max: ptr(int32(20)), wantOK: 6, wantRefuse: 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			replicas := make([]*replica, tc.replicas)
			for i := range replicas {
				replicas[i] = startReplica(t)
			}
			ns := newNamespace(t)
			createGroup(t, ns, "g", func(g *infrav1.Group) { g.Spec.MaxSize = tc.max })
			createMachines(t, ns, "g", tc.machines, nil)
			id := gid(ns, "g")
			clients := clientsOver(t, replicas, tc.clients)
			for _, r := range replicas {
				r.sync(t, ns)
			}

			got := together(clients, func(c pb.CloudProviderClient) error { return increase(t, c, id, tc.delta) })
			if got[codes.OK] != tc.wantOK || got[codes.ResourceExhausted] != tc.wantRefuse || len(got) > 2 {
				t.Fatalf("codes %v, want %d OK and %d ResourceExhausted", got, tc.wantOK, tc.wantRefuse)
			}
			// Each granted call powered on its own machines: nothing picked twice, nothing
			// half-applied.
			on := desiredOn(t, ns)
			if want := tc.wantOK * int(tc.delta); len(on) != want {
				t.Fatalf("%d machines desired on, want %d", len(on), want)
			}
			for _, r := range replicas {
				c := r.client(t)
				waitFor(t, "every replica's target", func() bool { return targetSize(t, c, id) == int32(len(on)) })
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestConcurrentDeleteNodesDecrementOncePerMachine(t *testing.T) {
	replicas := []*replica{startReplica(t), startReplica(t)}
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	ms := createMachines(t, ns, "g", 10, func(_ int, m *infrav1.Machine) { m.Spec.Online = true })
	id := gid(ns, "g")
	for _, r := range replicas {
		r.sync(t, ns)
	}
	gens := map[string]int64{}
	var nodes []*pb.ExternalGrpcNode
	for i, m := range ms[:5] {
		gens[m.Name] = m.Generation
		if i%2 == 0 {
			nodes = append(nodes, node(m))
		} else {
			nodes = append(nodes, fakeNode(m, "unregistered"))
		}
	}
	clients := clientsOver(t, replicas, 16)
	got := together(clients, func(c pb.CloudProviderClient) error {
		if err := deleteNodes(t, c, id, nodes...); err != nil {
			return err
		}
		// Read-your-writes: the caller's own replica shows the deletion at once.
		if ts := targetSize(t, c, id); ts != 5 {
			return fmt.Errorf("target right after delete: %d", ts)
		}
		return nil
	})
	if got[codes.OK] != len(clients) {
		t.Fatalf("codes %v, want every call OK (idempotent)", got)
	}
	on := desiredOn(t, ns)
	if len(on) != 5 {
		t.Fatalf("%d desired on, want 5: one decrement per machine", len(on))
	}
	for _, m := range ms[:5] {
		f := fresh(t, m)
		if f.Spec.Online || f.Generation != gens[m.Name]+1 {
			t.Fatalf("%s: online %t at generation %d, want offline written once (generation %d)", m.Name, f.Spec.Online, f.Generation, gens[m.Name]+1)
		}
	}
}

func TestTargetSizeShowsEveryWriteAtOnce(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	ms := createMachines(t, ns, "g", 12, nil)
	id := gid(ns, "g")
	r.sync(t, ns)
	want := int32(0)
	check := func(step string) {
		t.Helper()
		if got := targetSize(t, c, id); got != want {
			t.Fatalf("%s: target %d right after the call, want %d", step, got, want)
		}
	}
	for round := range 3 {
		if err := increase(t, c, id, 3); err != nil {
			t.Fatal(err)
		}
		want += 3
		check(fmt.Sprintf("round %d increase", round))
		if err := decrease(t, c, id, -1); err != nil {
			t.Fatal(err)
		}
		want--
		check(fmt.Sprintf("round %d decrease", round))
		var victim *infrav1.Machine
		for _, m := range ms {
			if desiredOn(t, ns)[m.Name] {
				victim = m
				break
			}
		}
		if err := deleteNodes(t, c, id, fakeNode(victim, "unregistered")); err != nil {
			t.Fatal(err)
		}
		want--
		check(fmt.Sprintf("round %d delete", round))
	}
}

// TestLedgerAcrossReplicas plays another replica's decisions by writing the ledger directly: one
// whose replica is still applying it (deadline ahead), one whose replica died (deadline past).
func TestLedgerAcrossReplicas(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	g := createGroup(t, ns, "g", maxSize(3))
	ms := createMachines(t, ns, "g", 5, nil)
	id := gid(ns, "g")
	r.sync(t, ns)

	now := time.Now()
	l := &infrav1.ScaleLedger{Ops: []infrav1.ScaleOperation{
		{ID: "dead-replica-1", Method: "NodeGroupIncreaseSize", Deadline: now.Add(-time.Minute).UnixMilli(),
			Changes: []infrav1.ScaleChange{{Name: ms[0].Name, Generation: ms[0].Generation, On: true}}},
		{ID: "busy-replica-7", Method: "NodeGroupIncreaseSize", Deadline: now.Add(time.Hour).UnixMilli(),
			Changes: []infrav1.ScaleChange{{Name: ms[1].Name, Generation: ms[1].Generation, On: true}}},
	}}
	if _, err := optimistic.UpdateStatus(context.Background(), testWriter, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: g.Name}},
		func(g *infrav1.Group) error {
			g.Status.ScaleLedger = l
			return nil
		}); err != nil {
		t.Fatal(err)
	}

	// Both recorded decisions count (target 2 of max 3) and neither machine is chosen again.
	if err := increase(t, c, id, 1); err != nil {
		t.Fatal(err)
	}
	if got := desiredOn(t, ns); !sameSet(got, ms[0].Name, ms[2].Name) {
		t.Fatalf("desired on %v, want the dead replica's %s rolled forward and a new %s (the busy replica applies %s itself)",
			got, ms[0].Name, ms[2].Name, ms[1].Name)
	}
	expectCode(t, increase(t, c, id, 1), codes.ResourceExhausted)
}
