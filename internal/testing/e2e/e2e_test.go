// Package e2e_test drives the whole product the way cluster-autoscaler does: over a real gRPC
// connection to the cloud-provider server, running in one manager (app.New) with the machine,
// core Node and Group reconcilers and the real power drivers, against simulated Redfish machines
// whose core Nodes kwok keeps Ready.
package e2e_test

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/machine"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var (
	env *testenv.Env
	// writer plays a user applying manifests (uncached, optimistic).
	writer *optimistic.Writer
)

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) {
		env = e
		w, err := optimistic.New(e.Client, e.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
		if err != nil {
			panic(err)
		}
		writer = w
	})
}

// The `make demo` scenario, headless: cluster-autoscaler scales the group up by two, both
// machines boot and register, then it deletes one node and that machine powers off without a
// second drain. Every BMC received exactly the commands asked for.
func TestScaleUpAndDownThroughTheCloudProvider(t *testing.T) {
	started := time.Now()
	h := startHomelab(t, newConfig(t), nil)

	// The server answers from the manager's cache, which sees the four machines as they are
	// created: cluster-autoscaler polls, and so does this test.
	var groups []*pb.NodeGroup
	testenv.Eventually(t, 10*time.Second, "NodeGroups to show the group with its four machines", func() bool {
		resp, err := h.ca.NodeGroups(context.Background(), &pb.NodeGroupsRequest{})
		if err != nil {
			t.Fatalf("NodeGroups: %v", err)
		}
		groups = resp.GetNodeGroups()
		return len(groups) == 1 && groups[0].GetMaxSize() == 4
	})
	if g := groups[0]; g.GetId() != h.groupID || g.GetMinSize() != 0 {
		t.Fatalf("NodeGroups: %v, want %s with min 0 and max 4", g, h.groupID)
	}
	if got := h.targetSize(t); got != 0 {
		t.Fatalf("target size before any scale-up: %d", got)
	}
	if in := h.instances(t); len(in) != 0 {
		t.Fatalf("instances before any scale-up: %v", in)
	}

	h.increase(t, 2)
	if got := h.targetSize(t); got != 2 {
		t.Fatalf("target size right after IncreaseSize(2): %d", got)
	}
	chosen := h.desiredOn(t)
	if len(chosen) != 2 {
		t.Fatalf("machines desired on after IncreaseSize(2): %v", chosen)
	}
	// choice.go: no machine has booted before and none is priced or used, so the names decide.
	names := []string{h.cfg.MachineName(0), h.cfg.MachineName(1)}
	if !chosen[names[0]] || !chosen[names[1]] {
		t.Fatalf("IncreaseSize(2) chose %v, want %v (by name, all else equal)", chosen, names)
	}
	for _, name := range names {
		got := h.waitProgress(t, name, infrav1.ProgressReady, 30*time.Second)
		if got.Status.PowerState != infrav1.PoweredOn || got.Status.KubernetesNode != name || got.Status.Attempts != 1 {
			t.Fatalf("%s status: %+v", name, got.Status)
		}
	}
	var running map[string]*pb.Instance
	testenv.Eventually(t, 10*time.Second, "NodeGroupNodes to report both machines running", func() bool {
		running = h.instances(t)
		if len(running) != 2 {
			return false
		}
		for _, in := range running {
			if in.GetStatus().GetInstanceState() != pb.InstanceStatus_instanceRunning {
				return false
			}
		}
		return true
	})
	for _, name := range names {
		core := env.Node(t, name)
		if core == nil {
			t.Fatalf("%s is Ready but has no core Node", name)
		}
		in, ok := running[core.Spec.ProviderID]
		if !ok || in.GetStatus().GetErrorInfo() != nil {
			t.Fatalf("core Node %s has providerID %q; NodeGroupNodes reports %v", name, core.Spec.ProviderID, running)
		}
	}
	t.Logf("two machines Ready and running after %s", time.Since(started).Round(time.Millisecond))

	gone, kept := names[1], names[0]
	goneCore := env.Node(t, gone)
	if _, err := h.ca.NodeGroupDeleteNodes(context.Background(), &pb.NodeGroupDeleteNodesRequest{
		Id: h.groupID, Nodes: []*pb.ExternalGrpcNode{{Name: goneCore.Name, ProviderID: goneCore.Spec.ProviderID}},
	}); err != nil {
		t.Fatalf("NodeGroupDeleteNodes(%s): %v", gone, err)
	}
	if got := h.targetSize(t); got != 1 {
		t.Fatalf("target size right after DeleteNodes: %d", got)
	}
	off := h.waitProgress(t, gone, infrav1.ProgressOff, 30*time.Second)
	if off.Status.PowerState != infrav1.PoweredOff {
		t.Fatalf("%s after the power-off: %+v", gone, off.Status)
	}
	if op := off.Status.Operation; op == nil || op.Action != infrav1.PowerActionOff || op.Drain {
		t.Fatalf("%s's power-off operation: %+v; want an off without drain (cluster-autoscaler drained)", gone, op)
	}
	testenv.Eventually(t, 10*time.Second, gone+"'s core Node to go", func() bool { return env.Node(t, gone) == nil })
	testenv.Eventually(t, 10*time.Second, "NodeGroupNodes to report one machine running", func() bool {
		in := h.instances(t)
		_, stillThere := in[goneCore.Spec.ProviderID]
		return len(in) == 1 && !stillThere
	})
	if got := h.machine(t, kept); got.Status.Progress != infrav1.ProgressReady {
		t.Fatalf("%s left Ready: %+v", kept, got.Status)
	}
	if got := h.targetSize(t); got != 1 {
		t.Fatalf("target size at the end: %d", got)
	}
	t.Logf("one machine Off after %s", time.Since(started).Round(time.Millisecond))

	for name, c := range h.counters(t) {
		want := struct{ on, off int }{}
		switch name {
		case gone:
			want.on, want.off = 1, 1
		case kept:
			want.on = 1
		}
		if c.PowerOn != want.on || c.PowerOff != want.off {
			t.Errorf("%s received %d power-on and %d power-off commands, want %d and %d: %+v", name, c.PowerOn, c.PowerOff, want.on, want.off, c.History)
		}
		if c.Commands[sim.CommandForceOff] != 0 {
			t.Errorf("%s was forced off: %+v", name, c.History)
		}
	}
}

// A machine that powers on but never registers fails its only attempt with BootTimeout;
// NodeGroupNodes reports it creating with errorInfo, so cluster-autoscaler would back off and
// delete it, and the next scale-up picks another machine, which boots.
func TestMachineThatNeverBootsIsReportedAndAvoided(t *testing.T) {
	started := time.Now()
	cfg := newConfig(t)
	const stuckIndex = 2
	cfg.NeverBoot = []int{stuckIndex}
	stuck := cfg.MachineName(stuckIndex)
	// choice.go ranks machines never seen to boot by price, cheapest first, unpriced last: the
	// stuck machine is the cheapest, so it is chosen first. Only it gets the short boot timeout
	// and a single attempt; the others keep the defaults, so a slow boot cannot fail them.
	h := startHomelab(t, cfg, func(o sim.Objects) {
		// The path where no machine is substituted for the stuck one (internal/testing/repair
		// covers substitution): it fails, and cluster-autoscaler hears of it.
		o.Group.Spec.Repair = &infrav1.RepairPolicy{BootFailure: infrav1.BootFailureRetry}
		for _, m := range o.Machines {
			m.Spec.Pricing = &infrav1.Pricing{HourlyRate: resource.MustParse("0.20")}
		}
		m := o.Machines[stuckIndex]
		m.Spec.Pricing = &infrav1.Pricing{HourlyRate: resource.MustParse("0.05")}
		m.Spec.BootTimeout = &metav1.Duration{Duration: 2 * time.Second}
		m.Spec.MaxAttempts = ptr.To[int32](1)
	})
	h.waitMembers(t, 4)

	increased := time.Now()
	h.increase(t, 1)
	if got := h.targetSize(t); got != 1 {
		t.Fatalf("target size right after IncreaseSize(1): %d", got)
	}
	if on := h.desiredOn(t); len(on) != 1 || !on[stuck] {
		t.Fatalf("IncreaseSize(1) chose %v, want the cheapest machine %s", on, stuck)
	}
	failed := h.waitProgress(t, stuck, infrav1.ProgressFailed, 20*time.Second)
	if failed.Status.LastErrorReason != machine.ReasonBootTimeout || failed.Status.Attempts != 1 {
		t.Fatalf("%s failed with %+v; want reason %s after one attempt", stuck, failed.Status, machine.ReasonBootTimeout)
	}
	if env.Node(t, stuck) != nil {
		t.Fatalf("the never-booting machine %s has a core Node", stuck)
	}
	// Not asserted against the 2s timeout: status times are stored to the second, so the
	// deadline may come up to a second early.
	t.Logf("%s Failed (%s) %s after IncreaseSize, %s after the start", stuck, failed.Status.LastErrorReason,
		time.Since(increased).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))

	var in *pb.Instance
	testenv.Eventually(t, 10*time.Second, "NodeGroupNodes to report the failed boot", func() bool {
		in = h.instances(t)[failed.ProviderIDOrDefault()]
		return in != nil && in.GetStatus().GetErrorInfo() != nil
	})
	st := in.GetStatus()
	if st.GetInstanceState() != pb.InstanceStatus_instanceCreating {
		t.Fatalf("the failed machine is reported %v, want instanceCreating", st.GetInstanceState())
	}
	// Other machines could still be powered on, so the failure is class "other" (99), not
	// out-of-resources (1), as instances.go documents.
	if e := st.GetErrorInfo(); e.GetInstanceErrorClass() != 99 || e.GetErrorCode() != machine.ReasonBootTimeout || e.GetErrorMessage() == "" {
		t.Fatalf("errorInfo of the failed machine: %+v; want class 99, code %s and a message", e, machine.ReasonBootTimeout)
	}
	if got := h.targetSize(t); got != 1 {
		t.Fatalf("target size with the failed machine still desired on: %d", got)
	}

	h.increase(t, 1)
	if got := h.targetSize(t); got != 2 {
		t.Fatalf("target size right after the second IncreaseSize(1): %d", got)
	}
	on := h.desiredOn(t)
	if len(on) != 2 || !on[stuck] {
		t.Fatalf("machines desired on after the second IncreaseSize(1): %v", on)
	}
	// The failed machine is no candidate; of the others (same price, never used) the first by
	// name is chosen.
	next := cfg.MachineName(0)
	if !on[next] {
		t.Fatalf("the second IncreaseSize(1) chose %v, want %s besides %s", on, next, stuck)
	}
	ready := h.waitProgress(t, next, infrav1.ProgressReady, 30*time.Second)
	if ready.Status.Attempts != 1 || env.Node(t, next) == nil {
		t.Fatalf("%s status: %+v", next, ready.Status)
	}
	testenv.Eventually(t, 10*time.Second, "NodeGroupNodes to report "+next+" running", func() bool {
		got := h.instances(t)[ready.ProviderIDOrDefault()]
		return got != nil && got.GetStatus().GetInstanceState() == pb.InstanceStatus_instanceRunning
	})
	if got := h.machine(t, stuck); got.Status.Progress != infrav1.ProgressFailed {
		t.Fatalf("%s left Failed before it was deleted: %+v", stuck, got.Status)
	}
	t.Logf("%s Ready after %s", next, time.Since(started).Round(time.Millisecond))

	// cluster-autoscaler deletes an instance whose creation failed, naming it by a fake node
	// whose name and providerID are the instance id: the machine is powered off and leaves the
	// target.
	id := failed.ProviderIDOrDefault()
	if _, err := h.ca.NodeGroupDeleteNodes(context.Background(), &pb.NodeGroupDeleteNodesRequest{
		Id: h.groupID, Nodes: []*pb.ExternalGrpcNode{{Name: id, ProviderID: id}},
	}); err != nil {
		t.Fatalf("NodeGroupDeleteNodes(%s): %v", id, err)
	}
	if got := h.targetSize(t); got != 1 {
		t.Fatalf("target size right after deleting the failed instance: %d", got)
	}
	if off := h.waitProgress(t, stuck, infrav1.ProgressOff, 20*time.Second); off.Status.Operation == nil || off.Status.Operation.Drain {
		t.Fatalf("%s's power-off operation: %+v; want an off without drain", stuck, off.Status.Operation)
	}
	testenv.Eventually(t, 10*time.Second, "NodeGroupNodes to drop the failed instance", func() bool {
		in := h.instances(t)
		_, still := in[id]
		return len(in) == 1 && !still
	})
	t.Logf("%s Off after %s", stuck, time.Since(started).Round(time.Millisecond))

	c := h.counters(t)
	if got := c[stuck]; got.PowerOn != 1 || got.PowerOff != 1 || got.Registrations != 0 {
		t.Errorf("%s counters: %+v; want one power-on, one power-off and no registration", stuck, got)
	}
	if got := c[next]; got.PowerOn != 1 || got.PowerOff != 0 || got.Registrations != 1 {
		t.Errorf("%s counters: %+v; want one power-on and one registration", next, got)
	}
	for name, got := range c {
		if name != stuck && name != next && (got.PowerOn != 0 || got.PowerOff != 0) {
			t.Errorf("%s was never chosen but received commands: %+v", name, got.History)
		}
	}
}
