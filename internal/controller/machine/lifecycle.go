package machine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// Reasons of failures the reconciler itself detects (drivers add theirs: power.Class).
const (
	ReasonBootTimeout     = "BootTimeout"
	ReasonShutdownTimeout = "ShutdownTimeout"
	ReasonDrainBlocked    = "DrainBlocked"
	ReasonDrainTimeout    = "DrainTimeout"
)

// step runs the state machine from the machine's current progress.
func (r *Reconciler) step(ctx context.Context, s *scope) (ctrl.Result, error) {
	n := s.node
	if s.group == nil {
		return ctrl.Result{}, r.write(ctx, s, func(*infrav1.MachineStatus) {})
	}
	desired := n.DesiredAction()
	op := n.Status.Operation
	switch n.Status.Progress {
	case "":
		return r.initialize(ctx, s)
	case infrav1.ProgressOff:
		if desired == infrav1.PowerActionOn {
			return r.startOn(ctx, s, 1)
		}
		return ctrl.Result{}, r.write(ctx, s, func(*infrav1.MachineStatus) {})
	case infrav1.ProgressStartingUp:
		if desired == infrav1.PowerActionOff {
			return r.beginOff(ctx, s)
		}
		return r.continueOn(ctx, s)
	case infrav1.ProgressReady:
		if desired == infrav1.PowerActionOff {
			return r.beginOff(ctx, s)
		}
		return ctrl.Result{}, r.settleReady(ctx, s)
	case infrav1.ProgressShuttingDown:
		if desired == infrav1.PowerActionOn && (op == nil || op.AttemptStartedAt == nil) {
			// The power-off command was not issued yet: cancel it.
			return r.abortOff(ctx, s)
		}
		return r.continueOff(ctx, s)
	case infrav1.ProgressFailed:
		failedOn := op != nil && op.Action == infrav1.PowerActionOn
		switch {
		case n.Generation != n.Status.ObservedGeneration || failedOn != (desired == infrav1.PowerActionOn):
			// The spec changed since the failure (a fix, or the other power state): try again.
			if desired == infrav1.PowerActionOn {
				if machines.IsNodeReady(s.core.Node) {
					return ctrl.Result{}, r.markReady(ctx, s)
				}
				return r.startOn(ctx, s, 1)
			}
			return r.beginOff(ctx, s)
		default:
			return ctrl.Result{}, nil
		}
	}
	return ctrl.Result{}, nil
}

// initialize adopts a machine seen for the first time: one whose core Node is already Ready is
// running (never power it on again); one whose BMC says it is on, without a Ready core Node, is
// taken as booting (its boot timeout applies, and a desired "off" powers it off); any other is
// taken as off.
func (r *Reconciler) initialize(ctx context.Context, s *scope) (ctrl.Result, error) {
	if machines.IsNodeReady(s.core.Node) {
		if err := r.markReady(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	} else if state, err := r.readStatus(ctx, s); err == nil && state == infrav1.PoweredOn {
		slot, _ := power.SlotFor(s.eff, power.ActionOn)
		if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
			st.Progress = infrav1.ProgressStartingUp
			st.ProgressSince = r.ts(s)
			st.PowerState = infrav1.PoweredOn
			st.Attempts = 1
			st.Operation = &infrav1.PowerOperation{
				Action: infrav1.PowerActionOn, Attempt: 1, Driver: slot.DriverName(), AttemptStartedAt: r.mts(s), CommandDone: true,
			}
		}); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressOff
		st.ProgressSince = r.ts(s)
		st.PowerState = infrav1.PoweredOff
	}); err != nil {
		return ctrl.Result{}, err
	}
	return r.step(ctx, s)
}

// startOn records power-on attempt `attempt` and then calls the driver: recorded first, so a
// restart in between never issues the attempt twice.
func (r *Reconciler) startOn(ctx context.Context, s *scope, attempt int32) (ctrl.Result, error) {
	slot, _ := power.SlotFor(s.eff, power.ActionOn)
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		if st.Progress != infrav1.ProgressStartingUp {
			st.Progress = infrav1.ProgressStartingUp
			st.ProgressSince = r.ts(s)
			st.LastStartupTime = r.ts(s)
		}
		if attempt == 1 {
			st.LastError, st.LastErrorReason = "", ""
		}
		st.Attempts = attempt
		st.Operation = &infrav1.PowerOperation{
			Action: infrav1.PowerActionOn, Attempt: attempt, Driver: slot.DriverName(), AttemptStartedAt: r.mts(s),
		}
	}); err != nil {
		return ctrl.Result{}, err
	}
	r.eventf(s.node, corev1.EventTypeNormal, "PowerOn", "PowerOn", "attempt %d of %d: powering on with %s",
		attempt, maxAttempts(s), slot.DriverName())
	if _, err := r.call(ctx, s, slot, power.ActionOn); err != nil {
		return r.attemptFailed(ctx, s, err)
	}
	return r.continueOn(ctx, s)
}

// continueOn waits for the core Node to be Ready, for an asynchronous driver to finish, for the
// next attempt's time or for the boot timeout, whichever comes first.
func (r *Reconciler) continueOn(ctx context.Context, s *scope) (ctrl.Result, error) {
	n := s.node
	op := n.Status.Operation
	if op == nil || op.Action != infrav1.PowerActionOn || op.AttemptStartedAt == nil {
		return r.startOn(ctx, s, 1)
	}
	if machines.IsNodeReady(s.core.Node) {
		return ctrl.Result{}, r.markReady(ctx, s)
	}
	if op.RetryAt != nil {
		if wait := op.RetryAt.Sub(s.now); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		return r.startOn(ctx, s, op.Attempt+1)
	}
	slot, _ := power.SlotFor(s.eff, power.ActionOn)
	if slot.Job != nil && !op.CommandDone {
		out, err := r.call(ctx, s, slot, power.ActionOn)
		if err != nil {
			return r.attemptFailed(ctx, s, err)
		}
		if out.Done {
			if err := r.write(ctx, s, func(st *infrav1.MachineStatus) { st.Operation.CommandDone = true }); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	deadline := op.AttemptStartedAt.Add(bootTimeout(s))
	if !s.now.Before(deadline) {
		return r.attemptFailed(ctx, s, &power.Error{Driver: op.Driver, Action: power.ActionOn, Class: power.Class(ReasonBootTimeout),
			Err: fmt.Errorf("the machine did not register a Ready core Node within %s", bootTimeout(s))})
	}
	return ctrl.Result{RequeueAfter: deadline.Sub(s.now)}, nil
}

// markReady records a running machine and lifts a cordon the controller itself placed.
func (r *Reconciler) markReady(ctx context.Context, s *scope) error {
	core := s.core.Node
	if err := r.uncordon(ctx, core); err != nil {
		return err
	}
	wasStarting := s.node.Status.Progress == infrav1.ProgressStartingUp
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressReady
		st.ProgressSince = r.ts(s)
		st.PowerState = infrav1.PoweredOn
		st.KubernetesNode = core.Name
		st.ProviderID = s.node.ProviderIDOrDefault()
		st.LastError, st.LastErrorReason = "", ""
		if st.Operation != nil {
			st.Operation.RetryAt = nil
		}
	}); err != nil {
		return err
	}
	if wasStarting {
		r.eventf(s.node, corev1.EventTypeNormal, "PoweredOn", "PowerOn", "core Node %s is Ready", core.Name)
	}
	return nil
}

// settleReady keeps a running machine's status in step with its core Node.
func (r *Reconciler) settleReady(ctx context.Context, s *scope) error {
	if core := s.core.Node; core != nil && machines.IsNodeReady(core) {
		if err := r.uncordon(ctx, core); err != nil {
			return err
		}
	}
	return r.write(ctx, s, func(st *infrav1.MachineStatus) {
		if s.core.Node != nil {
			st.KubernetesNode = s.core.Node.Name
		}
	})
}

// beginOff starts a power-off. It drains first unless cluster-autoscaler asked for this very
// power-off (it drained the node already).
func (r *Reconciler) beginOff(ctx context.Context, s *scope) (ctrl.Result, error) {
	n := s.node
	byAutoscaler := n.Annotations[infrav1.AnnotationPowerOffByAutoscaler] == strconv.FormatInt(n.Generation, 10)
	slot, _ := power.SlotFor(s.eff, power.ActionOff)
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressShuttingDown
		st.ProgressSince = r.ts(s)
		st.LastShutdownTime = r.ts(s)
		st.Attempts = 1
		st.LastError, st.LastErrorReason = "", ""
		st.Operation = &infrav1.PowerOperation{Action: infrav1.PowerActionOff, Attempt: 1, Driver: slot.DriverName(), Drain: !byAutoscaler}
	}); err != nil {
		return ctrl.Result{}, err
	}
	how := "drain first"
	if byAutoscaler {
		how = "drained by cluster-autoscaler"
	}
	r.eventf(n, corev1.EventTypeNormal, "PowerOff", "PowerOff", "powering off (%s)", how)
	return r.continueOff(ctx, s)
}

// continueOff cordons and drains (before the command), issues the power-off command once per
// attempt, then confirms the machine is off.
func (r *Reconciler) continueOff(ctx context.Context, s *scope) (ctrl.Result, error) {
	n := s.node
	op := n.Status.Operation
	if op == nil || op.Action != infrav1.PowerActionOff {
		return r.beginOff(ctx, s)
	}
	if op.RetryAt != nil {
		if wait := op.RetryAt.Sub(s.now); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
			st.Operation.Attempt++
			st.Attempts = st.Operation.Attempt
			st.Operation.AttemptStartedAt, st.Operation.RetryAt, st.Operation.CommandDone = nil, nil, false
		}); err != nil {
			return ctrl.Result{}, err
		}
		op = n.Status.Operation
	}
	slot, _ := power.SlotFor(s.eff, power.ActionOff)
	if op.AttemptStartedAt == nil {
		if res, ready, err := r.prepareOff(ctx, s); !ready || err != nil {
			return res, err
		}
		if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
			st.Operation.AttemptStartedAt = r.mts(s)
			st.LastError, st.LastErrorReason = "", ""
		}); err != nil {
			return ctrl.Result{}, err
		}
		r.eventf(n, corev1.EventTypeNormal, "PowerOff", "PowerOff", "attempt %d of %d: powering off with %s",
			n.Status.Operation.Attempt, maxAttempts(s), slot.DriverName())
		out, err := r.call(ctx, s, slot, power.ActionOff)
		if err != nil {
			return r.attemptFailed(ctx, s, err)
		}
		if slot.Job != nil && out.Done {
			if err := r.markCommandDone(ctx, s); err != nil {
				return ctrl.Result{}, err
			}
		}
	} else if !op.CommandDone && slot.Job != nil {
		// Only an asynchronous driver is called again for the same attempt: the Job it started
		// is found by name. A synchronous command whose result was not recorded (a restart right
		// after it) counts as issued; the confirmation or the timeout tells the rest.
		out, err := r.call(ctx, s, slot, power.ActionOff)
		if err != nil {
			return r.attemptFailed(ctx, s, err)
		}
		if out.Done {
			if err := r.markCommandDone(ctx, s); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	op = n.Status.Operation
	if (op.CommandDone || slot.Job == nil) && r.confirmedOff(ctx, s) {
		if err := r.finishOff(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
		if s.node.Spec.Online {
			// Desired on again after the power-off command went out: the off is finished, and
			// nothing else would wake this machine (its own status write does not), so the
			// power-on starts now.
			return r.startOn(ctx, s, 1)
		}
		return ctrl.Result{}, nil
	}
	deadline := op.AttemptStartedAt.Add(shutdownTimeout(s))
	if !s.now.Before(deadline) {
		return r.attemptFailed(ctx, s, &power.Error{Driver: op.Driver, Action: power.ActionOff, Class: power.Class(ReasonShutdownTimeout),
			Err: fmt.Errorf("the machine was not confirmed off within %s of the power-off command", shutdownTimeout(s))})
	}
	if !op.CommandDone && slot.Job != nil {
		// The Job's completion wakes us; the deadline is the backstop.
		return ctrl.Result{RequeueAfter: deadline.Sub(s.now)}, nil
	}
	return ctrl.Result{RequeueAfter: min(r.ConfirmInterval, deadline.Sub(s.now))}, nil
}

func (r *Reconciler) markCommandDone(ctx context.Context, s *scope) error {
	if s.node.Status.Operation.CommandDone {
		return nil
	}
	return r.write(ctx, s, func(st *infrav1.MachineStatus) { st.Operation.CommandDone = true })
}

// prepareOff cordons the core Node and, when asked to, drains it. ready is false while pods
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
// is one, else by its core Node being NotReady or gone. A BMC that says Off while the machine's
// kubelet still keeps its core Node Ready is not believed: a BMC can answer wrongly (a wedged
// or rebooting controller), and believing it would leave a running machine unmanaged with its
// core Node deleted. The attempt then runs into its shutdown timeout and is retried.
func (r *Reconciler) confirmedOff(ctx context.Context, s *scope) bool {
	state, err := r.readStatus(ctx, s)
	switch {
	case err == nil:
		return state == infrav1.PoweredOff && !machines.IsNodeReady(s.core.Node)
	case !errors.Is(err, errNoStatusDriver):
		// Said, not hidden: a misconfigured power.status would otherwise go unnoticed.
		r.eventf(s.node, corev1.EventTypeWarning, "StatusReadFailed", "PowerStatus",
			"reading the power state failed (%s): %v; confirming by the core Node instead", power.ClassOf(err), err)
	}
	return !machines.IsNodeReady(s.core.Node)
}

// errNoStatusDriver means no configured driver can read the machine's power state.
var errNoStatusDriver = errors.New("no driver can read the power state")

// readStatus asks the machine's status driver (power.status, or a start/stop driver that can)
// for its power state.
func (r *Reconciler) readStatus(ctx context.Context, s *scope) (infrav1.PowerState, error) {
	slot, ok := power.SlotFor(s.eff, power.ActionStatus)
	if !ok {
		return infrav1.PowerUnknown, errNoStatusDriver
	}
	drv, err := r.Drivers.For(slot, power.ActionStatus)
	if err != nil {
		return infrav1.PowerUnknown, err
	}
	cctx, cancel := context.WithTimeout(ctx, slot.Timeout)
	defer cancel()
	return drv.Status(cctx, power.Request{Machine: s.eff, Action: power.ActionStatus, Slot: slot, Secrets: r.Secrets, ConfigMaps: r.ConfigMaps})
}

// finishOff deletes the core Node when the group's policy says so and records the machine off.
func (r *Reconciler) finishOff(ctx context.Context, s *scope) error {
	if core := s.core.Node; core != nil && s.group.Spec.PowerOffPolicy != infrav1.PowerOffKeep {
		if err := r.deleteCoreNode(ctx, core); err != nil {
			return err
		}
	}
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressOff
		st.ProgressSince = r.ts(s)
		st.PowerState = infrav1.PoweredOff
		st.KubernetesNode = ""
		st.LastError, st.LastErrorReason = "", ""
	}); err != nil {
		return err
	}
	r.eventf(s.node, corev1.EventTypeNormal, "PoweredOff", "PowerOff", "machine is off")
	return nil
}

// abortOff cancels a power-off whose command was not issued yet.
func (r *Reconciler) abortOff(ctx context.Context, s *scope) (ctrl.Result, error) {
	r.eventf(s.node, corev1.EventTypeNormal, "PowerOffCancelled", "PowerOff", "desired power state is on again before the power-off command")
	if machines.IsNodeReady(s.core.Node) {
		return ctrl.Result{}, r.markReady(ctx, s)
	}
	return r.startOn(ctx, s, 1)
}

// attemptFailed schedules the next attempt after a backoff, or fails the machine when attempts
// are used up or the failure needs a human.
func (r *Reconciler) attemptFailed(ctx context.Context, s *scope, cause error) (ctrl.Result, error) {
	n := s.node
	op := n.Status.Operation
	reason := string(power.ClassOf(cause))
	if op.Attempt >= maxAttempts(s) || !power.Retryable(cause) {
		msg := fmt.Sprintf("power %s failed after %d attempts: %v", op.Action, op.Attempt, cause)
		return ctrl.Result{}, r.fail(ctx, s, reason, msg)
	}
	wait := r.retryDelay(op.Attempt)
	retryAt := metav1.NewMicroTime(s.now.Add(wait))
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Operation.RetryAt = &retryAt
		st.LastError, st.LastErrorReason = errorString(cause), reason
	}); err != nil {
		return ctrl.Result{}, err
	}
	r.eventf(n, corev1.EventTypeWarning, "Power"+titleAction(op.Action)+"Failed", "Power"+titleAction(op.Action),
		"attempt %d of %d failed (%s): %v; next attempt in %s", op.Attempt, maxAttempts(s), reason, cause, wait.Round(time.Second))
	return ctrl.Result{RequeueAfter: wait}, nil
}

// fail records a failure that no further attempt will fix by itself.
func (r *Reconciler) fail(ctx context.Context, s *scope, reason, msg string) error {
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressFailed
		st.ProgressSince = r.ts(s)
		st.LastError, st.LastErrorReason = msg, reason
		if st.Operation != nil {
			st.Operation.RetryAt = nil
		}
	}); err != nil {
		return err
	}
	r.eventf(s.node, corev1.EventTypeWarning, "Failed", "Power"+titleAction(s.node.Status.Operation.Action), "%s", msg)
	return nil
}

func (r *Reconciler) retryDelay(attempt int32) time.Duration {
	d := r.RetryBase
	for i := int32(1); i < attempt && d < r.RetryCap; i++ {
		d *= 2
	}
	return min(d, r.RetryCap)
}

// call runs one driver action, bounded by the slot's timeout.
func (r *Reconciler) call(ctx context.Context, s *scope, slot power.Slot, action power.Action) (power.Outcome, error) {
	if err := machines.Check(s.eff); err != nil {
		return power.Outcome{}, power.Errorf(slot.DriverName(), action, power.ClassConfig, "%v", err)
	}
	drv, err := r.Drivers.For(slot, action)
	if err != nil {
		return power.Outcome{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, slot.Timeout)
	defer cancel()
	return drv.Do(cctx, power.Request{
		Machine: s.eff, Action: action, Slot: slot, Attempt: s.node.Status.Operation.Attempt,
		Secrets: r.Secrets, ConfigMaps: r.ConfigMaps,
	})
}

// write applies mutate to the machine's status through the optimistic write path, refusing
// (errStale) if the machine's desired state or operation changed since this reconcile decided.
// It also keeps observedGeneration and the conditions in step.
func (r *Reconciler) write(ctx context.Context, s *scope, mutate func(*infrav1.MachineStatus)) error {
	n := s.node
	desired := n.Spec.Online
	progress := n.Status.Progress
	op := n.Status.Operation.DeepCopy()
	_, err := optimistic.UpdateStatus(ctx, r.Writer, n, func(fresh *infrav1.Machine) error {
		if fresh.Spec.Online != desired || fresh.Status.Progress != progress ||
			!equality.Semantic.DeepEqual(fresh.Status.Operation, op) {
			return errStale
		}
		mutate(&fresh.Status)
		fresh.Status.ObservedGeneration = fresh.Generation
		setConditions(fresh, s)
		return nil
	})
	return err
}

func (r *Reconciler) mts(s *scope) *metav1.MicroTime {
	t := metav1.NewMicroTime(s.now)
	return &t
}

func (r *Reconciler) ts(s *scope) *metav1.Time {
	t := metav1.NewTime(s.now)
	return &t
}

func (r *Reconciler) eventf(n *infrav1.Machine, kind, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(n, nil, kind, reason, action, note, args...)
	}
}

func titleAction(a infrav1.PowerAction) string {
	if a == infrav1.PowerActionOn {
		return "On"
	}
	return "Off"
}

// The effective spec (machines.Effective) always carries these three.

func maxAttempts(s *scope) int32 { return *s.eff.Spec.MaxAttempts }

func bootTimeout(s *scope) time.Duration { return s.eff.Spec.BootTimeout.Duration }

func shutdownTimeout(s *scope) time.Duration { return s.eff.Spec.ShutdownTimeout.Duration }
