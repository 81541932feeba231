package faults

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/machine"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Failures says which Failed machines a run accepts as settled.
type Failures int

const (
	// NoFailures: nothing the run does may fail a machine (kills, restarts, writers).
	NoFailures Failures = iota
	// StuckNodeFailures: only a machine whose kubelet hung more often than the group's
	// stuckNode.maxPowerCycles may be Failed, for StuckNode: its power cycles were used up.
	StuckNodeFailures
	// AnyFailures: any Failed machine that says why (a BMC that answers 500 through every
	// attempt fails its machine, correctly).
	AnyFailures
)

// failureRefused says why a Failed machine n is not an outcome the run accepts, or "" when it is.
func (w *World) failureRefused(n *infrav1.Machine, m *sim.Machine, allow Failures) string {
	st := n.Status
	if st.LastError == "" || st.LastErrorReason == "" {
		return "Failed without saying why"
	}
	switch allow {
	case AnyFailures:
		return ""
	case StuckNodeFailures:
		if st.LastErrorReason != machine.ReasonStuckNode {
			return "only StuckNode may fail a machine here"
		}
		if hangs := m.Counters().KubeletHangs; hangs <= int(w.Repair.MaxPowerCycles) {
			return fmt.Sprintf("StuckNode after %d kubelet hangs, with %d power cycles allowed", hangs, w.Repair.MaxPowerCycles)
		}
		return ""
	}
	return "no machine may fail here"
}

// Converged lists what still differs from the desired state: a machine desired on must be
// Ready, powered on and registered Ready; one desired off must be Off, powered off and
// deregistered; no decision of the Group's scale ledger may be left to apply (one whose replica
// was killed waits for its deadline, then the survivor rolls it forward). A Failed machine counts
// as settled when allow accepts it, else it is listed too. An empty answer means the world has
// settled.
func (w *World) Converged(ctx context.Context, allow Failures) ([]string, error) {
	list := &infrav1.MachineList{}
	if err := w.Env.Client.List(ctx, list, client.InNamespace(w.Namespace)); err != nil {
		return nil, err
	}
	g := &infrav1.Group{}
	if err := w.Env.Client.Get(ctx, client.ObjectKey{Namespace: w.Namespace, Name: w.Group}, g); err != nil {
		return nil, err
	}
	byName := map[string]*infrav1.Machine{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	out := unappliedDecisions(g, byName)
	for _, n := range list.Items {
		m := w.Sim.Machine(n.Name)
		if m == nil {
			out = append(out, fmt.Sprintf("%s: no simulated machine", n.Name))
			continue
		}
		core := &corev1.Node{}
		err := w.Env.Client.Get(ctx, client.ObjectKey{Name: n.Name}, core)
		switch {
		case apierrors.IsNotFound(err):
			core = nil
		case err != nil:
			return nil, err
		}
		st := n.Status
		if st.Progress == infrav1.ProgressFailed {
			if why := w.failureRefused(&n, m, allow); why != "" {
				out = append(out, fmt.Sprintf("%s: Failed (%s: %s), desired %s: %s", n.Name, st.LastErrorReason, st.LastError, n.DesiredAction(), why))
			}
			continue
		}
		if n.Status.ObservedGeneration != n.Generation {
			out = append(out, fmt.Sprintf("%s: status reflects generation %d, spec is at %d", n.Name, st.ObservedGeneration, n.Generation))
			continue
		}
		switch n.DesiredAction() {
		case infrav1.PowerActionOn:
			if st.Progress != infrav1.ProgressReady || !m.PoweredOn() || !machines.IsNodeReady(core) {
				out = append(out, fmt.Sprintf("%s: desired on; progress %q, machine %s, core Node ready %v%s", n.Name, st.Progress, m.Phase(), machines.IsNodeReady(core), history(&n)))
			}
		default:
			if st.Progress != infrav1.ProgressOff || m.PoweredOn() || core != nil {
				out = append(out, fmt.Sprintf("%s: desired off; progress %q, machine %s, core Node present %v%s", n.Name, st.Progress, m.Phase(), core != nil, history(&n)))
			}
		}
	}
	return out, nil
}

// checkLedger records, as violations, the decisions the Group's scale ledger still lists with a
// change neither applied to its machine nor superseded by a later change of its spec: once the
// world has settled, every decision is done (a decision's replica applies it, or the next
// decision on the group rolls it forward). Pruning a done decision waits for the next decision,
// so a listed decision is no violation by itself.
func (w *World) checkLedger(ctx context.Context, machines map[string]*infrav1.Machine) {
	g := &infrav1.Group{}
	if err := w.Env.Client.Get(ctx, client.ObjectKey{Namespace: w.Namespace, Name: w.Group}, g); err != nil {
		w.Stats.Violation("reading the Group: " + err.Error())
		return
	}
	for _, d := range unappliedDecisions(g, machines) {
		w.Stats.Violation(d + " after the world settled" + w.describeLedger(ctx, machines))
	}
}

// unappliedDecisions lists the changes of the Group's scale ledger neither applied to their
// machine nor superseded by a later change of its spec.
func unappliedDecisions(g *infrav1.Group, machines map[string]*infrav1.Machine) []string {
	if g.Status.ScaleLedger == nil {
		return nil
	}
	var out []string
	for _, op := range g.Status.ScaleLedger.Ops {
		for _, c := range op.Changes {
			m := machines[c.Name]
			if m == nil || m.Generation > c.Generation || m.Spec.Online == c.On {
				continue
			}
			out = append(out, fmt.Sprintf("%s: the scale ledger's decision %s (%s, deadline %s) sets it online %v at generation %d, "+
				"and it is still at that generation, online %v,",
				c.Name, op.ID, op.Method, time.UnixMilli(op.Deadline).UTC().Format(time.RFC3339), c.On, c.Generation, m.Spec.Online))
		}
	}
	return out
}

// describeLedger says what the Group's scale ledger holds, each change with the generation its
// machine is at now, for a violation about the target size.
func (w *World) describeLedger(ctx context.Context, machines map[string]*infrav1.Machine) string {
	g := &infrav1.Group{}
	if err := w.Env.Client.Get(ctx, client.ObjectKey{Namespace: w.Namespace, Name: w.Group}, g); err != nil {
		return "; reading the Group: " + err.Error()
	}
	if g.Status.ScaleLedger == nil || len(g.Status.ScaleLedger.Ops) == 0 {
		return "; the scale ledger lists no decision"
	}
	var ops []string
	for _, op := range g.Status.ScaleLedger.Ops {
		var changes []string
		for _, c := range op.Changes {
			now := "gone"
			if m := machines[c.Name]; m != nil {
				now = fmt.Sprintf("now generation %d, online %v", m.Generation, m.Spec.Online)
			}
			changes = append(changes, fmt.Sprintf("%s online %v at generation %d (%s)", c.Name, c.On, c.Generation, now))
		}
		ops = append(ops, fmt.Sprintf("%s %s, deadline %s: %s", op.ID, op.Method,
			time.UnixMilli(op.Deadline).UTC().Format(time.RFC3339), strings.Join(changes, ", ")))
	}
	return "; the scale ledger lists " + strings.Join(ops, "; ")
}

// trailAround lists what the watch delivered of machine's progress and operation in the 10 s
// before at and the second after it, for a violation about a command at at.
func (w *World) trailAround(machine string, at time.Time) string {
	if at.IsZero() {
		return ""
	}
	steps := w.Recorder.Trail(machine, at.Add(-10*time.Second), at.Add(time.Second))
	if len(steps) == 0 {
		return "; nothing recorded around it"
	}
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.String()
	}
	return "; recorded around it: " + strings.Join(out, " | ")
}

// history says what a machine's status tells of its past: failed boots and the last repair.
func history(n *infrav1.Machine) string {
	st := n.Status
	if st.FailedBoots == 0 && st.LastRepair == nil {
		return ""
	}
	return fmt.Sprintf("; failed boots %d, last repair %s", st.FailedBoots, describeRepair(st.LastRepair))
}

// Settle waits until the world has converged (see Converged), up to timeout; what still
// differs then is recorded as violations.
func (w *World) Settle(ctx context.Context, timeout time.Duration, allow Failures) {
	var diff []string
	if testenv.Poll(timeout, 200*time.Millisecond, func() bool {
		var err error
		diff, err = w.Converged(ctx, allow)
		return err == nil && len(diff) == 0
	}) {
		return
	}
	for _, d := range diff {
		w.Stats.Violation("not converged after " + timeout.String() + ": " + d)
	}
}

// PowerStateDiffs lists the settled machines (Ready, Off, Failed) whose status does not say what
// their BMC says: the observed power state (status.powerState) must be the simulated machine's,
// read through the status driver or inferred from the Node (status.powerStateSource Driver or
// Node). A machine in a transition is left out: its transition reads what it needs, and its
// status says so once it settles.
func (w *World) PowerStateDiffs() []string {
	var out []string
	for name, n := range w.Recorder.Latest() {
		m := w.Sim.Machine(name)
		if p := n.Status.Progress; m == nil || (p != infrav1.ProgressReady && p != infrav1.ProgressOff && p != infrav1.ProgressFailed) {
			continue
		}
		want := infrav1.PoweredOff
		if m.PoweredOn() {
			want = infrav1.PoweredOn
		}
		st := n.Status
		if st.PowerStateSource != infrav1.PowerStateFromDriver && st.PowerStateSource != infrav1.PowerStateFromNode {
			out = append(out, fmt.Sprintf("%s: power state %s from source %q", name, st.PowerState, st.PowerStateSource))
		} else if st.PowerState != want {
			out = append(out, fmt.Sprintf("%s: status says %s (%s, observed %s), the BMC says %s (machine %s, progress %s)",
				name, st.PowerState, st.PowerStateSource, describeTime(st.PowerStateObservedAt), want, m.Phase(), st.Progress))
		}
	}
	slices.Sort(out)
	return out
}

func describeTime(t *metav1.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// powerStateSlack bounds, beyond the periodic observation's longest interval (its interval plus
// a fifth), how long a settled world's status may lag its BMCs: a fault window still open (at
// most 3 s in the scenarios) and a loaded machine.
const powerStateSlack = 8 * time.Second

// CheckInvariants records, as violations, every broken invariant other than convergence: a
// power command without its recorded attempt (or two power-ons for one), a target size other
// than the machines desired on (asked of every running replica), an observed power state in
// status that is not the BMC's, a human edit that did not survive, and a change of spec.online
// that no writer explains. It waits for the power-loss recovery checks still running first.
func (w *World) CheckInvariants(ctx context.Context) {
	w.recoveries.Wait()
	for _, m := range w.Sim.Machines() {
		findings, unverifiable := CommandsPerAttempt(m.Counters(), w.Recorder.OnAttempts(m.Name), w.Recorder.OffAttempts(m.Name), w.Recorder.Gaps(kindMachines))
		for _, f := range findings {
			w.Stats.Violation(m.Name + ": " + f.Text + w.trailAround(m.Name, f.At))
		}
		for range unverifiable {
			w.Stats.Check("command-unverifiable-watch-gap")
		}
	}

	list := &infrav1.MachineList{}
	if err := w.Env.Client.List(ctx, list, client.InNamespace(w.Namespace)); err != nil {
		w.Stats.Violation("listing machines: " + err.Error())
		return
	}
	desiredOn := 0
	final := map[string]*infrav1.Machine{}
	for i := range list.Items {
		n := &list.Items[i]
		final[n.Name] = n
		if n.Spec.Online {
			desiredOn++
		}
	}
	for i, m := range w.Managers {
		if !m.Running() {
			continue
		}
		var target int32
		var err error
		// The replica's cache may lag the last write by a moment.
		testenv.Poll(5*time.Second, 100*time.Millisecond, func() bool {
			target, err = w.TargetSize(ctx, i)
			return err == nil && int(target) == desiredOn
		})
		if err != nil {
			w.Stats.Violation(fmt.Sprintf("%s: NodeGroupTargetSize: %v", m.Name, err))
		} else if int(target) != desiredOn {
			w.Stats.Violation(fmt.Sprintf("%s: NodeGroupTargetSize is %d, %d machines are desired on%s", m.Name, target, desiredOn, w.describeLedger(ctx, final)))
		}
	}

	w.checkLedger(ctx, final)

	// A Failed machine is observed once per interval, so its status may be that old.
	var diff []string
	lag := w.Repair.ObserveInterval + w.Repair.ObserveInterval/5 + powerStateSlack
	if !testenv.Poll(lag, 200*time.Millisecond, func() bool { diff = w.PowerStateDiffs(); return len(diff) == 0 }) {
		for _, d := range diff {
			w.Stats.Violation(fmt.Sprintf("observed power state %s after settling: %s", lag, d))
		}
	}

	w.mu.Lock()
	edits := slices.Clone(w.edits)
	w.mu.Unlock()
	last := map[string]HumanEdit{}
	for _, e := range edits {
		if seen, ok := w.Recorder.SpecAt(e.Machine, e.Generation); ok && seen != e.Desired {
			w.Stats.Violation(fmt.Sprintf("%s: the human wrote %s at generation %d, the API showed %s", e.Machine, e.Desired, e.Generation, seen))
		}
		if e.Generation > last[e.Machine].Generation {
			last[e.Machine] = e
		}
	}
	for name, e := range last {
		n := final[name]
		switch {
		case n == nil:
			w.Stats.Violation(name + ": the machine is gone")
		case n.Generation < e.Generation:
			w.Stats.Violation(fmt.Sprintf("%s: generation went back from %d to %d", name, e.Generation, n.Generation))
		case n.Generation == e.Generation && n.DesiredAction() != e.Desired:
			w.Stats.Violation(fmt.Sprintf("%s: the human's last edit (%s) was lost: spec says %s", name, e.Desired, n.DesiredAction()))
		}
	}
	for _, m := range w.Sim.Machines() {
		for _, v := range w.unexplainedSpecChanges(m, edits) {
			w.Stats.Violation(m.Name + ": " + v)
		}
	}
	w.checkEnergy(final)
}

// energyTolerance is how far the accounted energy of a run may be from the simulator's own
// integral of its machines' draw, as a fraction of the integral, beyond the allowance for what
// the accounting cannot know at once (energyAllowance).
const energyTolerance = 0.02

// energyAllowance is how far a run's accounted energy may be off for reasons that do not grow
// with its length, in joules. An account changes state at the manager's writes, so:
//   - each finished power-on and power-off may be off by the write's distance from the
//     simulator's change: up to one confirmation of a power-off (a second) at the idle draw;
//   - a power-on attempt whose command a SIGKILL lost (recorded, never sent) counts as on until
//     its boot timeout, when the next attempt is made: a boot timeout at the idle draw for each
//     attempt after a power-on's first;
//   - a fault that changes the power state without the manager (a power cut, a button press) or
//     hides it (a BMC that errs, hangs or lies) is seen at the next observation: one observation
//     interval at the idle draw each;
//   - while the kube-apiserver is away and the manager reconnects, no status is written: a
//     power-on recorded just before, whose command waits for that write's answer, counts as on
//     meanwhile, and a change the manager observes is recorded only after it; the time away at
//     the idle draw for each machine.
func (w *World) energyAllowance() float64 {
	transitions := 0
	for _, n := range w.Recorder.Finished() {
		transitions += n
	}
	retried := 0
	for _, m := range w.Sim.Machines() {
		for _, attempt := range w.Recorder.OnAttempts(m.Name) {
			if attempt > 1 {
				retried++
			}
		}
	}
	faults := 0
	for _, n := range w.Stats.Faults() {
		faults += n
	}
	observe := w.Repair.ObserveInterval + w.Repair.ObserveInterval/5
	w.mu.Lock()
	away := w.apiserverAway
	w.mu.Unlock()
	return w.IdleWatts * (float64(transitions)*time.Second.Seconds() +
		float64(retried)*w.Opts.BootTimeout.Seconds() + float64(faults)*observe.Seconds() +
		float64(len(w.Sim.Machines()))*away.Seconds())
}

// checkEnergy checks the machines' energy accounts: none ever went back (in any write the watch
// delivered), and together they are within energyTolerance (plus energyAllowance) of what the
// simulator integrated over the same spans, [since, accountedUntil] of each machine. The
// difference is reported as a check either way, so a run says how close it came.
func (w *World) checkEnergy(final map[string]*infrav1.Machine) {
	for _, v := range w.Recorder.EnergyWentBack() {
		w.Stats.Violation("energy account went back: " + v)
	}
	accounted, simulated := 0.0, 0.0
	var each []string
	for _, m := range w.Sim.Machines() {
		n := final[m.Name]
		if n == nil || n.Status.Energy == nil {
			w.Stats.Violation(m.Name + ": no energy account")
			continue
		}
		acc := n.Status.Energy
		if _, lied := w.bmcFaultBetween(m.Name, acc.Since.Time, acc.AccountedUntil.Time); lied {
			// The account follows what the BMC says; a BMC that lies about the power state
			// makes it count the wrong state, which only the BMC can be blamed for.
			w.Stats.Check("energy-unverifiable-lying-bmc")
			continue
		}
		got, want := float64(acc.UsedJoules), m.EnergyBetween(acc.Since.Time, acc.AccountedUntil.Time)
		accounted += got
		simulated += want
		each = append(each, fmt.Sprintf("%s %.0f/%.0f J", m.Name, got, want))
	}
	diff := accounted - simulated
	w.Stats.Check(fmt.Sprintf("energy-within-%d%%", int(math.Ceil(100*math.Abs(diff)/max(simulated, 1)))))
	if allowed := energyTolerance*simulated + w.energyAllowance(); math.Abs(diff) > allowed {
		w.Stats.Violation(fmt.Sprintf("accounted energy %.0f J differs from the simulator's %.0f J by %.0f J (%.1f%%), more than the %.0f J allowed (accounted/simulated per machine: %s)",
			accounted, simulated, diff, 100*diff/max(simulated, 1), allowed, strings.Join(each, ", ")))
	}
}

// unexplainedSpecChanges matches every change of m's spec.online the watch saw to its writer: a
// human edit that created that generation (or one since the previous generation seen), or a
// decision of the group's scale ledger about m, made at an earlier generation, to the same
// value (cluster-autoscaler's IncreaseSize and DeleteNodes, the manager's Substitute and
// Adopt). Each decision explains one change. An adoption must answer an outside power-on: the
// group's policy is Adopt, and m's power button was pressed (or its BMC lied that it was on).
func (w *World) unexplainedSpecChanges(m *sim.Machine, edits []HumanEdit) []string {
	var out []string
	decisions := w.Recorder.Decisions(m.Name)
	slices.SortFunc(decisions, func(a, b Decision) int { return cmp.Compare(a.Generation, b.Generation) })
	for _, d := range decisions {
		if d.Method != methodAdopt || !d.On {
			continue
		}
		_, lied := w.bmcFaultBetween(m.Name, time.Time{}, time.Now())
		switch {
		case w.Repair.OutsidePowerOn != infrav1.OutsidePowerOnAdopt:
			out = append(out, fmt.Sprintf("adopted (ledger operation %s) while the group's outsidePowerOn is %s", d.Op, w.Repair.OutsidePowerOn))
		case m.Counters().ButtonPresses == 0 && !lied:
			out = append(out, fmt.Sprintf("adopted (ledger operation %s), but no button powered it on and its BMC never lied", d.Op))
		}
	}
	specs, seen := w.Recorder.Specs(m.Name), w.Recorder.SpecSeen(m.Name)
	gaps := append(w.Recorder.Gaps(kindMachines), w.Recorder.Gaps(kindGroups)...)
	gens := slices.Sorted(maps.Keys(specs))
	used := make([]bool, len(decisions))
	for i := 1; i < len(gens); i++ {
		prev, g := gens[i-1], gens[i]
		want := specs[g]
		if want == specs[prev] {
			continue
		}
		if inGap(gaps, seen[prev], seen[g]) {
			// The decision may have been appended and pruned while the watch was away.
			w.Stats.Check("spec-change-unverifiable-watch-gap")
			continue
		}
		if slices.ContainsFunc(edits, func(e HumanEdit) bool {
			return e.Machine == m.Name && e.Desired == want && e.Generation > prev && e.Generation <= g
		}) {
			continue
		}
		on, j := want == infrav1.PowerActionOn, -1
		for k, d := range decisions {
			if !used[k] && d.Generation < g && d.On == on {
				j = k
				break
			}
		}
		if j < 0 {
			out = append(out, fmt.Sprintf("spec.online became %s at generation %d, and no human edit or ledger decision wrote it", want, g))
			continue
		}
		used[j] = true
	}
	return out
}

// The ledger methods of the manager's own decisions: the adoption of an outside power-on, and
// the substitution of a machine whose boot timed out.
const (
	methodAdopt      = "Adopt"
	methodSubstitute = "Substitute"
)

// Finding is a broken invariant about one BMC command.
type Finding struct {
	// At is when the BMC received the command.
	At   time.Time
	Text string
}

// gapSlack widens every watch gap backwards: a write delivered just after the last event before
// the gap may carry a start time (its reconcile's) from a few seconds earlier.
const gapSlack = 5 * time.Second

// inGap reports whether any gap overlaps [from, to] (from zero: since the start).
func inGap(gaps []Gap, from, to time.Time) bool {
	for _, g := range gaps {
		if g.From.Add(-gapSlack).Before(to) && (from.IsZero() || g.To.After(from)) {
			return true
		}
	}
	return false
}

// CommandsPerAttempt matches every power command a BMC received to the attempt the manager
// recorded last before it (the manager records an attempt in status.operation before it calls
// the driver). A power-on command must follow a recorded power-on attempt, with no power-off
// attempt recorded after that one; one attempt may send one power-on, and the machine may not
// have received more power-ons in all than attempts were recorded. A power-off command must
// follow a recorded power-off attempt the same way (one attempt may send more than one: a
// graceful shutdown, then a forced power-off). A button press or a power cut is no command: the
// BMC does not see it. The history holds the last commands only. A command whose attempt may
// have been written while the watch had a gap (gaps, see Recorder.Gaps) cannot be judged: it is
// counted in unverifiable instead.
func CommandsPerAttempt(c sim.Counters, on, off map[time.Time]int32, gaps []Gap) (findings []Finding, unverifiable int) {
	onStarts, offStarts := sortedStarts(on), sortedStarts(off)
	perAttempt, packets := map[time.Time]int{}, map[time.Time]int{}
	for _, r := range c.History {
		lastOn, lastOff := lastBefore(onStarts, r.At), lastBefore(offStarts, r.At)
		if inGap(gaps, maxTime(lastOn, lastOff), r.At) {
			unverifiable++
			continue
		}
		at := r.At.Format(time.RFC3339Nano)
		found := func(format string, args ...any) {
			findings = append(findings, Finding{At: r.At, Text: fmt.Sprintf(format, args...)})
		}
		switch r.Command {
		case sim.CommandMagicPacket:
			// A relayed wake: one agent sends power.WakeOnLANSends copies; more for one attempt
			// means two agents (or one twice) served it.
			switch {
			case lastOn.IsZero():
				found("magic packet at %s before any recorded power-on attempt", at)
				continue
			case lastOff.After(lastOn):
				found("magic packet at %s after the power-off attempt recorded at %s, with no power-on attempt since", at, lastOff.Format(time.RFC3339Nano))
				continue
			}
			packets[lastOn]++
			if packets[lastOn] == power.WakeOnLANSends+1 {
				found("more than one wake (%d magic packets) for attempt %d started at %s", packets[lastOn], on[lastOn], lastOn.Format(time.RFC3339Nano))
			}
		case sim.CommandOn:
			switch {
			case lastOn.IsZero():
				found("power-on command at %s before any recorded power-on attempt", at)
				continue
			case lastOff.After(lastOn):
				found("power-on command at %s after the power-off attempt recorded at %s, with no power-on attempt since",
					at, lastOff.Format(time.RFC3339Nano))
				continue
			}
			perAttempt[lastOn]++
			if perAttempt[lastOn] == 2 {
				found("two power-on commands for attempt %d started at %s (the second at %s)", on[lastOn], lastOn.Format(time.RFC3339Nano), at)
			}
		default:
			switch {
			case lastOff.IsZero():
				found("power-off command (%s) at %s before any recorded power-off attempt", r.Command, at)
			case lastOn.After(lastOff):
				found("power-off command (%s) at %s after the power-on attempt recorded at %s, with no power-off attempt since",
					r.Command, at, lastOn.Format(time.RFC3339Nano))
			}
		}
	}
	if c.PowerOn > len(on) && len(gaps) == 0 {
		findings = append(findings, Finding{Text: fmt.Sprintf("%d power-on commands for %d recorded attempts", c.PowerOn, len(on))})
	}
	return findings, unverifiable
}

func sortedStarts(attempts map[time.Time]int32) []time.Time {
	starts := make([]time.Time, 0, len(attempts))
	for t := range attempts {
		starts = append(starts, t)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	return starts
}

// lastBefore is the latest start at or before t, or the zero time.
func lastBefore(starts []time.Time, t time.Time) time.Time {
	if i := sort.Search(len(starts), func(i int) bool { return starts[i].After(t) }) - 1; i >= 0 {
		return starts[i]
	}
	return time.Time{}
}

// Finish settles the world, checks every invariant and counts the completed power operations
// and the repairs.
func (w *World) Finish(ctx context.Context, timeout time.Duration, allow Failures) {
	w.Settle(ctx, timeout, allow)
	w.CheckInvariants(ctx)
	names := map[infrav1.Progress]string{infrav1.ProgressReady: "power-on", infrav1.ProgressOff: "power-off", infrav1.ProgressFailed: "failed"}
	for p, n := range w.Recorder.Finished() {
		w.Stats.Op(names[p], n)
	}
	for k, n := range w.Recorder.Repairs() {
		w.Stats.Op("repair:"+string(k), n)
	}
	for method, n := range w.Recorder.DecisionCounts() {
		if method == methodAdopt || method == methodSubstitute {
			w.Stats.Op("ledger:"+method, n)
		}
	}
}
