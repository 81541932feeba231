package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Weekday is a day of the week in a schedule window.
// +kubebuilder:validation:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
type Weekday string

// ScheduleWindow is a recurring span of time during which the group keeps at least minOnline
// machines on, at most maxOnline, or both. It recurs either by cron (a start and a duration) or
// on days of the week between two times of day, in its own time zone. docs/schedules.md explains
// how windows combine with each other and with minSize and maxSize.
// +kubebuilder:validation:XValidation:rule="has(self.cron) != has(self.start)",message="a window recurs either by cron (with duration) or by start and end (with optional days), so set exactly one of cron and start"
// +kubebuilder:validation:XValidation:rule="has(self.cron) == has(self.duration)",message="duration goes with cron: a cron window needs one, a start/end window has its end instead"
// +kubebuilder:validation:XValidation:rule="has(self.start) == has(self.end)",message="start and end go together: a window from start to end"
// +kubebuilder:validation:XValidation:rule="!has(self.days) || has(self.start)",message="days go with start and end; for a cron window put the days in the cron expression"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || self.start != self.end",message="start and end must differ (an end at or before start ends the next day)"
// +kubebuilder:validation:XValidation:rule="has(self.minOnline) || has(self.maxOnline)",message="a window must set minOnline, maxOnline or both, or it does nothing"
// +kubebuilder:validation:XValidation:rule="!has(self.minOnline) || !has(self.maxOnline) || self.minOnline <= self.maxOnline",message="minOnline must not be greater than maxOnline in one window"
// +kubebuilder:validation:XValidation:rule="!has(self.powerOffExcess) || !self.powerOffExcess || has(self.maxOnline)",message="powerOffExcess needs maxOnline: it powers off the machines above it"
type ScheduleWindow struct {
	// Name of the window, used in Events, status, refusals and metrics.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="name must be lower-case letters, digits and '-', such as weekday-warm"
	Name string `json:"name"`

	// Cron is when the window opens: five fields (minute hour day-of-month month day-of-week,
	// e.g. "0 8 * * 1-5") read in timeZone. It stays open for duration.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule=`self.matches('^\\s*([-*/,0-9]+)\\s+([-*/,0-9]+)\\s+([-*/,0-9?]+)\\s+([-*/,0-9A-Za-z]+)\\s+([-*/,0-9A-Za-z?]+)\\s*$')`,message="cron must have five fields (minute hour day-of-month month day-of-week), such as \"0 8 * * 1-5\""
	Cron string `json:"cron,omitempty"`
	// Duration is how long a cron window stays open, at most 7 days (e.g. 10h).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="duration must be between 1m and 168h, such as 10h"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// Days the window opens on (at start); empty is every day. A window whose end is at or
	// before its start ends the next day: days: [Fri], start 22:00, end 06:00 runs into Saturday.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	Days []Weekday `json:"days,omitempty"`
	// Start is the local time of day the window opens, HH:MM (24-hour).
	// +optional
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:XValidation:rule="self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')",message="start must be a time of day HH:MM (24-hour), such as 08:00"
	Start string `json:"start,omitempty"`
	// End is the local time of day the window closes, HH:MM (24-hour); at or before start, it
	// closes the next day.
	// +optional
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:XValidation:rule="self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')",message="end must be a time of day HH:MM (24-hour), such as 18:00"
	End string `json:"end,omitempty"`

	// TimeZone is the IANA time zone the window's times are read in (e.g. Europe/Berlin), so it
	// follows daylight saving time. Default: UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][-A-Za-z0-9_+]*(/[-A-Za-z0-9_+]+)*$') && timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0",message="timeZone must be an IANA time zone name, such as Europe/Berlin or America/New_York"
	TimeZone string `json:"timeZone,omitempty"`

	// MinOnline is a floor: while the window is open at least this many machines are kept on.
	// The group's minSize reported to cluster-autoscaler is raised to it, and the manager powers
	// machines on itself to reach it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinOnline *int32 `json:"minOnline,omitempty"`
	// MaxOnline is a ceiling: while the window is open at most this many machines are on (0 for
	// quiet hours). The maxSize reported to cluster-autoscaler is lowered to it and scale-ups
	// past it are refused, naming the window.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxOnline *int32 `json:"maxOnline,omitempty"`
	// PowerOffExcess drains and powers off the machines above maxOnline while the window is
	// open (from its start). Without it (the default), machines already on stay on until
	// cluster-autoscaler scales them down; only new power-ons are refused.
	// +optional
	PowerOffExcess bool `json:"powerOffExcess,omitempty"`
}

// MaintenanceWake wakes machines that have been off for long, for their updates and
// certificate rotation, and powers them off again afterwards.
type MaintenanceWake struct {
	// OffLongerThan: a member off (desired off, powered off) for longer than this is woken, e.g.
	// 168h for once a week.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="offLongerThan must be at least 1h, such as 168h"
	OffLongerThan metav1.Duration `json:"offLongerThan"`
	// WakeFor is how long it stays on (e.g. 30m); then the manager drains it (if
	// cluster-autoscaler put work on it, it is left to cluster-autoscaler instead) and powers it off.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="wakeFor must be between 1m and 24h, such as 30m"
	WakeFor metav1.Duration `json:"wakeFor"`
	// MaxConcurrent is how many members of the group may be awake for maintenance at once.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxConcurrent int32 `json:"maxConcurrent,omitempty"`
}

// PowerCycling keeps machines from being switched on and off too often.
type PowerCycling struct {
	// MinOffTime: a machine powered off less than this long ago is powered on again only when no
	// other member can serve (e.g. 15m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="minOffTime must be between 0s and 24h, such as 15m"
	MinOffTime *metav1.Duration `json:"minOffTime,omitempty"`
	// MaxPowerOnsPerDay: a machine powered on this many times in the last 24 hours is not
	// powered on again by a scale-up, a schedule floor or a maintenance wake until the oldest of
	// them is 24 hours old.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=48
	MaxPowerOnsPerDay *int32 `json:"maxPowerOnsPerDay,omitempty"`
}

// MaxPowerOnsKept bounds status.powerOns.
const MaxPowerOnsKept = 48

// HoldReason is why the manager powered a member on by itself.
// +kubebuilder:validation:Enum=Floor;Maintenance
type HoldReason string

const (
	// HoldFloor: a schedule window's minOnline.
	HoldFloor HoldReason = "Floor"
	// HoldMaintenance: a maintenance wake.
	HoldMaintenance HoldReason = "Maintenance"
)

// Hold is a member the manager powered on by itself, for a schedule floor or a maintenance
// wake: once the hold ends it powers it off again (drained first), unless cluster-autoscaler put
// work on it. It is recorded in the same ledger decision as the power-on.
type Hold struct {
	// Name of the Machine.
	Name string `json:"name"`
	// Reason it was powered on.
	Reason HoldReason `json:"reason"`
	// Window is the schedule window whose floor it serves.
	// +optional
	Window string `json:"window,omitempty"`
	// Until is when a maintenance wake ends.
	// +optional
	Until *metav1.Time `json:"until,omitempty"`
}

// ScheduleStatus is the group's schedule as the manager applies it now.
type ScheduleStatus struct {
	// Active are the open windows, by name.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Active []string `json:"active,omitempty"`
	// MinSize is the effective minimum reported to cluster-autoscaler: spec.minSize raised by
	// the open windows' floors, capped by maxSize.
	MinSize int32 `json:"minSize"`
	// MaxSize is the effective maximum: spec.maxSize (or the member count) lowered by the open
	// windows' ceilings.
	MaxSize int32 `json:"maxSize"`
	// LimitedBy explains the effective limits when a window sets them.
	// +optional
	LimitedBy string `json:"limitedBy,omitempty"`
	// NextChange is when a window opens or closes next (within 8 days).
	// +optional
	NextChange *metav1.Time `json:"nextChange,omitempty"`
	// NextWindow is the window that opens or closes at nextChange.
	// +optional
	NextWindow string `json:"nextWindow,omitempty"`
	// Invalid names the windows the manager cannot read (a cron expression or time zone the
	// API accepted but the manager cannot use) and why; they are ignored.
	// +optional
	Invalid string `json:"invalid,omitempty"`
}
