package machines

import (
	"fmt"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/schedule"
)

// Limits are a Group's size bounds as cluster-autoscaler must see them.
type Limits struct {
	Min, Max int32
	// Schedule is what the group's schedule windows say at the instant the limits were taken.
	Schedule schedule.State
	// MinBy and MaxBy name the window that raised the minimum or lowered the maximum, empty when
	// the spec alone sets it.
	MinBy, MaxBy string
}

// LimitsOf derives a Group's effective bounds at now from its spec, its schedule windows and its
// member count: maxSize defaults to, and is capped by, the number of members (a machine cannot
// be powered on twice) and is lowered by an open window's maxOnline; minSize is raised by an open
// window's minOnline and never exceeds the effective maximum, which cluster-autoscaler would take
// for a broken group. The gRPC server, the Group's status and its metrics all report these figures.
func LimitsOf(g *infrav1.Group, members int32, now time.Time) Limits {
	l := Limits{Max: members}
	if g.Spec.MaxSize != nil && *g.Spec.MaxSize < l.Max {
		l.Max = *g.Spec.MaxSize
	}
	if len(g.Spec.Schedules) > 0 {
		l.Schedule = schedule.Evaluate(g.Spec.Schedules, now)
	}
	st := l.Schedule
	if st.Ceiling != nil && *st.Ceiling < l.Max {
		l.Max, l.MaxBy = *st.Ceiling, st.CeilingWindow
	}
	l.Min = g.Spec.MinSize
	if st.Floor > l.Min {
		l.Min, l.MinBy = st.Floor, st.FloorWindow
	}
	if l.Min > l.Max {
		// A ceiling (or the member count) beats the floor: the maximum explains the figure.
		l.Min, l.MinBy = l.Max, ""
	}
	return l
}

// Explain says what set the limits, for status and refusals ("" when the spec alone does).
func (l Limits) Explain(g *infrav1.Group, now time.Time) string {
	var parts []string
	if l.MinBy != "" {
		parts = append(parts, fmt.Sprintf("minimum %d set by %s", l.Min, schedule.Describe(g.Spec.Schedules, l.MinBy, now)))
	}
	if l.MaxBy != "" {
		parts = append(parts, fmt.Sprintf("maximum %d set by %s", l.Max, schedule.Describe(g.Spec.Schedules, l.MaxBy, now)))
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return parts[0] + "; " + parts[1]
}
