package machine_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// maxWritesPerTransition is what one power transition of one machine may cost in writes to the
// machine (its status, and its core Node), made by the manager.
const maxWritesPerTransition = 3

// TestWritesPerTransition counts the manager's API writes, as the apiserver answered them, for
// one scale-up and one scale-down of a machine: the spec change is the caller's (here the test's,
// as cluster-autoscaler's through the cloud provider), everything else the lifecycle's. The
// scale-down is cluster-autoscaler's (its power-off recorded in the Group's scale ledger, the
// Node tainted and drained by it), so it needs no drain.
func TestWritesPerTransition(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	requests := perf.NewCounter()
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = requests.Wrap
	o := testmanager.Options(ns)
	o.Drivers = power.NewRegistry(drv)
	o.PowerRetryBase, o.PowerRetryCap, o.PowerConfirmInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	testmanager.Start(t, cfg, o)

	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", false)
	waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	waitGroup(t, ns, "workers", func(st infrav1.GroupStatus) bool { return st.Members == 1 && st.PoweredOff == 1 })
	settle(requests)
	requests.Take("", 0)

	setDesired(t, n, true)
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	waitGroup(t, ns, "workers", func(st infrav1.GroupStatus) bool { return st.Target == 1 && st.Ready == 1 })
	testenv.Eventually(t, 10*time.Second, "core Node labelled", func() bool {
		core := env.Node(t, ns+"-m1")
		return core != nil && core.Labels[infrav1.LabelMachine] == "m1"
	})
	settle(requests)
	up := requests.Take("scale-up +1", 1)
	t.Logf("scale-up: %d machine writes, %d Group writes, %d Event writes: %v",
		up.MachineWrites(), up.GroupWrites(), up.EventWrites(), up.Writes)
	if drv.count("m1", power.ActionOn, 1) != 1 {
		t.Fatalf("power-on attempt 1 issued %d times", drv.count("m1", power.ActionOn, 1))
	}

	// Cluster-autoscaler taints the Node before it drains it, and calls DeleteNodes after.
	core := &corev1.Node{}
	core.Name = ns + "-m1"
	if _, err := optimistic.Update(context.Background(), testWriter, core, func(c *corev1.Node) error {
		c.Spec.Taints = append(c.Spec.Taints, corev1.Taint{Key: "ToBeDeletedByClusterAutoscaler", Value: "1", Effect: corev1.TaintEffectNoSchedule})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	setDesiredOffByAutoscaler(t, n)
	got := waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	waitGroup(t, ns, "workers", func(st infrav1.GroupStatus) bool { return st.Target == 0 && st.PoweredOff == 1 })
	testenv.Eventually(t, 10*time.Second, "the core Node to be deleted (policy Delete)", func() bool { return env.Node(t, ns+"-m1") == nil })
	settle(requests)
	down := requests.Take("scale-down -1", 1)
	t.Logf("scale-down: %d machine writes, %d Group writes, %d Event writes: %v",
		down.MachineWrites(), down.GroupWrites(), down.EventWrites(), down.Writes)
	if got.Status.Operation.Drain || got.Status.Operation.Attempt != 1 || drv.count("m1", power.ActionOff, 1) != 1 {
		t.Fatalf("power-off: drain %v, attempt %d, attempt 1 issued %d times",
			got.Status.Operation.Drain, got.Status.Operation.Attempt, drv.count("m1", power.ActionOff, 1))
	}

	// A Node whose kubelet registers it with the machine's labels and providerID needs no write:
	// the scale-up is then the spec change and two status writes.
	drv.set(func(d *machineDriver) { d.kubeletLabels = true })
	settle(requests)
	requests.Take("", 0)
	setDesired(t, n, true)
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	waitGroup(t, ns, "workers", func(st infrav1.GroupStatus) bool { return st.Target == 1 && st.Ready == 1 })
	settle(requests)
	labelled := requests.Take("scale-up +1, Node registered with its labels", 1)
	t.Logf("scale-up, labelled Node: %d machine writes, %d Group writes, %d Event writes: %v",
		labelled.MachineWrites(), labelled.GroupWrites(), labelled.EventWrites(), labelled.Writes)
	if w := labelled.MachineWrites(); w != 2 || labelled.Writes["nodes"] != 0 {
		t.Errorf("scale-up with a labelled Node: %d writes to the machine and its Node, want the 2 status writes: %v", w, labelled.Writes)
	}

	for _, r := range []perf.Requests{up, down, labelled} {
		if w := r.MachineWrites(); w > maxWritesPerTransition {
			t.Errorf("%s: %d writes to the machine and its Node, want at most %d: %v", r.Phase, w, maxWritesPerTransition, r.Writes)
		}
		// The group's status passes through at most three states in a single machine's
		// transition (the target moved, the member on its way, the member there); a write
		// per state is the most there may be, however the changes fall in time.
		if w := r.GroupWrites(); w > 3 {
			t.Errorf("%s: %d Group status writes, want at most 3: %v", r.Phase, w, r.Writes)
		}
		if r.NoOps != 0 {
			t.Errorf("%s: %d writes that changed nothing", r.Phase, r.NoOps)
		}
	}
}

// settle waits until the manager has sent no request for a while, so that a count taken next
// holds every request of the phase before.
func settle(c *perf.Counter) {
	last, quietSince := c.Total(), time.Now()
	for time.Since(quietSince) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
		if n := c.Total(); n != last {
			last, quietSince = n, time.Now()
		}
	}
}
