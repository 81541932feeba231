package machine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

func TestFullCycleOneMachine(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", false)

	got := waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionTrue, "PoweredOff")
	if drv.total("m1", power.ActionOn)+drv.total("m1", power.ActionOff) != 0 {
		t.Fatalf("a machine that is off and should be off was powered")
	}

	setDesired(t, n, true)
	got = waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	st := got.Status
	if st.PowerState != infrav1.PoweredOn || st.KubernetesNode != ns+"-m1" || st.Attempts != 1 ||
		st.ProviderID != "homelab://"+ns+"/m1" || st.LastStartupTime == nil || st.ObservedGeneration != got.Generation {
		t.Fatalf("status after power-on: %+v", st)
	}
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionTrue, "Running")
	expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionFalse, "Idle")
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionFalse, "AsExpected")
	if c := drv.count("m1", power.ActionOn, 1); c != 1 {
		t.Fatalf("power-on attempt 1 issued %d times", c)
	}
	testenv.Eventually(t, 10*time.Second, "core Node labels and providerID", func() bool {
		core := env.Node(t, ns+"-m1")
		return core != nil && core.Spec.ProviderID == "homelab://"+ns+"/m1" &&
			core.Labels[infrav1.LabelGroup] == "workers" && core.Labels[infrav1.LabelMachine] == "m1"
	})
	waitEvent(t, n, "PowerOn")
	waitEvent(t, n, "PoweredOn")

	setDesired(t, n, false)
	got = waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	if got.Status.PowerState != infrav1.PoweredOff || got.Status.LastShutdownTime == nil || got.Status.KubernetesNode != "" {
		t.Fatalf("status after power-off: %+v", got.Status)
	}
	if !got.Status.Operation.Drain {
		t.Fatalf("a human power-off did not drain")
	}
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionTrue, "PoweredOff")
	if c := drv.count("m1", power.ActionOff, 1); c != 1 {
		t.Fatalf("power-off attempt 1 issued %d times", c)
	}
	testenv.Eventually(t, 10*time.Second, "the core Node to be deleted (policy Delete)", func() bool { return env.Node(t, ns+"-m1") == nil })
	waitEvent(t, n, "PoweredOff")
}

func TestTenMachinesAtOnce(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "rack", func(g *infrav1.Group) { g.Spec.PowerOffPolicy = infrav1.PowerOffKeep })
	var machines []*infrav1.Machine
	for i := range 10 {
		machines = append(machines, createMachine(t, ns, fmt.Sprintf("m%d", i), "rack", false))
	}
	for _, n := range machines {
		waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	}
	for _, n := range machines {
		setDesired(t, n, true)
	}
	for _, n := range machines {
		waitProgress(t, n, infrav1.ProgressReady, 20*time.Second)
		if c := drv.total(n.Name, power.ActionOn); c != 1 {
			t.Fatalf("%s powered on %d times", n.Name, c)
		}
	}
	waitGroup(t, ns, "rack", func(st infrav1.GroupStatus) bool {
		return st.Members == 10 && st.Target == 10 && st.Ready == 10
	})
	for _, n := range machines {
		setDesired(t, n, false)
	}
	for _, n := range machines {
		waitProgress(t, n, infrav1.ProgressOff, 20*time.Second)
		// Policy Keep: the core Node stays, cordoned by us, NotReady.
		core := env.Node(t, ns+"-"+n.Name)
		if core == nil || !core.Spec.Unschedulable {
			t.Fatalf("%s: with policy Keep the core Node should remain cordoned: %+v", n.Name, core)
		}
	}
	waitGroup(t, ns, "rack", func(st infrav1.GroupStatus) bool {
		return st.Target == 0 && st.Ready == 0 && st.PoweredOff == 10
	})
	// On again: the machine's own cordon is lifted once it is Ready.
	setDesired(t, machines[0], true)
	waitProgress(t, machines[0], infrav1.ProgressReady, 10*time.Second)
	testenv.Eventually(t, 10*time.Second, "uncordon", func() bool {
		core := env.Node(t, ns+"-m0")
		return core != nil && !core.Spec.Unschedulable
	})
}

func waitGroup(t *testing.T, ns, name string, cond func(infrav1.GroupStatus) bool) {
	t.Helper()
	var st infrav1.GroupStatus
	testenv.Eventually(t, 20*time.Second, "group "+name+" status", func() bool {
		g := &infrav1.Group{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, g); err != nil {
			t.Fatal(err)
		}
		st = g.Status
		return cond(st) && g.Status.ObservedGeneration == g.Generation
	})
}

func TestBootTimeoutRetriesThenFailsAndRecovers(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.set(func(d *machineDriver) { d.neverUp["m1"] = true })
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.BootTimeout = &metav1.Duration{Duration: time.Second}
		n.Spec.MaxAttempts = ptr.To[int32](3)
	})

	got := waitProgress(t, n, infrav1.ProgressFailed, 30*time.Second)
	for attempt := int32(1); attempt <= 3; attempt++ {
		if c := drv.count("m1", power.ActionOn, attempt); c != 1 {
			t.Fatalf("attempt %d issued %d times", attempt, c)
		}
	}
	if c := drv.count("m1", power.ActionOn, 4); c != 0 {
		t.Fatalf("a fourth attempt was made")
	}
	if got.Status.LastErrorReason != "BootTimeout" || got.Status.Attempts != 3 {
		t.Fatalf("failed status: %+v", got.Status)
	}
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, "BootTimeout")
	expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionFalse, "Idle")
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionFalse, "Failed")
	waitEvent(t, n, "PowerOnFailed")
	waitEvent(t, n, "Failed")

	// Failed stays failed: no more attempts while nothing changes.
	time.Sleep(1500 * time.Millisecond)
	if c := drv.total("m1", power.ActionOn); c != 3 {
		t.Fatalf("a Failed machine was powered again (%d power-ons)", c)
	}

	// The machine is repaired; a human turns it off and on again.
	drv.set(func(d *machineDriver) { d.neverUp["m1"] = false })
	setDesired(t, n, false)
	waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	setDesired(t, n, true)
	got = waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	if got.Status.LastError != "" || got.Status.Attempts != 1 {
		t.Fatalf("recovered status: %+v", got.Status)
	}
}

// A desired-state change in the middle of a transition: on→off while booting, and back.
func TestDesiredStateChangesMidTransition(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.set(func(d *machineDriver) { d.neverUp["m1"] = true })
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true)
	waitProgress(t, n, infrav1.ProgressStartingUp, 10*time.Second)

	setDesired(t, n, false)
	got := waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	if drv.count("m1", power.ActionOff, 1) != 1 || got.Status.Operation.Action != infrav1.PowerActionOff {
		t.Fatalf("booting machine not powered off: %+v", got.Status)
	}

	drv.set(func(d *machineDriver) { d.neverUp["m1"] = false })
	setDesired(t, n, true)
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	if drv.total("m1", power.ActionOn) != 2 {
		t.Fatalf("want 2 power-ons (one per desired on), got %d", drv.total("m1", power.ActionOn))
	}
}

// Limits the members cannot meet are reported, never clamped in the spec: a maxSize above the
// member count shows in the Ready message with the effective maximum; a minSize above it stalls
// the group, since only a human can add machines.
func TestGroupReportsLimitsTheMembersCannotMeet(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns, power.NewRegistry(newMachineDriver()))
	createGroup(t, ns, "small", func(g *infrav1.Group) { g.Spec.MinSize = 1; g.Spec.MaxSize = ptr.To[int32](5) })
	createMachine(t, ns, "m1", "small", false)
	createMachine(t, ns, "m2", "small", false)
	readGroup := func() *infrav1.Group {
		g := &infrav1.Group{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "small"}, g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	var g *infrav1.Group
	testenv.Eventually(t, 10*time.Second, "the group to report its effective maximum", func() bool {
		g = readGroup()
		c := meta.FindStatusCondition(g.Status.Conditions, infrav1.ConditionReady)
		return c != nil && c.Reason == "Settled" && g.Status.Members == 2 && g.Status.PoweredOff == 2
	})
	c := meta.FindStatusCondition(g.Status.Conditions, infrav1.ConditionReady)
	if c.Status != metav1.ConditionTrue || c.Message != "0 of 2 members on, as desired; maxSize 5 exceeds the 2 members, so the effective maximum is 2" {
		t.Fatalf("ready condition: %+v", c)
	}
	if c := meta.FindStatusCondition(g.Status.Conditions, infrav1.ConditionStalled); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("a maxSize above the members stalled the group: %+v", c)
	}
	if *g.Spec.MaxSize != 5 {
		t.Fatalf("maxSize was clamped in spec")
	}

	if _, err := optimistic.Update(context.Background(), testWriter, g, func(g *infrav1.Group) error {
		g.Spec.MinSize = 3
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the group to stall on a minSize above its members", func() bool {
		g = readGroup()
		c := meta.FindStatusCondition(g.Status.Conditions, infrav1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && g.Status.ObservedGeneration == g.Generation
	})
	if c := meta.FindStatusCondition(g.Status.Conditions, infrav1.ConditionStalled); c.Reason != "MinSizeExceedsMembers" || c.Message != "minSize 3 exceeds the 2 members" {
		t.Fatalf("stalled condition: %+v", c)
	}
	if g.Spec.MinSize != 3 {
		t.Fatalf("minSize was clamped in spec")
	}
}

// A machine found running (its BMC says on) without a Ready core Node is not taken as off: with
// desired off, it is powered off.
func TestRunningMachineWithoutCoreNodeIsNotTakenAsOff(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.set(func(d *machineDriver) { d.on["m1"] = true })
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", false)
	got := waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	if drv.count("m1", power.ActionOff, 1) != 1 || drv.total("m1", power.ActionOn) != 0 {
		t.Fatalf("a running machine was not powered off: %d off, %d on; status %+v",
			drv.count("m1", power.ActionOff, 1), drv.total("m1", power.ActionOn), got.Status)
	}
}

// A BMC that wrongly says Off while the machine's core Node is still Ready is not believed: the
// power-off is not confirmed (the core Node is not deleted, the machine not left running
// unmanaged), the attempt times out, and the next attempt powers the machine off.
func TestBMCReportingOffWhileTheNodeIsReadyIsNotBelieved(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.ShutdownTimeout = &metav1.Duration{Duration: 2 * time.Second}
	})
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)

	drv.set(func(d *machineDriver) { d.liesOff["m1"] = true })
	setDesired(t, n, false)
	testenv.Eventually(t, 10*time.Second, "the first power-off attempt to time out", func() bool {
		return drv.count("m1", power.ActionOff, 1) == 1 && drv.count("m1", power.ActionOff, 2) == 0 &&
			func() bool {
				cur := &infrav1.Machine{}
				return env.Client.Get(context.Background(), client.ObjectKeyFromObject(n), cur) == nil &&
					cur.Status.LastErrorReason == "ShutdownTimeout" && cur.Status.Progress == infrav1.ProgressShuttingDown
			}()
	})
	core := &corev1.Node{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: n.KubernetesNodeNameOrDefault()}, core); err != nil {
		t.Fatalf("the core Node of a machine still running was deleted: %v", err)
	}

	// The BMC answers truly again: the next attempt powers the machine off.
	drv.set(func(d *machineDriver) { d.liesOff["m1"] = false })
	got := waitProgress(t, n, infrav1.ProgressOff, 15*time.Second)
	if c := drv.count("m1", power.ActionOff, 2); c != 1 || got.Status.Attempts != 2 {
		t.Fatalf("second attempt issued %d times; status %+v", c, got.Status)
	}
}
