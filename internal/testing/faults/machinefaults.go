package faults

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

// outage is a time when no manager was there to act: from a kill (or an exit, or the apiserver
// going away) until the replica serves again. cost is what it may add beyond its length: one
// boot timeout, since a kill may cut short a power-on attempt whose command never went out, and
// that attempt is retried only when its boot timeout passes; with leader election, one lease
// more, since a killed leader's Lease outlives it by up to its duration.
type outage struct {
	from, to time.Time // to is zero while it lasts
	cost     time.Duration
}

// outageBegins records that a manager stops acting now, at the usual cost plus extra;
// outageEnds ends the record once a replica serves again.
func (w *World) outageBegins(extra time.Duration) *outage {
	o := &outage{from: time.Now(), cost: w.Opts.BootTimeout + extra}
	if w.Opts.Replicas > 1 {
		o.cost += w.Opts.Lease
	}
	w.mu.Lock()
	w.outages = append(w.outages, o)
	w.mu.Unlock()
	return o
}

func (w *World) outageEnds(o *outage) {
	w.mu.Lock()
	o.to = time.Now()
	w.mu.Unlock()
}

// bmcWindow is a time in which a machine's BMC misbehaved.
type bmcWindow struct {
	kind     sim.FaultKind
	from, to time.Time
}

func (w *World) recordBMCFault(machine string, kind sim.FaultKind, from, to time.Time) {
	if kind == "" {
		kind = sim.FaultError
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bmcFaults[machine] = append(w.bmcFaults[machine], bmcWindow{kind: kind, from: from, to: to})
}

// BMCFault makes machine m's BMC misbehave as kind says for d from now, or ends a window of kind
// at once when d is 0, and records the window: a power-loss recovery it overlaps is not held to
// its bound (the repair's reads and commands fail or lie meanwhile).
func (w *World) BMCFault(m *sim.Machine, kind sim.FaultKind, d time.Duration) error {
	if err := m.InjectFault(kind, d); err != nil {
		return fmt.Errorf("machine %s: %w", m.Name, err)
	}
	now := time.Now()
	if d > 0 {
		w.recordBMCFault(m.Name, kind, now, now.Add(d))
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.bmcFaults[m.Name] {
		if win := &w.bmcFaults[m.Name][i]; win.kind == kind && win.to.After(now) {
			win.to = now
		}
	}
	return nil
}

// bmcFaultBetween reports whether machine's BMC misbehaved at some time in [from, to], and
// whether it lied then.
func (w *World) bmcFaultBetween(machine string, from, to time.Time) (faulty, lied bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, win := range w.bmcFaults[machine] {
		if win.from.Before(to) && win.to.After(from) {
			faulty = true
			lied = lied || win.kind == sim.FaultLie
		}
	}
	return faulty, lied
}

// nodeAfterCut picks what a power cut leaves of the Node: NotReady, or nothing.
func (w *World) nodeAfterCut() sim.NodeAfterCut {
	if w.IntN(2) == 0 {
		return sim.NodeNotReady
	}
	return sim.NodeGone
}

// MachineFault injects one machine fault picked at random: a power cut under one machine, a
// site-wide power cut, a press of an off machine's power button or, when the group power-cycles
// stuck Nodes, a kubelet hang. It says what it did.
func (w *World) MachineFault() string {
	kinds := []func() string{w.CutPower, w.CutPower, w.CutPower, w.PressButton, w.PressButton, w.CutPowerAll}
	if w.Repair.StuckNode {
		kinds = append(kinds, w.HangKubelet, w.HangKubelet)
	}
	return kinds[w.IntN(len(kinds))]()
}

// CutPower cuts the power of a random machine that is on, leaving its Node NotReady or deleting
// it (picked at random), and checks the machine's recovery (watchRecovery). It says what it did.
func (w *World) CutPower() string {
	var on []*sim.Machine
	for _, m := range w.Sim.Machines() {
		if m.PoweredOn() {
			on = append(on, m)
		}
	}
	if len(on) == 0 {
		w.Stats.Fault("cut(not reached)")
		return "no machine is on to cut"
	}
	m := on[w.IntN(len(on))]
	node := w.nodeAfterCut()
	before := w.Recorder.Latest()[m.Name]
	cuts := m.Counters().PowerCuts
	at := time.Now()
	m.CutPower(node)
	if m.Counters().PowerCuts == cuts {
		w.Stats.Fault("cut(not reached)")
		return m.Name + " went off before its power was cut"
	}
	w.Stats.Fault("cut:" + string(node))
	w.watchRecovery(m, before, at)
	return fmt.Sprintf("cut the power of %s (Node %s)", m.Name, node)
}

// CutPowerAll cuts the power of every machine that is on, as a site-wide outage does, and checks
// each one's recovery. It says what it did.
func (w *World) CutPowerAll() string {
	node := w.nodeAfterCut()
	latest := w.Recorder.Latest()
	cuts := map[string]int{}
	for _, m := range w.Sim.Machines() {
		cuts[m.Name] = m.Counters().PowerCuts
	}
	at := time.Now()
	n := w.Sim.CutPowerAll(node)
	if n == 0 {
		w.Stats.Fault("cut-site-wide(not reached)")
		return "site-wide power cut: no machine was on"
	}
	w.Stats.Fault("cut-site-wide:" + string(node))
	for _, m := range w.Sim.Machines() {
		if m.Counters().PowerCuts > cuts[m.Name] {
			w.watchRecovery(m, latest[m.Name], at)
		}
	}
	return fmt.Sprintf("site-wide power cut: %d machines (Node %s)", n, node)
}

// PressButton presses the power button of a random machine that is off, one desired off if there
// is one (the group's outsidePowerOn policy says what follows), else one desired on (its pending
// power-on finds it booting): it boots without a BMC command. It says what it did.
func (w *World) PressButton() string {
	latest := w.Recorder.Latest()
	var off, offDesiredOff []*sim.Machine
	for _, m := range w.Sim.Machines() {
		if m.PoweredOn() {
			continue
		}
		off = append(off, m)
		if n := latest[m.Name]; n != nil && !n.Spec.Online {
			offDesiredOff = append(offDesiredOff, m)
		}
	}
	if len(offDesiredOff) > 0 {
		off = offDesiredOff
	}
	if len(off) == 0 {
		w.Stats.Fault("button-press(not reached)")
		return "no machine is off to press its button"
	}
	m := off[w.IntN(len(off))]
	presses := m.Counters().ButtonPresses
	m.PressPowerButton()
	if m.Counters().ButtonPresses == presses {
		w.Stats.Fault("button-press(not reached)")
		return m.Name + " was powered on before its button was pressed"
	}
	w.Stats.Fault("button-press")
	return "pressed the power button of " + m.Name
}

// HangKubelet hangs the kubelet of a random running machine until its power next goes off (not
// sticky): its Node goes NotReady while its BMC says on, which the group's stuckNode remediation
// answers with a power cycle. It says what it did.
func (w *World) HangKubelet() string {
	var running []*sim.Machine
	for _, m := range w.Sim.Machines() {
		if hung, _ := m.KubeletHang(); m.Phase() == "Running" && !hung {
			running = append(running, m)
		}
	}
	if len(running) == 0 {
		w.Stats.Fault("kubelet-hang(not reached)")
		return "no machine runs a kubelet to hang"
	}
	m := running[w.IntN(len(running))]
	m.HangKubelet(false)
	w.Stats.Fault("kubelet-hang")
	return "hung the kubelet of " + m.Name
}

// recoveryAllowance is what a loaded test machine (two cores shared by every process of the
// run) may add to a recovery: status writes, watch deliveries and kwok taking the Node back.
const recoveryAllowance = 10 * time.Second

// RecoveryBound is how long after a power cut a machine that ran desired on may take to be Ready
// again, before outages: the time to notice (at most one observation interval: a Node that goes
// NotReady or away wakes the machine's reconcile at once, and a Node that was NotReady already is
// read again within the interval), one boot timeout (a power-on attempt that is lost runs into
// it), and slack: one recheck interval (a read that raced the cut), one retry cap (the wait
// before the next attempt), the simulated boot and recoveryAllowance.
func (w *World) RecoveryBound() time.Duration {
	return w.Repair.ObserveInterval + w.Opts.BootTimeout +
		recheckInterval + retryCap + w.Opts.BootDelay + w.Opts.BootJitter + recoveryAllowance
}

// recoveryDeadline is when a machine cut at `at` must be Ready again: at plus bound, extended by
// every outage that overlaps the time until then (its length from the cut on, plus its cost).
// open reports an outage that lasts still: no deadline yet.
func (w *World) recoveryDeadline(at time.Time, bound time.Duration) (deadline time.Time, open bool) {
	deadline = at.Add(bound)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.outages {
		if !o.from.Before(deadline) || (!o.to.IsZero() && !o.to.After(at)) {
			continue
		}
		if o.to.IsZero() {
			return time.Time{}, true
		}
		deadline = deadline.Add(o.to.Sub(maxTime(o.from, at)) + o.cost)
	}
	return deadline, false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// watchRecovery checks, in the background, that machine m, whose power was cut at `at` while it
// ran desired on (before is its status then), is Ready again before its recovery deadline. The
// check is left (and counted) when the machine's spec changes first (it is no longer desired on
// at the generation that lost power), when its BMC misbehaves meanwhile, or when another fault
// hits it (a newer cut is checked by itself).
func (w *World) watchRecovery(m *sim.Machine, before *infrav1.Machine, at time.Time) {
	if before == nil || !before.Spec.Online || before.Status.Progress != infrav1.ProgressReady {
		return
	}
	gen, bound := before.Generation, w.RecoveryBound()
	after := m.Counters()
	w.recoveries.Go(func() {
		for {
			select {
			case <-w.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			now := time.Now()
			cur := w.Recorder.Latest()[m.Name]
			c := m.Counters()
			switch faulty, _ := w.bmcFaultBetween(m.Name, at, now); {
			case cur == nil || cur.Generation != gen:
				w.Stats.Check("recovery-superseded-by-spec")
				return
			case c.PowerCuts > after.PowerCuts || c.KubeletHangs > after.KubeletHangs:
				w.Stats.Check("recovery-superseded-by-fault")
				return
			case faulty:
				w.Stats.Check("recovery-unchecked-bmc-fault")
				return
			case cur.Status.Progress == infrav1.ProgressFailed:
				w.Stats.Violation(fmt.Sprintf("%s lost power at %s while Ready and desired on, and failed %s later (%s: %s)",
					m.Name, at.Format(time.RFC3339Nano), now.Sub(at).Round(time.Millisecond), cur.Status.LastErrorReason, cur.Status.LastError))
				return
			case w.readyAgain(cur, m):
				w.Stats.Check("recovered-after-cut")
				w.T.Logf("%s: %s Ready again %s after its power cut (bound %s before outages)",
					w.Namespace, m.Name, now.Sub(at).Round(time.Millisecond), bound)
				return
			}
			if deadline, open := w.recoveryDeadline(at, bound); !open && now.After(deadline) {
				w.Stats.Violation(fmt.Sprintf("%s lost power at %s while Ready and desired on, and is not Ready again %s later "+
					"(bound %s, %s with outages): progress %s, power state %s (%s), last repair %s, operation %s, machine %s, BMC commands since the cut: %s",
					m.Name, at.Format(time.RFC3339Nano), now.Sub(at).Round(time.Millisecond), bound, deadline.Sub(at).Round(time.Millisecond),
					cur.Status.Progress, cur.Status.PowerState, cur.Status.PowerStateSource, describeRepair(cur.Status.LastRepair),
					describeOperation(cur.Status.Operation), m.Phase(), commandsSince(c, at)))
				return
			}
		}
	})
}

// readyAgain reports whether a machine runs again, in its status and in fact: Ready with its Node
// Ready, the simulated machine running.
func (w *World) readyAgain(n *infrav1.Machine, m *sim.Machine) bool {
	if n.Status.Progress != infrav1.ProgressReady || n.Status.NodeNotReadySince != nil || m.Phase() != "Running" {
		return false
	}
	core := &corev1.Node{}
	if err := w.Env.Client.Get(w.ctx, client.ObjectKey{Name: m.Name}, core); err != nil {
		return false
	}
	return machines.IsNodeReady(core)
}

func describeRepair(r *infrav1.Repair) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("%s at %s (%s)", r.Kind, r.At.UTC().Format(time.RFC3339), r.Message)
}

func describeOperation(op *infrav1.PowerOperation) string {
	if op == nil {
		return "none"
	}
	started := "not started"
	if op.AttemptStartedAt != nil {
		started = "started " + op.AttemptStartedAt.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s attempt %d %s (repair %q)", op.Action, op.Attempt, started, op.Repair)
}

// commandsSince lists the BMC commands a machine received after t.
func commandsSince(c sim.Counters, t time.Time) string {
	out := ""
	for _, r := range c.History {
		if r.At.After(t) {
			out += fmt.Sprintf("%s at %s (%s); ", r.Command, r.At.UTC().Format("15:04:05.000"), r.Phase)
		}
	}
	if out == "" {
		return "none"
	}
	return out
}
