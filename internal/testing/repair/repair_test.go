package repair_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

func TestRepairs(t *testing.T) {
	startKwok(t)
	for _, p := range []sim.Protocol{sim.ProtocolRedfish, sim.ProtocolIPMI} {
		for _, node := range []sim.NodeAfterCut{sim.NodeNotReady, sim.NodeGone} {
			t.Run(fmt.Sprintf("PowerCut/%s/node-%s", p, node), func(t *testing.T) { t.Parallel(); testPowerCut(t, p, node) })
		}
		t.Run("KubeletHang/"+string(p), func(t *testing.T) { t.Parallel(); testKubeletHang(t, p) })
	}
	t.Run("ButtonPress/Enforce/redfish", func(t *testing.T) {
		t.Parallel()
		testButtonPress(t, sim.ProtocolRedfish, infrav1.OutsidePowerOnEnforce, nil)
	})
	t.Run("ButtonPress/Adopt/ipmi", func(t *testing.T) {
		t.Parallel()
		testButtonPress(t, sim.ProtocolIPMI, infrav1.OutsidePowerOnAdopt, nil)
	})
	t.Run("ButtonPress/Adopt/at-maxSize", func(t *testing.T) {
		t.Parallel()
		testButtonPress(t, sim.ProtocolRedfish, infrav1.OutsidePowerOnAdopt, ptr.To[int32](0))
	})
	t.Run("NeverBoots/Substitute", func(t *testing.T) { t.Parallel(); testSubstitute(t) })
	t.Run("SiteWideCut", func(t *testing.T) { t.Parallel(); testSiteWideCut(t) })
}

// A power cut under a Ready machine: the manager notices (the Node goes NotReady or away, the BMC
// says off), records the loss, and powers the machine on again as a new operation: exactly one
// new power-on command, the machine Ready again. Its neighbour is left alone.
func testPowerCut(t *testing.T, protocol sim.Protocol, node sim.NodeAfterCut) {
	cfg := homelab(t, protocol, 2, nil)
	s, objs := start(t, cfg, nil)
	manager(t, cfg.Namespace, nil)
	allReady(t, objs, 30*time.Second)
	m := objs.Machines[0]

	s.Machines()[0].CutPower(node)
	testenv.Eventually(t, 30*time.Second, m.Name+" to leave Ready after the cut", func() bool {
		return get(t, m).Status.Progress != infrav1.ProgressReady
	})
	got := waitProgress(t, m, infrav1.ProgressReady, 30*time.Second)
	st := got.Status
	if st.LastRepair == nil || st.LastRepair.Kind != infrav1.RepairPowerLost || st.Operation == nil ||
		st.Operation.Repair != infrav1.RepairPowerLost || st.Operation.Attempt != 1 || st.PowerState != infrav1.PoweredOn {
		t.Fatalf("status after the repair: %+v (operation %+v, last repair %+v)", st, st.Operation, st.LastRepair)
	}
	waitEvent(t, m, string(infrav1.RepairPowerLost))
	c := s.Machines()[0].Counters()
	if c.PowerOn != 2 || c.PowerOff != 0 || c.PowerCuts != 1 {
		t.Fatalf("want one power-on before and one after the cut, no power-off: %+v", c)
	}
	if other := s.Machines()[1].Counters(); other.PowerOn != 1 || other.PowerOff != 0 {
		t.Fatalf("the machine without a fault got commands: %+v", other)
	}
	if !nodeReady(t, m.Name) {
		t.Fatalf("%s is Ready but its Node is not", m.Name)
	}
}

// A kubelet that hangs under a running machine (the BMC says on, the Node NotReady): with the
// group's stuckNode remediation, one power cycle brings it back; the next hang within the window
// exceeds maxPowerCycles (1) and fails the machine, with no further command.
func testKubeletHang(t *testing.T, protocol sim.Protocol) {
	cfg := homelab(t, protocol, 1, nil)
	s, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.Repair = &infrav1.RepairPolicy{StuckNode: &infrav1.StuckNodeRemediation{
			NotReadyFor: &metav1.Duration{Duration: 10 * time.Second}, MaxPowerCycles: ptr.To[int32](1),
		}}
	})
	manager(t, cfg.Namespace, nil)
	allReady(t, objs, 30*time.Second)
	m, sm := objs.Machines[0], s.Machines()[0]

	sm.HangKubelet(false)
	testenv.Eventually(t, 60*time.Second, m.Name+" to be power-cycled", func() bool {
		st := get(t, m).Status
		return st.LastRepair != nil && st.LastRepair.Kind == infrav1.RepairStuckNode
	})
	got := waitProgress(t, m, infrav1.ProgressReady, 30*time.Second)
	if len(got.Status.PowerCycles) != 1 {
		t.Fatalf("power cycles recorded: %v", got.Status.PowerCycles)
	}
	waitEvent(t, m, string(infrav1.RepairStuckNode))
	c := sm.Counters()
	if c.PowerOff != 1 || c.PowerOn != 2 {
		t.Fatalf("want one power cycle (one power-off, one more power-on): %+v", c.History)
	}

	sm.HangKubelet(false)
	got = waitProgress(t, m, infrav1.ProgressFailed, 60*time.Second)
	if got.Status.LastErrorReason != "StuckNode" {
		t.Fatalf("failed for %q: %s", got.Status.LastErrorReason, got.Status.LastError)
	}
	cond := condition(got, infrav1.ConditionStalled)
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != "StuckNode" {
		t.Fatalf("Stalled condition: %+v", cond)
	}
	if after := sm.Counters(); after.PowerOff != c.PowerOff || after.PowerOn != c.PowerOn {
		t.Fatalf("commands after the cycles were used up: %+v", after.History)
	}
}

// A machine switched on by its power button while desired off: Enforce drains it and powers it
// off again; Adopt sets it desired on (through the group's ledger, so the target grows by one)
// and sends it no command; Adopt in a group at its maxSize enforces.
func testButtonPress(t *testing.T, protocol sim.Protocol, policy infrav1.OutsidePowerOnPolicy, maxSize *int32) {
	cfg := homelab(t, protocol, 2, nil)
	s, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.Repair = &infrav1.RepairPolicy{OutsidePowerOn: policy}
		g.Spec.MaxSize = maxSize
	})
	manager(t, cfg.Namespace, nil)
	m, sm := objs.Machines[0], s.Machines()[0]
	waitProgress(t, m, infrav1.ProgressOff, 20*time.Second)

	sm.PressPowerButton()
	adopt := policy == infrav1.OutsidePowerOnAdopt && maxSize == nil
	if adopt {
		got := waitProgress(t, m, infrav1.ProgressReady, 30*time.Second)
		if !got.Spec.Online || got.Status.LastRepair == nil || got.Status.LastRepair.Kind != infrav1.RepairAdopted {
			t.Fatalf("adopted machine: online %v, last repair %+v", got.Spec.Online, got.Status.LastRepair)
		}
		waitEvent(t, m, string(infrav1.RepairAdopted))
		testenv.Eventually(t, 10*time.Second, "the group's target to count the adopted machine", func() bool {
			g := &infrav1.Group{}
			if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(objs.Group), g); err != nil {
				t.Fatal(err)
			}
			return g.Status.Target == 1
		})
		if c := sm.Counters(); c.PowerOn != 0 || c.PowerOff != 0 || c.ButtonPresses != 1 {
			t.Fatalf("an adopted machine needs no command: %+v", c)
		}
		return
	}
	testenv.Eventually(t, 30*time.Second, m.Name+" to be powered off again", func() bool {
		st := get(t, m).Status
		return st.Progress == infrav1.ProgressOff && st.LastRepair != nil && st.LastRepair.Kind == infrav1.RepairOutsidePowerOn
	})
	waitEvent(t, m, string(infrav1.RepairOutsidePowerOn))
	got := get(t, m)
	if got.Spec.Online || got.Status.PowerState != infrav1.PoweredOff || sm.PoweredOn() {
		t.Fatalf("enforced machine: online %v, power state %s, simulator on %v", got.Spec.Online, got.Status.PowerState, sm.PoweredOn())
	}
	if c := sm.Counters(); c.PowerOn != 0 || c.PowerOff != 1 || c.ButtonPresses != 1 {
		t.Fatalf("want one power-off and no power-on: %+v", c)
	}
	if other := s.Machines()[1].Counters(); other.PowerOn != 0 || other.PowerOff != 0 {
		t.Fatalf("the machine without a fault got commands: %+v", other)
	}
}

// A scale-up onto a machine that never boots, with spare machines in the group: at its first boot
// timeout another machine is powered on in its place, the target size never changes, and
// cluster-autoscaler never sees an errorInfo. The slow machine is powered off and chosen last by
// the next scale-up.
func testSubstitute(t *testing.T) {
	cfg := homelab(t, sim.ProtocolRedfish, 3, func(c *sim.Config) {
		c.NeverBoot = []int{0}
		c.NodeBootTimeout = 4 * time.Second
	})
	s, objs := start(t, cfg, nil)
	addr := manager(t, cfg.Namespace, nil)
	ca := dial(t, addr)
	id := cloudprovider.GroupID(cfg.Namespace, cfg.Group)
	ctx := context.Background()
	for _, m := range objs.Machines {
		waitProgress(t, m, infrav1.ProgressOff, 20*time.Second)
	}

	if _, err := ca.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: 1}); err != nil {
		t.Fatal(err)
	}
	slow, sub := objs.Machines[0], objs.Machines[1]
	if !get(t, slow).Spec.Online {
		t.Fatalf("the scale-up chose another machine than %s", slow.Name)
	}
	// cluster-autoscaler's view while the substitution happens: the target stays 1 and no
	// instance ever carries an error.
	var sampled, bad atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			size, err := ca.NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: id})
			nodes, err2 := ca.NodeGroupNodes(ctx, &pb.NodeGroupNodesRequest{Id: id})
			if err != nil || err2 != nil {
				continue
			}
			sampled.Add(1)
			if size.GetTargetSize() != 1 || slices.ContainsFunc(nodes.GetInstances(), func(in *pb.Instance) bool { return in.GetStatus().GetErrorInfo() != nil }) {
				bad.Add(1)
			}
		}
	}()
	got := waitProgress(t, sub, infrav1.ProgressReady, 30*time.Second)
	if !got.Spec.Online {
		t.Fatalf("%s is Ready but not desired on", sub.Name)
	}
	gotSlow := waitProgress(t, slow, infrav1.ProgressOff, 30*time.Second)
	close(stop)
	<-done
	if bad.Load() != 0 || sampled.Load() == 0 {
		t.Fatalf("%d of %d samples of cluster-autoscaler's view had a target other than 1 or an errorInfo", bad.Load(), sampled.Load())
	}
	if gotSlow.Spec.Online || gotSlow.Status.FailedBoots != 1 || gotSlow.Status.LastRepair == nil ||
		gotSlow.Status.LastRepair.Kind != infrav1.RepairSubstituted {
		t.Fatalf("slow machine: online %v, status %+v (last repair %+v)", gotSlow.Spec.Online, gotSlow.Status, gotSlow.Status.LastRepair)
	}
	waitEvent(t, slow, string(infrav1.RepairSubstituted))
	if c := s.Machines()[0].Counters(); c.PowerOn != 1 || c.PowerOff != 1 {
		t.Fatalf("slow machine: want one power-on and one power-off: %+v", c.History)
	}
	if c := s.Machines()[1].Counters(); c.PowerOn != 1 {
		t.Fatalf("substitute: want one power-on: %+v", c.History)
	}

	// The next scale-up takes the machine without a failed boot.
	if _, err := ca.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: 1}); err != nil {
		t.Fatal(err)
	}
	if !get(t, objs.Machines[2]).Spec.Online || get(t, slow).Spec.Online {
		t.Fatal("the scale-up after a substitution chose the machine whose boot timed out")
	}
}

// A site-wide power cut under fifty Ready machines: every one is powered on again, once, and the
// power-ons are paced: never more booting at once than --max-booting, never more commands in a
// second than the burst plus the rate.
func testSiteWideCut(t *testing.T) {
	const n, maxBooting, rate, burst = 50, 10, 10.0, 5
	cfg := homelab(t, sim.ProtocolRedfish, n, nil)
	s, objs := start(t, cfg, nil)
	manager(t, cfg.Namespace, func(o *app.Options) {
		o.PowerOnRate, o.PowerOnBurst, o.MaxBooting = rate, burst, maxBooting
	})
	allReady(t, objs, 2*time.Minute)
	cutAt := time.Now()
	if cut := s.CutPowerAll(sim.NodeNotReady); cut != n {
		t.Fatalf("cut %d machines, want %d", cut, n)
	}
	for _, m := range objs.Machines {
		testenv.Eventually(t, 2*time.Minute, m.Name+" to be Ready again after a PowerLost repair", func() bool {
			st := get(t, m).Status
			return st.Progress == infrav1.ProgressReady && st.LastRepair != nil && st.LastRepair.Kind == infrav1.RepairPowerLost
		})
	}
	t.Logf("all %d machines Ready %s after the cut", n, time.Since(cutAt).Round(time.Millisecond))

	var ons []time.Time
	for _, sm := range s.Machines() {
		c := sm.Counters()
		if c.PowerOn != 2 {
			t.Errorf("%s got %d power-ons, want one before and one after the cut: %+v", sm.Name, c.PowerOn, c.History)
		}
		for _, h := range c.History {
			if h.Command == sim.CommandOn && h.At.After(cutAt) {
				ons = append(ons, h.At)
			}
		}
	}
	slices.SortFunc(ons, func(a, b time.Time) int { return a.Compare(b) })
	// A machine boots for the simulator's boot delay after its command; the manager counts it
	// booting at least that long (until it sees the Node Ready), so the simulator's overlap is a
	// floor of what the pacer allowed.
	most, inSecond := 0, 0
	for i, at := range ons {
		booting, second := 0, 0
		for _, other := range ons[:i+1] {
			if at.Before(other.Add(cfg.BootDelay)) {
				booting++
			}
			if at.Before(other.Add(time.Second)) {
				second++
			}
		}
		most, inSecond = max(most, booting), max(inSecond, second)
	}
	if most > maxBooting {
		t.Errorf("%d machines booted at once, limit %d", most, maxBooting)
	}
	if inSecond > burst+int(rate) {
		t.Errorf("%d power-ons within one second, limit %d + %d", inSecond, burst, int(rate))
	}
	t.Logf("%d power-ons after the cut; at most %d booting at once, at most %d within a second", len(ons), most, inSecond)
}

func dial(t *testing.T, addr string) pb.CloudProviderClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pb.NewCloudProviderClient(conn)
}

func condition(m *infrav1.Machine, typ string) *metav1.Condition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == typ {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}
