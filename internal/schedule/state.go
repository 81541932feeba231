package schedule

import (
	"fmt"
	"sort"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// State is what a group's windows say together at one instant. The combining rule
// (docs/schedules.md):
//
//   - floors: the highest minOnline of the open windows holds;
//   - ceilings: the lowest maxOnline of the open windows holds;
//   - a ceiling beats a floor: quiet hours stay quiet even inside warm hours, so the effective
//     minimum never exceeds the effective maximum;
//   - machines above a ceiling are powered off only by a window that says powerOffExcess: the
//     lowest such ceiling is enforced.
type State struct {
	// Open are the open windows' names, in spec order.
	Open []string
	// Floor is the highest open minOnline (0 when none), set by FloorWindow.
	Floor       int32
	FloorWindow string
	// Ceiling is the lowest open maxOnline (nil when none), set by CeilingWindow.
	Ceiling       *int32
	CeilingWindow string
	// Enforced is the lowest open maxOnline of a window with powerOffExcess (nil when none), set
	// by EnforcedWindow.
	Enforced       *int32
	EnforcedWindow string
	// Next is the next instant a window opens or closes (zero when none within Horizon), and
	// NextWindow the window.
	Next       time.Time
	NextWindow string
	// Invalid lists the windows the manager cannot read, which are ignored.
	Invalid []string
}

// Evaluate reads windows at t.
func Evaluate(windows []infrav1.ScheduleWindow, t time.Time) State {
	var st State
	for _, spec := range windows {
		w, err := Compile(spec)
		if err != nil {
			st.Invalid = append(st.Invalid, err.Error())
			continue
		}
		if e := w.NextEdge(t); !e.IsZero() && (st.Next.IsZero() || e.Before(st.Next)) {
			st.Next, st.NextWindow = e, spec.Name
		}
		if !w.Open(t) {
			continue
		}
		st.Open = append(st.Open, spec.Name)
		if spec.MinOnline != nil && *spec.MinOnline > st.Floor {
			st.Floor, st.FloorWindow = *spec.MinOnline, spec.Name
		}
		if c := spec.MaxOnline; c != nil {
			if st.Ceiling == nil || *c < *st.Ceiling {
				v := *c
				st.Ceiling, st.CeilingWindow = &v, spec.Name
			}
			if spec.PowerOffExcess && (st.Enforced == nil || *c < *st.Enforced) {
				v := *c
				st.Enforced, st.EnforcedWindow = &v, spec.Name
			}
		}
	}
	sort.Strings(st.Invalid)
	return st
}

// Describe names a window for messages: its name and when it closes, in its own time zone.
func Describe(windows []infrav1.ScheduleWindow, name string, t time.Time) string {
	for _, spec := range windows {
		if spec.Name != name {
			continue
		}
		w, err := Compile(spec)
		if err != nil {
			return fmt.Sprintf("window %q", name)
		}
		closes := w.closing(t)
		if closes.IsZero() {
			return fmt.Sprintf("window %q", name)
		}
		return fmt.Sprintf("window %q (until %s)", name, closes.In(w.loc).Format("Mon 15:04 MST"))
	}
	return fmt.Sprintf("window %q", name)
}

// closing is when the window, open at t, closes (zero if beyond Horizon).
func (w *Window) closing(t time.Time) time.Time {
	if !w.Open(t) {
		return time.Time{}
	}
	return w.NextEdge(t)
}
