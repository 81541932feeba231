package perf

import "time"

// Capacity is the time to capacity of a scale-up through the gRPC server, as cluster-autoscaler
// asks for it, in a group where one of the machines the scale-up chooses never boots (its BMC
// answers, its Node never registers), under each boot-failure policy, and without a broken
// machine for comparison.
type Capacity struct {
	// Machines is the group's size and ScaleUp the delta of the NodeGroupIncreaseSize call:
	// capacity is ScaleUp Ready Nodes of the group.
	Machines int `json:"machines"`
	ScaleUp  int `json:"scaleUp"`
	// BootDelay is the simulated machines' time from the power-on command to a registered Node;
	// BootTimeout the Group's machineDefaults.bootTimeout.
	BootDelay   time.Duration `json:"bootDelay"`
	BootTimeout time.Duration `json:"bootTimeout"`
	// MaxAttempts is the Group's machineDefaults.maxAttempts, which Retry uses up;
	// RetryBase the manager's wait after a failed attempt (--power-retry-base).
	MaxAttempts int32         `json:"maxAttempts"`
	RetryBase   time.Duration `json:"retryBase"`
	// ScanInterval is the period of the cluster-autoscaler loop the benchmark plays;
	// Backoff cluster-autoscaler's first node-group backoff after a failed scale-up, which the
	// benchmark does not wait for (it is added in the report, and said so).
	ScanInterval time.Duration `json:"scanInterval"`
	Backoff      time.Duration `json:"backoff"`
	// Limit bounds each run: capacity that has not come by then is reported missing.
	Limit       time.Duration `json:"limit"`
	Repetitions int           `json:"repetitions"`
	// Took is the wall time of the whole benchmark.
	Took      time.Duration      `json:"took"`
	Scenarios []CapacityScenario `json:"scenarios"`
	// Notes says what went wrong on the way, and what the benchmark did about it.
	Notes []string `json:"notes,omitempty"`
}

// CapacityScenario is one policy (or the healthy baseline) measured Repetitions times.
type CapacityScenario struct {
	// Name is "healthy", or the boot-failure policy with a broken machine.
	Name string `json:"name"`
	// Policy is the Group's spec.repair.bootFailure.
	Policy string `json:"policy"`
	// Broken says one machine of the scale-up never boots.
	Broken bool `json:"broken"`
	// Ready is the seconds from IncreaseSize returning until ScaleUp Ready Nodes of the group
	// existed, over the runs that got there; Missing counts the runs that did not within Limit.
	Ready   Spread        `json:"ready"`
	Missing int           `json:"missing"`
	Runs    []CapacityRun `json:"runs"`
}

// CapacityRun is one scale-up, times in seconds from IncreaseSize returning.
type CapacityRun struct {
	// CallMillis is the IncreaseSize call's own latency.
	CallMillis float64 `json:"callMillis"`
	// Ready is when the last Node needed was Ready; 0 with Reached false when capacity did
	// not come within the limit.
	Ready   float64 `json:"ready"`
	Reached bool    `json:"reached"`
	// GaveUp is when the manager gave up on the broken machine: it was set desired off with a
	// substitute on (Substitute) or it turned Failed (Retry); 0 when there was none.
	GaveUp float64 `json:"gaveUp,omitempty"`
	// Actions lists what the cluster-autoscaler loop did after the scale-up, with its time.
	Actions []string `json:"actions,omitempty"`
	// FailedScaleUp says the loop saw an instance with errorInfo and deleted it: a failed
	// scale-up, after which cluster-autoscaler backs the group off.
	FailedScaleUp bool `json:"failedScaleUp,omitempty"`
	// PowerOns is the power-on commands the group's BMCs received.
	PowerOns int `json:"powerOns"`
}
