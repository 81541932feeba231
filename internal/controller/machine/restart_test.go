package machine_test

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

func TestRestartWhileStartingUpResumesWithoutSecondCommand(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.set(func(d *machineDriver) { d.neverUp["m1"] = true })
	first := startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.BootTimeout = &metav1.Duration{Duration: time.Minute}
	})
	waitProgress(t, n, infrav1.ProgressStartingUp, 10*time.Second)
	// Restarted once the command went out: a stop between the attempt's record and its command
	// (a busy machine makes that window long) leaves the attempt to its timeout, never resent.
	testenv.Eventually(t, 10*time.Second, "the power-on command", func() bool { return drv.total("m1", power.ActionOn) == 1 })
	first.stop()

	startManager(t, ns, power.NewRegistry(drv))
	time.Sleep(time.Second) // let the new manager reconcile what it finds
	if c := drv.total("m1", power.ActionOn); c != 1 {
		t.Fatalf("after the restart the machine got %d power-on commands, want 1", c)
	}
	// The machine finishes booting on its own: the new manager notices.
	if err := registerCoreNode(context.Background(), ns, ns+"-m1", true); err != nil {
		t.Fatal(err)
	}
	got := waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	if got.Status.Attempts != 1 || drv.total("m1", power.ActionOn) != 1 {
		t.Fatalf("resumed boot: %+v", got.Status)
	}
}

func TestRestartWhileShuttingDownResumesWithoutSecondCommand(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	first := startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.ShutdownTimeout = &metav1.Duration{Duration: time.Minute}
	})
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	drv.set(func(d *machineDriver) { d.stuckOn["m1"] = true }) // the BMC is slow to act
	setDesired(t, n, false)
	testenv.Eventually(t, 10*time.Second, "the power-off command", func() bool {
		op := get(t, n).Status.Operation
		return op != nil && op.Action == infrav1.PowerActionOff && op.AttemptStartedAt != nil && drv.total("m1", power.ActionOff) == 1
	})
	first.stop()

	startManager(t, ns, power.NewRegistry(drv))
	time.Sleep(time.Second)
	if c := drv.total("m1", power.ActionOff); c != 1 {
		t.Fatalf("after the restart the machine got %d power-off commands, want 1", c)
	}
	if p := get(t, n).Status.Progress; p != infrav1.ProgressShuttingDown {
		t.Fatalf("progress %s while the machine is still on", p)
	}
	// The machine goes off: the new manager confirms it.
	drv.set(func(d *machineDriver) { d.stuckOn["m1"] = false; d.on["m1"] = false })
	if err := setCoreNodeReady(context.Background(), ns+"-m1", false); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	if c := drv.total("m1", power.ActionOff); c != 1 {
		t.Fatalf("%d power-off commands, want 1", c)
	}
}

func TestRestartWithAJobRunningNeverLaunchesASecondJob(t *testing.T) {
	ns := newNamespace(t)
	first := startManager(t, ns, nil)
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.BootTimeout = &metav1.Duration{Duration: time.Minute}
		n.Spec.Power.Start = &infrav1.PowerDriver{Job: &infrav1.JobDriver{Image: "busybox:1.37", Command: []string{"true"}}}
	})
	jobs := func() []batchv1.Job {
		list := &batchv1.JobList{}
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	testenv.Eventually(t, 10*time.Second, "the power-on Job", func() bool { return len(jobs()) == 1 })
	first.stop()

	startManager(t, ns, nil)
	time.Sleep(time.Second)
	js := jobs()
	if len(js) != 1 || js[0].Name != power.JobName("m1", power.ActionOn, 1) {
		t.Fatalf("after the restart: %d jobs (%v), want exactly the attempt-1 job", len(js), names(js))
	}
	if !metav1.IsControlledBy(&js[0], get(t, n)) || js[0].Labels[infrav1.LabelMachine] != "m1" {
		t.Fatalf("the job is not owned and labelled: %+v", js[0].ObjectMeta)
	}
	completeJob(t, &js[0])
	testenv.Eventually(t, 10*time.Second, "the Job's success to be recorded", func() bool {
		op := get(t, n).Status.Operation
		return op != nil && op.CommandDone
	})
	if err := registerCoreNode(context.Background(), ns, ns+"-m1", true); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	if js := jobs(); len(js) != 1 {
		t.Fatalf("%d jobs at the end, want 1", len(js))
	}
}

func names(js []batchv1.Job) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.Name)
	}
	return out
}

// completeJob plays the Job controller reporting success.
func completeJob(t *testing.T, j *batchv1.Job) {
	t.Helper()
	_, err := optimistic.UpdateStatus(context.Background(), testWriter, j.DeepCopy(), func(j *batchv1.Job) error {
		now := metav1.Now()
		j.Status.StartTime = &now
		j.Status.CompletionTime = &now
		j.Status.Succeeded = 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOldPowerJobsAreCleanedUp(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns, power.NewRegistry(newMachineDriver()))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.BootTimeout = &metav1.Duration{Duration: time.Second}
		n.Spec.MaxAttempts = ptr.To[int32](2)
		n.Spec.Power.Start = &infrav1.PowerDriver{Job: &infrav1.JobDriver{Image: "busybox:1.37", Command: []string{"true"}}}
	})
	jobNames := func() map[string]bool {
		list := &batchv1.JobList{}
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, j := range list.Items {
			if j.DeletionTimestamp.IsZero() {
				out[j.Name] = true
			}
		}
		return out
	}
	first, second := power.JobName("m1", power.ActionOn, 1), power.JobName("m1", power.ActionOn, 2)
	testenv.Eventually(t, 15*time.Second, "attempt 2's Job to replace attempt 1's", func() bool {
		js := jobNames()
		return js[second] && !js[first]
	})
	// Turning the machine off removes the unfinished power-on Job too.
	setDesired(t, n, false)
	waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	testenv.Eventually(t, 10*time.Second, "the power-on Job to be deleted", func() bool { return !jobNames()[second] })
}
