package perf

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sample is this process's CPU time and memory at one moment. The benchmark runs the manager
// in its own process (the control plane, kwok and the simulated homelab are separate
// processes), so these are the manager's numbers plus the small load generator's.
type Sample struct {
	At      time.Time
	CPU     time.Duration
	RSS     uint64
	PeakRSS uint64
	Heap    uint64
}

// Now samples the process.
func Now() Sample {
	s := Sample{At: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.RSS, s.PeakRSS = statusKiB("VmRSS")*1024, statusKiB("VmHWM")*1024
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.Heap = ms.HeapInuse
	return s
}

// Since is the window from s to now.
func (s Sample) Since(requests int) Resources {
	now := Now()
	wall := now.At.Sub(s.At)
	const mib = 1 << 20
	return Resources{
		Seconds:    wall.Seconds(),
		CPUPercent: 100 * float64(now.CPU-s.CPU) / float64(max(wall, time.Millisecond)),
		RSSMiB:     float64(now.RSS) / mib, HeapMiB: float64(now.Heap) / mib, PeakRSSMiB: float64(now.PeakRSS) / mib,
		Requests: requests,
	}
}

// statusKiB reads a "Name:   123 kB" line of /proc/self/status.
func statusKiB(name string) uint64 {
	f, err := os.Open("/proc/self/status")
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
