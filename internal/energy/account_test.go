package energy

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// A scripted day: off overnight at a configured 5 W, powered on at 08:00 (counted at the
// configured 100 W until a reading), measured at 120 W from 08:30, off at 18:00, read again at
// midnight. The figures are worked out by hand below.
func TestAdvanceScriptedDay(t *testing.T) {
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	on := ptr.To(100.0)
	off := Draw{On: false, Watts: 5, Source: infrav1.DrawConfigured, OnWatts: on}

	acc := Advance(nil, at(0, 0), off, time.UTC)
	acc = Advance(acc, at(8, 0), Draw{On: true, Watts: 100, Source: infrav1.DrawConfigured, OnWatts: on}, time.UTC)
	acc = Advance(acc, at(8, 30), Draw{On: true, Watts: 120, Source: infrav1.DrawMeasured, MeasuredAt: at(8, 30), OnWatts: on}, time.UTC)
	acc = Advance(acc, at(18, 0), off, time.UTC)
	acc = Advance(acc, at(24, 0), off, time.UTC)

	// Off 00:00–08:00 and 18:00–24:00: 8 h + 6 h = 50,400 s at 5 W = 252,000 J, saving
	// (100 − 5) W × 50,400 s = 4,788,000 J. On 08:00–08:30 at 100 W = 180,000 J and
	// 08:30–18:00 (34,200 s) at 120 W = 4,104,000 J.
	want := infrav1.EnergyTotals{OnSeconds: 36000, OffSeconds: 50400, UsedJoules: 4536000, SavedJoules: 4788000}
	if acc.EnergyTotals != want {
		t.Fatalf("totals = %+v, want %+v", acc.EnergyTotals, want)
	}
	if got := float64(acc.UsedJoules) / JoulesPerKWh; got != 1.26 {
		t.Errorf("used = %v kWh, want 1.26", got)
	}
	if got := float64(acc.SavedJoules) / JoulesPerKWh; got != 1.33 {
		t.Errorf("saved = %v kWh, want 1.33", got)
	}
	if len(acc.Days) != 1 || acc.Days[0].Date != "2026-03-10" || acc.Days[0].EnergyTotals != want {
		t.Errorf("days = %+v, want the whole day on 2026-03-10", acc.Days)
	}
	var states []infrav1.PowerState
	for _, c := range acc.Changes {
		states = append(states, c.State)
	}
	if len(states) != 3 || states[0] != infrav1.PoweredOff || states[1] != infrav1.PoweredOn || states[2] != infrav1.PoweredOff {
		t.Errorf("changes = %v, want off, on, off", states)
	}
	if !acc.Changes[1].At.Time.Equal(at(8, 0)) || !acc.Changes[2].At.Time.Equal(at(18, 0)) {
		t.Errorf("changes at %v and %v, want 08:00 and 18:00", acc.Changes[1].At, acc.Changes[2].At)
	}
	if acc.WattsSource != infrav1.DrawConfigured || Watts(&acc.Watts) != 5 {
		t.Errorf("current draw = %v (%s), want the configured 5 W", acc.Watts.String(), acc.WattsSource)
	}
}

// Days are calendar days of the policy's time zone, DST included: the night of the change to
// summer time in Berlin has a 23-hour day.
func TestAdvanceSplitsLocalDays(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 28, 12, 0, 0, 0, berlin)
	acc := Advance(nil, start, Draw{On: true, Watts: 10, Source: infrav1.DrawMeasured}, berlin)
	acc = Advance(acc, time.Date(2026, 3, 30, 12, 0, 0, 0, berlin), Draw{On: true, Watts: 10, Source: infrav1.DrawMeasured}, berlin)
	want := []struct {
		date string
		secs int64
	}{{"2026-03-28", 12 * 3600}, {"2026-03-29", 23 * 3600}, {"2026-03-30", 12 * 3600}}
	if len(acc.Days) != len(want) {
		t.Fatalf("days = %+v, want %d", acc.Days, len(want))
	}
	for i, w := range want {
		if d := acc.Days[i]; d.Date != w.date || d.OnSeconds != w.secs || d.UsedJoules != 10*w.secs {
			t.Errorf("day %d = %+v, want %s with %d s", i, d, w.date, w.secs)
		}
	}
}

// A clock behind the account's end (another replica's) counts nothing and moves nothing back;
// the account keeps its last 32 days and 48 changes.
func TestAdvanceBounds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	acc := Advance(nil, t0, Draw{Watts: 1}, time.UTC)
	acc = Advance(acc, t0.Add(time.Hour), Draw{Watts: 1}, time.UTC)
	back := Advance(acc, t0.Add(30*time.Minute), Draw{Watts: 1}, time.UTC)
	if back.EnergyTotals != acc.EnergyTotals || !back.AccountedUntil.Equal(&acc.AccountedUntil) {
		t.Errorf("a clock behind moved the account: %+v -> %+v", acc.EnergyTotals, back.EnergyTotals)
	}
	for i := range 100 {
		acc = Advance(acc, t0.Add(time.Duration(i+2)*12*time.Hour), Draw{On: i%2 == 0, Watts: 1}, time.UTC)
	}
	if len(acc.Days) != infrav1.MaxEnergyDays || len(acc.Changes) != infrav1.MaxPowerChanges {
		t.Errorf("kept %d days and %d changes, want %d and %d", len(acc.Days), len(acc.Changes), infrav1.MaxEnergyDays, infrav1.MaxPowerChanges)
	}
	for i := 1; i < len(acc.Days); i++ {
		if acc.Days[i-1].Date >= acc.Days[i].Date {
			t.Fatalf("days out of order: %s before %s", acc.Days[i-1].Date, acc.Days[i].Date)
		}
	}
}

func TestSumAndMoney(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := func(w float64, since time.Time) infrav1.Machine {
		acc := Advance(nil, since, Draw{Watts: w, Source: infrav1.DrawMeasured, OnWatts: ptr.To(w + 100)}, time.UTC)
		acc = Advance(acc, t0.Add(10*time.Hour), Draw{Watts: w, Source: infrav1.DrawMeasured}, time.UTC)
		return infrav1.Machine{Status: infrav1.MachineStatus{Energy: acc}}
	}
	price := QuantityPtr(0.30)
	g := Sum([]infrav1.Machine{m(2, t0), m(3, t0.Add(time.Hour)), {}}, t0.Add(10*time.Hour), &infrav1.EnergyPolicy{PricePerKWh: price, Currency: "EUR"})
	// Saved: 100 W × 10 h + 100 W × 9 h = 1.9 kWh, at 0.30 EUR: 0.57 EUR.
	if g.SavedJoules != 1900*3600 || g.Saved != "1.90 kWh, 0.57 EUR" {
		t.Errorf("saved = %d J (%q), want 6,840,000 J (1.90 kWh, 0.57 EUR)", g.SavedJoules, g.Saved)
	}
	if !g.Since.Time.Equal(t0) || Watts(&g.Watts) != 5 {
		t.Errorf("since %v, watts %v; want %v and 5", g.Since, g.Watts.String(), t0)
	}
	if got := Over(g.Days, "2026-01-01", "2026-01-01"); got != g.EnergyTotals {
		t.Errorf("over the one day = %+v, want the totals %+v", got, g.EnergyTotals)
	}
	if Sum([]infrav1.Machine{{}}, t0, nil) != nil {
		t.Error("a group without accounts has a sum")
	}
}

func TestFormatKWh(t *testing.T) {
	for kwh, want := range map[float64]string{0: "0.000", 0.00024: "0.00024", 0.0061: "0.0061", 0.05: "0.050", 1.26: "1.26", 12.34: "12.3", 345.6: "346"} {
		if got := FormatKWh(kwh); got != want {
			t.Errorf("FormatKWh(%v) = %q, want %q", kwh, got, want)
		}
	}
}
