package perf_test

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The observation benchmark's settings, from the environment (hack/benchreport passes them on).
const (
	envObsMachines = "BENCH_OBSERVE_MACHINES" // the fleet (default 1000)
	envObsInterval = "BENCH_OBSERVE_INTERVAL" // the Group's observeInterval (default: unset, the built-in 5m)
	envObsWindow   = "BENCH_OBSERVE_WINDOW"   // the counting window (default 2.5 intervals)
)

// observationsMetric counts the manager's power-state reads.
const observationsMetric = "homelab_autoscaler_power_observations_total"

// BenchmarkObservation runs a settled fleet, half of it on and Ready and half Off, under the full
// manager with the Group's observation interval, and counts over a window what the periodic
// observation costs: reads, BMC requests (homelab-sim's count), status writes and every other
// API request. It writes a perf.Observation to BENCH_OUT and ignores b.N.
func BenchmarkObservation(b *testing.B) {
	out := outPath(b)
	ctrl.SetLogger(logr.Discard())
	r := &run{b: b, start: time.Now(), size: envInt(b, envObsMachines, 1000), reps: 1, boot: 2 * time.Second}
	res := &perf.Observation{Machines: r.size, On: r.size / 2, Interval: infrav1.DefaultObserveInterval, Default: true}
	r.notes = &res.Notes
	if v := os.Getenv(envObsInterval); v != "" {
		res.Interval, res.Default = envDuration(b, envObsInterval), false
	}
	res.Window = res.Interval * 5 / 2
	if v := os.Getenv(envObsWindow); v != "" {
		res.Window = envDuration(b, envObsWindow)
	}
	simBin := simBinary(b)
	kubeconfig := r.controlPlane()

	ns := r.namespace("observe")
	debug := freeAddr(b)
	r.logf("starting homelab-sim with %d Redfish machines and creating their objects", r.size)
	startProcess(b, simBin, "--kubeconfig", kubeconfig, "--namespace", ns, "--group", simGroup,
		"--machines", strconv.Itoa(r.size), "--boot-delay", r.boot.String(), "--shutdown-delay", "1s",
		"--apply", "--debug-address", debug, "--log-level", "warn")
	t := track(r.env, ns)
	defer t.stop()
	if !testenv.Poll(15*time.Minute, time.Second, func() bool { return t.count(func(*seen) bool { return true }) >= r.size }) {
		b.Fatalf("homelab-sim did not create %d machines within 15 minutes", r.size)
	}
	if !res.Default {
		r.setObserveInterval(ns, res.Interval)
	}
	m := r.startManager(ns, managerOptions{})
	defer m.stop()
	if !testenv.Poll(10*time.Minute, 200*time.Millisecond, func() bool { return t.settled(infrav1.ProgressOff) }) {
		b.Fatal("the manager did not settle every machine as Off within 10 minutes")
	}
	r.logf("every machine Off; powering %d on through IncreaseSize", res.On)
	res.On = r.powerOnMachines(m, t, cloudprovider.GroupID(ns, simGroup), res.On)
	// The manager paces power-ons (--power-on-rate): a fifth of a second each.
	limit := 5*time.Minute + time.Duration(res.On)*time.Second/5
	if !testenv.Poll(limit, time.Second, func() bool {
		return t.progressCount(infrav1.ProgressReady) == res.On && t.progressCount(infrav1.ProgressOff) == r.size-res.On
	}) {
		b.Fatalf("%d machines Ready and %d Off after %s, want %d and %d", t.progressCount(infrav1.ProgressReady),
			t.progressCount(infrav1.ProgressOff), limit, res.On, r.size-res.On)
	}
	quiet(m.requests, time.Second, 30*time.Second)

	r.logf("settled: %d on, %d off; counting for %s with observeInterval %s", res.On, r.size-res.On, res.Window, res.Interval)
	bmcBefore := bmcRequests(b, debug)
	readsBefore := m.metrics().ByLabels(observationsMetric, "source", "result")
	m.requests.Take("", 0)
	s := m.sample()
	from := time.Now()
	time.Sleep(res.Window)
	to := time.Now()
	res.Requests = m.requests.Take("at rest, observing", r.size)
	res.Process = s.Since(total(res.Requests))
	res.BMCRequests = bmcRequests(b, debug) - bmcBefore
	res.Reads = map[string]int{}
	for k, v := range m.metrics().ByLabels(observationsMetric, "source", "result") {
		if n := int(v - readsBefore[k]); n > 0 {
			res.Reads[k] = n
		}
	}
	gaps := t.observationGaps(from, to)
	res.Gaps = len(gaps)
	if len(gaps) > 0 {
		sum := 0.0
		for _, g := range gaps {
			sum += g
		}
		res.GapMean, res.GapMedian = sum/float64(len(gaps)), perf.Median(gaps)
		res.GapMin, res.GapMax = slices.Min(gaps), slices.Max(gaps)
	}
	res.Took = time.Since(r.start)
	r.logf("window of %s: %d reads (%v), %d BMC requests, %d status writes, %d API requests; %d gaps, mean %.1f s",
		res.Window, res.AllReads(), res.Reads, res.BMCRequests, res.StatusWrites(), total(res.Requests), res.Gaps, res.GapMean)
	r.writeResult(out, res)
}

// powerOnMachines raises the group's target size to n through IncreaseSize, in calls of at
// most 50, and returns how many machines are desired on once the calls' changes have been
// applied. A call that fails is noted, not fatal: its decision stands in the group's ledger and
// the next write on the group applies it, so the target still counts it; only the last call's
// failure can leave fewer machines desired on.
func (r *run) powerOnMachines(m *manager, t *tracker, id string, n int) int {
	failures := 0
	for calls := 0; calls < 4*n/50+10; calls++ {
		ctx, cancel := ctxFor(callTimeout)
		target, err := m.client.NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: id})
		cancel()
		if err != nil {
			r.b.Fatalf("NodeGroupTargetSize(%s): %v", id, err)
		}
		left := n - int(target.GetTargetSize())
		if left <= 0 {
			break
		}
		d := min(50, left)
		ctx, cancel = ctxFor(callTimeout)
		_, err = m.client.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: int32(d)}) //nolint:gosec // ≤ 50
		cancel()
		if err != nil {
			failures++
			r.note("observation: IncreaseSize(+%d) failed: %v", d, err)
			time.Sleep(time.Second)
		}
	}
	on := 0
	testenv.Poll(time.Minute, time.Second, func() bool { on = len(t.desiredOn()); return on >= n })
	if failures > 0 {
		r.note("observation: %d IncreaseSize calls failed; %d machines desired on in the end", failures, on)
	}
	return on
}

// setObserveInterval sets the group's spec.repair.observeInterval, before the manager starts.
func (r *run) setObserveInterval(ns string, d time.Duration) {
	key := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: simGroup}}
	ctx, cancel := ctxFor(30 * time.Second)
	defer cancel()
	if _, err := optimistic.Update(ctx, r.writer, key, func(g *infrav1.Group) error {
		if g.Spec.Repair == nil {
			g.Spec.Repair = &infrav1.RepairPolicy{}
		}
		g.Spec.Repair.ObserveInterval = &metav1.Duration{Duration: d}
		return nil
	}); err != nil {
		r.b.Fatalf("setting the observe interval of Group %s/%s: %v", ns, simGroup, err)
	}
}

// bmcRequests is the requests every simulated BMC received so far.
func bmcRequests(b *testing.B, debug string) int {
	n := 0
	for _, m := range simCounters(b, debug) {
		n += m.Requests
	}
	return n
}

func envDuration(b *testing.B, name string) time.Duration {
	d, err := time.ParseDuration(os.Getenv(name))
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, os.Getenv(name))
	}
	return d
}
