package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PowerOffPolicy says what happens to a machine's Node object after the machine is off.
// +kubebuilder:validation:Enum=Delete;Keep
type PowerOffPolicy string

const (
	// PowerOffDelete deletes the Node after power-off, so cluster-autoscaler does not count an
	// unready node (the default).
	PowerOffDelete PowerOffPolicy = "Delete"
	// PowerOffKeep keeps the Node (cordoned, NotReady) after power-off.
	PowerOffKeep PowerOffPolicy = "Keep"
)

// GroupSpec describes a node group that cluster-autoscaler scales between minSize and maxSize.
// +kubebuilder:validation:XValidation:rule="!has(self.maxSize) || self.minSize <= self.maxSize",message="minSize must not be greater than maxSize"
// +kubebuilder:validation:XValidation:rule="!has(self.maxSize) || !has(self.schedules) || self.schedules.all(w, !has(w.minOnline) || w.minOnline <= self.maxSize)",message="a schedule window's minOnline must not be greater than maxSize"
type GroupSpec struct {
	// MinSize is the fewest machines cluster-autoscaler keeps on.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	MinSize int32 `json:"minSize"`

	// MaxSize is the most machines cluster-autoscaler may have on. Defaults to (and is in effect
	// capped by) the number of member Machines.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxSize *int32 `json:"maxSize,omitempty"`

	// Template describes a member's Node for cluster-autoscaler's scale-from-zero, used when
	// no member is registered.
	// +optional
	Template *NodeTemplate `json:"template,omitempty"`

	// AutoscalingOptions overrides cluster-autoscaler's defaults for this group. When unset, the
	// group uses CA's global settings.
	// +optional
	AutoscalingOptions *AutoscalingOptions `json:"autoscalingOptions,omitempty"`

	// PowerOffPolicy says whether a machine's Node object is deleted after it powers off.
	// +kubebuilder:default=Delete
	PowerOffPolicy PowerOffPolicy `json:"powerOffPolicy,omitempty"`

	// MachineDefaults are the values members take for the fields they leave unset: timeouts,
	// attempts, pricing, the BMC's shared fields (credentials, port, an address pattern) and
	// whole power slots. A member's own field always wins. homelabctl effective MACHINE prints
	// the result.
	// +optional
	MachineDefaults *MachineDefaults `json:"machineDefaults,omitempty"`

	// Repair is how the manager answers what it observes on the members that nobody asked for: a
	// machine that lost power, one switched on from outside, a Node that hangs, a boot that times
	// out. Every field has a default; see docs/reliability.md.
	// +optional
	Repair *RepairPolicy `json:"repair,omitempty"`

	// Energy prices the group's energy and sets the time zone of its daily figures.
	// +optional
	Energy *EnergyPolicy `json:"energy,omitempty"`

	// Schedules are recurring windows with a floor (minOnline), a ceiling (maxOnline) or both:
	// warm hours, quiet hours. See docs/schedules.md.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Schedules []ScheduleWindow `json:"schedules,omitempty"`

	// Maintenance wakes members that have been off for long, for updates and certificate
	// rotation.
	// +optional
	Maintenance *MaintenanceWake `json:"maintenance,omitempty"`

	// PowerCycling keeps members from being switched on and off too often.
	// +optional
	PowerCycling *PowerCycling `json:"powerCycling,omitempty"`
}

// MachineDefaults are the Group's defaults for its members' specs.
type MachineDefaults struct {
	// BMC is merged field by field under each member's spec.bmc (or used whole when a member has
	// none). Its address or endpoint may contain {name}, replaced by the member's name.
	// +optional
	BMC *BMC `json:"bmc,omitempty"`
	// Power slots are used whole for members that do not set that slot; a slot (the member's or
	// this one) replaces the BMC for its action. Any address or URL in them may contain {name},
	// replaced by the member's name.
	// +optional
	Power *PowerSpec `json:"power,omitempty"`
	// BootTimeout for members that set none.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="bootTimeout must be a positive duration of at most 24h, such as 10m or 90s"
	BootTimeout *metav1.Duration `json:"bootTimeout,omitempty"`
	// ShutdownTimeout for members that set none.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="shutdownTimeout must be a positive duration of at most 24h, such as 5m or 90s"
	ShutdownTimeout *metav1.Duration `json:"shutdownTimeout,omitempty"`
	// MaxAttempts for members that set none.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxAttempts *int32 `json:"maxAttempts,omitempty"`
	// Pricing for members that set none.
	// +optional
	Pricing *Pricing `json:"pricing,omitempty"`
	// PowerDraw for members that set none (used whole).
	// +optional
	PowerDraw *PowerDraw `json:"powerDraw,omitempty"`
}

// NodeTemplate is what a member's Node looks like once it has registered.
type NodeTemplate struct {
	// Labels of the Node.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Labels map[string]string `json:"labels,omitempty"`
	// Taints of the Node.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Taints []corev1.Taint `json:"taints,omitempty"`
	// Capacity of the Node: at least cpu, memory and pods.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Capacity corev1.ResourceList `json:"capacity,omitempty"`
	// Allocatable of the Node; defaults to Capacity.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
}

// AutoscalingOptions are cluster-autoscaler's per-node-group options. Any field left unset takes
// CA's global value.
type AutoscalingOptions struct {
	// ScaleDownUtilizationThreshold: a node whose requests sum below this fraction of its
	// allocatable is a scale-down candidate, e.g. "0.5".
	// +optional
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]+)?|1(\.0+)?)$`
	ScaleDownUtilizationThreshold *string `json:"scaleDownUtilizationThreshold,omitempty"`
	// ScaleDownGPUUtilizationThreshold: the same for GPU nodes, e.g. "0.5".
	// +optional
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]+)?|1(\.0+)?)$`
	ScaleDownGPUUtilizationThreshold *string `json:"scaleDownGpuUtilizationThreshold,omitempty"`
	// ScaleDownUnneededTime: how long a node must be unneeded before it is scaled down.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="scaleDownUnneededTime must be a positive duration of at most 24h, such as 10m"
	ScaleDownUnneededTime *metav1.Duration `json:"scaleDownUnneededTime,omitempty"`
	// ScaleDownUnreadyTime: how long an unready node must be unneeded before it is scaled down.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="scaleDownUnreadyTime must be a positive duration of at most 24h, such as 20m"
	ScaleDownUnreadyTime *metav1.Duration `json:"scaleDownUnreadyTime,omitempty"`
	// MaxNodeProvisionTime: how long CA waits for a machine to register before giving up on it.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="maxNodeProvisionTime must be a positive duration of at most 24h, such as 15m"
	MaxNodeProvisionTime *metav1.Duration `json:"maxNodeProvisionTime,omitempty"`
	// ZeroOrMaxNodeScaling: scale the group only to zero or to its maximum.
	// +optional
	ZeroOrMaxNodeScaling *bool `json:"zeroOrMaxNodeScaling,omitempty"`
	// IgnoreDaemonSetsUtilization: leave DaemonSet pods out of the utilization figure.
	// +optional
	IgnoreDaemonSetsUtilization *bool `json:"ignoreDaemonSetsUtilization,omitempty"`
}

// GroupStatus is what the controller observed of the group's machines.
type GroupStatus struct {
	// ObservedGeneration is the spec generation this status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Members is the number of Machines in the group.
	// +optional
	Members int32 `json:"members"`
	// Target is the number of members desired on (spec.online true): cluster-autoscaler's
	// target size.
	// +optional
	Target int32 `json:"target"`
	// Ready counts members whose progress is Ready.
	// +optional
	Ready int32 `json:"ready"`
	// StartingUp counts members whose progress is StartingUp.
	// +optional
	StartingUp int32 `json:"startingUp"`
	// ShuttingDown counts members whose progress is ShuttingDown.
	// +optional
	ShuttingDown int32 `json:"shuttingDown"`
	// PoweredOff counts members whose progress is Off.
	// +optional
	PoweredOff int32 `json:"poweredOff"`
	// Failed counts members whose progress is Failed.
	// +optional
	Failed int32 `json:"failed"`
	// Conditions: Ready (every member is where its spec asks), Reconciling (members are being
	// powered on or off) and Stalled (a member failed and needs a human), with kstatus meanings.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ScaleLedger is the serialization point of the writes that change which members are desired
	// on (cluster-autoscaler's calls and the manager's repairs). It lives in status, which only the
	// manager may write, so that whoever may edit a Group cannot forge or erase a decision.
	// +optional
	ScaleLedger *ScaleLedger `json:"scaleLedger,omitempty"`
	// Energy sums the members' energy accounts.
	// +optional
	Energy *GroupEnergy `json:"energy,omitempty"`
	// Schedule is the group's schedule as applied now: open windows, the effective limits and
	// the next change. Set while the group has schedule windows.
	// +optional
	Schedule *ScheduleStatus `json:"schedule,omitempty"`
}

// ScaleLedger lists the decisions on a group's members that may not be visible in every
// replica's cache yet, and the power-offs decided through it. docs/cloudprovider.md explains it.
type ScaleLedger struct {
	// VisibleAt is a Machines resourceVersion (of the group's namespace) at or after which every
	// pruned decision's changes are in a cache that has delivered it.
	// +optional
	VisibleAt string `json:"visibleAt,omitempty"`
	// Ops are the decisions made but not yet known to be visible.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	Ops []ScaleOperation `json:"ops,omitempty"`
	// PowerOffs are the power-offs decided through the ledger that the manager does not drain:
	// cluster-autoscaler drained the Node before it asked (DeleteNodes), or the machine never
	// registered a Ready Node (a target decrease, a substitution). Each is kept until the
	// machine's power-off has started.
	// +optional
	// +kubebuilder:validation:MaxItems=10000
	PowerOffs []DecidedPowerOff `json:"powerOffs,omitempty"`
	// Holds are the members the manager powered on by itself, for a schedule floor or a
	// maintenance wake, recorded in the decision that powered them on; each is kept until the
	// manager powers the member off again or leaves it to cluster-autoscaler.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	Holds []Hold `json:"holds,omitempty"`
}

// ScaleOperation is one decided write: machines and the desired power state each gets.
type ScaleOperation struct {
	// ID names the decision in logs: the replica and a sequence number.
	ID string `json:"id"`
	// Method is the call or repair that decided it.
	Method string `json:"method"`
	// Deadline (Unix milliseconds) is when the deciding replica has surely given up applying it;
	// after it, the next decision on the group applies what is missing.
	Deadline int64 `json:"deadline"`
	// Changes are the machines and their new desired power state.
	Changes []ScaleChange `json:"changes"`
}

// ScaleChange sets one machine's desired power state.
type ScaleChange struct {
	// Name of the Machine.
	Name string `json:"name"`
	// Generation is the machine's metadata.generation the decision saw. A higher generation
	// means its spec changed since, by this change or by someone else.
	Generation int64 `json:"generation"`
	// On is the desired power state.
	On bool `json:"on"`
	// SubstitutedBy, on a power-off, names the member powered on in this machine's place after
	// its boot timed out.
	// +optional
	SubstitutedBy string `json:"substitutedBy,omitempty"`
	// Drain, on a power-off, has the lifecycle controller drain the Node first (a schedule's
	// power-off; cluster-autoscaler drains the nodes it deletes itself).
	// +optional
	Drain bool `json:"drain,omitempty"`
}

// DecidedPowerOff is a power-off decided through the scale ledger.
type DecidedPowerOff struct {
	// Name of the Machine.
	Name string `json:"name"`
	// Generation is the machine generation the power-off creates (the one its spec.online write
	// makes); a later spec change by anyone else is not covered.
	Generation int64 `json:"generation"`
	// SubstitutedBy names the member powered on in this machine's place, for a substitution.
	// +optional
	SubstitutedBy string `json:"substitutedBy,omitempty"`
}

// Group is a pool of machines that cluster-autoscaler scales as one node group.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hlg;hlgroup,categories=homelab
// +kubebuilder:printcolumn:name="Min",type=integer,JSONPath=`.spec.minSize`
// +kubebuilder:printcolumn:name="Max",type=integer,JSONPath=`.spec.maxSize`
// +kubebuilder:printcolumn:name="Window",type=string,JSONPath=`.status.schedule.active[*]`,priority=1
// +kubebuilder:printcolumn:name="EffMin",type=integer,JSONPath=`.status.schedule.minSize`,priority=1
// +kubebuilder:printcolumn:name="EffMax",type=integer,JSONPath=`.status.schedule.maxSize`,priority=1
// +kubebuilder:printcolumn:name="Target",type=integer,JSONPath=`.status.target`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Watts",type=string,JSONPath=`.status.energy.watts`,priority=1
// +kubebuilder:printcolumn:name="Saved",type=string,JSONPath=`.status.energy.saved`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Group struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GroupSpec   `json:"spec,omitempty"`
	Status GroupStatus `json:"status,omitempty"`
}

// GroupList is a list of Group.
// +kubebuilder:object:root=true
type GroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Group `json:"items"`
}
