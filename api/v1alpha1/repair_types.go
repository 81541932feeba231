package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// PowerLossPolicy says what happens when a machine desired on is found off.
// +kubebuilder:validation:Enum=PowerOn;Report
type PowerLossPolicy string

const (
	// PowerLossPowerOn powers the machine on again, as a new power-on operation (the default).
	PowerLossPowerOn PowerLossPolicy = "PowerOn"
	// PowerLossReport only records the loss (status, Event, metric): the machine stays off until a
	// human or cluster-autoscaler acts.
	PowerLossReport PowerLossPolicy = "Report"
)

// OutsidePowerOnPolicy says what happens when a machine desired off is found on: someone pressed
// its power button, or its firmware powered it on when mains power came back.
// +kubebuilder:validation:Enum=Enforce;Adopt
type OutsidePowerOnPolicy string

const (
	// OutsidePowerOnEnforce drains the machine (when its Node registered) and powers it off again
	// (the default).
	OutsidePowerOnEnforce OutsidePowerOnPolicy = "Enforce"
	// OutsidePowerOnAdopt sets the machine desired on through the group's scale ledger, as a
	// scale-up would, when the group's maxSize allows; otherwise it is enforced.
	OutsidePowerOnAdopt OutsidePowerOnPolicy = "Adopt"
)

// BootFailurePolicy says what happens when a power-on attempt's boot timeout passes.
// +kubebuilder:validation:Enum=Substitute;SubstituteAndFail;Retry
type BootFailurePolicy string

const (
	// BootFailureSubstitute powers on another member in the machine's place at once (the target
	// stays the same) and powers the slow machine off; it stays in rotation, ranked after every
	// machine without failed boots. Without a machine to substitute, the slow one retries as with
	// Retry. The default.
	BootFailureSubstitute BootFailurePolicy = "Substitute"
	// BootFailureSubstituteAndFail substitutes as Substitute does, and takes the slow machine out
	// of rotation: once off, it is Failed (BootTimeout) until a human changes its spec.
	BootFailureSubstituteAndFail BootFailurePolicy = "SubstituteAndFail"
	// BootFailureRetry retries the same machine up to maxAttempts, then fails it.
	BootFailureRetry BootFailurePolicy = "Retry"
)

// RepairPolicy is how the manager answers what it observes on the group's machines that nobody
// asked for. docs/reliability.md describes each repair and its limits.
type RepairPolicy struct {
	// ObserveInterval is how often the power state of a settled machine (Ready, Off or Failed) is
	// read through its status driver. Each read is scheduled up to a fifth later at random, so
	// the reads of many machines spread out. Machines in a transition, or whose Node went NotReady
	// or away, are read sooner. Default: 5m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="observeInterval must be between 10s and 24h"
	ObserveInterval *metav1.Duration `json:"observeInterval,omitempty"`

	// PowerLoss is what happens when a machine desired on is found off: its status driver says
	// off while its Node is not Ready, or (without a status driver) its Node stayed NotReady or
	// away for powerLossGrace. PowerOn powers it on again as a new power-on operation (the
	// default); Report only records it (status.lastRepair, an Event, a metric) and leaves it off.
	// +kubebuilder:default=PowerOn
	PowerLoss PowerLossPolicy `json:"powerLoss,omitempty"`

	// PowerLossGrace is how long the Node of a running machine without a status driver may be
	// NotReady or away before the machine counts as having lost power. Default: 2m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="powerLossGrace must be between 0s and 24h"
	PowerLossGrace *metav1.Duration `json:"powerLossGrace,omitempty"`

	// OutsidePowerOn is what happens when a machine desired off is found on (its power button,
	// or its firmware restoring power after a cut): Enforce drains it and powers it off again (the
	// default); Adopt sets it desired on through the group's scale ledger, as a scale-up of one
	// would, and enforces when the group is at its maxSize. Either is recorded in
	// status.lastRepair with an Event.
	// +kubebuilder:default=Enforce
	OutsidePowerOn OutsidePowerOnPolicy `json:"outsidePowerOn,omitempty"`

	// BootFailure is what happens when a power-on attempt's boot timeout passes. Substitute (the
	// default) powers another member on in the machine's place at once, in one ledger decision
	// that keeps the group's target size, and powers the slow machine off; it stays in rotation,
	// chosen after every machine without failed boots. SubstituteAndFail does the same and takes
	// the slow machine out of rotation (Failed, BootTimeout) until a human changes its spec.
	// Retry retries the same machine up to maxAttempts. Without a member to substitute, the slow
	// machine retries as with Retry.
	// +kubebuilder:default=Substitute
	BootFailure BootFailurePolicy `json:"bootFailure,omitempty"`

	// StuckNode, when set, power-cycles a machine that is on (its status driver says so) while
	// its Node stays NotReady: a hung kubelet or operating system. Off when unset. It needs a
	// stop driver that can force the power off (ipmi, redfish or http); for others it is
	// reported and not acted on.
	// +optional
	StuckNode *StuckNodeRemediation `json:"stuckNode,omitempty"`
}

// StuckNodeRemediation bounds the power cycles of a machine whose Node stays NotReady.
type StuckNodeRemediation struct {
	// NotReadyFor is how long the Node must stay NotReady, with the machine on, before it is
	// power-cycled. Default: 10m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="notReadyFor must be between 10s and 24h"
	NotReadyFor *metav1.Duration `json:"notReadyFor,omitempty"`
	// MaxPowerCycles is how many power cycles a machine gets within window; one more need fails
	// it (StuckNode) until a human changes its spec. Default: 2.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	MaxPowerCycles *int32 `json:"maxPowerCycles,omitempty"`
	// Window is the period maxPowerCycles counts over. Default: 1h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="window must be between 1m and 168h"
	Window *metav1.Duration `json:"window,omitempty"`
}

// RepairKind names something the manager did that nobody asked for.
// +kubebuilder:validation:Enum=PowerLost;OutsidePowerOn;StuckNode;Substituted;Adopted
type RepairKind string

const (
	// RepairPowerLost: a machine desired on was found off; it is powered on again.
	RepairPowerLost RepairKind = "PowerLost"
	// RepairOutsidePowerOn: a machine desired off was found on; it is powered off again.
	RepairOutsidePowerOn RepairKind = "OutsidePowerOn"
	// RepairAdopted: a machine desired off was found on and set desired on (policy Adopt).
	RepairAdopted RepairKind = "Adopted"
	// RepairStuckNode: a machine on whose Node stayed NotReady is power-cycled.
	RepairStuckNode RepairKind = "StuckNode"
	// RepairSubstituted: a machine whose boot timed out is powered off, another one on in its
	// place.
	RepairSubstituted RepairKind = "Substituted"
)

// Repair records the last repair of a machine.
type Repair struct {
	// Kind of the repair.
	Kind RepairKind `json:"kind"`
	// At is when the repair was decided.
	At metav1.Time `json:"at"`
	// Message says what was observed and done, for humans.
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message"`
}

// PowerStateSource is where a machine's observed power state comes from.
// +kubebuilder:validation:Enum=Driver;Node
type PowerStateSource string

const (
	// PowerStateFromDriver: read through the machine's status driver (spec.bmc, power.status, or a
	// start or stop driver that can read it).
	PowerStateFromDriver PowerStateSource = "Driver"
	// PowerStateFromNode: no driver can read the power state (or the read failed); it is inferred
	// from the Node's readiness.
	PowerStateFromNode PowerStateSource = "Node"
)
