package perf

import (
	"strings"
	"time"
)

// Observation is the manager at rest over a settled fleet, some machines on and some off: how
// often it reads the machines' power state through their BMCs, what each read costs the BMC and
// the apiserver, and the process's CPU meanwhile.
type Observation struct {
	// Machines is the fleet's size, On how many of them run (Ready), the rest Off.
	Machines int `json:"machines"`
	On       int `json:"on"`
	// Interval is the Group's spec.repair.observeInterval; Default says it is the built-in
	// default (the field unset).
	Interval time.Duration `json:"interval"`
	Default  bool          `json:"default"`
	// Window is how long the counts below were taken over, once every machine had settled
	// and the manager was quiet.
	Window time.Duration `json:"window"`
	// Reads is the power observations the manager made in the window
	// (homelab_autoscaler_power_observations_total), by "source/result".
	Reads map[string]int `json:"reads"`
	// BMCRequests is everything the machines' BMCs received in the window, as homelab-sim
	// counts it (every HTTP request: logins, GETs, logouts).
	BMCRequests int `json:"bmcRequests"`
	// Requests is the manager's API requests in the window.
	Requests Requests `json:"requests"`
	// Gaps summarizes, in seconds, the time between two consecutive recorded observations of
	// a machine (status.powerStateObservedAt), for every pair whose later one fell in the
	// window: the period each machine is read with, whatever the window's phase.
	Gaps      int     `json:"gaps"`
	GapMean   float64 `json:"gapMean"`
	GapMedian float64 `json:"gapMedian"`
	GapMin    float64 `json:"gapMin"`
	GapMax    float64 `json:"gapMax"`
	// Process is the manager process over the window.
	Process Resources `json:"process"`
	// Took is the wall time of the whole benchmark, fleet creation included.
	Took time.Duration `json:"took"`
	// Notes says what went wrong on the way, and what the benchmark did about it.
	Notes []string `json:"notes,omitempty"`
}

// StatusWrites is the writes of Machines' status in the window.
func (o Observation) StatusWrites() int { return o.Requests.Writes[apiGroup+"/machines/status"] }

// DriverReads is the reads made through the machines' status drivers (their BMCs).
func (o Observation) DriverReads() int {
	n := 0
	for k, v := range o.Reads {
		if strings.HasPrefix(k, "Driver/") {
			n += v
		}
	}
	return n
}

// AllReads is every observation, whatever its source.
func (o Observation) AllReads() int {
	n := 0
	for _, v := range o.Reads {
		n += v
	}
	return n
}
