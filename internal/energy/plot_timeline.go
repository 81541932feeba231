package energy

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Span is a stretch of a machine's timeline spent in one state.
type Span struct {
	From, To time.Time
	// State is PoweredOn or PoweredOff, or PowerUnknown before the first change the account
	// still holds.
	State infrav1.PowerState
	// Watts is the draw accounted from the change that began the span (0 while unknown).
	Watts float64
}

// Timeline cuts [from, to) into the spans of acc's power changes. An account keeps only its
// last MaxPowerChanges changes, so the time before the first one it holds (or before the
// account was opened) is unknown rather than guessed; after the last change the machine is in
// that change's state. A nil acc is unknown throughout.
func Timeline(acc *infrav1.MachineEnergy, from, to time.Time) []Span {
	if !to.After(from) {
		return nil
	}
	var changes []infrav1.PowerChange
	if acc != nil {
		changes = acc.Changes
		if len(changes) == 0 && acc.Drawing != "" {
			// An account that recorded no change has been in its one state since it opened.
			changes = []infrav1.PowerChange{{At: metav1.NewMicroTime(acc.Since.Time), State: acc.Drawing, Watts: acc.Watts}}
		}
	}
	var spans []Span
	cur := Span{From: from, State: infrav1.PowerUnknown}
	for _, c := range changes {
		at := c.At.Time
		if !at.Before(to) {
			break
		}
		if at.After(from) {
			cur.To = at
			spans = appendSpan(spans, cur)
			cur = Span{From: at}
		}
		cur.State, cur.Watts = known(c.State), Watts(&c.Watts)
	}
	cur.To = to
	return appendSpan(spans, cur)
}

// known maps anything but the two accounted states to unknown.
func known(s infrav1.PowerState) infrav1.PowerState {
	if s == infrav1.PoweredOn || s == infrav1.PoweredOff {
		return s
	}
	return infrav1.PowerUnknown
}

// appendSpan adds s to spans, merging it into the last span when the state did not change.
func appendSpan(spans []Span, s Span) []Span {
	if n := len(spans); n > 0 && spans[n-1].State == s.State {
		spans[n-1].To = s.To
		return spans
	}
	return append(spans, s)
}
