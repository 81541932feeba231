package perf_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
)

// envProfileDir is where the manager's profiles go; without it none are taken. hack/benchreport
// sets it at the sizes BENCH_PROFILE_SIZES names.
const envProfileDir = "BENCH_PROFILE_DIR"

// profileCPU starts a CPU profile of the manager over window and returns a function that waits
// for it and records it. A profile that cannot be taken (a manager without pprof, above all) is
// recorded as missing with the reason, never a failure of the benchmark.
func (r *run) profileCPU(m *manager, phase string, window time.Duration) (wait func()) {
	addr := m.replicas[0].profiling
	if r.profileDir == "" || addr == "" {
		return func() {}
	}
	done := make(chan perf.Profile, 1)
	go func() {
		seconds := int(window.Seconds())
		p := r.fetchProfile("cpu", phase, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), window+30*time.Second)
		p.Seconds = float64(seconds)
		done <- p
	}()
	return func() { r.keepProfile(<-done) }
}

// profileHeap takes a heap profile of the manager (in-use and allocated space, as the Go
// runtime samples them).
func (r *run) profileHeap(m *manager, phase string) {
	addr := m.replicas[0].profiling
	if r.profileDir == "" || addr == "" {
		return
	}
	r.keepProfile(r.fetchProfile("heap", phase, "http://"+addr+"/debug/pprof/heap", 30*time.Second))
}

func (r *run) keepProfile(p perf.Profile) {
	if p.Failed != "" {
		r.logf("warning: %s profile (%s) not taken: %s", p.Kind, p.Phase, p.Failed)
	} else {
		r.logf("%s profile (%s) in %s", p.Kind, p.Phase, filepath.Join(r.profileDir, p.File))
	}
	r.res.Profiles = append(r.res.Profiles, p)
}

// fetchProfile saves what url answers as KIND-PHASE-SIZE.pb.gz in the profile folder.
func (r *run) fetchProfile(kind, phase, url string, timeout time.Duration) perf.Profile {
	p := perf.Profile{Kind: kind, Phase: phase}
	name := fmt.Sprintf("%s-%s-%d.pb.gz", kind, phase, r.size)
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(url) //nolint:noctx // loopback, bounded by the client's timeout
	if err != nil {
		p.Failed = err.Error()
		return p
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, data[:min(len(data), 200)])
	}
	if err == nil {
		err = os.MkdirAll(r.profileDir, 0o755) //nolint:gosec // a documentation folder
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(r.profileDir, name), data, 0o644) //nolint:gosec // a document
	}
	if err != nil {
		p.Failed = err.Error()
		return p
	}
	p.File = name
	return p
}
