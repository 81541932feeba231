package machine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// reconciles returns how many times the machine controller has reconciled so far (all managers in
// this process share controller-runtime's registry).
func reconciles(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "machine" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// expectQuiet checks that a machine in a bad state is not reconciled in a hot loop.
func expectQuiet(t *testing.T) {
	t.Helper()
	before := reconciles(t)
	time.Sleep(2 * time.Second)
	if d := reconciles(t) - before; d > 4 {
		t.Fatalf("%v reconciles in 2 s for a machine waiting on a human: a hot requeue loop", d)
	}
}

func TestMachineWithMissingGroup(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	n := createMachine(t, ns, "orphan", "no-such-group", true)
	var got *infrav1.Machine
	testenv.Eventually(t, 10*time.Second, "the missing group to be reported", func() bool {
		got = get(t, n)
		c := condition(got, infrav1.ConditionStalled)
		return c != nil && c.Reason == "GroupNotFound"
	})
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, "GroupNotFound")
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionFalse, "GroupNotFound")
	expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionFalse, "GroupNotFound")
	expectQuiet(t)
	if drv.total("orphan", power.ActionOn) != 0 {
		t.Fatalf("a machine without a group was powered on")
	}
	// The group appears: the machine proceeds without any other change.
	createGroup(t, ns, "no-such-group")
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
}

func TestMissingSecretFailsClearly(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.readSecret = true
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true)
	got := waitProgress(t, n, infrav1.ProgressFailed, 10*time.Second)
	if got.Status.LastErrorReason != string(power.ClassConfig) || !strings.Contains(got.Status.LastError, "secret "+ns+"/bmc not found") {
		t.Fatalf("status: %q %q", got.Status.LastErrorReason, got.Status.LastError)
	}
	if got.Status.Attempts != 1 {
		t.Fatalf("a configuration error was retried %d times", got.Status.Attempts)
	}
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, "ConfigError")
	expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionFalse, "Idle")
	waitEvent(t, n, "Failed")
	expectQuiet(t)

	// The human creates the Secret and fixes nothing else in the spec; a spec edit retries.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bmc", Labels: map[string]string{infrav1.LabelCredentials: "true"}}, StringData: map[string]string{"username": "u", "password": "p"}}
	if err := env.Client.Create(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	setDesired(t, n, false)
	waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	setDesired(t, n, true)
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
}

func TestJobRejectedByTheAPIFailsClearly(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns, nil)
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.Power.Start = &infrav1.PowerDriver{Job: &infrav1.JobDriver{
			Image: "busybox:1.37",
			Env:   []corev1.EnvVar{{Name: "1-not-a-valid-name=", Value: "x"}},
		}}
	})
	got := waitProgress(t, n, infrav1.ProgressFailed, 10*time.Second)
	if got.Status.LastErrorReason != string(power.ClassConfig) || !strings.Contains(got.Status.LastError, "the API refused job") {
		t.Fatalf("status: %q %q", got.Status.LastErrorReason, got.Status.LastError)
	}
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, "ConfigError")
	waitEvent(t, n, "Failed")
	expectQuiet(t)
}

// A Node with the machine's node name that registered with another providerID is some other
// machine: it is never taken as this one's, and the conflict stalls the machine for a human.
func TestProviderIDConflictStalls(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	other := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns + "-m1"}, Spec: corev1.NodeSpec{ProviderID: "other://" + ns}}
	if err := env.Client.Create(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), other) })
	n := createMachine(t, ns, "m1", "workers", false)
	var got *infrav1.Machine
	testenv.Eventually(t, 10*time.Second, "the conflict to be reported", func() bool {
		got = get(t, n)
		c := condition(got, infrav1.ConditionStalled)
		return c != nil && c.Reason == "ProviderIDConflict"
	})
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, "ProviderIDConflict")
	want := "Node " + ns + "-m1 registered with providerID \"other://" + ns + "\", not \"homelab://" + ns + "/m1\""
	if msg := condition(got, infrav1.ConditionStalled).Message; msg != want {
		t.Fatalf("Stalled message %q, want %q", msg, want)
	}
	if got.Status.KubernetesNode != "" {
		t.Fatalf("the other machine's Node was taken as this one's: %+v", got.Status)
	}
	if drv.total("m1", power.ActionOn)+drv.total("m1", power.ActionOff) != 0 {
		t.Fatalf("a machine that is off and should be off was powered")
	}
}
