package machine

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// nextOff decides the next transition of a machine shutting down: cordon and drain, then one
// power-off command per attempt, then the confirmation that the machine is off.
func (r *Reconciler) nextOff(s *scope) transition {
	op := s.node.Status.Operation
	switch {
	case op == nil || op.Action != infrav1.PowerActionOff:
		return r.beginOff
	case op.RetryAt != nil:
		if wait := op.RetryAt.Sub(s.now); wait > 0 {
			return waitFor(wait)
		}
		return r.nextOffAttempt
	case op.AttemptStartedAt == nil:
		return r.issueOff
	}
	return r.confirmOff
}

// beginOff starts a power-off. It drains first unless cluster-autoscaler asked for this very
// power-off (it drained the node already) or a substitution did (the machine never came up).
//
// A power-off that drains opens with ShuttingDown alone: its evictions come after that record and
// before the attempt's. One that does not drain opens its first attempt in the same write and
// sends the command after it, which saves a write per power-off and is as safe: the cordon comes
// first (idempotent, and marked on the Node itself, so a restart before the write finds it and a
// decision gone stale meanwhile has it lifted by the Ready machine's own reconcile), and the
// attempt is still recorded before its command, so a restart between the write and the command
// finds an attempt recorded and never sent, which its shutdown timeout retries as the next one, as
// for any lost command.
func (r *Reconciler) beginOff(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	n := s.node
	decided, err := r.decidedPowerOff(ctx, s)
	if err != nil {
		return ctrl.Result{}, false, err
	}
	byAutoscaler := decided != nil
	sub, substituted := "", decided != nil && decided.SubstitutedBy != ""
	if substituted {
		sub = decided.SubstitutedBy
	}
	drain := !byAutoscaler && !substituted
	if !drain {
		if err := r.cordon(ctx, s.core.Node); err != nil {
			return ctrl.Result{}, false, err
		}
	}
	slot, _ := power.SlotFor(s.eff, power.ActionOff)
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressShuttingDown
		st.ProgressSince = r.ts(s)
		st.LastShutdownTime = r.ts(s)
		st.Attempts = 1
		st.LastError, st.LastErrorReason = "", ""
		st.Operation = &infrav1.PowerOperation{Action: infrav1.PowerActionOff, Attempt: 1, Driver: slot.DriverName(), Drain: drain}
		if !drain {
			st.Operation.AttemptStartedAt = r.mts(s)
		}
		if substituted {
			// Recorded here, once per substitution: this write opens the power-off it caused.
			st.Operation.Repair = infrav1.RepairSubstituted
			st.FailedBoots++
			st.LastRepair = &infrav1.Repair{Kind: infrav1.RepairSubstituted, At: *r.ts(s),
				Message: fmt.Sprintf("the boot timed out after %s; %s was powered on in its place", bootTimeout(s), sub)}
		}
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	switch {
	case substituted:
		r.eventf(n, corev1.EventTypeNormal, "PowerOff", "PowerOff", "powering off (its boot timed out; substituted by %s): attempt 1 of %d with %s",
			sub, maxAttempts(s), driverName(slot))
	case byAutoscaler:
		r.eventf(n, corev1.EventTypeNormal, "PowerOff", "PowerOff", "powering off (drained by cluster-autoscaler): attempt 1 of %d with %s",
			maxAttempts(s), driverName(slot))
	default:
		r.eventf(n, corev1.EventTypeNormal, "PowerOff", "PowerOff", "powering off (drain first)")
		return ctrl.Result{}, true, nil
	}
	return r.sendOff(ctx, s, slot)
}

// decidedPowerOff returns the record of this power-off in the Group's scale ledger, when it was
// decided there (cluster-autoscaler drained the Node, or the machine never registered one), else
// nil. The Group is read from the API, not the cache: the ledger is written before the machine's
// spec, and a cache that lags behind would cost a drain of a node cluster-autoscaler drained.
func (r *Reconciler) decidedPowerOff(ctx context.Context, s *scope) (*infrav1.DecidedPowerOff, error) {
	g := &infrav1.Group{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: s.node.Namespace, Name: s.node.Spec.Group}, g); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if g.Status.ScaleLedger == nil {
		return nil, nil
	}
	for i := range g.Status.ScaleLedger.PowerOffs {
		p := &g.Status.ScaleLedger.PowerOffs[i]
		if p.Name == s.node.Name && p.Generation == s.node.Generation {
			return p, nil
		}
	}
	return nil, nil
}

// nextOffAttempt opens the attempt after a failed one; its command is issued like the first's.
func (r *Reconciler) nextOffAttempt(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Operation.Attempt++
		st.Attempts = st.Operation.Attempt
		st.Operation.AttemptStartedAt, st.Operation.RetryAt, st.Operation.CommandDone = nil, nil, false
	})
	return ctrl.Result{}, err == nil, err
}

// issueOff cordons and drains the Node, then records the attempt and calls the driver:
// recorded first, so a restart in between never issues the attempt twice.
func (r *Reconciler) issueOff(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	n := s.node
	if res, ready, err := r.prepareOff(ctx, s); !ready || err != nil {
		return res, false, err
	}
	slot, _ := power.SlotFor(s.eff, power.ActionOff)
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Operation.AttemptStartedAt = r.mts(s)
		st.LastError, st.LastErrorReason = "", ""
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	r.eventf(n, corev1.EventTypeNormal, "PowerOff", "PowerOff", "attempt %d of %d: powering off with %s",
		n.Status.Operation.Attempt, maxAttempts(s), driverName(slot))
	return r.sendOff(ctx, s, slot)
}

// sendOff calls the driver for the attempt just recorded (status.operation.attemptStartedAt).
func (r *Reconciler) sendOff(ctx context.Context, s *scope, slot power.Slot) (ctrl.Result, bool, error) {
	out, err := r.call(ctx, s, slot, power.ActionOff)
	if err != nil {
		return r.attemptFailed(ctx, s, err)
	}
	if !power.Async(slot) {
		// A synchronous command is done when the call returns: confirm at once.
		return ctrl.Result{}, true, nil
	}
	if out.Done {
		err := r.markCommandDone(ctx, s)
		return ctrl.Result{}, err == nil, err
	}
	// The Job's completion wakes us; the deadline is the backstop.
	return ctrl.Result{RequeueAfter: shutdownTimeout(s)}, false, nil
}

// confirmOff follows an asynchronous command until it is done, then confirms the machine is off
// before the shutdown timeout.
func (r *Reconciler) confirmOff(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	op := s.node.Status.Operation
	slot, _ := power.SlotFor(s.eff, power.ActionOff)
	if !op.CommandDone && power.Async(slot) {
		// Only an asynchronous driver is called again for the same attempt: the Job it started
		// is found by name. A synchronous command whose result was not recorded (a restart right
		// after it) counts as issued; the confirmation or the timeout tells the rest.
		out, err := r.call(ctx, s, slot, power.ActionOff)
		if err != nil {
			return r.attemptFailed(ctx, s, err)
		}
		if out.Done {
			err := r.markCommandDone(ctx, s)
			return ctrl.Result{}, err == nil, err
		}
	}
	if (op.CommandDone || !power.Async(slot)) && r.confirmedOff(ctx, s) {
		return r.finishOff(ctx, s)
	}
	deadline := op.AttemptStartedAt.Add(shutdownTimeout(s))
	if !s.now.Before(deadline) {
		return r.attemptFailed(ctx, s, &power.Error{Driver: op.Driver, Action: power.ActionOff, Class: power.Class(ReasonShutdownTimeout),
			Err: fmt.Errorf("the machine was not confirmed off within %s of the power-off command", shutdownTimeout(s))})
	}
	if !op.CommandDone && power.Async(slot) {
		// The Job's completion wakes us; the deadline is the backstop.
		return ctrl.Result{RequeueAfter: deadline.Sub(s.now)}, false, nil
	}
	return ctrl.Result{RequeueAfter: min(r.ConfirmInterval, deadline.Sub(s.now))}, false, nil
}

func (r *Reconciler) markCommandDone(ctx context.Context, s *scope) error {
	if s.node.Status.Operation.CommandDone {
		return nil
	}
	return r.write(ctx, s, func(st *infrav1.MachineStatus) { st.Operation.CommandDone = true })
}

// prepareOff cordons the Node and, when asked to, drains it. ready is false while pods
// remain; a drain that outlives the shutdown timeout fails the power-off (protected pods are
// never killed by turning the power off under them).
func (r *Reconciler) prepareOff(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	n, core := s.node, s.core.Node
	if core == nil {
		return ctrl.Result{}, true, nil
	}
	if err := r.cordon(ctx, core); err != nil {
		return ctrl.Result{}, false, err
	}
	if !n.Status.Operation.Drain {
		return ctrl.Result{}, true, nil
	}
	remaining, blocked, err := r.drain(ctx, core)
	if err != nil {
		return ctrl.Result{}, false, err
	}
	if remaining == 0 {
		return ctrl.Result{}, true, nil
	}
	started := n.Status.LastShutdownTime
	if started != nil && !s.now.Before(started.Add(shutdownTimeout(s))) {
		msg := fmt.Sprintf("drain did not finish within %s: %d pods remain", shutdownTimeout(s), remaining)
		if blocked != "" {
			msg += "; " + blocked
		}
		return ctrl.Result{}, false, r.fail(ctx, s, ReasonDrainTimeout, msg)
	}
	msg := fmt.Sprintf("draining: %d pods remain", remaining)
	reason := ""
	if blocked != "" {
		msg, reason = msg+"; "+blocked, ReasonDrainBlocked
	}
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) { st.LastError, st.LastErrorReason = msg, reason }); err != nil {
		return ctrl.Result{}, false, err
	}
	if blocked != "" {
		r.eventf(n, corev1.EventTypeWarning, ReasonDrainBlocked, "Drain", "%s", msg)
	}
	return ctrl.Result{RequeueAfter: r.ConfirmInterval}, false, nil
}

// confirmedOff reports whether the machine is known to be off: by the status driver when there
// is one, else by its Node being NotReady or gone. A BMC that says Off while the machine's
// kubelet still keeps its Node Ready is not believed: a BMC can answer wrongly (a wedged
// or rebooting controller), and believing it would leave a running machine unmanaged with its
// Node deleted. The attempt then runs into its shutdown timeout and is retried.
func (r *Reconciler) confirmedOff(ctx context.Context, s *scope) bool {
	rd, err := r.readStatus(ctx, s)
	switch {
	case err == nil:
		s.obs = &observation{state: rd.State, source: infrav1.PowerStateFromDriver, watts: rd.Watts}
		return rd.State == infrav1.PoweredOff && !machines.IsNodeReady(s.core.Node)
	case !errors.Is(err, errNoStatusDriver):
		// Said, not hidden: a misconfigured power.status would otherwise go unnoticed.
		r.eventf(s.node, corev1.EventTypeWarning, "StatusReadFailed", "PowerStatus",
			"reading the power state failed (%s): %v; confirming by the Node instead", power.ClassOf(err), err)
	}
	return !machines.IsNodeReady(s.core.Node)
}

// errNoStatusDriver means no configured driver can read the machine's power state.
var errNoStatusDriver = errors.New("no driver can read the power state")

// readStatus asks the machine's status driver (power.status, spec.bmc, or a start/stop driver
// that can) for its power state and, from a driver that measures it, its power draw in the same
// visit.
func (r *Reconciler) readStatus(ctx context.Context, s *scope) (power.Reading, error) {
	slot, ok := power.SlotFor(s.eff, power.ActionStatus)
	if !ok {
		return power.Reading{State: infrav1.PowerUnknown}, errNoStatusDriver
	}
	drv, err := r.Drivers.For(slot, power.ActionStatus)
	if err != nil {
		return power.Reading{State: infrav1.PowerUnknown}, err
	}
	cctx, cancel := context.WithTimeout(ctx, slot.Timeout)
	defer cancel()
	req := power.Request{Machine: s.eff, Action: power.ActionStatus, Slot: slot, Secrets: r.Secrets, ConfigMaps: r.ConfigMaps}
	if m, ok := drv.(power.Meter); ok {
		return m.Read(cctx, req)
	}
	state, err := drv.Status(cctx, req)
	return power.Reading{State: state}, err
}

// finishOff deletes the Node when the group's policy says so and records the machine off.
// A machine desired on again meanwhile is powered on next: nothing else would wake it (its own
// status write does not).
func (r *Reconciler) finishOff(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	if core := s.core.Node; core != nil && s.group.Spec.PowerOffPolicy != infrav1.PowerOffKeep {
		if err := r.deleteCoreNode(ctx, core); err != nil {
			return ctrl.Result{}, false, err
		}
	}
	source := infrav1.PowerStateFromNode
	if s.obs != nil {
		source = s.obs.source
	}
	outOfRotation := s.node.Status.Operation.Repair == infrav1.RepairSubstituted && s.repair.BootFailure == infrav1.BootFailureSubstituteAndFail
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressOff
		st.ProgressSince = r.ts(s)
		recordObservation(st, observation{state: infrav1.PoweredOff, source: source}, s.now)
		st.KubernetesNode = ""
		st.LastError, st.LastErrorReason = "", ""
		if outOfRotation {
			st.Progress = infrav1.ProgressFailed
			st.LastErrorReason = ReasonBootTimeout
			st.LastError = fmt.Sprintf("the boot timed out after %s and another machine was powered on in its place; "+
				"out of rotation (repair.bootFailure SubstituteAndFail) until its spec changes", bootTimeout(s))
		}
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	r.eventf(s.node, corev1.EventTypeNormal, "PoweredOff", "PowerOff", "machine is off")
	if outOfRotation {
		r.eventf(s.node, corev1.EventTypeWarning, "Failed", "Repair", "%s", s.node.Status.LastError)
	}
	return ctrl.Result{}, s.node.Spec.Online, nil
}
