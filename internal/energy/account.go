// Package energy keeps the energy accounts of machines and groups: what each machine drew and
// saved, when it was on, per calendar day. An account is part of the Machine's status and is
// advanced only by status writes the manager makes anyway, so it costs no write of its own and
// survives any restart: the interval since the last write is counted in the state and at the
// draw that write recorded.
package energy

import (
	"math"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// JoulesPerKWh converts kilowatt-hours and joules.
const JoulesPerKWh = 3.6e6

// Draw is what a machine is counted at from an instant on.
type Draw struct {
	// On is whether it counts as running (drawing its on power) or off.
	On bool
	// Watts is its draw.
	Watts float64
	// Source says where Watts comes from.
	Source infrav1.DrawSource
	// MeasuredAt is when Watts was measured, for a measured draw.
	MeasuredAt time.Time
	// OnWatts is what the machine draws running, against which time off counts as saved; nil
	// when nothing says (no configured onWatts and never measured on).
	OnWatts *float64
}

// Advance brings acc up to now and records next as the draw from now on. The time since
// acc.AccountedUntil is counted in the state and at the watts recorded then, split over the
// calendar days of loc. A nil acc opens an account at now. A now before AccountedUntil (a clock
// behind another replica's) counts nothing and never moves the account back.
func Advance(acc *infrav1.MachineEnergy, now time.Time, next Draw, loc *time.Location) *infrav1.MachineEnergy {
	if loc == nil {
		loc = time.UTC
	}
	if acc == nil {
		acc = &infrav1.MachineEnergy{Since: metav1.NewTime(now), AccountedUntil: metav1.NewMicroTime(now)}
	} else {
		acc = acc.DeepCopy()
	}
	from := acc.AccountedUntil.Time
	if now.After(from) {
		count(acc, from, now, loc)
		acc.AccountedUntil = metav1.NewMicroTime(now)
	}
	state := infrav1.PoweredOff
	if next.On {
		state = infrav1.PoweredOn
	}
	w := Quantity(next.Watts)
	if acc.Drawing != state {
		acc.Changes = append(acc.Changes, infrav1.PowerChange{At: acc.AccountedUntil, State: state, Watts: w})
		if n := len(acc.Changes) - infrav1.MaxPowerChanges; n > 0 {
			acc.Changes = append([]infrav1.PowerChange(nil), acc.Changes[n:]...)
		}
	}
	acc.Drawing, acc.Watts, acc.WattsSource = state, w, next.Source
	if next.Source == infrav1.DrawMeasured && !next.MeasuredAt.IsZero() {
		t := metav1.NewTime(next.MeasuredAt)
		acc.WattsMeasuredAt = &t
	}
	if next.OnWatts != nil {
		q := Quantity(*next.OnWatts)
		acc.OnWatts = &q
	}
	return acc
}

// count adds the interval [from, to) to acc's totals and days.
func count(acc *infrav1.MachineEnergy, from, to time.Time, loc *time.Location) {
	watts := acc.Watts.AsApproximateFloat64()
	saving := 0.0
	if acc.Drawing != infrav1.PoweredOn && acc.OnWatts != nil {
		saving = max(acc.OnWatts.AsApproximateFloat64()-watts, 0)
	}
	for start := from; start.Before(to); {
		y, m, d := start.In(loc).Date()
		midnight := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
		end := to
		if midnight.Before(end) {
			end = midnight
		}
		part := span(acc.Drawing == infrav1.PoweredOn, end.Sub(start), watts, saving)
		add(&acc.EnergyTotals, part)
		addDay(&acc.Days, start.In(loc).Format(time.DateOnly), part)
		start = end
	}
}

// span is the totals of one interval in one state.
func span(on bool, d time.Duration, watts, saving float64) infrav1.EnergyTotals {
	secs := d.Seconds()
	t := infrav1.EnergyTotals{UsedJoules: int64(math.Round(watts * secs)), SavedJoules: int64(math.Round(saving * secs))}
	// Seconds are rounded per interval; the joules carry the exact duration.
	if on {
		t.OnSeconds = int64(math.Round(secs))
	} else {
		t.OffSeconds = int64(math.Round(secs))
	}
	return t
}

func add(t *infrav1.EnergyTotals, part infrav1.EnergyTotals) {
	t.OnSeconds += part.OnSeconds
	t.OffSeconds += part.OffSeconds
	t.UsedJoules += part.UsedJoules
	t.SavedJoules += part.SavedJoules
}

// addDay adds part to the day named date, keeping the days sorted and the last MaxEnergyDays.
func addDay(days *[]infrav1.EnergyDay, date string, part infrav1.EnergyTotals) {
	ds := *days
	i := sort.Search(len(ds), func(i int) bool { return ds[i].Date >= date })
	if i == len(ds) || ds[i].Date != date {
		ds = append(ds, infrav1.EnergyDay{})
		copy(ds[i+1:], ds[i:])
		ds[i] = infrav1.EnergyDay{Date: date}
	}
	add(&ds[i].EnergyTotals, part)
	if n := len(ds) - infrav1.MaxEnergyDays; n > 0 {
		ds = append([]infrav1.EnergyDay(nil), ds[n:]...)
	}
	*days = ds
}

// Quantity is watts as a resource.Quantity, to the milliwatt.
func Quantity(watts float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Round(watts*1000)), resource.DecimalSI)
}

// Watts reads a quantity as watts; nil reads as 0.
func Watts(q *resource.Quantity) float64 {
	if q == nil {
		return 0
	}
	return q.AsApproximateFloat64()
}
