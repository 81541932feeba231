package perf_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

const (
	rpcGroup = "static"
	// readCalls is how many calls each repetition of a read times, one after another on one
	// connection, as cluster-autoscaler's loop calls.
	readCalls = 200
)

// writeCallers are the concurrent callers of the write calls.
var writeCallers = []int{1, 8, 32}

// rpcReplicas is how many manager processes serve the RPC part: the write calls' callers are
// spread over them, so that their optimistic writes meet each other's as replicas in a cluster do.
const rpcReplicas = 2

// rpcs measures every gRPC call against a fleet whose status the benchmark wrote (half the
// machines on and Ready, half off), served by two replicas of the manager, neither leading (the
// benchmark holds the Lease), so that only their gRPC servers run: with the lifecycle controller
// running, every IncreaseSize would boot a machine and the fleet would not stay the same from one
// call to the next.
func (r *run) rpcs() {
	b := r.b
	ns := r.namespace("rpc")
	began := time.Now()
	r.logf("creating a static fleet of %d machines", r.size)
	machines := r.staticFleet(ns)
	r.logf("fleet created in %s; starting %d manager replicas, neither leading", time.Since(began).Round(time.Second), rpcReplicas)
	m := r.startManager(ns, managerOptions{replicas: rpcReplicas, leaderless: true})
	defer m.stop()
	id := cloudprovider.GroupID(ns, rpcGroup)
	on := int32((r.size + 1) / 2) //nolint:gosec // fleet sizes are small
	for _, rep := range m.replicas {
		if !testenv.Poll(5*time.Minute, 100*time.Millisecond, func() bool {
			ctx, cancel := ctxFor(5 * time.Second)
			defer cancel()
			res, err := rep.client.NodeGroupNodes(ctx, &pb.NodeGroupNodesRequest{Id: id})
			return err == nil && len(res.GetInstances()) == int(on)
		}) {
			b.Fatal("a replica's cache did not show the fleet within 5 minutes")
		}
	}
	time.Sleep(time.Second)
	r.reads(m.client, id, machines)
	r.writes(m, id, machines)
}

// staticFleet creates the group and its machines with their status, as the controllers would
// have left them: even machines on and Ready, every fourth booted before, all priced.
func (r *run) staticFleet(ns string) []*infrav1.Machine {
	b := r.b
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rpcGroup}}
	g.Spec.AutoscalingOptions = &infrav1.AutoscalingOptions{MaxNodeProvisionTime: &metav1.Duration{Duration: 5 * time.Minute}}
	if err := r.env.Client.Create(context.Background(), g); err != nil {
		b.Fatal(err)
	}
	past := metav1.NewTime(time.Now().Add(-24 * time.Hour))
	out := make([]*infrav1.Machine, r.size)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := range r.size {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := fmt.Sprintf("m%05d", i)
			m := &infrav1.Machine{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: infrav1.MachineSpec{
					Group: rpcGroup, Online: false, KubernetesNodeName: ns + "-" + name,
					BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{
						Address: "127.0.0.1", CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
					}},
					Pricing: &infrav1.Pricing{HourlyRate: resource.MustParse(fmt.Sprintf("0.%02d", 1+i%50))},
				},
			}
			status := infrav1.MachineStatus{Progress: infrav1.ProgressOff, PowerState: infrav1.PoweredOff}
			if i%2 == 0 {
				m.Spec.Online = true
				status = infrav1.MachineStatus{Progress: infrav1.ProgressReady, PowerState: infrav1.PoweredOn, ProviderID: m.ProviderIDOrDefault()}
			} else if i%4 == 1 {
				status.ProviderID, status.LastShutdownTime = m.ProviderIDOrDefault(), &past
			}
			ctx, cancel := ctxFor(time.Minute)
			defer cancel()
			if err := r.env.Client.Create(ctx, m); err != nil {
				failed.Store(err)
				return
			}
			if _, err := optimistic.UpdateStatus(ctx, r.writer, m, func(n *infrav1.Machine) error {
				status.ObservedGeneration = n.Generation
				n.Status = status
				return nil
			}); err != nil {
				failed.Store(err)
				return
			}
			out[i] = m
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	// The first machine has registered its core Node: the template comes from it.
	first := out[0]
	core := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: first.KubernetesNodeNameOrDefault(), Labels: map[string]string{
			corev1.LabelHostname: first.KubernetesNodeNameOrDefault(), infrav1.LabelNamespace: first.Namespace,
			infrav1.LabelGroup: rpcGroup, infrav1.LabelMachine: first.Name,
		}},
		Spec: corev1.NodeSpec{ProviderID: first.ProviderIDOrDefault()},
	}
	if err := r.env.Client.Create(context.Background(), core); err != nil {
		b.Fatal(err)
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110"),
	}
	core.Status = corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity.DeepCopy(),
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
	}
	if err := r.env.Client.Status().Update(context.Background(), core); err != nil {
		b.Fatal(err)
	}
	return out
}

// caNode is a machine's node as cluster-autoscaler sends it.
func caNode(m *infrav1.Machine) *pb.ExternalGrpcNode {
	return &pb.ExternalGrpcNode{ProviderID: m.ProviderIDOrDefault(), Name: m.KubernetesNodeNameOrDefault(),
		Labels: map[string]string{infrav1.LabelNamespace: m.Namespace, infrav1.LabelGroup: m.Spec.Group}}
}

// reads times every read call: readCalls calls one after another, r.reps times.
func (r *run) reads(c pb.CloudProviderClient, id string, machines []*infrav1.Machine) {
	now := timestamppb.Now()
	hour := timestamppb.New(now.AsTime().Add(time.Hour))
	random := func() *infrav1.Machine { return machines[rand.IntN(len(machines))] } //nolint:gosec // load spreading only
	calls := []struct {
		name string
		call func(ctx context.Context, i int) error
	}{
		{"NodeGroups", func(ctx context.Context, _ int) error {
			_, err := c.NodeGroups(ctx, &pb.NodeGroupsRequest{})
			return err
		}},
		{"NodeGroupForNode", func(ctx context.Context, _ int) error {
			_, err := c.NodeGroupForNode(ctx, &pb.NodeGroupForNodeRequest{Node: caNode(random())})
			return err
		}},
		{"NodeGroupForNode (not ours)", func(ctx context.Context, i int) error {
			_, err := c.NodeGroupForNode(ctx, &pb.NodeGroupForNodeRequest{Node: &pb.ExternalGrpcNode{Name: fmt.Sprintf("control-plane-%d", i%3)}})
			return err
		}},
		{"NodeGroupTargetSize", func(ctx context.Context, _ int) error {
			_, err := c.NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: id})
			return err
		}},
		{"NodeGroupNodes", func(ctx context.Context, _ int) error {
			_, err := c.NodeGroupNodes(ctx, &pb.NodeGroupNodesRequest{Id: id})
			return err
		}},
		{"NodeGroupTemplateNodeInfo", func(ctx context.Context, _ int) error {
			_, err := c.NodeGroupTemplateNodeInfo(ctx, &pb.NodeGroupTemplateNodeInfoRequest{Id: id})
			return err
		}},
		{"NodeGroupGetOptions", func(ctx context.Context, _ int) error {
			_, err := c.NodeGroupGetOptions(ctx, &pb.NodeGroupAutoscalingOptionsRequest{Id: id})
			return err
		}},
		{"PricingNodePrice", func(ctx context.Context, _ int) error {
			_, err := c.PricingNodePrice(ctx, &pb.PricingNodePriceRequest{Node: caNode(random()), StartTimestamp: now, EndTimestamp: hour})
			return err
		}},
		{"PricingNodePrice (template)", func(ctx context.Context, _ int) error {
			_, err := c.PricingNodePrice(ctx, &pb.PricingNodePriceRequest{
				Node: &pb.ExternalGrpcNode{Name: "template-node-for-" + id + "-1"}, StartTimestamp: now, EndTimestamp: hour})
			return err
		}},
		{"GPULabel", func(ctx context.Context, _ int) error {
			_, err := c.GPULabel(ctx, &pb.GPULabelRequest{})
			return err
		}},
		{"GetAvailableGPUTypes", func(ctx context.Context, _ int) error {
			_, err := c.GetAvailableGPUTypes(ctx, &pb.GetAvailableGPUTypesRequest{})
			return err
		}},
		{"Refresh", func(ctx context.Context, _ int) error {
			_, err := c.Refresh(ctx, &pb.RefreshRequest{})
			return err
		}},
		{"Cleanup", func(ctx context.Context, _ int) error {
			_, err := c.Cleanup(ctx, &pb.CleanupRequest{})
			return err
		}},
	}
	for _, call := range calls {
		var p50, p99 []float64
		for range r.reps {
			lat := r.serial(readCalls, call.call)
			p50, p99 = append(p50, perf.Percentile(lat, 0.5)), append(p99, perf.Percentile(lat, 0.99))
		}
		l := perf.Latency{Call: call.name, Callers: 1, Calls: readCalls, P50: perf.SpreadOf(p50), P99: perf.SpreadOf(p99)}
		r.res.Reads = append(r.res.Reads, l)
		r.logf("%-28s p50 %7.2f ms  p99 %7.2f ms", call.name, l.P50.Median, l.P99.Median)
	}
}

// writeOp is a write call and what puts the fleet back after it (or before it, first).
type writeOp struct {
	name, undo string
	call, back step
	backFirst  bool
}

// writes times IncreaseSize, DecreaseTargetSize and DeleteNodes under concurrent callers spread
// over the replicas. The calls go in rounds: as many calls as callers, all at once, then (untimed,
// in a phase of its own) as many undos, so the fleet stays the same and each phase's API writes
// are its own: IncreaseSize(+1) is undone by DecreaseTargetSize(−1), which cancels the machine
// that has not registered; DecreaseTargetSize is prepared by an IncreaseSize(+1) before it; and
// DeleteNodes is undone by a human turning the machine back on.
func (r *run) writes(m *manager, id string, machines []*infrav1.Machine) {
	half := r.size / 2
	increase := func(ctx context.Context, c pb.CloudProviderClient, _ int) error {
		_, err := c.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: 1})
		return err
	}
	decrease := func(ctx context.Context, c pb.CloudProviderClient, _ int) error {
		_, err := c.NodeGroupDecreaseTargetSize(ctx, &pb.NodeGroupDecreaseTargetSizeRequest{Id: id, Delta: -1})
		return err
	}
	running := func(i int) *infrav1.Machine { return machines[2*((i-1)%half)] }
	del := func(ctx context.Context, c pb.CloudProviderClient, i int) error {
		_, err := c.NodeGroupDeleteNodes(ctx, &pb.NodeGroupDeleteNodesRequest{Id: id, Nodes: []*pb.ExternalGrpcNode{caNode(running(i))}})
		return err
	}
	restore := func(ctx context.Context, _ pb.CloudProviderClient, i int) error {
		key := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: machines[0].Namespace, Name: running(i).Name}}
		_, err := optimistic.Update(ctx, r.writer, key, func(n *infrav1.Machine) error {
			n.Spec.Online = true
			return nil
		})
		return err
	}
	ops := []writeOp{
		{name: "IncreaseSize", undo: "DecreaseTargetSize(−1) after it", call: increase, back: decrease},
		{name: "DecreaseTargetSize", undo: "IncreaseSize(+1) before it", call: decrease, back: increase, backFirst: true},
		{name: "DeleteNodes", undo: "a human turning the machine back on (the benchmark's write, not the manager's)", call: del, back: restore},
	}
	for _, op := range ops {
		measured := map[int]bool{}
		for _, callers := range writeCallers {
			n := callers
			if n > half {
				// More callers than machines to move would turn calls into refusals.
				n = half
				r.note("%s with %d callers capped at %d: the fleet has %d machines to move", op.name, callers, n, half)
			}
			if measured[n] {
				continue
			}
			measured[n] = true
			calls := max(40, 6*n)
			var p50, p99, conflicts, writes, undoConflicts, undoWrites []float64
			for range r.reps {
				var lat []time.Duration
				var own, back phaseCost
				for done := 0; done < calls; done += n {
					k := min(n, calls-done)
					if op.backFirst {
						back.add(r.phase(m, k, done, op.back, nil))
					}
					own.add(r.phase(m, k, done, op.call, &lat))
					if !op.backFirst {
						back.add(r.phase(m, k, done, op.back, nil))
					}
				}
				p50, p99 = append(p50, perf.Percentile(lat, 0.5)), append(p99, perf.Percentile(lat, 0.99))
				conflicts, writes = append(conflicts, own.conflicts/float64(calls)), append(writes, float64(own.writes)/float64(calls))
				undoConflicts, undoWrites = append(undoConflicts, back.conflicts/float64(calls)), append(undoWrites, float64(back.writes)/float64(calls))
			}
			l := perf.Latency{Call: op.name, Callers: n, Calls: calls, Replicas: min(n, len(m.replicas)), P50: perf.SpreadOf(p50), P99: perf.SpreadOf(p99),
				ConflictsPerCall: perf.SpreadOf(conflicts), APIWritesPerCall: perf.SpreadOf(writes),
				Undo: op.undo, UndoWritesPerCall: perf.SpreadOf(undoWrites), UndoConflictsPerCall: perf.SpreadOf(undoConflicts)}
			r.res.Writes = append(r.res.Writes, l)
			r.logf("%-18s %2d callers on %d replicas: p50 %7.2f ms  p99 %7.2f ms  conflicts/call %.2f  API writes/call %.2f (undo: %.2f writes, %.2f conflicts)",
				op.name, n, l.Replicas, l.P50.Median, l.P99.Median, l.ConflictsPerCall.Median, l.APIWritesPerCall.Median,
				l.UndoWritesPerCall.Median, l.UndoConflictsPerCall.Median)
		}
	}
}

// step is one call of an operation through client c; i numbers the operation from 1.
type step func(ctx context.Context, c pb.CloudProviderClient, i int) error

// phaseCost is what the replicas sent during phases: successful writes (objects and Events) and
// the conflicts their optimistic writes met.
type phaseCost struct {
	writes    int
	conflicts float64
}

func (c *phaseCost) add(o phaseCost) {
	c.writes, c.conflicts = c.writes+o.writes, c.conflicts+o.conflicts
}

// phase runs k operations at once, operation base+w+1 from caller w through replica w mod the
// replicas, appends their latencies to lat (when not nil) and returns the replicas' writes and
// conflicts from the start until they are quiet again (Events are recorded asynchronously).
func (r *run) phase(m *manager, k, base int, s step, lat *[]time.Duration) phaseCost {
	before := m.conflicts()
	m.requests.Take("", 0)
	took := make([]time.Duration, k)
	var wg sync.WaitGroup
	for w := range k {
		wg.Go(func() {
			ctx, cancel := ctxFor(10 * time.Second)
			defer cancel()
			start := time.Now()
			err := s(ctx, m.replicas[w%len(m.replicas)].client, base+w+1)
			took[w] = time.Since(start)
			if err != nil {
				r.b.Errorf("operation %d: %v", base+w+1, err)
			}
		})
	}
	wg.Wait()
	if lat != nil {
		*lat = append(*lat, took...)
	}
	quiet(m.requests, 100*time.Millisecond, 5*time.Second)
	req := m.requests.Take("", 0)
	return phaseCost{writes: req.ObjectWrites() + req.EventWrites(), conflicts: m.conflicts() - before}
}

// serial times calls calls one after another on the first replica.
func (r *run) serial(calls int, call func(ctx context.Context, i int) error) []time.Duration {
	lat := make([]time.Duration, 0, calls)
	for i := 1; i <= calls; i++ {
		ctx, cancel := ctxFor(10 * time.Second)
		start := time.Now()
		err := call(ctx, i)
		lat = append(lat, time.Since(start))
		cancel()
		if err != nil {
			r.b.Errorf("call %d: %v", i, err)
		}
	}
	return lat
}
