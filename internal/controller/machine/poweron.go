package machine

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// initialize adopts a machine seen for the first time: one whose Node is already Ready is
// running (never power it on again); one whose BMC says it is on, without a Ready Node, is
// taken as booting (its boot timeout applies, and a desired "off" powers it off); any other is
// taken as off. What to do next is decided anew from the adopted status.
func (r *Reconciler) initialize(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	if machines.IsNodeReady(s.core.Node) {
		res, _, err := r.markReady(ctx, s)
		return res, err == nil, err
	}
	o := r.read(ctx, s)
	s.obs = &o
	if o.source == infrav1.PowerStateFromDriver && o.state == infrav1.PoweredOn {
		slot, _ := power.SlotFor(s.eff, power.ActionOn)
		err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
			st.Progress = infrav1.ProgressStartingUp
			st.ProgressSince = r.ts(s)
			recordObservation(st, observation{state: infrav1.PoweredOn, source: infrav1.PowerStateFromDriver}, s.now)
			st.Attempts = 1
			st.Operation = &infrav1.PowerOperation{
				Action: infrav1.PowerActionOn, Attempt: 1, Driver: slot.DriverName(), AttemptStartedAt: r.mts(s), CommandDone: true,
			}
		})
		return ctrl.Result{}, err == nil, err
	}
	err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressOff
		st.ProgressSince = r.ts(s)
		if o.state == infrav1.PowerUnknown {
			// Nothing said otherwise: a machine nobody powered on is taken as off.
			o.state = infrav1.PoweredOff
		}
		recordObservation(st, o, s.now)
	})
	return ctrl.Result{}, err == nil, err
}

// nextOn decides the next transition of a machine starting up.
func (r *Reconciler) nextOn(s *scope) transition {
	op := s.node.Status.Operation
	switch {
	case op == nil || op.Action != infrav1.PowerActionOn || op.AttemptStartedAt == nil:
		return r.startOn(1)
	case machines.IsNodeReady(s.core.Node):
		return r.markReady
	case op.RetryAt != nil:
		if wait := op.RetryAt.Sub(s.now); wait > 0 {
			return waitFor(wait)
		}
		return r.startOn(op.Attempt + 1)
	}
	return r.awaitBoot
}

// startOn records power-on attempt `attempt` and then calls the driver: recorded first, so a
// restart in between never issues the attempt twice. A later attempt of a repair stays the
// repair's.
func (r *Reconciler) startOn(attempt int32) transition {
	return func(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
		var kind infrav1.RepairKind
		if op := s.node.Status.Operation; attempt > 1 && op != nil && op.Action == infrav1.PowerActionOn {
			kind = op.Repair
		}
		return r.openOn(ctx, s, attempt, kind, "")
	}
}

// openOn records power-on attempt `attempt` (of a repair of kind, when set, which msg explains)
// and calls the driver, once the manager-wide pacing admits it.
func (r *Reconciler) openOn(ctx context.Context, s *scope, attempt int32, kind infrav1.RepairKind, msg string) (ctrl.Result, bool, error) {
	if wait := r.Pacer.Admit(client.ObjectKeyFromObject(s.node), s.now, s.now.Add(bootTimeout(s))); wait > 0 {
		pacedCounter.Inc()
		log.FromContext(ctx).V(1).Info("power-on paced", "wait", wait.String())
		return ctrl.Result{RequeueAfter: wait}, false, nil
	}
	r.eventIfOffCancelled(s)
	slot, _ := power.SlotFor(s.eff, power.ActionOn)
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		if st.Progress != infrav1.ProgressStartingUp {
			st.Progress = infrav1.ProgressStartingUp
			st.ProgressSince = r.ts(s)
			st.LastStartupTime = r.ts(s)
		}
		if attempt == 1 {
			st.LastError, st.LastErrorReason = "", ""
			st.PowerOns = recentPowerOns(st.PowerOns, s.now)
		}
		if kind == infrav1.RepairPowerLost && attempt == 1 {
			st.PowerState = infrav1.PoweredOff
		}
		if msg != "" {
			st.LastRepair = &infrav1.Repair{Kind: kind, At: *r.ts(s), Message: msg}
		}
		st.Attempts = attempt
		st.Operation = &infrav1.PowerOperation{
			Action: infrav1.PowerActionOn, Attempt: attempt, Driver: slot.DriverName(), AttemptStartedAt: r.mts(s), Repair: kind,
		}
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	if msg != "" {
		r.eventf(s.node, corev1.EventTypeWarning, string(kind), "Repair", "%s", msg)
	}
	r.eventf(s.node, corev1.EventTypeNormal, "PowerOn", "PowerOn", "attempt %d of %d: powering on with %s",
		attempt, maxAttempts(s), driverName(slot))
	if _, err := r.call(ctx, s, slot, power.ActionOn); err != nil {
		return r.attemptFailed(ctx, s, err)
	}
	// The Node may be Ready already, or an asynchronous driver need looking after.
	return ctrl.Result{}, true, nil
}

// awaitBoot waits for the Node to be Ready, for an asynchronous driver to finish, or for the
// boot timeout, whichever comes first.
func (r *Reconciler) awaitBoot(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	op := s.node.Status.Operation
	slot, _ := power.SlotFor(s.eff, power.ActionOn)
	var recheck time.Duration
	if power.Async(slot) && !op.CommandDone {
		out, err := r.call(ctx, s, slot, power.ActionOn)
		if err != nil {
			return r.attemptFailed(ctx, s, err)
		}
		if out.Done {
			err := r.write(ctx, s, func(st *infrav1.MachineStatus) { st.Operation.CommandDone = true })
			return ctrl.Result{}, err == nil, err
		}
		recheck = out.RecheckAfter
	}
	deadline := op.AttemptStartedAt.Add(bootTimeout(s))
	if !s.now.Before(deadline) {
		switch substituted, wait := r.substituteOnBootTimeout(ctx, s); {
		case substituted:
			// The spec change (desired off now) brings the machine back through its watch.
			return ctrl.Result{}, false, nil
		case wait:
			return ctrl.Result{RequeueAfter: 2 * time.Second}, false, nil
		}
		return r.attemptFailed(ctx, s, &power.Error{Driver: op.Driver, Action: power.ActionOn, Class: power.Class(ReasonBootTimeout),
			Err: fmt.Errorf("the machine did not register a Ready Node within %s", bootTimeout(s))})
	}
	if recheck > 0 && recheck < deadline.Sub(s.now) {
		return ctrl.Result{RequeueAfter: recheck}, false, nil
	}
	return ctrl.Result{RequeueAfter: deadline.Sub(s.now)}, false, nil
}

// markReady records a running machine and lifts a cordon the controller itself placed.
func (r *Reconciler) markReady(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	r.eventIfOffCancelled(s)
	core := s.core.Node
	if err := r.uncordon(ctx, core); err != nil {
		return ctrl.Result{}, false, err
	}
	wasStarting := s.node.Status.Progress == infrav1.ProgressStartingUp
	// The Ready Node is the newest evidence: the machine runs. A status driver that agrees says
	// so first-hand, with the draw the machine runs at, so the energy account measures a power-on
	// from its start rather than from the next observation; one that disagrees is not believed
	// over a Ready Node (the observations that follow settle it).
	seen := observation{state: infrav1.PoweredOn, source: infrav1.PowerStateFromNode}
	switch {
	case s.obs != nil:
		if s.obs.source == infrav1.PowerStateFromDriver && s.obs.state == infrav1.PoweredOn {
			seen = *s.obs
		}
	case s.hasStatusDriver:
		if rd, err := r.readStatus(ctx, s); err == nil && rd.State == infrav1.PoweredOn {
			seen = observation{state: infrav1.PoweredOn, source: infrav1.PowerStateFromDriver, watts: rd.Watts}
			countObservation(seen)
		}
		s.obs = &seen
	}
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressReady
		st.ProgressSince = r.ts(s)
		recordObservation(st, seen, s.now)
		st.FailedBoots = 0
		st.KubernetesNode = core.Name
		st.ProviderID = s.node.ProviderIDOrDefault()
		st.LastError, st.LastErrorReason = "", ""
		if st.Operation != nil {
			st.Operation.RetryAt = nil
		}
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	if wasStarting {
		r.eventf(s.node, corev1.EventTypeNormal, "PoweredOn", "PowerOn", "Node %s is Ready", core.Name)
	}
	return ctrl.Result{}, false, nil
}

// eventIfOffCancelled says so when a machine goes from ShuttingDown back towards on: that happens
// only when it is desired on again before its power-off command went out.
func (r *Reconciler) eventIfOffCancelled(s *scope) {
	if s.node.Status.Progress == infrav1.ProgressShuttingDown {
		r.eventf(s.node, corev1.EventTypeNormal, "PowerOffCancelled", "PowerOff", "desired power state is on again before the power-off command")
	}
}

// settleReady keeps a running machine's status in step with its Node.
func (r *Reconciler) settleReady(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	if core := s.core.Node; core != nil && machines.IsNodeReady(core) {
		if err := r.uncordon(ctx, core); err != nil {
			return ctrl.Result{}, false, err
		}
	}
	return ctrl.Result{}, false, r.write(ctx, s, func(st *infrav1.MachineStatus) {
		if s.core.Node != nil {
			st.KubernetesNode = s.core.Node.Name
		}
	})
}

// recentPowerOns adds a power-on at now to the ones of the last 24 hours (the Group's
// powerCycling.maxPowerOnsPerDay counts them), keeping at most infrav1.MaxPowerOnsKept.
func recentPowerOns(ons []metav1.Time, now time.Time) []metav1.Time {
	kept := make([]metav1.Time, 0, len(ons)+1)
	for _, t := range ons {
		if now.Sub(t.Time) < 24*time.Hour {
			kept = append(kept, t)
		}
	}
	kept = append(kept, metav1.NewTime(now.Truncate(time.Second)))
	if len(kept) > infrav1.MaxPowerOnsKept {
		kept = kept[len(kept)-infrav1.MaxPowerOnsKept:]
	}
	return kept
}
