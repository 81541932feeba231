package main

import (
	"fmt"
	"slices"
	"strings"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// observationSection renders BenchmarkObservation: what the periodic observation of a settled
// fleet costs its BMCs and the apiserver.
func (r *report) observationSection(p printer) {
	p("## Observation at rest: BMC requests and status writes")
	p("")
	o := r.Observation
	if o == nil {
		notMeasured(p, r.ObservationRun)
		return
	}
	interval := fmt.Sprintf("at its default, %s", dur(o.Interval))
	if !o.Default {
		interval = fmt.Sprintf("set to %s (the default is %s; see the scaled column)", dur(o.Interval), dur(infrav1.DefaultObserveInterval))
	}
	p("%d simulated machines with Redfish BMCs (homelab-sim, one process), %d of them powered on through", o.Machines, o.On)
	p("IncreaseSize (calls of at most 50) and Ready, the others Off; the full manager as its own process, as in")
	p("the fleet benchmark; the Group's `spec.repair.observeInterval` %s. Once every machine had settled", interval)
	p("and the manager was quiet, the benchmark counted for %s: the requests the BMCs received (homelab-sim's", dur(o.Window))
	p("count of every HTTP request to any BMC: service root, session login and logout, GETs, actions), the power reads")
	p("the manager made (`homelab_autoscaler_power_observations_total`), the manager's API requests (the counter around")
	p("its transport) and, from its own watch of the Machines, the time between two consecutive")
	p("`status.powerStateObservedAt` of each machine (every pair whose later one fell in the window).")
	p("")
	p("The rates per hour come from that period, not from the count in the window: a machine is read every interval plus")
	p("up to a fifth of it, and machines that settled together are read close together for a long time, so how many")
	p("reads a window of a few intervals holds depends on where it falls in their schedule; the period does not. A")
	p("read's cost (BMC requests, API requests, status writes per read) is the window's totals over its reads.")
	p("")
	reads, driver := o.AllReads(), o.DriverReads()
	api := 0
	for _, v := range o.Requests.ByVerb {
		api += v
	}
	p("| machines | on / off | window | power reads (source/result) | BMC requests | Machine status writes | API requests (successful writes by resource) | API GETs by resource | manager CPU | read period: gaps, mean, median, min–max (s) |")
	p("|---:|---|---:|---|---:|---:|---|---|---:|---|")
	p("| %d | %d / %d | %s | %d (%s) | %d | %d | %d: %s | %s | %.2f%% | %d, %.1f, %.1f, %.0f–%.0f |", o.Machines, o.On, o.Machines-o.On, dur(o.Window), reads,
		joinCounts(o.Reads), o.BMCRequests, o.StatusWrites(), api, byResource(o.Requests), joinCounts(o.Requests.Gets), o.Process.CPUPercent,
		o.Gaps, o.GapMean, o.GapMedian, o.GapMin, o.GapMax)
	p("")
	if reads == 0 || o.GapMean == 0 {
		p("No read was made in the window: no rate to give.")
		p("")
		return
	}
	perHour := 3600 / o.GapMean
	scale := 1.0
	header := "| | per read | per machine per hour | whole fleet (%d machines) per second |"
	sep := "|---|---:|---:|---:|"
	if !o.Default {
		scale = float64(o.Interval) / float64(infrav1.DefaultObserveInterval)
		header += fmt.Sprintf(" per machine per hour at the default %s (× %.3g) |", dur(infrav1.DefaultObserveInterval), scale)
		sep += "---:|"
	}
	p(header, o.Machines)
	p("%s", sep)
	row := func(name string, per float64) {
		line := fmt.Sprintf("| %s | %.2f | %.1f | %.2f |", name, per, per*perHour, per*perHour*float64(o.Machines)/3600)
		if !o.Default {
			line += fmt.Sprintf(" %.1f |", per*perHour*scale)
		}
		p("%s", line)
	}
	row("power reads", 1)
	row("BMC requests", float64(o.BMCRequests)/float64(max(driver, 1)))
	row("Machine status writes", float64(o.StatusWrites())/float64(reads))
	row("API requests in all", float64(api)/float64(reads))
	p("")
	windowHours := o.Window.Hours()
	expected := 3600 / (1.1 * o.Interval.Seconds())
	p("The schedule's own arithmetic: an interval of %s plus a fifth of it at most, 1.1 intervals on average, is %.1f reads", dur(o.Interval), expected)
	p("per machine per hour; measured %.1f (`status.powerStateObservedAt` has whole seconds, which shortens a period by half", perHour)
	p("a second on average). Counted directly in the %s window instead: %.1f reads and %.1f BMC requests per machine per",
		dur(o.Window), float64(reads)/float64(o.Machines)/windowHours, float64(o.BMCRequests)/float64(o.Machines)/windowHours)
	p("hour. A Redfish read through the manager's driver is %.0f BMC requests (the driver's requests; homelab-sim", float64(o.BMCRequests)/float64(max(driver, 1)))
	p("counts each). Process CPU is the manager process's alone (`/proc/PID/stat`).")
	if len(o.Requests.Gets) > 0 {
		var gets []string
		for _, k := range sortedCounts(o.Requests.Gets) {
			gets = append(gets, fmt.Sprintf("%s %.2f", resourceName(k), float64(o.Requests.Gets[k])/float64(reads)))
		}
		p("The API GETs per read, by resource: %s (a GET goes to the apiserver, not to the manager's cache).", strings.Join(gets, ", "))
	}
	p("")
	partNotes(p, o.Notes)
}

// joinCounts prints counts by key, the largest first.
func joinCounts(m map[string]int) string {
	var parts []string
	for _, k := range sortedCounts(m) {
		parts = append(parts, fmt.Sprintf("%s %d", resourceName(k), m[k]))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}

// sortedCounts orders the keys of counts, the largest count first.
func sortedCounts(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	return keys
}
