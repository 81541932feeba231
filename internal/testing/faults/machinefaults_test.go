package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

// Kill triggers of a machine fault: when, after the fault, the manager is killed.
const (
	// triggerRepairRecorded: once a machine recorded a repair begun after the fault (its
	// power-on or power-off attempt in status.operation, or status.lastRepair).
	triggerRepairRecorded = "repair-recorded"
	// triggerDecisionRecorded: as soon as the group's scale ledger lists a decision of the
	// manager's own (a substitution, an adoption) made after the fault, while its changes are
	// being applied to the machines.
	triggerDecisionRecorded = "decision-recorded"
)

var faultTriggers = []string{triggerDelay, triggerRepairRecorded, triggerDecisionRecorded}

// FaultKillPoint injects a random machine fault, kills replica i with SIGKILL while the manager
// answers it (once the repair is recorded, or after a random delay), and starts it again.
func (w *World) FaultKillPoint(ctx context.Context, i int) {
	w.T.Helper()
	trigger := faultTriggers[w.IntN(len(faultTriggers))]
	started := time.Now()
	fault := w.MachineFault()
	fired := true
	switch trigger {
	case triggerDelay:
		time.Sleep(time.Duration(w.Int64N(int64(1500 * time.Millisecond))))
	case triggerRepairRecorded:
		// A stuck Node is power-cycled after stuckNode.notReadyFor.
		wctx, cancel := context.WithTimeout(ctx, w.Repair.NotReadyFor+5*time.Second)
		fired = w.Recorder.WaitFor(wctx, func(machines map[string]*infrav1.Machine) bool {
			for _, m := range machines {
				if op := m.Status.Operation; op != nil && op.Repair != "" && op.AttemptStartedAt != nil &&
					!op.AttemptStartedAt.Time.Before(started.Truncate(time.Microsecond)) {
					return true
				}
				if lr := m.Status.LastRepair; lr != nil && !lr.At.Time.Before(started.Truncate(time.Second)) {
					return true
				}
			}
			return false
		}) == nil
		cancel()
	case triggerDecisionRecorded:
		// A cut under a booting machine leads to a substitution at its boot timeout.
		wctx, cancel := context.WithTimeout(ctx, w.Opts.BootTimeout+w.Repair.NotReadyFor+5*time.Second)
		fired = w.Recorder.WaitForDecision(wctx, func(_ string, d Decision) bool {
			return (d.Method == methodSubstitute || d.Method == methodAdopt) && d.Seen.After(started)
		}) == nil
		cancel()
	}
	kind := "kill:" + trigger
	if !fired {
		kind += "(not reached)"
	}
	w.killAndRestart(i, kind, func() {})
	w.T.Logf("%s: %s, killed %s at %s after %s", w.Namespace, fault, w.Managers[i].Name, kind, time.Since(started).Round(time.Millisecond))
}

// Machine faults mixed with SIGKILLs of the manager: power cuts under single machines (the Node
// left NotReady, or gone), a site-wide cut, presses of off machines' power buttons (the group's
// outsidePowerOn is policy: Enforce powers them off again, Adopt makes them desired on), and hung
// kubelets (the group power-cycles a Node NotReady for 10 s, once per machine: a second hang of
// one machine fails it, StuckNode). Every fault kind comes at least once, in a random order with
// kills right after a fault and plain kill points, cluster-autoscaler's and a human's writes
// between them. Every machine that lost power while it ran desired on is Ready again within its
// bound, and the world settles with only StuckNode failures.
func machineFaults(t *testing.T, kc string, stream uint64, policy infrav1.OutsidePowerOnPolicy) {
	replicas := 1
	if policy == infrav1.OutsidePowerOnAdopt {
		// Adoption goes through the group's ledger like cluster-autoscaler's writes, which both
		// replicas serve.
		replicas = 2
	}
	w := NewWorld(t, env, managerBin, kc, rng(stream), Options{
		Machines: 5, Replicas: replicas, Lease: 3 * time.Second,
		Repair: &infrav1.RepairPolicy{
			OutsidePowerOn: policy,
			StuckNode: &infrav1.StuckNodeRemediation{
				NotReadyFor: &metav1.Duration{Duration: 10 * time.Second}, MaxPowerCycles: ptr.To[int32](1),
			},
		},
	})
	ctx := context.Background()
	// Machines running and machines off: a cut needs the one, a button the other.
	for w.desiredOn(t) < 3 {
		if _, err := Retry(ctx, func(ctx context.Context) (int, error) { return w.ScaleUp(ctx, 0) }); err != nil {
			t.Fatal(err)
		}
	}
	w.Settle(ctx, 60*time.Second, NoFailures)

	steps := map[string]func(){
		"cut":           func() { t.Logf("%s: %s", w.Namespace, w.CutPower()) },
		"cut-site-wide": func() { t.Logf("%s: %s", w.Namespace, w.CutPowerAll()) },
		"button":        func() { t.Logf("%s: %s", w.Namespace, w.PressButton()) },
		"hang":          func() { t.Logf("%s: %s", w.Namespace, w.HangKubelet()) },
		"fault-kill":    func() { w.FaultKillPoint(ctx, w.IntN(len(w.Managers))) },
		"kill":          func() { w.KillPoint(ctx, w.IntN(len(w.Managers))) },
		"action": func() {
			i := w.IntN(len(w.Managers))
			t.Logf("%s: %s: %s", w.Namespace, w.Managers[i].Name, w.RandomAction(ctx, i))
		},
	}
	plan := []string{"cut", "cut", "cut-site-wide", "button", "button", "hang", "fault-kill", "fault-kill", "fault-kill", "kill", "kill", "action", "action", "action"}
	for i := len(plan) - 1; i > 0; i-- {
		j := w.IntN(i + 1)
		plan[i], plan[j] = plan[j], plan[i]
	}
	t.Logf("%s: plan %s", w.Namespace, strings.Join(plan, ", "))
	for _, step := range plan {
		steps[step]()
		w.Revive()
		time.Sleep(time.Duration(w.Int64N(int64(2 * time.Second))))
	}
	w.Finish(ctx, 2*time.Minute, StuckNodeFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}

// Two machines too slow to boot and no other member: one never registers its Node, the other
// registers only after its boot timeout, on every boot. cluster-autoscaler asks for one machine.
// The group's bootFailure is the default, Substitute: when the first one's boot times out, the
// other is powered on in its place; when that one's boot times out too, the first is the only
// member left to substitute it. Whatever the manager does about two slow members, the group
// must settle: each machine Ready, Off, or Failed with a reason.
func slowBoots(t *testing.T, kc string) {
	w := NewWorld(t, env, managerBin, kc, rng(700), Options{
		Machines: 2, BootTimeout: 4 * time.Second,
		Sim: func(c *sim.Config) {
			c.NeverBoot = []int{0}
			c.LateBoot = []sim.Fault{{Index: 1, For: 5 * time.Second}}
		},
	})
	w.Stats.Fault("never-boot")
	w.Stats.Fault("late-boot")
	ctx := context.Background()
	if _, err := Retry(ctx, func(ctx context.Context) (*pb.NodeGroupIncreaseSizeResponse, error) {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return w.CA(0).NodeGroupIncreaseSize(cctx, &pb.NodeGroupIncreaseSizeRequest{Id: w.GroupID, Delta: 1})
	}); err != nil {
		t.Fatal(err)
	}
	w.Stats.Op("scale-up", 1)
	w.Finish(ctx, time.Minute, AnyFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}

// A substitution cut short: three members never register their Node, two more boot. A scale-up
// of one powers the first on; at each boot timeout the manager substitutes the next member in
// one ledger decision (the slow machine off, the substitute on), and the replica is killed as
// soon as the ledger lists the decision, while its two changes are being applied. The
// restarted manager must finish what the decision began: one machine desired on, Ready, and the
// target size cluster-autoscaler reads equal to the machines desired on.
func substituteKilled(t *testing.T, kc string) {
	w := NewWorld(t, env, managerBin, kc, rng(800), Options{
		Machines: 5, BootTimeout: 4 * time.Second,
		Sim: func(c *sim.Config) { c.NeverBoot = []int{0, 1, 2} },
	})
	w.Stats.Fault("never-boot")
	ctx := context.Background()
	if _, err := Retry(ctx, func(ctx context.Context) (*pb.NodeGroupIncreaseSizeResponse, error) {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return w.CA(0).NodeGroupIncreaseSize(cctx, &pb.NodeGroupIncreaseSizeRequest{Id: w.GroupID, Delta: 1})
	}); err != nil {
		t.Fatal(err)
	}
	w.Stats.Op("scale-up", 1)
	for range 3 {
		started := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 3*w.Opts.BootTimeout+10*time.Second)
		fired := w.Recorder.WaitForDecision(wctx, func(_ string, d Decision) bool {
			return d.Method == methodSubstitute && d.Seen.After(started)
		}) == nil
		cancel()
		kind := "kill:" + triggerDecisionRecorded
		if !fired {
			kind += "(not reached)"
		}
		w.killAndRestart(0, kind, func() {})
	}
	w.Finish(ctx, time.Minute, NoFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}
