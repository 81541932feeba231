package perf

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// heapMetric is the Go heap in use, as client_golang's Go collector exports it on /metrics.
const heapMetric = "go_memstats_heap_inuse_bytes"

// clockTicks is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on Linux).
const clockTicks = 100

// Sample is one process's CPU time and memory at one moment: the manager's, which the
// benchmark runs as a process of its own (as are the control plane, kwok and homelab-sim), so
// nothing of the load generator is in it.
type Sample struct {
	At  time.Time
	CPU time.Duration
	// RSS is VmRSS; PeakRSS VmHWM, the resident high-water mark since the process started.
	RSS     uint64
	PeakRSS uint64
	// Heap is the Go heap in use, from the process's own metrics.
	Heap uint64

	pid     int
	metrics string
}

// Observe samples process pid; metricsURL is its Prometheus endpoint ("" leaves Heap zero).
func Observe(pid int, metricsURL string) Sample {
	s := Sample{At: time.Now(), pid: pid, metrics: metricsURL}
	s.CPU = cpuTime(pid)
	s.RSS, s.PeakRSS = statusKiB(pid, "VmRSS")*1024, statusKiB(pid, "VmHWM")*1024
	if metricsURL != "" {
		if m, err := Scrape(metricsURL); err == nil {
			s.Heap = uint64(m.Sum(heapMetric))
		}
	}
	return s
}

// Since is the window from s to now, for the same process.
func (s Sample) Since(requests int) Resources {
	return s.Until(Observe(s.pid, s.metrics), requests)
}

// Until is the window from s to now, a later sample of the same process.
func (s Sample) Until(now Sample, requests int) Resources {
	wall := now.At.Sub(s.At)
	const mib = 1 << 20
	return Resources{
		Seconds:    wall.Seconds(),
		CPUPercent: 100 * float64(now.CPU-s.CPU) / float64(max(wall, time.Millisecond)),
		RSSMiB:     float64(now.RSS) / mib, HeapMiB: float64(now.Heap) / mib, PeakRSSMiB: float64(now.PeakRSS) / mib,
		Requests: requests,
	}
}

// cpuTime is the user and system time of process pid (fields 14 and 15 of /proc/PID/stat).
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after it.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// statusKiB reads a "Name:   123 kB" line of /proc/PID/status.
func statusKiB(pid int, name string) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	return 0
}
