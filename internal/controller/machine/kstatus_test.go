package machine_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

func getGroup(t *testing.T, ns, name string) *infrav1.Group {
	t.Helper()
	g := &infrav1.Group{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, g); err != nil {
		t.Fatal(err)
	}
	return g
}

// verdict is what kstatus (as Flux, Argo CD and kubectl's own status readers use it) makes of
// the object as the apiserver serves it, read as unstructured JSON like those tools read it.
func verdict(t *testing.T, kind, ns, name string) *status.Result {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(infrav1.GroupVersion.WithKind(kind))
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(u)
	if err != nil {
		t.Fatalf("kstatus on %s %s: %v", kind, name, err)
	}
	return res
}

// Machines and Groups in every state get the kstatus verdict their state means: done is
// Current, on the way is InProgress, needing a human is Failed.
func TestKstatusVerdicts(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.set(func(d *machineDriver) {
		d.neverUp["booting"] = true
		d.failWith["failed"] = power.Errorf(power.DriverIPMI, power.ActionOn, power.ClassAuthFailed, "the BMC refused the password")
	})
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "settled")
	createGroup(t, ns, "scaling")
	createGroup(t, ns, "broken")
	slow := func(n *infrav1.Machine) {
		n.Spec.BootTimeout = &metav1.Duration{Duration: time.Minute}
		n.Spec.ShutdownTimeout = &metav1.Duration{Duration: time.Minute}
	}
	ready := createMachine(t, ns, "ready", "settled", true)
	off := createMachine(t, ns, "off", "settled", false)
	booting := createMachine(t, ns, "booting", "scaling", true, slow)
	stopping := createMachine(t, ns, "stopping", "scaling", true, slow)
	failed := createMachine(t, ns, "failed", "broken", true)

	waitProgress(t, stopping, infrav1.ProgressReady, 10*time.Second)
	drv.set(func(d *machineDriver) { d.stuckOn["stopping"] = true })
	setDesired(t, stopping, false)
	testenv.Eventually(t, 10*time.Second, "the power-off command", func() bool {
		op := get(t, stopping).Status.Operation
		return op != nil && op.Action == infrav1.PowerActionOff && op.AttemptStartedAt != nil
	})
	waitProgress(t, ready, infrav1.ProgressReady, 10*time.Second)
	waitProgress(t, off, infrav1.ProgressOff, 10*time.Second)
	waitProgress(t, booting, infrav1.ProgressStartingUp, 10*time.Second)
	failedMachine := waitProgress(t, failed, infrav1.ProgressFailed, 10*time.Second)

	for _, c := range []struct {
		name   string
		want   status.Status
		reason string // of the condition kstatus reports, for InProgress and Failed
	}{
		{"ready", status.CurrentStatus, ""},
		{"off", status.CurrentStatus, ""},
		{"booting", status.InProgressStatus, "PoweringOn"},
		{"stopping", status.InProgressStatus, "PoweringOff"},
		{"failed", status.FailedStatus, string(power.ClassAuthFailed)},
	} {
		res := verdict(t, "Machine", ns, c.name)
		if res.Status != c.want {
			t.Errorf("machine %s: kstatus %s (%s), want %s", c.name, res.Status, res.Message, c.want)
			continue
		}
		if c.reason != "" && (len(res.Conditions) != 1 || res.Conditions[0].Reason != c.reason) {
			t.Errorf("machine %s: kstatus conditions %+v, want reason %s", c.name, res.Conditions, c.reason)
		}
	}
	if res := verdict(t, "Machine", ns, "failed"); res.Message != failedMachine.Status.LastError {
		t.Errorf("the Failed verdict says %q, lastError %q", res.Message, failedMachine.Status.LastError)
	}

	// The groups, once their status has caught up with their members.
	testenv.Eventually(t, 10*time.Second, "the groups to count their members", func() bool {
		s, sc, b := getGroup(t, ns, "settled").Status, getGroup(t, ns, "scaling").Status, getGroup(t, ns, "broken").Status
		return s.Ready == 1 && s.PoweredOff == 1 &&
			sc.StartingUp == 1 && sc.ShuttingDown == 1 &&
			b.Failed == 1
	})
	for _, c := range []struct {
		name   string
		want   status.Status
		reason string
	}{
		{"settled", status.CurrentStatus, ""},
		{"scaling", status.InProgressStatus, "Scaling"},
		{"broken", status.FailedStatus, "MembersFailed"},
	} {
		res := verdict(t, "Group", ns, c.name)
		if res.Status != c.want {
			t.Errorf("group %s: kstatus %s (%s), want %s", c.name, res.Status, res.Message, c.want)
			continue
		}
		if c.reason != "" && (len(res.Conditions) != 1 || res.Conditions[0].Reason != c.reason) {
			t.Errorf("group %s: kstatus conditions %+v, want reason %s", c.name, res.Conditions, c.reason)
		}
	}
}
