package schedule

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Busy reports whether cluster-autoscaler put work on a member (a pod a drain would evict): such
// a member is left to cluster-autoscaler when the manager's own reason to keep it on ends.
type Busy func(ctx context.Context, m *infrav1.Machine) (bool, error)

// Outcome is what one schedule decision did.
type Outcome struct {
	// Actions are one line per machine: what was done and why, for Events and logs.
	Actions []Action
	// Unmet explains a floor the decision could not reach (no member could be powered on).
	Unmet string
	// Next is when something of the decision's falls due by the clock (a maintenance wake's end, a
	// member becoming due for one); zero when nothing does.
	Next time.Time
}

// Action is one machine the schedule decided on.
type Action struct {
	Machine string
	// Kind is FloorPowerOn, CeilingPowerOff, MaintenanceWake, MaintenanceEnd, FloorEnd or
	// Released (left on, to cluster-autoscaler).
	Kind    string
	Message string
}

// The kinds of Action.
const (
	ActionFloorPowerOn    = "FloorPowerOn"
	ActionFloorEnd        = "FloorEnd"
	ActionCeilingPowerOff = "CeilingPowerOff"
	ActionMaintenanceWake = "MaintenanceWake"
	ActionMaintenanceEnd  = "MaintenanceEnd"
	ActionReleased        = "Released"
)

// EventType is the type of the Event an action is recorded with: a ceiling's power-off warns
// (work is evicted on a schedule), the rest are normal.
func (a Action) EventType() string {
	if a.Kind == ActionCeilingPowerOff {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}
