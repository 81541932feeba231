package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Kill triggers: when, after an action, the manager is killed.
const (
	// triggerDelay: a random delay after the action.
	triggerDelay = "delay"
	// triggerRecorded: the attempt is recorded in status.operation and the BMC has not seen the
	// command (the BMCs hang, so the driver's request is in flight when the kill lands).
	triggerRecorded = "recorded-before-command"
	// triggerCommandSeen: right after a BMC received a power command, before the manager
	// recorded what followed.
	triggerCommandSeen = "command-seen"
	// triggerTransition: while a machine is StartingUp or ShuttingDown.
	triggerTransition = "in-transition"
)

var triggers = []string{triggerDelay, triggerRecorded, triggerCommandSeen, triggerTransition}

// KillPoint runs one action (a scale-up, a scale-down or a human edit), kills replica i with
// SIGKILL at a point the trigger picks, and starts it again.
func (w *World) KillPoint(ctx context.Context, i int) {
	w.T.Helper()
	trigger := triggers[w.IntN(len(triggers))]
	if trigger == triggerRecorded {
		for _, m := range w.Sim.Machines() {
			_ = w.BMCFault(m, sim.FaultHang, time.Minute)
		}
	}
	before := w.commands()
	started := time.Now()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	action := w.RandomAction(actx, i)

	fired := true
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	switch trigger {
	case triggerDelay:
		time.Sleep(time.Duration(w.Int64N(int64(1500 * time.Millisecond))))
	case triggerRecorded:
		fired = w.Recorder.WaitFor(wctx, func(machines map[string]*infrav1.Machine) bool {
			for _, m := range machines {
				if op := m.Status.Operation; op != nil && op.AttemptStartedAt != nil && !op.AttemptStartedAt.Time.Before(started.Truncate(time.Microsecond)) {
					return true
				}
			}
			return false
		}) == nil
	case triggerCommandSeen:
		fired = testenv.Poll(5*time.Second, 2*time.Millisecond, func() bool { return w.commands() > before })
	case triggerTransition:
		fired = w.Recorder.WaitFor(wctx, func(machines map[string]*infrav1.Machine) bool {
			for _, m := range machines {
				if p := m.Status.Progress; p == infrav1.ProgressStartingUp || p == infrav1.ProgressShuttingDown {
					return true
				}
			}
			return false
		}) == nil
	}
	kind := "kill:" + trigger
	if !fired {
		kind += "(not reached)"
	}
	w.killAndRestart(i, kind, func() {
		if trigger == triggerRecorded {
			for _, m := range w.Sim.Machines() {
				_ = w.BMCFault(m, sim.FaultHang, 0)
			}
		}
	})
	w.T.Logf("%s: %s, killed %s at %s after %s", w.Namespace, action, w.Managers[i].Name, kind, time.Since(started).Round(time.Millisecond))
}

// killAndRestart kills replica i with SIGKILL, runs afterKill, counts the fault as kind, and
// starts the replica again after a random pause; the time until it serves again is an outage.
func (w *World) killAndRestart(i int, kind string, afterKill func()) {
	w.T.Helper()
	if err := w.Managers[i].Kill(); err != nil {
		w.T.Fatal(err)
	}
	o := w.outageBegins(0)
	afterKill()
	w.Stats.Fault(kind)
	time.Sleep(time.Duration(w.Int64N(int64(500 * time.Millisecond))))
	if err := w.Managers[i].Start(); err != nil {
		w.T.Fatal(err)
	}
	w.WaitServing(i)
	w.outageEnds(o)
}

// RandomAction does what cluster-autoscaler or a human would: a scale-up, a scale-down or an
// edit of spec.online, through replica i. It says what it did.
func (w *World) RandomAction(ctx context.Context, i int) string {
	w.T.Helper()
	switch w.IntN(4) {
	case 0, 1:
		n, err := Retry(ctx, func(ctx context.Context) (int, error) { return w.ScaleUp(ctx, i) })
		if err != nil {
			w.T.Fatalf("scale-up: %v", err)
		}
		if n > 0 {
			return fmt.Sprintf("scale-up by %d", n)
		}
		fallthrough // the group is full: scale down instead
	case 2:
		id, err := Retry(ctx, func(ctx context.Context) (string, error) { return w.ScaleDown(ctx, i) })
		if err != nil {
			w.T.Fatalf("scale-down: %v", err)
		}
		if id != "" {
			return "scale-down of " + id
		}
	}
	e, err := w.HumanEdit(ctx)
	if err != nil {
		w.T.Fatalf("human edit: %v", err)
	}
	return fmt.Sprintf("human set %s %s", e.Machine, e.Desired)
}

// commands counts the power commands every BMC received.
func (w *World) commands() int {
	n := 0
	for _, m := range w.Sim.Machines() {
		c := m.Counters()
		n += c.PowerOn + c.PowerOff
	}
	return n
}

// killManager runs kills kill points against one world with one manager, then checks every
// invariant.
func killManager(t *testing.T, stream uint64, kubeconfig string, kills int) {
	w := NewWorld(t, env, managerBin, kubeconfig, rng(stream), Options{})
	ctx := context.Background()
	for range kills {
		w.KillPoint(ctx, 0)
		time.Sleep(time.Duration(w.Int64N(int64(time.Second))))
	}
	w.Finish(ctx, 90*time.Second, NoFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}
