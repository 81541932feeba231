package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// killGroups × killsPerGroup randomized kill points run in every `go test`.
const (
	killGroups    = 4
	killsPerGroup = 6
)

// TestFaults runs the harness's scenarios side by side against one control plane and one kwok:
// SIGKILLs of the manager at random points, a leader handover, concurrent writers, misbehaving
// BMCs, machine faults (power cuts, button presses, hung kubelets) mixed with SIGKILLs, two
// machines too slow to boot, homelab-agent killed while it relays wakes and shuts machines down,
// and a short soak (make soak runs a long one).
func TestFaults(t *testing.T) {
	kc := kubeconfig(t)
	env.StartKwok(t, kc)
	for g := range killGroups {
		t.Run(fmt.Sprintf("KillManager/%d", g), func(t *testing.T) {
			t.Parallel()
			killManager(t, uint64(g), kc, killsPerGroup)
		})
	}
	t.Run("LeaderHandover", func(t *testing.T) {
		t.Parallel()
		leaderHandover(t, kc)
	})
	t.Run("ConcurrentWriters", func(t *testing.T) {
		t.Parallel()
		concurrentWriters(t, kc)
	})
	t.Run("BMCFaults", func(t *testing.T) {
		t.Parallel()
		bmcFaults(t, kc)
	})
	t.Run("MachineFaults/Enforce", func(t *testing.T) {
		t.Parallel()
		machineFaults(t, kc, 600, infrav1.OutsidePowerOnEnforce)
	})
	t.Run("MachineFaults/Adopt", func(t *testing.T) {
		t.Parallel()
		machineFaults(t, kc, 601, infrav1.OutsidePowerOnAdopt)
	})
	t.Run("SlowBoots", func(t *testing.T) {
		t.Parallel()
		slowBoots(t, kc)
	})
	t.Run("SubstituteKilled", func(t *testing.T) {
		t.Parallel()
		substituteKilled(t, kc)
	})
	t.Run("AgentKills", func(t *testing.T) {
		t.Parallel()
		agentKills(t, kc)
	})
	t.Run("Soak", func(t *testing.T) {
		t.Parallel()
		soak(t, kc)
	})
}

// Two replicas with leader election: one leads and reconciles, both serve cluster-autoscaler.
// The leader is killed (SIGKILL, so its Lease is never released) while a power-on it started is
// in flight; the other replica takes over once the Lease expires and finishes the operation:
// nothing is lost and no machine is powered on twice for one attempt.
func leaderHandover(t *testing.T, kc string) {
	lease := 3 * time.Second
	w := NewWorld(t, env, managerBin, kc, rng(100), Options{Replicas: 2, Lease: lease})
	ctx := context.Background()
	leader := w.waitLeader(t, -1)
	follower := 1 - leader
	if strings.Contains(w.Managers[follower].Output(), "Starting workers") {
		t.Fatalf("%s reconciles without leading", w.Managers[follower].Name)
	}

	// A scale-up through the replica that does not lead: it writes the desired state, the
	// leader powers the machines on.
	if n, err := w.ScaleUp(ctx, follower); err != nil || n == 0 {
		t.Fatalf("scale-up through %s: %d, %v", w.Managers[follower].Name, n, err)
	}
	w.Settle(ctx, 60*time.Second, NoFailures)
	for i := range w.Managers {
		if got, err := w.TargetSize(ctx, i); err != nil || int(got) != w.desiredOn(t) {
			t.Fatalf("%s: target size %d, %v; %d machines desired on", w.Managers[i].Name, got, err, w.desiredOn(t))
		}
	}

	// Another scale-up, with every BMC hanging, so the leader is killed while its power-on
	// request is in flight: the attempt is recorded, the BMC has not seen the command.
	for _, m := range w.Sim.Machines() {
		_ = w.BMCFault(m, sim.FaultHang, time.Minute)
	}
	started := time.Now()
	if _, err := w.ScaleUp(ctx, follower); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := w.Recorder.WaitFor(wctx, func(machines map[string]*infrav1.Machine) bool {
		for _, m := range machines {
			if op := m.Status.Operation; op != nil && op.Action == infrav1.PowerActionOn && op.AttemptStartedAt != nil && op.AttemptStartedAt.After(started) {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("the leader never recorded the power-on attempt: %v", err)
	}
	killed := time.Now()
	if err := w.Managers[leader].Kill(); err != nil {
		t.Fatal(err)
	}
	o := w.outageBegins(0)
	w.Stats.Fault("kill:leader")
	for _, m := range w.Sim.Machines() {
		_ = w.BMCFault(m, sim.FaultHang, 0)
	}
	w.waitLeader(t, follower)
	w.outageEnds(o)
	took := time.Since(killed)
	t.Logf("%s took over %s after the leader was killed (lease %s)", w.Managers[follower].Name, took.Round(time.Millisecond), lease)
	// The Lease outlives its holder by at most its duration; a generous bound for a loaded
	// machine, to catch a replica that never takes over, not to measure speed.
	if took > 5*lease+20*time.Second {
		t.Fatalf("the handover took %s with a %s lease", took, lease)
	}

	// The old leader comes back as a follower; a scale-down and a human edit go through it.
	if err := w.Managers[leader].Start(); err != nil {
		t.Fatal(err)
	}
	w.WaitServing(leader)
	if _, err := Retry(wctx, func(ctx context.Context) (string, error) { return w.ScaleDown(ctx, leader) }); err != nil {
		t.Fatal(err)
	}
	if _, err := w.HumanEdit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Finish(ctx, 60*time.Second, NoFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}

// waitLeader waits until one replica (want, or any when want is -1) logs that it acquired the
// Lease, and returns it.
func (w *World) waitLeader(t *testing.T, want int) int {
	t.Helper()
	leader := -1
	testenv.Eventually(t, 60*time.Second, "a replica to lead", func() bool {
		for i, m := range w.Managers {
			if (want == -1 || want == i) && m.Running() && strings.Contains(lastRun(m.Output()), "Successfully acquired lease") {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// lastRun is the output of the process's latest run.
func lastRun(out string) string {
	if i := strings.LastIndex(out, "=== run "); i >= 0 {
		return out[i:]
	}
	return out
}

func (w *World) desiredOn(t *testing.T) int {
	t.Helper()
	n := 0
	for _, m := range w.Recorder.Latest() {
		if m.Spec.Online {
			n++
		}
	}
	return n
}

// Misbehaving BMCs while cluster-autoscaler and a human drive the group: one hangs past the
// driver's timeout, one answers 500s, one lies about the power state, one answers garbage, one
// machine registers only after its boot timeout, one never registers, and one's core Node flaps
// between Ready and NotReady after it registers. Then scale-downs and human edits, each with a
// fresh BMC fault and a machine fault (a power cut, a site-wide cut, a button press, a hung
// kubelet, which the group's stuckNode remediation power-cycles). Every machine ends as desired
// or Failed with a reason, and no attempt sent two power-on commands.
func bmcFaults(t *testing.T, kc string) {
	w := NewWorld(t, env, managerBin, kc, rng(200), Options{
		Machines: 7, BootTimeout: 4 * time.Second,
		Sim: func(c *sim.Config) {
			c.BMCFaults = []sim.Fault{
				{Index: 0, For: 5 * time.Second, Kind: sim.FaultHang},
				{Index: 1, For: 3 * time.Second, Kind: sim.FaultError},
				{Index: 2, For: 4 * time.Second, Kind: sim.FaultLie},
				{Index: 3, For: 3 * time.Second, Kind: sim.FaultGarbage},
			}
			// Registers after its boot timeout, on every boot: the group's bootFailure
			// (Substitute) powers another member on in its place when one is free; without one,
			// the second attempt finds the machine on, sends nothing, and adopts it when it
			// registers.
			c.LateBoot = []sim.Fault{{Index: 4, For: 5 * time.Second}}
			c.NeverBoot = []int{5}
			// Ready and NotReady in turn for a while after it registers: no reason to power it
			// again.
			c.Flap = []sim.Fault{{Index: 6, For: 3 * time.Second}}
		},
		Repair: &infrav1.RepairPolicy{StuckNode: &infrav1.StuckNodeRemediation{NotReadyFor: &metav1.Duration{Duration: 10 * time.Second}}},
	})
	for _, k := range []string{"bmc:hang", "bmc:error", "bmc:lie", "bmc:garbage", "late-boot", "never-boot", "flap"} {
		w.Stats.Fault(k)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := Retry(ctx, func(ctx context.Context) (int, error) { return w.ScaleUp(ctx, 0) }); err != nil {
			t.Fatal(err)
		}
	}
	// The late and the flapping machine are last in the choice order: a human turns them on.
	for _, i := range []int{4, 6} {
		if _, err := w.HumanSet(ctx, w.Sim.Machines()[i].Name, infrav1.PowerActionOn); err != nil {
			t.Fatal(err)
		}
	}
	w.Settle(ctx, 90*time.Second, AnyFailures)
	// A machine never powered off (not substituted) was powered on once: a second attempt that
	// finds it on sends nothing.
	for _, i := range []int{4, 6} {
		m := w.Sim.Machines()[i]
		c := m.Counters()
		if n := w.Recorder.Latest()[m.Name]; n.Spec.Online && c.PowerOff == 0 &&
			(n.Status.Progress != infrav1.ProgressReady || c.PowerOn != 1) {
			t.Errorf("%s: progress %s, %d power-on commands; want Ready after one", m.Name, n.Status.Progress, c.PowerOn)
		}
	}
	never := w.Recorder.Latest()[w.Sim.Machines()[5].Name]
	if never.Spec.Online && never.Status.Progress != infrav1.ProgressFailed {
		t.Errorf("the machine that never registers: progress %s, want Failed", never.Status.Progress)
	}
	// Faults during scale-downs and human edits: a random BMC misbehaves for a moment each time,
	// and a machine fault hits.
	for range 4 {
		m := w.Sim.Machines()[w.IntN(4)]
		kind := sim.FaultKinds[w.IntN(len(sim.FaultKinds))]
		if err := w.BMCFault(m, kind, time.Duration(500+w.IntN(2500))*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		w.Stats.Fault("bmc:" + string(kind))
		t.Logf("%s; %s", w.RandomAction(ctx, 0), w.MachineFault())
		time.Sleep(time.Second)
	}
	w.Finish(ctx, 90*time.Second, AnyFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}
