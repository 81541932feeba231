package perf_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// The time-to-capacity setup: a small group, a scale-up of three whose first machine (by name,
// the order in which a scale-up chooses among machines never booted) never registers its Node,
// and spares.
const (
	capMachines    = 6
	capScaleUp     = 3
	capBroken      = 0
	capBootDelay   = 2 * time.Second
	capBootTimeout = 8 * time.Second
	capMaxAttempts = int32(2)
	// capLimit bounds each run; Retry is expected to need well under a minute.
	capLimit = 3 * time.Minute
	// caScanInterval and caBackoff are cluster-autoscaler's defaults (--scan-interval,
	// --initial-node-group-backoff-duration).
	caScanInterval = 10 * time.Second
	caBackoff      = 5 * time.Minute
)

// BenchmarkCapacity measures the time to capacity of IncreaseSize(+3) when one of the chosen
// machines never boots, under bootFailure Retry and Substitute, and without a broken machine,
// and writes a perf.Capacity to BENCH_OUT. Each run has its own namespace, group, homelab-sim
// process and manager, so that no run inherits another's failed boots. It ignores b.N.
func BenchmarkCapacity(b *testing.B) {
	out := outPath(b)
	ctrl.SetLogger(logr.Discard())
	r := &run{b: b, start: time.Now(), size: capMachines, reps: envInt(b, envReps, 3), boot: capBootDelay}
	simBin := simBinary(b)
	kubeconfig := r.controlPlane()
	res := &perf.Capacity{
		Machines: capMachines, ScaleUp: capScaleUp, BootDelay: capBootDelay, BootTimeout: capBootTimeout,
		MaxAttempts: capMaxAttempts, RetryBase: testmanager.Options("").PowerRetryBase,
		ScanInterval: caScanInterval, Backoff: caBackoff, Limit: capLimit, Repetitions: r.reps,
	}
	r.notes = &res.Notes
	scenarios := []struct {
		name   string
		policy infrav1.BootFailurePolicy
		broken bool
	}{
		{"healthy", infrav1.BootFailureSubstitute, false},
		{"Retry", infrav1.BootFailureRetry, true},
		{"Substitute", infrav1.BootFailureSubstitute, true},
	}
	for _, sc := range scenarios {
		s := perf.CapacityScenario{Name: sc.name, Policy: string(sc.policy), Broken: sc.broken}
		var ready []float64
		for rep := range r.reps {
			c := r.capacityRun(kubeconfig, simBin, fmt.Sprintf("%s-%d", strings.ToLower(sc.name), rep+1), sc.policy, sc.broken)
			s.Runs = append(s.Runs, c)
			if c.Reached {
				ready = append(ready, c.Ready)
			} else {
				s.Missing++
			}
			r.logf("%s #%d: %d Ready Nodes after %.2f s (reached %t); gave up on the broken machine after %.2f s; %s",
				sc.name, rep+1, capScaleUp, c.Ready, c.Reached, c.GaveUp, strings.Join(c.Actions, ", "))
		}
		s.Ready = perf.SpreadOf(ready)
		res.Scenarios = append(res.Scenarios, s)
	}
	res.Took = time.Since(r.start)
	r.writeResult(out, res)
}

// capacityRun is one scale-up in a fresh group called name, with its own simulator and
// manager, timed from IncreaseSize returning until capScaleUp of its Nodes are Ready, while
// the benchmark plays cluster-autoscaler's loop.
func (r *run) capacityRun(kubeconfig, simBin, name string, policy infrav1.BootFailurePolicy, broken bool) perf.CapacityRun {
	b := r.b
	ns := r.namespace(name)
	debug := freeAddr(b)
	args := []string{"--kubeconfig", kubeconfig, "--namespace", ns, "--group", name,
		"--machines", strconv.Itoa(capMachines), "--boot-delay", capBootDelay.String(), "--shutdown-delay", "1s",
		"--node-boot-timeout", capBootTimeout.String(), "--apply", "--debug-address", debug, "--log-level", "warn"}
	if broken {
		args = append(args, "--never-boot", strconv.Itoa(capBroken))
	}
	defer r.deleteNodes(ns)
	simProc := startProcess(b, simBin, args...)
	defer func() { _ = simProc.Process.Kill() }()
	t := track(r.env, ns)
	defer t.stop()
	if !testenv.Poll(time.Minute, 100*time.Millisecond, func() bool { return t.count(func(*seen) bool { return true }) == capMachines }) {
		b.Fatalf("%s: homelab-sim did not create %d machines within a minute", name, capMachines)
	}
	r.setPolicy(ns, name, policy)
	m := r.startManager(ns, managerOptions{})
	defer m.stop()
	if !testenv.Poll(time.Minute, 50*time.Millisecond, func() bool { return t.settled(infrav1.ProgressOff) }) {
		b.Fatalf("%s: the manager did not settle every machine as Off within a minute", name)
	}
	quiet(m.requests, 500*time.Millisecond, 10*time.Second)

	id := cloudprovider.GroupID(ns, name)
	brokenName := fmt.Sprintf("%s-%d", name, capBroken)
	var c perf.CapacityRun
	sent := time.Now()
	ctx, cancel := ctxFor(callTimeout)
	_, err := m.client.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: capScaleUp})
	cancel()
	returned := time.Now()
	c.CallMillis = float64(returned.Sub(sent).Microseconds()) / 1000
	if err != nil {
		b.Fatalf("%s: IncreaseSize(+%d): %v", name, capScaleUp, err)
	}
	if broken {
		var chosen []string
		testenv.Poll(10*time.Second, 20*time.Millisecond, func() bool { chosen = t.desiredOn(); return len(chosen) == capScaleUp })
		if !slices.Contains(chosen, brokenName) {
			b.Fatalf("%s: the scale-up chose %v, not the broken machine %s", name, chosen, brokenName)
		}
	}

	since := func() float64 { return time.Since(returned).Seconds() }
	nextScan := returned.Add(caScanInterval)
	for time.Since(returned) < capLimit {
		if r.readyNodes(ns) >= capScaleUp {
			c.Ready, c.Reached = since(), true
			break
		}
		if s, ok := t.get(brokenName); broken && c.GaveUp == 0 && ok &&
			(s.desired != infrav1.PowerActionOn || s.progress == infrav1.ProgressFailed) {
			c.GaveUp = since()
		}
		if !time.Now().Before(nextScan) {
			r.autoscalerLoop(m, id, since, &c)
			nextScan = nextScan.Add(caScanInterval)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, mr := range simCounters(b, debug) {
		c.PowerOns += mr.PowerOn
	}
	return c
}

// setPolicy gives the group the boot-failure policy under measurement and maxAttempts, before
// the manager starts; homelab-sim wrote the boot timeout.
func (r *run) setPolicy(ns, group string, policy infrav1.BootFailurePolicy) {
	key := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group}}
	ctx, cancel := ctxFor(30 * time.Second)
	defer cancel()
	if _, err := optimistic.Update(ctx, r.writer, key, func(g *infrav1.Group) error {
		if g.Spec.MachineDefaults == nil {
			g.Spec.MachineDefaults = &infrav1.MachineDefaults{}
		}
		attempts := capMaxAttempts
		g.Spec.MachineDefaults.MaxAttempts = &attempts
		if g.Spec.Repair == nil {
			g.Spec.Repair = &infrav1.RepairPolicy{}
		}
		g.Spec.Repair.BootFailure = policy
		return nil
	}); err != nil {
		r.b.Fatalf("setting the repair policy of Group %s/%s: %v", ns, group, err)
	}
}

// autoscalerLoop is one iteration of cluster-autoscaler's loop as it concerns this group: an
// instance reported with errorInfo is a failed scale-up, whose nodes it deletes (and ends the
// iteration there); otherwise it asks for the nodes its pending pods still need, capScaleUp
// minus the group's target size. cluster-autoscaler would also back the group off after the
// failure (caBackoff) before scaling it up again; the loop does not wait for that, the report
// adds it. What it did is recorded in c, with the time since the scale-up.
func (r *run) autoscalerLoop(m *manager, id string, since func() float64, c *perf.CapacityRun) {
	ctx, cancel := ctxFor(callTimeout)
	defer cancel()
	nodes, err := m.client.NodeGroupNodes(ctx, &pb.NodeGroupNodesRequest{Id: id})
	if err != nil {
		r.b.Fatalf("NodeGroupNodes(%s): %v", id, err)
	}
	var failed []*pb.ExternalGrpcNode
	for _, in := range nodes.GetInstances() {
		if in.GetStatus().GetErrorInfo() != nil {
			failed = append(failed, &pb.ExternalGrpcNode{Name: in.GetId(), ProviderID: in.GetId()})
		}
	}
	if len(failed) > 0 {
		if _, err := m.client.NodeGroupDeleteNodes(ctx, &pb.NodeGroupDeleteNodesRequest{Id: id, Nodes: failed}); err != nil {
			r.b.Fatalf("DeleteNodes of the failed instances of %s: %v", id, err)
		}
		c.FailedScaleUp = true
		c.Actions = append(c.Actions, fmt.Sprintf("DeleteNodes(%d with errorInfo) at %.1f s", len(failed), since()))
		return
	}
	target, err := m.client.NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: id})
	if err != nil {
		r.b.Fatalf("NodeGroupTargetSize(%s): %v", id, err)
	}
	missing := int32(capScaleUp) - target.GetTargetSize()
	if missing <= 0 {
		return
	}
	if _, err := m.client.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: missing}); err != nil {
		r.b.Fatalf("IncreaseSize(+%d) of %s: %v", missing, id, err)
	}
	c.Actions = append(c.Actions, fmt.Sprintf("IncreaseSize(+%d) at %.1f s", missing, since()))
}

// readyNodes counts the Ready Nodes of the machines of namespace ns (by provider ID).
func (r *run) readyNodes(ns string) int {
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	list := &corev1.NodeList{}
	if err := r.env.Client.List(ctx, list); err != nil {
		r.b.Fatal(err)
	}
	n := 0
	for i := range list.Items {
		if strings.HasPrefix(list.Items[i].Spec.ProviderID, "homelab://"+ns+"/") && machines.IsNodeReady(&list.Items[i]) {
			n++
		}
	}
	return n
}

// deleteNodes deletes the Nodes a run's machines registered, so that kwok stops keeping them.
func (r *run) deleteNodes(ns string) {
	ctx, cancel := ctxFor(30 * time.Second)
	defer cancel()
	list := &corev1.NodeList{}
	if err := r.env.Client.List(ctx, list); err != nil {
		r.b.Errorf("listing Nodes: %v", err)
		return
	}
	for i := range list.Items {
		if strings.HasPrefix(list.Items[i].Spec.ProviderID, "homelab://"+ns+"/") {
			_ = r.env.Client.Delete(ctx, &list.Items[i])
		}
	}
}
