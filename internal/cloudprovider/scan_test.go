package cloudprovider

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The decisions of a batch that share one scan choose exactly what each would choose alone:
// the same machines, in the same order, with the same shortfall, whatever is in flight.
func TestSharedScanChoosesAsADecisionAlone(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g"}}
	g.Spec.PowerCycling = &infrav1.PowerCycling{MinOffTime: &metav1.Duration{Duration: time.Hour}, MaxPowerOnsPerDay: ptr.To(int32(2))}
	f := newFleet(newVisibility())
	for i := range 60 {
		m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("m%02d", i), ResourceVersion: fmt.Sprint(i + 1)}}
		m.Spec.Group, m.Spec.Online = "g", i%5 == 0
		m.Status.FailedBoots = int32(i % 3)
		if i%4 == 0 {
			m.Status.ProviderID = "homelab://ns/" + m.Name
		}
		if i%7 == 0 {
			m.Spec.Pricing = &infrav1.Pricing{HourlyRate: resource.MustParse(fmt.Sprintf("0.%02d", i%9+1))}
		}
		if i%11 == 0 {
			m.Status.LastShutdownTime = &metav1.Time{Time: now.Add(-time.Duration(i) * time.Minute)}
		}
		if i%13 == 0 {
			// Powered on twice in the last day: over the cap.
			m.Status.PowerOns = []metav1.Time{{Time: now.Add(-time.Hour)}, {Time: now.Add(-2 * time.Hour)}}
		}
		f.observe(m)
	}
	for _, want := range []int{1, 3, 8, 9, 30, 60} {
		for _, flight := range [][]string{nil, {"m01", "m02"}, {"m03", "m04", "m06", "m07", "m08", "m09", "m11"}} {
			pending := map[string]ledgerChange{}
			for _, n := range flight {
				pending[n] = ledgerChange{Name: n, On: true}
			}
			alone := newView(g, f, now)
			alone.pending = pending
			shared := newView(g, f, now)
			shared.pending, shared.scan = pending, &scan{calls: 2}
			// A decision before it in the batch has ranked the members already.
			warm := newView(g, f, now)
			warm.scan = shared.scan
			if _, err := warm.choosePowerOnsUpTo(1); err != nil {
				t.Fatal(err)
			}
			a, aerr := alone.choosePowerOnsUpTo(want)
			b, berr := shared.choosePowerOnsUpTo(want)
			if fmt.Sprint(a) != fmt.Sprint(b) || fmt.Sprint(aerr) != fmt.Sprint(berr) || fmt.Sprint(alone.shaped) != fmt.Sprint(shared.shaped) {
				t.Fatalf("%d wanted, %v in flight:\nalone  %v %v %v\nshared %v %v %v", want, flight, a, aerr, alone.shaped, b, berr, shared.shaped)
			}
		}
	}
}
