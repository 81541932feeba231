package dashboard

import (
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
)

// TimelineWindow is how far back a machine's power timeline reaches.
const TimelineWindow = 24 * time.Hour

// Timeline is a machine's power over the TimelineWindow before a snapshot, from its energy
// account, as the page draws it: a bar of spans whose offsets and widths are percentages.
type Timeline struct {
	From  time.Time      `json:"from"`
	To    time.Time      `json:"to"`
	Spans []TimelineSpan `json:"spans"`
	// OnSeconds is the time on within the window.
	OnSeconds int64 `json:"onSeconds"`
}

// TimelineSpan is one stretch of a timeline in one state.
type TimelineSpan struct {
	// State is on, off or unknown (before the first change the account holds).
	State string    `json:"state"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// Start and Width place the span in the window, in percent.
	Start float64 `json:"start"`
	Width float64 `json:"width"`
}

// timelineOf cuts the window ending at now into acc's spans (energy.Timeline decides what is on,
// off and unknown); a nil acc is unknown throughout.
func timelineOf(acc *infrav1.MachineEnergy, now time.Time) Timeline {
	from := now.Add(-TimelineWindow)
	tl := Timeline{From: from, To: now, Spans: []TimelineSpan{}}
	whole := float64(TimelineWindow)
	for _, s := range energy.Timeline(acc, from, now) {
		state := "unknown"
		switch s.State {
		case infrav1.PoweredOn:
			state = "on"
			tl.OnSeconds += int64(s.To.Sub(s.From) / time.Second)
		case infrav1.PoweredOff:
			state = "off"
		}
		tl.Spans = append(tl.Spans, TimelineSpan{
			State: state, From: s.From, To: s.To,
			Start: percent(float64(s.From.Sub(from)) / whole), Width: percent(float64(s.To.Sub(s.From)) / whole),
		})
	}
	return tl
}

// percent is a fraction in percent, to a hundredth: finer than any screen shows.
func percent(f float64) float64 {
	return float64(int64(f*10000+0.5)) / 100
}
