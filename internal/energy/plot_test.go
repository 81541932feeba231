package energy

import (
	"bytes"
	"image/png"
	"io"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/svgtext"
)

var t0 = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time { return t0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }

func powerChange(when time.Time, s infrav1.PowerState, watts float64) infrav1.PowerChange {
	return infrav1.PowerChange{At: metav1.NewMicroTime(when), State: s, Watts: Quantity(watts)}
}

type stretch struct {
	from, to time.Time
	state    infrav1.PowerState
}

func spansOf(ss []Span) []stretch {
	out := make([]stretch, len(ss))
	for i, s := range ss {
		out[i] = stretch{s.From, s.To, s.State}
	}
	return out
}

func sameSpans(t *testing.T, what string, got []Span, want []stretch) {
	t.Helper()
	g := spansOf(got)
	if len(g) != len(want) {
		t.Fatalf("%s: %d spans %v, want %v", what, len(g), g, want)
	}
	for i := range want {
		if !g[i].from.Equal(want[i].from) || !g[i].to.Equal(want[i].to) || g[i].state != want[i].state {
			t.Errorf("%s: span %d = %v, want %v", what, i, g[i], want[i])
		}
	}
}

func TestTimeline(t *testing.T) {
	acc := &infrav1.MachineEnergy{
		Since: metav1.NewTime(at(1, 0)), Drawing: infrav1.PoweredOn,
		Changes: []infrav1.PowerChange{
			powerChange(at(1, 0), infrav1.PoweredOff, 5),
			powerChange(at(8, 0), infrav1.PoweredOn, 100),
			powerChange(at(18, 0), infrav1.PoweredOff, 5),
			powerChange(at(20, 0), infrav1.PoweredOn, 100),
		},
	}
	// Before the first change nothing is known; after the last, its state holds.
	sameSpans(t, "the whole day", Timeline(acc, at(0, 0), at(24, 0)), []stretch{
		{at(0, 0), at(1, 0), infrav1.PowerUnknown}, {at(1, 0), at(8, 0), infrav1.PoweredOff},
		{at(8, 0), at(18, 0), infrav1.PoweredOn}, {at(18, 0), at(20, 0), infrav1.PoweredOff},
		{at(20, 0), at(24, 0), infrav1.PoweredOn},
	})
	// A window starting inside a span starts in that span's state; changes after it are left out.
	sameSpans(t, "09:00 to 19:00", Timeline(acc, at(9, 0), at(19, 0)), []stretch{
		{at(9, 0), at(18, 0), infrav1.PoweredOn}, {at(18, 0), at(19, 0), infrav1.PoweredOff},
	})
	if s := Timeline(acc, at(9, 0), at(12, 0)); len(s) != 1 || s[0].Watts != 100 {
		t.Errorf("09:00 to 12:00: %+v, want one span at 100 W", s)
	}
	sameSpans(t, "a machine without an account", Timeline(nil, at(0, 0), at(2, 0)), []stretch{{at(0, 0), at(2, 0), infrav1.PowerUnknown}})
	if s := Timeline(acc, at(2, 0), at(2, 0)); s != nil {
		t.Errorf("an empty window has spans: %v", s)
	}
	// An account without changes has been in its state since it opened; an unknown state in a
	// change counts as unknown, and equal neighbours merge.
	quiet := &infrav1.MachineEnergy{Since: metav1.NewTime(at(3, 0)), Drawing: infrav1.PoweredOff}
	sameSpans(t, "no changes", Timeline(quiet, at(0, 0), at(6, 0)), []stretch{
		{at(0, 0), at(3, 0), infrav1.PowerUnknown}, {at(3, 0), at(6, 0), infrav1.PoweredOff},
	})
	odd := &infrav1.MachineEnergy{Changes: []infrav1.PowerChange{
		powerChange(at(2, 0), infrav1.PowerUnknown, 0), powerChange(at(4, 0), infrav1.PoweredOn, 50), powerChange(at(5, 0), infrav1.PoweredOn, 60),
	}}
	sameSpans(t, "unknown and repeated states", Timeline(odd, at(0, 0), at(6, 0)), []stretch{
		{at(0, 0), at(4, 0), infrav1.PowerUnknown}, {at(4, 0), at(6, 0), infrav1.PoweredOn},
	})
}

// The saved energy is summed day by day: a point at the window's start, one at each midnight,
// one at the window's end.
func TestCumulative(t *testing.T) {
	days := []infrav1.EnergyDay{
		{Date: "2026-03-08", EnergyTotals: infrav1.EnergyTotals{SavedJoules: 9e6}},
		{Date: "2026-03-09", EnergyTotals: infrav1.EnergyTotals{SavedJoules: 3.6e6}},
		{Date: "2026-03-10", EnergyTotals: infrav1.EnergyTotals{SavedJoules: 1.8e6}},
	}
	pts, total := cumulative(days, at(-12, 0), at(15, 0), time.UTC)
	want := []struct {
		x   time.Time
		kwh float64
	}{{at(-12, 0), 0}, {at(0, 0), 1}, {at(15, 0), 1.5}}
	if total != 5.4e6 || len(pts) != len(want) {
		t.Fatalf("total %d J in %v, want 5,400,000 J in %d points", total, pts, len(want))
	}
	for i, w := range want {
		if pts[i].X != unix(w.x) || pts[i].Y != w.kwh {
			t.Errorf("point %d = (%v, %v), want (%v, %v)", i, fromUnix(pts[i].X).UTC(), pts[i].Y, w.x, w.kwh)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	labels := func(from, to time.Time) string {
		var ls []string
		for _, tk := range timeTicks(unix(from), unix(to), time.UTC) {
			ls = append(ls, tk.Label)
		}
		return strings.Join(ls, " ")
	}
	for _, tc := range []struct {
		from, to time.Time
		want     string
	}{
		{at(14, 1), at(14, 4), "14:01:00 14:01:30 14:02:00 14:02:30 14:03:00 14:03:30 14:04:00"},
		{at(-9, 0), at(15, 0), "15:00 18:00 21:00 Mar 10 03:00 06:00 09:00 12:00 15:00"},
		{at(-6*24, 0), at(15, 0), "Mar 4 Mar 5 Mar 6 Mar 7 Mar 8 Mar 9 Mar 10"},
		{at(-29*24, 0), at(15, 0), "Feb 9 Feb 16 Feb 23 Mar 2 Mar 9"},
	} {
		if got := labels(tc.from, tc.to); got != tc.want {
			t.Errorf("ticks %v to %v: %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}

func pictureFixture() (*infrav1.Group, []infrav1.Machine) {
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "rack"},
		Spec: infrav1.GroupSpec{Energy: &infrav1.EnergyPolicy{PricePerKWh: QuantityPtr(0.4), Currency: "CHF"}}}
	draw := func(on bool, w float64) Draw {
		return Draw{On: on, Watts: w, Source: infrav1.DrawConfigured, OnWatts: func() *float64 { v := 80.0; return &v }()}
	}
	acc := Advance(nil, at(0, 0), draw(false, 5), time.UTC)
	acc = Advance(acc, at(9, 0), draw(true, 80), time.UTC)
	acc = Advance(acc, at(12, 0), draw(false, 5), time.UTC)
	// Saved: off 00:00-09:00 and 12:00-15:00, 12 h at 75 W = 0.9 kWh, 0.36 CHF.
	acc = Advance(acc, at(15, 0), draw(false, 5), time.UTC)
	return g, []infrav1.Machine{
		{ObjectMeta: metav1.ObjectMeta{Name: "zeta"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "alpha"}, Status: infrav1.MachineStatus{Energy: acc}},
	}
}

func TestWritePictureSVG(t *testing.T) {
	g, ms := pictureFixture()
	var b bytes.Buffer
	if err := WritePicture(&b, SVG, g, ms, at(0, 0), at(15, 0)); err != nil {
		t.Fatal(err)
	}
	texts, err := svgtext.Texts(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"lab/rack: power, 2026-03-10 00:00 to 2026-03-10 15:00 (UTC)", "alpha", "zeta",
		"Saved energy, cumulative per day (whole days, 2026-03-10): 0.900 kWh, 0.36 CHF", "kWh saved",
		"on (drawing)", "off (saving)", "unknown (before the first recorded change)", "saved kWh", "Mar 10", "12:00",
	} {
		if !texts[want] {
			t.Errorf("the SVG has no text %q; it has %v", want, texts)
		}
	}
}

func TestWritePicturePNG(t *testing.T) {
	g, ms := pictureFixture()
	for _, members := range [][]infrav1.Machine{ms, nil} {
		var b bytes.Buffer
		if err := WritePicture(&b, PNG, g, members, at(0, 0), at(15, 0)); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&b)
		if err != nil {
			t.Fatalf("the PNG of %d machines does not decode: %v", len(members), err)
		}
		// 10 inches at 96 dots per inch; taller with more lanes.
		if bounds := img.Bounds(); bounds.Dx() != 960 || bounds.Dy() < 300 {
			t.Errorf("the PNG of %d machines is %v", len(members), bounds)
		}
	}
}

func TestWritePictureBadInput(t *testing.T) {
	g, ms := pictureFixture()
	if err := WritePicture(io.Discard, "gif", g, ms, at(0, 0), at(1, 0)); err == nil || !strings.Contains(err.Error(), `Group lab/rack: format "gif" is neither svg nor png`) {
		t.Errorf("a gif: %v", err)
	}
	if err := WritePicture(io.Discard, SVG, g, ms, at(1, 0), at(1, 0)); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("an empty window: %v", err)
	}
}
