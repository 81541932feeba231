package machine_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Desired on again after the power-off command went out, on a machine with no core Node (so
// no core Node event comes to wake the reconciler): the power-off finishes (it cannot be called
// back), then the machine powers on, rather than resting Off against its spec.
func TestDesiredOnAgainAfterPowerOffCommand(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.set(func(d *machineDriver) { d.neverUp["m1"] = true })
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.BootTimeout = &metav1.Duration{Duration: time.Minute}
		n.Spec.ShutdownTimeout = &metav1.Duration{Duration: time.Minute}
	})
	waitProgress(t, n, infrav1.ProgressStartingUp, 10*time.Second)
	drv.set(func(d *machineDriver) { d.stuckOn["m1"] = true }) // the BMC is slow to act
	setDesired(t, n, false)
	testenv.Eventually(t, 10*time.Second, "the power-off command", func() bool {
		op := get(t, n).Status.Operation
		return op != nil && op.Action == infrav1.PowerActionOff && op.AttemptStartedAt != nil
	})
	setDesired(t, n, true)

	// The machine goes off as commanded, confirmed by its status driver; then it must power on.
	drv.set(func(d *machineDriver) { d.stuckOn["m1"] = false; d.on["m1"] = false })
	testenv.Eventually(t, 10*time.Second, "a second power-on command", func() bool { return drv.total("m1", power.ActionOn) == 2 })
	got := waitProgress(t, n, infrav1.ProgressStartingUp, 10*time.Second)
	if !got.Spec.Online || drv.total("m1", power.ActionOff) != 1 || got.Status.Operation.Action != infrav1.PowerActionOn {
		t.Fatalf("after the flip back: spec online %v, %d off commands; status %+v", got.Spec.Online, drv.total("m1", power.ActionOff), got.Status)
	}
}
