package perf_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/machine"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

const (
	simGroup = "workers"
	// burstChanges is the number of spec changes in the burst, whatever the fleet size.
	burstChanges = 1000
	// burstWriters is how many goroutines write the burst.
	burstWriters = 16
	// restWindow is how long the manager is watched at rest.
	restWindow = 10 * time.Second
	// burstProfileWindow is the CPU profile's window from the burst's start.
	burstProfileWindow = 10 * time.Second
	// callTimeout bounds each gRPC call, as the server's own default deadline does.
	callTimeout = cloudprovider.DefaultCallTimeout
)

// scaleUpSizes are the N of IncreaseSize(+N); those above the fleet size are left out.
var scaleUpSizes = []int{1, 10, 100}

// lifecycle runs the full manager over a homelab-sim fleet with Redfish BMCs on loopback and
// kwok keeping the registered core Nodes Ready: rest, scale-ups and scale-downs, the burst.
func (r *run) lifecycle(kubeconfig, simBin string) {
	b := r.b
	ns := r.namespace("sim")
	debug := freeAddr(b)
	r.logf("starting homelab-sim with %d Redfish machines (boot delay %s) and creating their objects", r.size, r.boot)
	began := time.Now()
	startProcess(b, simBin, "--kubeconfig", kubeconfig, "--namespace", ns, "--group", simGroup,
		"--machines", strconv.Itoa(r.size), "--boot-delay", r.boot.String(), "--shutdown-delay", "1s",
		"--apply", "--debug-address", debug, "--log-level", "warn")
	t := track(r.env, ns)
	defer t.stop()
	if !testenv.Poll(15*time.Minute, time.Second, func() bool { return t.count(func(*seen) bool { return true }) >= r.size }) {
		b.Fatalf("homelab-sim did not create %d machines within 15 minutes", r.size)
	}
	r.logf("%d machines created in %s; starting the manager", r.size, time.Since(began).Round(time.Second))

	began = time.Now()
	m := r.startManager(ns, managerOptions{profile: r.profileDir != "", unpaced: true})
	defer m.stop()
	if !testenv.Poll(10*time.Minute, 200*time.Millisecond, func() bool { return t.settled(infrav1.ProgressOff) }) {
		b.Fatal("the manager did not settle every machine as Off within 10 minutes")
	}
	quiet(m.requests, time.Second, 30*time.Second)
	startup := m.requests.Take("startup (every machine adopted)", r.size)
	r.res.Requests = append(r.res.Requests, startup)
	r.logf("manager started and adopted every machine in %s (%d API requests); at rest for %s",
		time.Since(began).Round(time.Second), total(startup), restWindow)

	s := m.sample()
	cpu := r.profileCPU(m, "rest", restWindow)
	time.Sleep(restWindow)
	r.res.Rest = s.Since(m.requests.Total())
	cpu()
	r.profileHeap(m, "rest")
	r.res.Requests = append(r.res.Requests, m.requests.Take("at rest", 0))
	r.logf("at rest: CPU %.1f%%, RSS %.0f MiB, heap %.0f MiB", r.res.Rest.CPUPercent, r.res.Rest.RSSMiB, r.res.Rest.HeapMiB)

	id := cloudprovider.GroupID(ns, simGroup)
	for _, n := range scaleUpSizes {
		if n > r.size {
			r.note("IncreaseSize(+%d) left out: the fleet has %d machines", n, r.size)
			continue
		}
		var call, first, all, ready, off []float64
		var during []perf.Resources
		for rep := range r.reps {
			c := r.scaleCycle(m, t, debug, ns, id, n, rep == 0)
			call, first, all = append(call, c.call), append(first, c.firstOn), append(all, c.allOn)
			ready, off, during = append(ready, c.ready), append(off, c.off), append(during, c.during)
			r.logf("IncreaseSize(+%d) #%d: call %.0f ms, power-on commands after %.3f..%.3f s, all Ready after %.2f s, all Off %.2f s after DeleteNodes",
				n, rep+1, c.call, c.firstOn, c.allOn, c.ready, c.off)
		}
		r.res.ScaleUps = append(r.res.ScaleUps, perf.ScaleUp{
			N: n, CallMillis: perf.SpreadOf(call), FirstPowerOn: perf.SpreadOf(first), AllPowerOn: perf.SpreadOf(all),
			AllReady: perf.SpreadOf(ready), AllOff: perf.SpreadOf(off), During: medianResources(during),
		})
	}
	r.burst(m, t)
	r.res.PeakRSSMiB = m.sample().Since(0).PeakRSSMiB
}

// cycle is one scale-up and scale-down; times in seconds from the call's return, call in ms.
type cycle struct {
	call, firstOn, allOn, ready, off float64
	during                           perf.Resources
}

// scaleCycle powers n machines on through IncreaseSize and off again through DeleteNodes,
// counting the API requests of each (kept for the first repetition only). A call that fails is
// noted, not fatal: the manager applies a decision even when the caller gave up, and what it
// does then is part of the measurement.
func (r *run) scaleCycle(m *manager, t *tracker, debug, ns, id string, n int, keep bool) cycle {
	b := r.b
	var c cycle
	quiet(m.requests, 500*time.Millisecond, 10*time.Second)
	m.requests.Take("", 0)
	s := m.sample()
	sent := time.Now()
	ctx, cancel := ctxFor(callTimeout)
	_, err := m.client.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: int32(n)}) //nolint:gosec // n ≤ 100
	cancel()
	returned := time.Now()
	c.call = float64(returned.Sub(sent).Microseconds()) / 1000
	if err != nil {
		r.note("IncreaseSize(+%d) failed after %.1f s: %v", n, returned.Sub(sent).Seconds(), err)
	}
	var names []string
	if !testenv.Poll(time.Minute+callTimeout, 20*time.Millisecond, func() bool {
		names = t.desiredOn()
		return len(names) == n
	}) {
		r.note("IncreaseSize(+%d): only %d machines desired on a minute after the call", n, len(names))
	}
	if len(names) == 0 {
		b.Fatalf("IncreaseSize(+%d) powered nothing on", n)
	}
	var readyAt time.Time
	if !testenv.Poll(3*time.Minute+r.boot, 20*time.Millisecond, func() bool {
		var ok bool
		readyAt, ok = t.latest(names, infrav1.ProgressReady)
		return ok
	}) {
		r.note("IncreaseSize(+%d): not every machine Ready within 3 minutes", n)
	}
	c.ready = readyAt.Sub(returned).Seconds()
	c.during = s.Since(m.requests.Total())
	firstOn, allOn := r.powerOnTimes(debug, names, sent)
	c.firstOn, c.allOn = firstOn.Sub(returned).Seconds(), allOn.Sub(returned).Seconds()
	quiet(m.requests, time.Second, 30*time.Second)
	up := m.requests.Take(fmt.Sprintf("scale-up +%d (IncreaseSize until all Ready)", n), len(names))

	deleted := time.Now()
	r.powerOff(m, ns, id, names)
	var offAt time.Time
	if !testenv.Poll(3*time.Minute, 20*time.Millisecond, func() bool {
		var ok bool
		offAt, ok = t.latest(names, infrav1.ProgressOff)
		return ok
	}) {
		b.Fatalf("DeleteNodes(%d): not every machine Off within 3 minutes", len(names))
	}
	c.off = offAt.Sub(deleted).Seconds()
	quiet(m.requests, time.Second, 30*time.Second)
	down := m.requests.Take(fmt.Sprintf("scale-down −%d (DeleteNodes until all Off)", n), len(names))
	// A scale-up the manager finished late (past its call's deadline) may leave machines on.
	for range 3 {
		left := t.desiredOn()
		if len(left) == 0 {
			break
		}
		r.note("%d machines still desired on after the scale-down of %d: powering them off too", len(left), n)
		r.powerOff(m, ns, id, left)
		testenv.Poll(3*time.Minute, 100*time.Millisecond, func() bool { _, ok := t.latest(left, infrav1.ProgressOff); return ok })
	}
	if keep {
		r.res.Requests = append(r.res.Requests, up, down)
	}
	return c
}

// powerOff calls DeleteNodes for the machines as cluster-autoscaler does: it taints their Nodes
// ToBeDeletedByClusterAutoscaler first (with the benchmark's own client: cluster-autoscaler's
// writes, not the manager's), then sends the nodes with the name and providerID homelab-sim
// registers.
func (r *run) powerOff(m *manager, ns, id string, names []string) {
	r.taintForDeletion(names)
	nodes := make([]*pb.ExternalGrpcNode, 0, len(names))
	for _, name := range names {
		nodes = append(nodes, &pb.ExternalGrpcNode{Name: name, ProviderID: "homelab://" + ns + "/" + name})
	}
	ctx, cancel := ctxFor(callTimeout)
	defer cancel()
	if _, err := m.client.NodeGroupDeleteNodes(ctx, &pb.NodeGroupDeleteNodesRequest{Id: id, Nodes: nodes}); err != nil {
		r.note("DeleteNodes(%d) failed: %v", len(names), err)
	}
}

// powerOnTimes reads when the BMCs of the machines received their first On command since
// since: the earliest and the latest of those.
func (r *run) powerOnTimes(debug string, names []string, since time.Time) (first, last time.Time) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	found := 0
	for _, m := range simCounters(r.b, debug) {
		if !want[m.Name] {
			continue
		}
		for _, h := range m.History {
			if h.Command == sim.CommandOn && !h.At.Before(since) {
				if first.IsZero() || h.At.Before(first) {
					first = h.At
				}
				if h.At.After(last) {
					last = h.At
				}
				found++
				break
			}
		}
	}
	if found != len(names) {
		r.note("only %d of %d BMCs received a power-on command", found, len(names))
	}
	return first, last
}

// simCounters reads every simulated machine's counters from homelab-sim's debug endpoint.
func simCounters(b *testing.B, debug string) []sim.MachineReport {
	resp, err := http.Get("http://" + debug + "/debug/counters") //nolint:noctx // loopback, bounded by the server
	if err != nil {
		b.Fatalf("homelab-sim counters: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var report struct {
		Machines []sim.MachineReport `json:"machines"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		b.Fatalf("homelab-sim counters: %v", err)
	}
	return report.Machines
}

// burst writes burstChanges spec changes (spec.bootTimeout, which powers nothing) spread over
// the machines, as fast as burstWriters writers can, and measures how long each took to show in
// status.observedGeneration, and the controllers' queue latency meanwhile.
func (r *run) burst(m *manager, t *tracker) {
	b := r.b
	names := t.names()
	quiet(m.requests, 500*time.Millisecond, 10*time.Second)
	m.requests.Take("", 0)
	queues := queueHistograms(m)
	// The CPU profile covers the writes and the work they cause; the heap profile is taken
	// when the writes are done and the controllers are busiest.
	cpu := r.profileCPU(m, "burst", burstProfileWindow)
	r.logf("burst of %d spec changes over %d machines from %d writers", burstChanges, len(names), burstWriters)
	type write struct {
		name      string
		gen       int64
		at        time.Time
		took      time.Duration
		conflicts int
	}
	writes := make([]write, burstChanges)
	var wg sync.WaitGroup
	began := time.Now()
	// Change i goes to machine i mod the fleet size, and each machine has one writer, so the
	// writers contend only with the controllers, never with each other.
	writers := min(burstWriters, len(names))
	for w := range writers {
		wg.Go(func() {
			for i := range burstChanges {
				if (i%len(names))%writers != w {
					continue
				}
				key := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: r.nsOf("sim"), Name: names[i%len(names)]}}
				ctx, cancel := ctxFor(30 * time.Second)
				start := time.Now()
				res, err := optimistic.Update(ctx, r.writer, key, func(n *infrav1.Machine) error {
					n.Spec.BootTimeout = &metav1.Duration{Duration: 10*time.Minute + time.Duration(i+1)*time.Second}
					return nil
				})
				cancel()
				if err != nil {
					b.Errorf("burst write %d: %v", i, err)
					continue
				}
				now := time.Now()
				writes[i] = write{key.Name, key.Generation, now, now.Sub(start), res.Conflicts}
			}
		})
	}
	wg.Wait()
	wrote := time.Since(began)
	r.profileHeap(m, "burst")
	testenv.Poll(2*time.Minute, 100*time.Millisecond, func() bool {
		for _, w := range writes {
			if _, ok := t.observedBy(w.name, w.gen); !ok && w.name != "" {
				return false
			}
		}
		return true
	})
	var lat, took []time.Duration
	missing, conflicts := 0, 0
	for _, w := range writes {
		if w.name != "" {
			took, conflicts = append(took, w.took), conflicts+w.conflicts
		}
		at, ok := t.observedBy(w.name, w.gen)
		if !ok {
			missing++
			continue
		}
		lat = append(lat, max(0, at.Sub(w.at)))
	}
	quiet(m.requests, time.Second, 30*time.Second)
	cpu()
	after := queueHistograms(m)
	q := map[string]float64{}
	for name, h := range after {
		q[name] = perf.HistogramQuantile(0.99, queues[name], h)
	}
	sec := func(p float64) float64 { return perf.Percentile(lat, p) / 1000 }
	maxLat := 0.0
	if len(lat) > 0 {
		maxLat = slices.Max(lat).Seconds()
	}
	r.res.Burst = perf.Burst{
		Changes: burstChanges, WriteSeconds: wrote.Seconds(), ObservedP50: sec(0.5), ObservedP99: sec(0.99), ObservedMax: maxLat,
		Missing: missing, QueueP99: q, Workers: machine.DefaultConcurrency,
		WriteP50Millis: perf.Percentile(took, 0.5), WriteP99Millis: perf.Percentile(took, 0.99), WriteConflicts: conflicts, Requests: m.requests.Take(fmt.Sprintf("burst of %d spec changes", burstChanges), burstChanges),
	}
	r.logf("burst: written in %.1f s; spec→observedGeneration p50 %.3f s, p99 %.3f s, max %.3f s, %d missing; queue p99 %v",
		wrote.Seconds(), r.res.Burst.ObservedP50, r.res.Burst.ObservedP99, maxLat, missing, q)
}

// medianResources is the median of each field.
func medianResources(rs []perf.Resources) perf.Resources {
	pick := func(f func(perf.Resources) float64) float64 {
		v := make([]float64, len(rs))
		for i, x := range rs {
			v[i] = f(x)
		}
		return perf.Median(v)
	}
	return perf.Resources{
		Seconds:    pick(func(x perf.Resources) float64 { return x.Seconds }),
		CPUPercent: pick(func(x perf.Resources) float64 { return x.CPUPercent }),
		RSSMiB:     pick(func(x perf.Resources) float64 { return x.RSSMiB }),
		HeapMiB:    pick(func(x perf.Resources) float64 { return x.HeapMiB }),
		PeakRSSMiB: pick(func(x perf.Resources) float64 { return x.PeakRSSMiB }),
		Requests:   int(pick(func(x perf.Resources) float64 { return float64(x.Requests) })),
	}
}

func total(r perf.Requests) int {
	n := 0
	for _, v := range r.ByVerb {
		n += v
	}
	return n
}

// namespace creates the namespace of a part of the run.
func (r *run) namespace(part string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.nsOf(part)}}
	if err := r.env.Client.Create(context.Background(), ns); err != nil {
		r.b.Fatal(err)
	}
	return ns.Name
}

func (r *run) nsOf(part string) string { return "bench-" + part }

// taintForDeletion puts cluster-autoscaler's NoSchedule taint for a scale-down on the Nodes, each
// an optimistic write retried on conflict (the kubelet's heartbeats change the Node too).
func (r *run) taintForDeletion(names []string) {
	for _, name := range names {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			ctx, cancel := ctxFor(callTimeout)
			defer cancel()
			core := &corev1.Node{}
			if err := r.env.Client.Get(ctx, client.ObjectKey{Name: name}, core); err != nil {
				return err
			}
			for _, t := range core.Spec.Taints {
				if t.Key == taintToBeDeleted {
					return nil
				}
			}
			base := core.DeepCopy()
			core.Spec.Taints = append(core.Spec.Taints, corev1.Taint{
				Key: taintToBeDeleted, Value: strconv.FormatInt(time.Now().Unix(), 10), Effect: corev1.TaintEffectNoSchedule,
			})
			return r.env.Client.Patch(ctx, core, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		})
		if err != nil && !apierrors.IsNotFound(err) {
			r.note("tainting Node %s for deletion: %v", name, err)
		}
	}
}

// taintToBeDeleted is the taint cluster-autoscaler puts on a Node it scales down.
const taintToBeDeleted = "ToBeDeletedByClusterAutoscaler"
