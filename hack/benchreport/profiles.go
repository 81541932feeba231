package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
)

// topCount is how many of a profile's biggest consumers the report names.
const topCount = 3

// topConsumers fills in each profile's biggest consumers by flat value (CPU time; heap in use)
// from its file in dir, with go tool pprof. A profile pprof cannot read keeps the reason.
func topConsumers(res *perf.Result, dir string) {
	for i := range res.Profiles {
		p := &res.Profiles[i]
		if p.File == "" {
			continue
		}
		args := []string{"tool", "pprof", "-top", "-nodecount=" + strconv.Itoa(topCount)}
		if p.Kind == "heap" {
			args = append(args, "-sample_index=inuse_space")
		}
		out, err := exec.Command("go", append(args, filepath.Join(dir, p.File))...).Output() //nolint:gosec // the go tool on a file of ours
		if err != nil {
			p.Failed = fmt.Sprintf("go tool pprof: %v", err)
			continue
		}
		p.Top = parseTop(string(out))
	}
}

// parseTop reads the rows of `go tool pprof -top`: after the header line (flat flat% sum% cum
// cum%), each row is those five columns and the function's name.
func parseTop(out string) []perf.Consumer {
	var top []perf.Consumer
	rows := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if !rows {
			rows = len(f) >= 5 && f[0] == "flat" && f[1] == "flat%"
			continue
		}
		if len(f) < 6 {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		if err != nil {
			continue
		}
		top = append(top, perf.Consumer{Func: strings.Join(f[5:], " "), Flat: f[0], Percent: pct})
	}
	return top
}
