package machine

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

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

// transition is one step of the lifecycle: at most one decision's status write and driver call
// (a call's outcome is recorded by the same transition). again asks step to decide anew from the
// status just written, in the same reconcile; false ends the reconcile with the returned result.
type transition func(ctx context.Context, s *scope) (res ctrl.Result, again bool, err error)

// maxTransitions bounds the transitions of one reconcile. The longest legitimate chain (a failed
// machine powered off and on again with a Job driver) takes seven; more means two transitions
// hand the machine back and forth, and a requeue through the workqueue keeps that from spinning
// inside one reconcile, where nothing would ever stop it.
const maxTransitions = 8

// step runs transitions from the machine's current status until one asks to wait.
func (r *Reconciler) step(ctx context.Context, s *scope) (ctrl.Result, error) {
	return r.run(ctx, s, r.next)
}

// run is step with the decision function as a parameter, so that the bound can be tested.
func (r *Reconciler) run(ctx context.Context, s *scope, decide func(*scope) transition) (ctrl.Result, error) {
	for range maxTransitions {
		res, again, err := decide(s)(ctx, s)
		if err != nil || !again {
			return res, err
		}
	}
	log.FromContext(ctx).Info("too many transitions in one reconcile; requeueing",
		"limit", maxTransitions, "progress", s.node.Status.Progress)
	return ctrl.Result{RequeueAfter: staleRequeue}, nil
}

// next decides the one transition the machine's status and desired state call for. It only
// reads; every write happens in the transition it returns.
func (r *Reconciler) next(s *scope) transition {
	n := s.node
	if s.group == nil {
		return r.record
	}
	desired := n.DesiredAction()
	op := n.Status.Operation
	switch n.Status.Progress {
	case "":
		return r.initialize
	case infrav1.ProgressOff:
		switch {
		case desired == infrav1.PowerActionOn:
			return r.onAgain(s)
		case r.observeDue(s):
			return r.observe
		case observedOn(s):
			return r.outsidePowerOn
		}
		return r.record
	case infrav1.ProgressStartingUp:
		if desired == infrav1.PowerActionOff {
			return r.beginOff
		}
		return r.nextOn(s)
	case infrav1.ProgressReady:
		if desired == infrav1.PowerActionOff {
			return r.beginOff
		}
		return r.nextReady(s)
	case infrav1.ProgressShuttingDown:
		if desired == infrav1.PowerActionOn && !offCommandSent(op) && (op == nil || op.Repair != infrav1.RepairStuckNode) {
			// Nothing was sent to the machine yet: the power-off is cancelled. (A stuck Node's
			// power cycle is a power-off of a machine desired on: it goes on.)
			return r.onAgain(s)
		}
		return r.nextOff(s)
	case infrav1.ProgressFailed:
		failedOn := op != nil && op.Action == infrav1.PowerActionOn
		if n.Generation == n.Status.ObservedGeneration && failedOn == (desired == infrav1.PowerActionOn) && !completedSince(s) {
			// Failed stays failed until a human changes the spec; its power state is still
			// observed, so that status says what the machine does.
			if r.observeDue(s) {
				return r.observe
			}
			return done
		}
		// The spec changed since the failure (a fix, or the other power state), or the Group's
		// machineDefaults now complete it: try again.
		if desired == infrav1.PowerActionOn {
			return r.onAgain(s)
		}
		return r.beginOff
	}
	return done
}

// onAgain powers a machine on that was not on its way there: one whose Node is Ready already is
// only recorded running, never powered on again.
func (r *Reconciler) onAgain(s *scope) transition {
	if machines.IsNodeReady(s.core.Node) {
		return r.markReady
	}
	return r.startOn(1)
}

// completedSince reports whether a machine that failed for an incomplete effective spec is
// complete now: its Group's machineDefaults changed, which bumps no generation of the Machine, so
// the failure's reason is what tells this case apart.
func completedSince(s *scope) bool {
	return s.node.Status.LastErrorReason == string(power.ClassIncompleteConfig) && machines.Check(s.eff) == nil
}

// driverName names a slot's driver in messages; an empty slot (nothing configured for the action)
// still reads as a sentence.
func driverName(slot power.Slot) string {
	if name := slot.DriverName(); name != "" {
		return name
	}
	return "no driver"
}

// offCommandSent reports whether a power-off command of the operation went out (or was tried):
// its current attempt was issued, or an earlier attempt was and failed. Such a power-off cannot
// be called back; it finishes, and a machine desired on again powers on after it.
func offCommandSent(op *infrav1.PowerOperation) bool {
	return op != nil && op.Action == infrav1.PowerActionOff && (op.AttemptStartedAt != nil || op.Attempt > 1)
}

// done ends the reconcile without a write: the machine waits for a human or a watch event.
func done(context.Context, *scope) (ctrl.Result, bool, error) { return ctrl.Result{}, false, nil }

// waitFor ends the reconcile until d has passed (a retry's time, a timeout).
func waitFor(d time.Duration) transition {
	return func(context.Context, *scope) (ctrl.Result, bool, error) {
		return ctrl.Result{RequeueAfter: d}, false, nil
	}
}

// record writes no change of its own but keeps observedGeneration and the conditions in step
// with what this reconcile saw (a Group that went or came, a conflicting Node).
func (r *Reconciler) record(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	return ctrl.Result{}, false, r.write(ctx, s, func(*infrav1.MachineStatus) {})
}

// attemptFailed schedules the next attempt after a backoff, or fails the machine when attempts
// are used up or the failure needs a human.
func (r *Reconciler) attemptFailed(ctx context.Context, s *scope, cause error) (ctrl.Result, bool, error) {
	n := s.node
	op := n.Status.Operation
	reason := string(power.ClassOf(cause))
	bootFailed := int32(0)
	if reason == ReasonBootTimeout {
		bootFailed = 1
	}
	if op.Attempt >= maxAttempts(s) || !power.Retryable(cause) {
		msg := fmt.Sprintf("power %s failed after %d attempts: %v", op.Action, op.Attempt, cause)
		return ctrl.Result{}, false, r.failWith(ctx, s, reason, msg, func(st *infrav1.MachineStatus) { st.FailedBoots += bootFailed })
	}
	wait := r.retryDelay(op.Attempt)
	retryAt := metav1.NewMicroTime(s.now.Add(wait))
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Operation.RetryAt = &retryAt
		st.LastError, st.LastErrorReason = errorString(cause), reason
		st.FailedBoots += bootFailed
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	r.eventf(n, corev1.EventTypeWarning, "Power"+titleAction(op.Action)+"Failed", "Power"+titleAction(op.Action),
		"attempt %d of %d failed (%s): %v; next attempt in %s", op.Attempt, maxAttempts(s), reason, cause, wait.Round(time.Second))
	return ctrl.Result{RequeueAfter: wait}, false, nil
}

// fail records a failure that no further attempt will fix by itself.
func (r *Reconciler) fail(ctx context.Context, s *scope, reason, msg string) error {
	return r.failWith(ctx, s, reason, msg, func(*infrav1.MachineStatus) {})
}

// failWith is fail with more to record in the same write.
func (r *Reconciler) failWith(ctx context.Context, s *scope, reason, msg string, also func(*infrav1.MachineStatus)) error {
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		also(st)
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

// call runs one driver action, bounded by the slot's timeout. A machine whose effective spec
// cannot be powered (machines.Check) is refused before any driver runs, as a configuration error:
// retrying would not help until a human fixes the Machine or its Group.
func (r *Reconciler) call(ctx context.Context, s *scope, slot power.Slot, action power.Action) (power.Outcome, error) {
	if err := machines.Check(s.eff); err != nil {
		return power.Outcome{}, power.Errorf(driverName(slot), action, power.ClassIncompleteConfig, "%v", err)
	}
	drv, err := r.Drivers.For(slot, action)
	if err != nil {
		return power.Outcome{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, slot.Timeout)
	defer cancel()
	op := s.node.Status.Operation
	req := power.Request{Machine: s.eff, Action: action, Slot: slot, Attempt: op.Attempt, Secrets: r.Secrets, ConfigMaps: r.ConfigMaps}
	if op.AttemptStartedAt != nil {
		req.AttemptStarted = op.AttemptStartedAt.Time
	}
	return drv.Do(cctx, req)
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
		before := fresh.Status.DeepCopy()
		mutate(&fresh.Status)
		if fresh.Status.Progress != infrav1.ProgressReady {
			// Only a running machine's Node can stop being Ready.
			fresh.Status.NodeNotReadySince = nil
		}
		fresh.Status.ObservedGeneration = fresh.Generation
		setConditions(fresh, s)
		if !equality.Semantic.DeepEqual(before, &fresh.Status) {
			// Only a write made anyway advances the energy account: it costs no write of its own.
			r.account(s, &fresh.Status)
		}
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
