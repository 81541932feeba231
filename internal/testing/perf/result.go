package perf

import (
	"strings"
	"time"
)

// Result is everything measured at one fleet size.
type Result struct {
	Size        int           `json:"size"`
	Repetitions int           `json:"repetitions"`
	BootDelay   time.Duration `json:"bootDelay"`
	// Took is the wall time of the whole run at this size, fleet creation included.
	Took time.Duration `json:"took"`

	Reads    []Latency `json:"reads"`
	Writes   []Latency `json:"writes"`
	ScaleUps []ScaleUp `json:"scaleUps"`
	Rest     Resources `json:"rest"`
	// PeakRSSMiB is the manager process's resident high-water mark (VmHWM) at the end of the
	// lifecycle part: over its start-up, the scale-ups and the burst.
	PeakRSSMiB float64    `json:"peakRssMiB"`
	Burst      Burst      `json:"burst"`
	Requests   []Requests `json:"requests"`
	// Profiles are the manager's CPU and heap profiles, at rest and during the burst, taken at
	// the sizes BENCH_PROFILE_SIZES names.
	Profiles []Profile `json:"profiles,omitempty"`
	// Notes says what was left out or capped at this size, and why.
	Notes []string `json:"notes,omitempty"`
}

// Spread is a statistic over the repetitions: the median and the smallest and largest value.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// SpreadOf summarizes the values of the repetitions.
func SpreadOf(values []float64) Spread {
	if len(values) == 0 {
		return Spread{}
	}
	return Spread{Median: Median(values), Min: minOf(values), Max: maxOf(values)}
}

// Latency is one gRPC call measured from the client over loopback: p50 and p99 in
// milliseconds, each the median over the repetitions.
type Latency struct {
	Call string `json:"call"`
	// Callers is how many goroutines called at once over one connection.
	Callers int `json:"callers"`
	// Calls is how many calls each repetition timed.
	Calls int    `json:"calls"`
	P50   Spread `json:"p50"`
	P99   Spread `json:"p99"`
	// Replicas is how many manager processes served the calls, the callers spread over them
	// (writes only).
	Replicas int `json:"replicas,omitempty"`
	// ConflictsPerCall is the 409 answers the replicas' optimistic writes met during the calls,
	// per call (writes only; their homelab_autoscaler_optimistic_conflicts_total).
	ConflictsPerCall Spread `json:"conflictsPerCall"`
	// APIWritesPerCall is the successful write requests (objects and Events) the replicas sent
	// during the calls, per call (writes only); the undo's are apart.
	APIWritesPerCall Spread `json:"apiWritesPerCall"`
	// Undo names what put the fleet back after each call, untimed, in a phase of its own;
	// UndoWritesPerCall and UndoConflictsPerCall are the replicas' writes and conflicts during
	// it, per call. A human edit is the benchmark's own write, not the manager's.
	Undo                 string `json:"undo,omitempty"`
	UndoWritesPerCall    Spread `json:"undoWritesPerCall"`
	UndoConflictsPerCall Spread `json:"undoConflictsPerCall"`
}

// Profile is one pprof profile of the manager process, taken through its
// --profiling-bind-address endpoint.
type Profile struct {
	// Kind is "cpu" or "heap"; Phase "rest" or "burst".
	Kind  string `json:"kind"`
	Phase string `json:"phase"`
	// File is the profile's path relative to the report's assets folder ("" when it failed).
	File string `json:"file,omitempty"`
	// Seconds is the CPU profile's window.
	Seconds float64 `json:"seconds,omitempty"`
	// Top is the biggest consumers by flat value (CPU time; heap in use), which hack/benchreport
	// reads from the file with go tool pprof.
	Top []Consumer `json:"top,omitempty"`
	// Failed says why the profile is missing.
	Failed string `json:"failed,omitempty"`
}

// Consumer is one function's flat share of a profile.
type Consumer struct {
	Func string `json:"func"`
	// Flat is its own value, as pprof prints it ("1.20s", "12.5MB"); Percent its share of the
	// profile's total.
	Flat    string  `json:"flat"`
	Percent float64 `json:"percent"`
}

// ScaleUp is IncreaseSize(+N) on a fleet of simulated machines, timed from the moment the call
// returned. Values in seconds, each the median over the repetitions.
type ScaleUp struct {
	N int `json:"n"`
	// CallMillis is IncreaseSize's own latency.
	CallMillis Spread `json:"callMillis"`
	// FirstPowerOn and AllPowerOn: until the first and the last of the N power-on commands
	// reached the BMCs.
	FirstPowerOn Spread `json:"firstPowerOn"`
	AllPowerOn   Spread `json:"allPowerOn"`
	// AllReady: until all N machines were Ready (status.progress); it includes the simulated
	// boot delay.
	AllReady Spread `json:"allReady"`
	// AllOff: from DeleteNodes returning until all N were Off again.
	AllOff Spread `json:"allOff"`
	// During is the manager process during the scale-up (from the call until all Ready).
	During Resources `json:"during"`
}

// Resources is the manager process's CPU and memory over a window.
type Resources struct {
	Seconds float64 `json:"seconds"`
	// CPUPercent is user+system CPU time over wall time (100 = one core).
	CPUPercent float64 `json:"cpuPercent"`
	// RSSMiB is the resident set (VmRSS) at the end of the window; HeapMiB the Go heap in use
	// (go_memstats_heap_inuse_bytes).
	RSSMiB  float64 `json:"rssMiB"`
	HeapMiB float64 `json:"heapMiB"`
	// PeakRSSMiB is the process's resident high-water mark (VmHWM) since it started.
	PeakRSSMiB float64 `json:"peakRssMiB"`
	// Requests is the API requests the manager sent in the window.
	Requests int `json:"requests"`
}

// Burst is many spec changes at once: how long the lifecycle controller took to reflect each in
// status.observedGeneration, and how long requests waited in the controllers' queues.
type Burst struct {
	Changes int `json:"changes"`
	// WriteSeconds is how long the burst's writes took.
	WriteSeconds float64 `json:"writeSeconds"`
	// ObservedP50 and ObservedP99 are the seconds from a write returning until the watch showed
	// status.observedGeneration at or past the generation written.
	ObservedP50 float64 `json:"observedP50"`
	ObservedP99 float64 `json:"observedP99"`
	ObservedMax float64 `json:"observedMax"`
	// Missing counts changes whose observedGeneration never arrived within the wait.
	Missing int `json:"missing"`
	// QueueP99 is workqueue_queue_duration_seconds' p99 per controller over the burst, from the
	// histogram buckets (so it is only as exact as the bucket bounds).
	QueueP99 map[string]float64 `json:"queueP99"`
	// Requests is what the manager sent during the burst.
	Requests Requests `json:"requests"`
	// Workers is the machine controller's concurrent reconciles.
	Workers int `json:"workers"`
	// WriteP50Millis and WriteP99Millis time the burst's own writes (a read and a patch each,
	// plus retries): how fast the apiserver answered writes meanwhile. WriteConflicts counts
	// their 409 answers (a spec write conflicts with the controller's status write of the same
	// machine, since both change the resourceVersion).
	WriteP50Millis float64 `json:"writeP50Millis"`
	WriteP99Millis float64 `json:"writeP99Millis"`
	WriteConflicts int     `json:"writeConflicts"`
}

// Requests counts the manager's API requests in one phase, by verb and by resource.
type Requests struct {
	Phase string `json:"phase"`
	// Machines is how many machines the phase moved (the divisor of the per-machine numbers).
	Machines int            `json:"machines"`
	ByVerb   map[string]int `json:"byVerb"`
	// Writes counts the CREATE, UPDATE, PATCH and DELETE requests that succeeded, by resource
	// (subresource after a slash; an API group before one).
	Writes map[string]int `json:"writes"`
	// Gets counts the GETs of one object, by resource.
	Gets map[string]int `json:"gets,omitempty"`
	// Conflicts counts 409 answers; NoOps writes the apiserver answered with the resourceVersion
	// sent (nothing changed).
	Conflicts int `json:"conflicts"`
	NoOps     int `json:"noOps"`
}

// ObjectWrites is the writes to anything but Events.
func (r Requests) ObjectWrites() int { return r.sum(func(res string) bool { return !isEvent(res) }) }

// MachineWrites is the writes to machines: core Nodes and every object of this project but
// Groups (Machines), spec and status. It names the project's kinds by their API group alone, so
// that results measured before the Machine kind had its name count the same.
func (r Requests) MachineWrites() int {
	return r.sum(func(res string) bool {
		return res == "nodes" || res == "nodes/status" || (strings.HasPrefix(res, apiGroup+"/") && !isGroup(res))
	})
}

// GroupWrites is the writes to Groups, spec (the scale ledger) and status.
func (r Requests) GroupWrites() int { return r.sum(isGroup) }

// EventWrites is the writes of Events.
func (r Requests) EventWrites() int { return r.sum(isEvent) }

func (r Requests) sum(match func(resource string) bool) int {
	n := 0
	for res, c := range r.Writes {
		if match(res) {
			n += c
		}
	}
	return n
}

const apiGroup = "infra.homelab-autoscaler.dev"

func isEvent(resource string) bool { return resource == "events" || resource == "events.k8s.io/events" }

func isGroup(resource string) bool {
	return resource == apiGroup+"/groups" || resource == apiGroup+"/groups/status"
}
