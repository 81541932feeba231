package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
)

// capacitySection renders BenchmarkCapacity: the time to capacity of a scale-up that meets a
// machine that never boots, under each boot-failure policy.
func (r *report) capacitySection(p printer) {
	p("## Time to capacity when a machine never boots")
	p("")
	c := r.Capacity
	if c == nil {
		notMeasured(p, r.CapacityRun)
		return
	}
	p("`NodeGroupIncreaseSize` with delta %d through the gRPC server, as cluster-autoscaler calls it, on a group of %d", c.ScaleUp, c.Machines)
	p("machines none of which has booted before, so the scale-up chooses the first %d by name. In the runs with a broken", c.ScaleUp)
	p("machine, the first of them (`GROUP-0`) powers on but never registers its core Node (homelab-sim `--never-boot`); the")
	p("other %d are spares. Simulated boot delay %s (from the power-on command to a registered core Node, which kwok", c.Machines-c.ScaleUp, dur(c.BootDelay))
	p("keeps Ready), the Group's `machineDefaults.bootTimeout: %s` and `maxAttempts: %d`, Redfish BMCs, the full", dur(c.BootTimeout), c.MaxAttempts)
	p("manager with the command's defaults otherwise (%s between two attempts of one machine, `--power-retry-base`).", dur(c.RetryBase))
	p("**Time to capacity** is from IncreaseSize returning until the group has %d Ready core Nodes, as the benchmark sees", c.ScaleUp)
	p("them (it lists the Nodes every 50 ms). Each run has a namespace, group, homelab-sim process and manager of its own;")
	p("runs per row: %d, the median and [min–max].", c.Repetitions)
	p("")
	p("Meanwhile the benchmark plays cluster-autoscaler's loop every %s (its default `--scan-interval`), starting one", dur(c.ScanInterval))
	p("interval after the scale-up: an instance that `NodeGroupNodes` reports with errorInfo is a failed scale-up, whose")
	p("instances it deletes (`NodeGroupDeleteNodes`), ending that iteration; otherwise, when the group's target size is")
	p("below %d, it asks for the difference (`NodeGroupIncreaseSize`), as the pods still pending would make it.", c.ScaleUp)
	p("cluster-autoscaler also **backs the group off** after a failed scale-up, %s by default", dur(c.Backoff))
	p("(`--initial-node-group-backoff-duration`), and scales it up again only when that has passed (or scales another")
	p("group). The loop does not wait for the backoff, so its Retry figure is a lower bound; the last column adds it: the")
	p("loop's IncreaseSize came one scan after its DeleteNodes, cluster-autoscaler's would come the backoff after it, so")
	p("the estimate is the measured time plus the backoff minus one scan interval.")
	p("")
	p("| scenario | `repair.bootFailure` | time to capacity (s) | manager gave up on the broken machine (s) | what cluster-autoscaler did (first run) | power-on commands | with cluster-autoscaler's backoff (s, estimated) |")
	p("|---|---|---:|---:|---|---:|---:|")
	for _, s := range c.Scenarios {
		name := s.Name
		if !s.Broken {
			name += " (no broken machine)"
		}
		ready := spread(s.Ready, 2)
		if s.Missing > 0 {
			ready += fmt.Sprintf("; %d of %d runs not within %s", s.Missing, len(s.Runs), dur(c.Limit))
		}
		gaveUp, estimate, actions, ons := "–", "–", "none", []float64{}
		var gave, withBackoff []float64
		for i, run := range s.Runs {
			ons = append(ons, float64(run.PowerOns))
			if run.GaveUp > 0 {
				gave = append(gave, run.GaveUp)
			}
			if run.FailedScaleUp && run.Reached {
				withBackoff = append(withBackoff, run.Ready+(c.Backoff-c.ScanInterval).Seconds())
			}
			if i == 0 && len(run.Actions) > 0 {
				actions = strings.Join(run.Actions, ", ")
			}
		}
		if len(gave) > 0 {
			gaveUp = spread(perf.SpreadOf(gave), 2) + " (" + gaveUpHow(s.Policy) + ")"
		}
		if len(withBackoff) > 0 {
			estimate = spread(perf.SpreadOf(withBackoff), 0)
		}
		p("| %s | %s | %s | %s | %s | %.0f | %s |", name, s.Policy, ready, gaveUp, actions, perf.Median(ons), estimate)
	}
	p("")
	r.capacitySummary(p)
	partNotes(p, c.Notes)
}

// capacitySummary says what the table shows, from its numbers.
func (r *report) capacitySummary(p printer) {
	c := r.Capacity
	find := func(name string) (perf.CapacityScenario, bool) {
		for _, s := range c.Scenarios {
			if s.Name == name {
				return s, true
			}
		}
		return perf.CapacityScenario{}, false
	}
	healthy, okH := find("healthy")
	retry, okR := find("Retry")
	sub, okS := find("Substitute")
	if !okH || !okR || !okS || retry.Ready.Median == 0 || sub.Ready.Median == 0 {
		return
	}
	budget := time.Duration(c.MaxAttempts)*c.BootTimeout + time.Duration(c.MaxAttempts-1)*c.RetryBase
	p("With Substitute the capacity comes %.1f s after the scale-up: one boot timeout (%s) and one boot of the", sub.Ready.Median, dur(c.BootTimeout))
	p("substitute, %.1f s more than without a broken machine (%.1f s); cluster-autoscaler sees the target size it asked", sub.Ready.Median-healthy.Ready.Median, healthy.Ready.Median)
	p("for throughout and does nothing. With Retry the manager spends %d attempts on the broken machine (%s of boot", c.MaxAttempts, dur(budget))
	p("timeouts and waits between attempts) before it fails it; only then does cluster-autoscaler learn of the failure, at")
	p("its next scan, and the capacity comes %.1f s after the scale-up even without a backoff (%.1f× Substitute's).", retry.Ready.Median, retry.Ready.Median/sub.Ready.Median)
	p("With cluster-autoscaler's default backoff it is about %.1f minutes, unless another group can take the pods.",
		(retry.Ready.Median+(c.Backoff-c.ScanInterval).Seconds())/60)
	p("")
}

func gaveUpHow(policy string) string {
	switch policy {
	case "Retry":
		return "Failed"
	default:
		return "substituted"
	}
}

// partRow is the header line of a benchmark run apart from the fleet's.
func partRow(p printer, name string, pr *partRun) {
	if pr == nil {
		return
	}
	what := fmt.Sprintf("%s at commit `%s`%s, took %s, load average %s before, %s after",
		pr.Started.Format("2006-01-02 15:04 UTC"), pr.Commit, dirtyNote(pr.Dirty), pr.Took.Round(time.Second), pr.LoadBefore, pr.LoadAfter)
	if pr.Failed != "" {
		what += "; **failed**: " + pr.Failed
	}
	p("| %s | %s |", name, what)
}

// notMeasured says why a section has no numbers.
func notMeasured(p printer, pr *partRun) {
	if pr != nil && pr.Failed != "" {
		p("**Not measured:** the benchmark failed (%s).", pr.Failed)
	} else {
		p("**Not measured:** run `make bench` (or `BENCH_PARTS=capacity,observation make bench`).")
	}
	p("")
}

func dirtyNote(dirty bool) string {
	if dirty {
		return " (with uncommitted changes)"
	}
	return ""
}

// dur prints a duration without its zero parts: 5m, 1m30s, 8s.
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// partNotes lists what a benchmark noted on the way.
func partNotes(p printer, notes []string) {
	for _, n := range notes {
		p("- %s", n)
	}
	if len(notes) > 0 {
		p("")
	}
}
