package cloudprovider_test

import (
	"k8s.io/apimachinery/pkg/types"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

func increase(t testing.TB, c pb.CloudProviderClient, id string, delta int32) error {
	t.Helper()
	_, err := c.NodeGroupIncreaseSize(ctx5s(t), &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: delta})
	return err
}

func deleteNodes(t testing.TB, c pb.CloudProviderClient, id string, nodes ...*pb.ExternalGrpcNode) error {
	t.Helper()
	_, err := c.NodeGroupDeleteNodes(ctx5s(t), &pb.NodeGroupDeleteNodesRequest{Id: id, Nodes: nodes})
	return err
}

func decrease(t testing.TB, c pb.CloudProviderClient, id string, delta int32) error {
	t.Helper()
	_, err := c.NodeGroupDecreaseTargetSize(ctx5s(t), &pb.NodeGroupDecreaseTargetSizeRequest{Id: id, Delta: delta})
	return err
}

func sameSet(a map[string]bool, names ...string) bool {
	if len(a) != len(names) {
		return false
	}
	for _, n := range names {
		if !a[n] {
			return false
		}
	}
	return true
}

func TestIncreaseSizeChoosesByPolicy(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	long := metav1.NewTime(time.Now().Add(-48 * time.Hour))
	recent := metav1.NewTime(time.Now().Add(-time.Hour))
	price := func(p string) *infrav1.Pricing { return &infrav1.Pricing{HourlyRate: resource.MustParse(p)} }
	createMachines(t, ns, "g", 7, func(i int, m *infrav1.Machine) {
		switch i {
		case 0: // never booted, cheapest: last
			m.Spec.Pricing = price("0.01")
		case 1: // booted before, dear
			m.Status.ProviderID = m.ProviderIDOrDefault()
			m.Spec.Pricing = price("0.50")
		case 2: // booted before, cheap, used recently
			m.Status.ProviderID = m.ProviderIDOrDefault()
			m.Spec.Pricing = price("0.10")
			m.Status.LastShutdownTime = &recent
		case 3: // booted before, cheap, used long ago: first
			m.Status.ProviderID = m.ProviderIDOrDefault()
			m.Spec.Pricing = price("0.10")
			m.Status.LastShutdownTime = &long
		case 4: // booted before, unpriced: after every priced one
			m.Status.ProviderID = m.ProviderIDOrDefault()
		case 5: // failed: never chosen
			m.Status.ProviderID = m.ProviderIDOrDefault()
			m.Spec.Pricing = price("0.01")
			m.Status.Progress = infrav1.ProgressFailed
		case 6: // already on
			m.Spec.Online = true
		}
	})
	id := gid(ns, "g")
	waitFor(t, "target 1", func() bool { return targetSize(t, c, id) == 1 })
	r.sync(t, ns)

	order := []string{"m0003", "m0002", "m0001", "m0004", "m0000"}
	on := []string{"m0006"}
	for i, next := range order {
		if err := increase(t, c, id, 1); err != nil {
			t.Fatalf("increase %d: %v", i, err)
		}
		on = append(on, next)
		if got := targetSize(t, c, id); got != int32(len(on)) {
			t.Fatalf("target right after increase %d: %d, want %d", i, got, len(on))
		}
		if got := desiredOn(t, ns); !sameSet(got, on...) {
			t.Fatalf("after increase %d desired on %v, want %v", i, got, on)
		}
	}
	// Only the Failed machine is left: nothing can be powered on, and nothing changes.
	err := increase(t, c, id, 1)
	expectCode(t, err, codes.ResourceExhausted)
	if got := targetSize(t, c, id); got != int32(len(on)) {
		t.Fatalf("target after a refused increase: %d, want %d", got, len(on))
	}
	if got := fresh(t, &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m0005"}}); got.Spec.Online {
		t.Fatal("the Failed machine was powered on")
	}
}

func TestIncreaseSizeIsAllOrNothing(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "capped", maxSize(4))
	createMachines(t, ns, "capped", 6, nil)
	r.sync(t, ns)
	id := gid(ns, "capped")

	expectCode(t, increase(t, c, id, 5), codes.ResourceExhausted) // past maxSize
	if err := increase(t, c, id, 3); err != nil {
		t.Fatal(err)
	}
	expectCode(t, increase(t, c, id, 2), codes.ResourceExhausted) // 3 + 2 > 4
	if got := targetSize(t, c, id); got != 3 {
		t.Fatalf("target %d, want 3: a refused increase changed something", got)
	}
	if err := increase(t, c, id, 1); err != nil {
		t.Fatal(err)
	}
	if got := len(desiredOn(t, ns)); got != 4 {
		t.Fatalf("%d desired on, want 4", got)
	}

	// Not enough machines (maxSize allows it, the members do not).
	createGroup(t, ns, "small")
	createMachines(t, ns, "small", 3, func(i int, m *infrav1.Machine) {
		m.Name = "s" + machineName(i)
		if i == 0 {
			m.Status.Progress = infrav1.ProgressFailed
		}
	})
	sid := gid(ns, "small")
	r.sync(t, ns)
	expectCode(t, increase(t, c, sid, 3), codes.ResourceExhausted)
	if got := targetSize(t, c, sid); got != 0 {
		t.Fatalf("target %d after a refused increase, want 0", got)
	}
	if err := increase(t, c, sid, 2); err != nil {
		t.Fatal(err)
	}
}

func TestIncreaseSizeBadArguments(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	createMachines(t, ns, "g", 1, nil)
	r.sync(t, ns)
	expectCode(t, increase(t, c, gid(ns, "g"), 0), codes.InvalidArgument)
	expectCode(t, increase(t, c, gid(ns, "g"), -1), codes.InvalidArgument)
	expectCode(t, increase(t, c, gid(ns, "missing"), 1), codes.NotFound)
	expectCode(t, increase(t, c, "missing", 1), codes.InvalidArgument)
	expectCode(t, decrease(t, c, gid(ns, "g"), 0), codes.InvalidArgument)
	expectCode(t, decrease(t, c, gid(ns, "g"), 1), codes.InvalidArgument)
	expectCode(t, decrease(t, c, gid(ns, "missing"), -1), codes.NotFound)
	expectCode(t, deleteNodes(t, c, gid(ns, "g")), codes.InvalidArgument)
	expectCode(t, deleteNodes(t, c, gid(ns, "missing"), &pb.ExternalGrpcNode{Name: "x"}), codes.NotFound)
}

func TestDeleteNodes(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	createGroup(t, ns, "other")
	ms := createMachines(t, ns, "g", 4, func(_ int, m *infrav1.Machine) { m.Spec.Online = true })
	other := createMachines(t, ns, "other", 1, func(_ int, m *infrav1.Machine) {
		m.Name = "other"
		m.Spec.Online = true
	})[0]
	registerCore(t, ms[0], true)
	setStatus(t, ms[0], func(s *infrav1.MachineStatus) { s.Progress = infrav1.ProgressReady })
	id := gid(ns, "g")
	r.sync(t, ns)
	waitFor(t, "target 4", func() bool { return targetSize(t, c, id) == 4 })

	// A node of another group, or of no group, makes the whole call fail and change nothing.
	expectCode(t, deleteNodes(t, c, id, node(ms[0]), node(other)), codes.InvalidArgument)
	expectCode(t, deleteNodes(t, c, id, node(ms[0]), &pb.ExternalGrpcNode{ProviderID: "homelab://nope/nope", Name: "nope"}), codes.InvalidArgument)
	if got := len(desiredOn(t, ns)); got != 5 {
		t.Fatalf("a refused delete changed something: %d desired on, want 5", got)
	}

	// A registered node: powered off, marked as cluster-autoscaler's (no second drain).
	before := fresh(t, ms[0])
	if err := deleteNodes(t, c, id, node(ms[0])); err != nil {
		t.Fatal(err)
	}
	if got := targetSize(t, c, id); got != 3 {
		t.Fatalf("target right after delete: %d, want 3", got)
	}
	after := fresh(t, ms[0])
	if after.Spec.Online {
		t.Fatal("machine not desired off")
	}
	if after.Generation != before.Generation+1 || !ledgerRecordsPowerOff(t, after) {
		t.Fatalf("the power-off at generation %d (want %d) is not recorded in the Group's scale ledger as cluster-autoscaler's",
			after.Generation, before.Generation+1)
	}

	// Idempotent: again, and again with the fake node of the same instance.
	for range 3 {
		if err := deleteNodes(t, c, id, node(ms[0]), fakeNode(ms[0], "unregistered")); err != nil {
			t.Fatal(err)
		}
	}
	if got := targetSize(t, c, id); got != 3 {
		t.Fatalf("target after repeated deletes: %d, want 3", got)
	}

	// Fake nodes (create-error and unregistered instances), two in one call.
	if err := deleteNodes(t, c, id, fakeNode(ms[1], "create-error"), fakeNode(ms[2], "unregistered")); err != nil {
		t.Fatal(err)
	}
	if got := targetSize(t, c, id); got != 1 {
		t.Fatalf("target after deleting two fake nodes: %d, want 1", got)
	}
	if got := desiredOn(t, ns); !sameSet(got, "m0003", "other") {
		t.Fatalf("desired on %v", got)
	}
}

func TestDeleteNodesRespectsMinSize(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g", minSize(2))
	ms := createMachines(t, ns, "g", 3, func(_ int, m *infrav1.Machine) { m.Spec.Online = true })
	for _, m := range ms[:2] {
		registerCore(t, m, true)
		setStatus(t, m, func(s *infrav1.MachineStatus) { s.Progress = infrav1.ProgressReady })
	}
	setStatus(t, ms[2], func(s *infrav1.MachineStatus) {
		s.Progress = infrav1.ProgressFailed
		s.Operation = &infrav1.PowerOperation{Action: infrav1.PowerActionOn, Attempt: 3}
	})
	id := gid(ns, "g")
	r.sync(t, ns)
	waitFor(t, "target 3", func() bool { return targetSize(t, c, id) == 3 })

	// Two registered nodes would take 3 below 2.
	expectCode(t, deleteNodes(t, c, id, node(ms[0]), node(ms[1])), codes.FailedPrecondition)
	// The failed, unregistered machine can always go (cluster-autoscaler's create-error path).
	if err := deleteNodes(t, c, id, fakeNode(ms[2], "create-error")); err != nil {
		t.Fatal(err)
	}
	// Now at minSize: a registered node cannot go.
	expectCode(t, deleteNodes(t, c, id, node(ms[0])), codes.FailedPrecondition)
	if got := targetSize(t, c, id); got != 2 {
		t.Fatalf("target %d, want 2", got)
	}
}

func TestDecreaseTargetSizeCancelsOnlyUnregistered(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	started := func(ago time.Duration) *metav1.Time { ts := metav1.NewTime(time.Now().Add(-ago)); return &ts }
	ms := createMachines(t, ns, "g", 6, func(i int, m *infrav1.Machine) {
		m.Spec.Online = true
		switch i {
		case 0, 1: // registered and Ready
			m.Status.Progress = infrav1.ProgressReady
		case 2: // registered, not Ready yet: still registered
			m.Status.Progress = infrav1.ProgressStartingUp
			m.Status.LastStartupTime = started(time.Minute)
		case 3: // booting for long
			m.Status.Progress = infrav1.ProgressStartingUp
			m.Status.LastStartupTime = started(5 * time.Minute)
		case 4: // just started booting
			m.Status.Progress = infrav1.ProgressStartingUp
			m.Status.LastStartupTime = started(10 * time.Second)
		case 5: // failed to boot
			m.Status.Progress = infrav1.ProgressFailed
			m.Status.Operation = &infrav1.PowerOperation{Action: infrav1.PowerActionOn, Attempt: 3}
		}
	})
	registerCore(t, ms[0], true)
	registerCore(t, ms[1], true)
	registerCore(t, ms[2], false)
	id := gid(ns, "g")
	r.sync(t, ns)
	waitFor(t, "target 6", func() bool { return targetSize(t, c, id) == 6 })

	// Four would need a registered machine: refused, nothing changes.
	expectCode(t, decrease(t, c, id, -4), codes.FailedPrecondition)
	if got := len(desiredOn(t, ns)); got != 6 {
		t.Fatalf("a refused decrease changed something: %d desired on", got)
	}
	// Failed first, then the most recently started.
	if err := decrease(t, c, id, -2); err != nil {
		t.Fatal(err)
	}
	if got := targetSize(t, c, id); got != 4 {
		t.Fatalf("target right after decrease: %d, want 4", got)
	}
	if got := desiredOn(t, ns); !sameSet(got, "m0000", "m0001", "m0002", "m0003") {
		t.Fatalf("desired on %v, want m0000-m0003", got)
	}
	if err := decrease(t, c, id, -1); err != nil {
		t.Fatal(err)
	}
	expectCode(t, decrease(t, c, id, -1), codes.FailedPrecondition)
	if got := targetSize(t, c, id); got != 3 {
		t.Fatalf("target %d, want 3", got)
	}
}

// ledgerRecordsPowerOff reports whether m's Group records the power-off that made m's current
// generation as decided through its scale ledger (so the lifecycle does not drain it again).
func ledgerRecordsPowerOff(t *testing.T, m *infrav1.Machine) bool {
	t.Helper()
	g := &infrav1.Group{}
	if err := env.Client.Get(t.Context(), types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.Group}, g); err != nil {
		t.Fatal(err)
	}
	if g.Status.ScaleLedger == nil {
		return false
	}
	for _, p := range g.Status.ScaleLedger.PowerOffs {
		if p.Name == m.Name && p.Generation == m.Generation {
			return true
		}
	}
	return false
}
