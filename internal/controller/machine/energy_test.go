package machine_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// meteredDriver is machineDriver with a power sensor: it reports onWatts while the machine is
// on and offWatts while it is off, in the same read as the power state.
type meteredDriver struct {
	*machineDriver
	onWatts, offWatts float64
}

func (d meteredDriver) Read(ctx context.Context, req power.Request) (power.Reading, error) {
	state, err := d.Status(ctx, req)
	w := d.offWatts
	if state == infrav1.PoweredOn {
		w = d.onWatts
	}
	return power.Reading{State: state, Watts: &w}, err
}

// The energy account follows the machine through a power-on and a power-off with the figures
// the BMC measures (the configured onWatts stands in only until the first reading on), counts
// the time off as saved against the configured on draw, and the Group sums it with its price.
func TestEnergyAccount(t *testing.T) {
	ns := newNamespace(t)
	drv := meteredDriver{machineDriver: newMachineDriver(), onWatts: 80, offWatts: 3}
	mgr := startManager(t, ns, power.NewRegistry(drv))
	defer mgr.stop()
	createGroup(t, ns, "g", func(g *infrav1.Group) {
		g.Spec.Repair = &infrav1.RepairPolicy{ObserveInterval: &metav1.Duration{Duration: 10 * time.Second}}
		g.Spec.Energy = &infrav1.EnergyPolicy{PricePerKWh: ptr.To(resource.MustParse("0.30")), Currency: "EUR"}
		g.Spec.MachineDefaults = &infrav1.MachineDefaults{PowerDraw: &infrav1.PowerDraw{OnWatts: ptr.To(resource.MustParse("100"))}}
	})
	n := createMachine(t, ns, "m", "g", false)

	off := waitProgress(t, n, infrav1.ProgressOff, 15*time.Second)
	acc := off.Status.Energy
	if acc == nil || acc.Drawing != infrav1.PoweredOff || acc.WattsSource != infrav1.DrawMeasured || acc.Watts.AsApproximateFloat64() != 3 {
		t.Fatalf("account of a machine found off = %+v, want off at the measured 3 W", acc)
	}

	setDesired(t, n, true)
	waitProgress(t, n, infrav1.ProgressReady, 15*time.Second)
	var on *infrav1.Machine
	on = get(t, n)
	if a := on.Status.Energy; a.Drawing != infrav1.PoweredOn || a.WattsSource != infrav1.DrawMeasured || a.Watts.AsApproximateFloat64() != 80 {
		t.Errorf("account of a machine just Ready = %+v, want on at the 80 W its BMC measures", a)
	}
	testenv.Eventually(t, 30*time.Second, "time on counted at the next observation", func() bool {
		on = get(t, n)
		return on.Status.Energy.OnSeconds > 0
	})
	if on.Status.Energy.UsedJoules < acc.UsedJoules {
		t.Errorf("account after running a while = %+v", on.Status.Energy.EnergyTotals)
	}

	setDesired(t, n, false)
	waitProgress(t, n, infrav1.ProgressOff, 15*time.Second)
	var last *infrav1.Machine
	testenv.Eventually(t, 30*time.Second, "time off counted as saved", func() bool {
		last = get(t, n)
		return last.Status.Energy.SavedJoules > acc.SavedJoules && last.Status.Energy.Drawing == infrav1.PoweredOff
	})
	a := last.Status.Energy
	span := a.AccountedUntil.Sub(a.Since.Time).Seconds()
	if counted := float64(a.OnSeconds + a.OffSeconds); math.Abs(counted-span) > float64(len(a.Changes)+10) {
		t.Errorf("counted %v s on and off over an account of %v s", counted, span)
	}
	// Every second is counted at 3 W (off), 80 W (measured on) or 100 W (configured on until the
	// first reading), and saves 97 W when off.
	if lo, hi := 3*span-5, 100*span+5; float64(a.UsedJoules) < lo || float64(a.UsedJoules) > hi {
		t.Errorf("used %d J over %v s, want between %v and %v", a.UsedJoules, span, lo, hi)
	}
	if want := 97 * float64(a.OffSeconds); math.Abs(float64(a.SavedJoules)-want) > 97*float64(len(a.Changes)+2) {
		t.Errorf("saved %d J over %d s off, want about %v", a.SavedJoules, a.OffSeconds, want)
	}
	states := []infrav1.PowerState{}
	for _, c := range a.Changes {
		states = append(states, c.State)
	}
	if strings.Join(toStrings(states), ",") != "PoweredOff,PoweredOn,PoweredOff" {
		t.Errorf("changes = %v, want off, on, off", states)
	}

	testenv.Eventually(t, 30*time.Second, "the group's sums", func() bool {
		g := &infrav1.Group{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "g"}, g); err != nil {
			t.Fatal(err)
		}
		e := g.Status.Energy
		return e != nil && e.UsedJoules >= a.UsedJoules && e.SavedJoules >= a.SavedJoules && strings.HasSuffix(e.Saved, " EUR")
	})
}

func toStrings[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}
