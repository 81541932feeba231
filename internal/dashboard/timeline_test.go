package dashboard

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
)

func TestTimelinePlacesSpansInTheLastDay(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	change := func(hoursAgo float64, s infrav1.PowerState) infrav1.PowerChange {
		at := now.Add(-time.Duration(hoursAgo * float64(time.Hour)))
		return infrav1.PowerChange{At: metav1.NewMicroTime(at), State: s, Watts: energy.Quantity(50)}
	}
	acc := &infrav1.MachineEnergy{
		Since: metav1.NewTime(now.Add(-30 * time.Hour)), Drawing: infrav1.PoweredOn,
		// The first change is before the window: the window starts in its state.
		Changes: []infrav1.PowerChange{change(30, infrav1.PoweredOff), change(18, infrav1.PoweredOn), change(12, infrav1.PoweredOff), change(6, infrav1.PoweredOn)},
	}
	tl := timelineOf(acc, now)
	type span struct {
		state        string
		start, width float64
	}
	want := []span{{"off", 0, 25}, {"on", 25, 25}, {"off", 50, 25}, {"on", 75, 25}}
	if len(tl.Spans) != len(want) {
		t.Fatalf("spans: %+v, want %+v", tl.Spans, want)
	}
	for i, w := range want {
		if got := tl.Spans[i]; got.State != w.state || got.Start != w.start || got.Width != w.width {
			t.Errorf("span %d: %+v, want %+v", i, got, w)
		}
	}
	if tl.OnSeconds != 12*3600 {
		t.Errorf("on for %ds, want 12h", tl.OnSeconds)
	}
	if !tl.From.Equal(now.Add(-TimelineWindow)) || !tl.To.Equal(now) {
		t.Errorf("window %s to %s", tl.From, tl.To)
	}
}

func TestTimelineOfAMachineWithoutAnAccountIsUnknown(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tl := timelineOf(nil, now)
	if len(tl.Spans) != 1 || tl.Spans[0].State != "unknown" || tl.Spans[0].Start != 0 || tl.Spans[0].Width != 100 || tl.OnSeconds != 0 {
		t.Fatalf("timeline of no account: %+v", tl)
	}
	// An account opened an hour ago: unknown before, its state after.
	opened := &infrav1.MachineEnergy{Since: metav1.NewTime(now.Add(-time.Hour)), Drawing: infrav1.PoweredOff}
	tl = timelineOf(opened, now)
	if len(tl.Spans) != 2 || tl.Spans[0].State != "unknown" || tl.Spans[1].State != "off" ||
		tl.Spans[1].Start != percent(23.0/24) || tl.Spans[1].Width != percent(1.0/24) {
		t.Fatalf("timeline of an account opened an hour ago: %+v", tl.Spans)
	}
}

func TestPercentRoundsToAHundredth(t *testing.T) {
	for in, want := range map[float64]float64{0: 0, 1: 100, 1.0 / 3: 33.33, 2.0 / 3: 66.67, 0.123456: 12.35} {
		if got := percent(in); got != want {
			t.Errorf("percent(%v) = %v, want %v", in, got, want)
		}
	}
}
