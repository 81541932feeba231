package main

import (
	"fmt"
	"math"
	"path"
	"strings"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
)

// A cost that grows as size^k between two fleet sizes is flat below flatExponent (×2 over ten
// times the machines), linear up to linearExponent (×14), worse than linear above: a tenfold
// fleet that costs a little more than tenfold is still linear, within the noise of a shared
// machine.
const (
	flatExponent   = 0.3
	linearExponent = 1.15
)

// Growth is measured from growthFrom to growthTo machines when both were measured.
const (
	growthFrom = 1000
	growthTo   = 10000
)

// growthSizes are the two sizes a cost's growth is read from: 1,000 and 10,000 machines, else
// the nearest measured at or above 1,000 and the largest (the smallest and the largest, when
// nothing reached 1,000). ok is false with fewer than two sizes.
func (r *report) growthSizes() (from, to *perf.Result, ok bool) {
	for i := range r.Results {
		res := &r.Results[i]
		if from == nil || (res.Size >= growthFrom && (from.Size < growthFrom || res.Size < from.Size)) ||
			(from.Size < growthFrom && res.Size < from.Size) {
			from = res
		}
		if to == nil || res.Size > to.Size {
			to = res
		}
	}
	return from, to, from != nil && to != nil && from.Size < to.Size
}

// classify names how a value grows from a at size sa to b at size sb, with the ratio b/a.
func classify(a, b float64, sa, sb int) (kind string, ratio float64) {
	switch {
	case a <= 0 && b <= 0:
		return "flat", 1
	case a <= 0:
		return "worse than linear (from zero)", math.Inf(1)
	}
	ratio = b / a
	k := math.Log(ratio) / math.Log(float64(sb)/float64(sa))
	switch {
	case k < flatExponent:
		return "flat", ratio
	case k <= linearExponent:
		return "linear", ratio
	default:
		return "worse than linear", ratio
	}
}

// growth is one sentence on how the value of(result) grows between the growth sizes.
func (r *report) growth(what, unit string, of func(perf.Result) (float64, bool)) string {
	from, to, ok := r.growthSizes()
	if !ok {
		return fmt.Sprintf("%s: needs two fleet sizes.", what)
	}
	a, okA := of(*from)
	b, okB := of(*to)
	if !okA || !okB {
		return fmt.Sprintf("%s: not measured at both %s and %s machines.", what, thousands(from.Size), thousands(to.Size))
	}
	kind, ratio := classify(a, b, from.Size, to.Size)
	u := ""
	if unit != "" {
		u = " " + unit
		if unit == "%" {
			u = unit
		}
	}
	by := ""
	if !math.IsInf(ratio, 0) && !(a <= 0 && b <= 0) {
		by = fmt.Sprintf(" (×%.2f)", ratio)
	}
	note := ""
	if from.Size != growthFrom || to.Size != growthTo {
		note = fmt.Sprintf(" (%s and %s machines were not both measured)", thousands(growthFrom), thousands(growthTo))
	}
	return fmt.Sprintf("%s grows from %s%s at %s machines to %s%s at %s%s: %s%s.", what, num3(a), u, thousands(from.Size), num3(b), u, thousands(to.Size), by, kind, note)
}

// growthList prints the sentences as a list under "How it grows".
func (r *report) growthList(p printer, lines []string) { bullets(p, "How it grows:", lines) }

// bullets prints items as a list under heading, nothing when there are none.
func bullets(p printer, heading string, items []string) {
	if len(items) == 0 {
		return
	}
	p("%s", heading)
	p("")
	for _, l := range items {
		p("- %s", l)
	}
	p("")
}

func num3(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e6:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// thousands writes 10000 as 10,000.
func thousands(n int) string {
	s := fmt.Sprintf("%d", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// profileSection lists the manager's profiles and their three biggest consumers.
func (r *report) profileSection(p printer) {
	var rows []string
	for _, res := range r.Results {
		for _, pr := range res.Profiles {
			what := "CPU time"
			if pr.Kind == "heap" {
				what = "heap in use"
			}
			when := "at rest"
			if pr.Phase == "burst" {
				when = "during the burst"
			}
			if pr.Seconds > 0 {
				when += fmt.Sprintf(", %.0f s", pr.Seconds)
			}
			file := "–"
			if pr.File != "" {
				file = fmt.Sprintf("[%s](%s)", pr.File, path.Join(r.assetsRel, "profiles", pr.File))
			}
			var top []string
			for _, c := range pr.Top {
				top = append(top, fmt.Sprintf("`%s` %s (%.1f%%)", c.Func, c.Flat, c.Percent))
			}
			biggest := strings.Join(top, "; ")
			if pr.Failed != "" {
				biggest = "not taken: " + pr.Failed
			}
			rows = append(rows, fmt.Sprintf("| %d | %s | %s | %s | %s |", res.Size, what, when, file, biggest))
		}
	}
	p("### Profiles")
	p("")
	if len(rows) == 0 {
		p("No profiles in these results (`BENCH_PROFILE_SIZES` names the sizes at which they are taken; the manager")
		p("serves them with `--profiling-bind-address`).")
		p("")
		return
	}
	p("The manager's CPU and heap profiles (pprof, `go tool pprof FILE`), the three biggest consumers by flat")
	p("value (their own CPU time; the heap in use they allocated), as `go tool pprof -top` reads them.")
	p("")
	p("| machines | profile | when | file | three biggest consumers (flat, share of the total) |")
	p("|---:|---|---|---|---|")
	for _, row := range rows {
		p("%s", row)
	}
	p("")
}
