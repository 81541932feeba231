package machine

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// Rotation changes which members of a group are desired on through the group's scale ledger,
// the serialization point of cluster-autoscaler's own writes (internal/cloudprovider), so that a
// repair and a scale call never over-commit the group or choose one machine twice.
type Rotation interface {
	// Substitute sets m desired off and another member that can be powered on desired on, in one
	// decision (the group's target is unchanged). It returns the substitute's name, or
	// machines.ErrNoSubstitute.
	Substitute(ctx context.Context, m *infrav1.Machine) (string, error)
	// Adopt sets m, found running while desired off, desired on, as a scale-up of one would; it
	// fails when the group's maxSize does not allow it.
	Adopt(ctx context.Context, m *infrav1.Machine) error
}

// ReasonStuckNode fails a machine whose Node stayed NotReady through its power cycles.
const ReasonStuckNode = "StuckNode"

// nextReady decides for a running machine desired on: keep the record of its Node's readiness,
// observe, and repair what the observation shows.
func (r *Reconciler) nextReady(s *scope) transition {
	st := &s.node.Status
	ready := machines.IsNodeReady(s.core.Node)
	switch {
	case ready != (st.NodeNotReadySince == nil):
		return r.noteNode
	case r.observeDue(s):
		return r.observe
	case ready:
		return r.settleReady
	}
	since := st.NodeNotReadySince.Time
	// Without a status driver, or while its reads fail, the Node is the only evidence left.
	nodeOnly := !s.hasStatusDriver || (s.obs != nil && s.obs.source == infrav1.PowerStateFromNode)
	switch {
	case observedOff(s), nodeOnly && !s.now.Before(since.Add(s.repair.PowerLossGrace)):
		if s.repair.PowerLoss == infrav1.PowerLossPowerOn {
			return r.powerLost
		}
		return r.reportPowerLost
	case s.repair.StuckNode && s.hasStatusDriver && st.PowerState == infrav1.PoweredOn &&
		st.PowerStateSource == infrav1.PowerStateFromDriver && !s.now.Before(since.Add(s.repair.NotReadyFor)):
		return r.stuckNode
	}
	return r.settleReady
}

// noteNode records when a running machine's Node stopped being Ready (or clears it once it is
// Ready again): the grace periods of the repairs count from it, across restarts.
func (r *Reconciler) noteNode(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	ready := machines.IsNodeReady(s.core.Node)
	err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		if ready {
			st.NodeNotReadySince = nil
			return
		}
		st.NodeNotReadySince = r.ts(s)
	})
	if err == nil && !ready {
		what := "is not Ready"
		if s.core.Node == nil {
			what = "is gone"
		}
		r.eventf(s.node, corev1.EventTypeWarning, "NodeNotReady", "Observe", "the Node of the running machine %s; observing its power state", what)
		countDrift(s, "NodeNotReady")
	}
	return ctrl.Result{}, err == nil, err
}

// powerLost powers on again a machine desired on that was found off, as a new power-on
// operation with its own attempts: cluster-autoscaler sees the instance creating meanwhile.
func (r *Reconciler) powerLost(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	return r.startRepairOn(ctx, s, infrav1.RepairPowerLost, lossMessage(s)+"; powering it on again")
}

// reportPowerLost records a power loss that the group's policy (Report) does not repair. The
// machine stays Ready with its Ready condition False (PowerLost) until someone acts.
func (r *Reconciler) reportPowerLost(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	if lr := s.node.Status.LastRepair; lr != nil && lr.Kind == infrav1.RepairPowerLost && !lr.At.Before(s.node.Status.NodeNotReadySince) {
		return ctrl.Result{}, false, nil
	}
	msg := lossMessage(s) + "; the group's repair.powerLoss is Report: it is left off"
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.LastRepair = &infrav1.Repair{Kind: infrav1.RepairPowerLost, At: *r.ts(s), Message: msg}
		st.LastError, st.LastErrorReason = msg, string(infrav1.RepairPowerLost)
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	r.eventf(s.node, corev1.EventTypeWarning, string(infrav1.RepairPowerLost), "Observe", "%s", msg)
	countDrift(s, string(infrav1.RepairPowerLost))
	return ctrl.Result{}, false, nil
}

func lossMessage(s *scope) string {
	if observedOff(s) {
		return "the machine lost power: its status driver says it is off"
	}
	why := "no driver can read its power state"
	if s.hasStatusDriver {
		why = "its status driver does not answer"
	}
	return fmt.Sprintf("the machine lost power: its Node has not been Ready since %s (%s)",
		s.node.Status.NodeNotReadySince.UTC().Format(time.RFC3339), why)
}

// startRepairOn opens a power-on operation that repairs what an observation found, and runs its
// first attempt as startOn does.
func (r *Reconciler) startRepairOn(ctx context.Context, s *scope, kind infrav1.RepairKind, msg string) (ctrl.Result, bool, error) {
	res, again, err := r.openOn(ctx, s, 1, kind, msg)
	if err == nil && s.node.Status.Operation != nil && s.node.Status.Operation.Repair == kind {
		// Counted once the operation is recorded, not on every wait for the pacer.
		countDrift(s, string(kind))
		countRepair(s, kind)
	}
	return res, again, err
}

// stuckNode power-cycles a machine that is on while its Node stays NotReady, within the group's
// budget of cycles; past it, the machine fails. The cycle is a power-off without a drain (the
// Node's kubelet cannot evict anything) followed by the usual power-on.
func (r *Reconciler) stuckNode(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	st := &s.node.Status
	window := recentCycles(st.PowerCycles, s.now, s.repair.CycleWindow)
	notReady := s.now.Sub(st.NodeNotReadySince.Time).Round(time.Second)
	if len(window) >= int(s.repair.MaxPowerCycles) {
		msg := fmt.Sprintf("the Node stayed NotReady for %s after %d power cycles within %s", notReady, len(window), s.repair.CycleWindow)
		if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
			st.Progress = infrav1.ProgressFailed
			st.ProgressSince = r.ts(s)
			st.LastError, st.LastErrorReason = msg, ReasonStuckNode
			if st.Operation != nil {
				st.Operation.RetryAt = nil
			}
		}); err != nil {
			return ctrl.Result{}, false, err
		}
		r.eventf(s.node, corev1.EventTypeWarning, "Failed", "Repair", "%s", msg)
		return ctrl.Result{}, false, nil
	}
	slot, _ := power.SlotFor(s.eff, power.ActionOff)
	if !canForceOff(slot) {
		log.FromContext(ctx).V(1).Info("a stuck Node is not power-cycled: its stop driver cannot force the power off", "driver", driverName(slot))
		return ctrl.Result{}, false, nil
	}
	msg := fmt.Sprintf("the machine is on but its Node has been NotReady for %s; power cycle %d of %d within %s",
		notReady, len(window)+1, s.repair.MaxPowerCycles, s.repair.CycleWindow)
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressShuttingDown
		st.ProgressSince = r.ts(s)
		st.LastShutdownTime = r.ts(s)
		st.Attempts = 1
		st.LastError, st.LastErrorReason = "", ""
		st.PowerCycles = append(recentCycles(st.PowerCycles, s.now, s.repair.CycleWindow), *r.ts(s))
		st.LastRepair = &infrav1.Repair{Kind: infrav1.RepairStuckNode, At: *r.ts(s), Message: msg}
		st.Operation = &infrav1.PowerOperation{Action: infrav1.PowerActionOff, Attempt: 1, Driver: slot.DriverName(), Repair: infrav1.RepairStuckNode}
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	r.eventf(s.node, corev1.EventTypeWarning, string(infrav1.RepairStuckNode), "Repair", "%s", msg)
	countDrift(s, string(infrav1.RepairStuckNode))
	countRepair(s, infrav1.RepairStuckNode)
	return ctrl.Result{}, true, nil
}

// recentCycles keeps the power cycles within window before now.
func recentCycles(cycles []metav1.Time, now time.Time, window time.Duration) []metav1.Time {
	var out []metav1.Time
	for _, c := range cycles {
		if now.Sub(c.Time) < window {
			out = append(out, c)
		}
	}
	return out
}

// canForceOff reports whether a stop driver cuts the power whatever the operating system does:
// a BMC's forced power-off, or a smart plug (http). ssh needs a working operating system, and
// what a Job does is unknown.
func canForceOff(slot power.Slot) bool {
	return slot.IPMI != nil || slot.Redfish != nil || slot.HTTP != nil
}

// outsidePowerOn answers a machine desired off that was found running, as the group's policy
// says: Adopt makes it desired on through the group's ledger (when maxSize allows); Enforce, or
// an adoption the group cannot take, powers it off again after a drain.
func (r *Reconciler) outsidePowerOn(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	how := "its status driver says it is on"
	if machines.IsNodeReady(s.core.Node) {
		how = "its Node " + s.core.Node.Name + " is Ready"
	}
	countDrift(s, string(infrav1.RepairOutsidePowerOn))
	if s.repair.OutsidePowerOn == infrav1.OutsidePowerOnAdopt && r.Rotation != nil {
		msg := "the machine was powered on from outside (" + how + "); adopted: it is desired on now"
		// Recorded first, like every side effect; a failed adoption is overwritten by the
		// power-off that follows it.
		if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
			st.LastRepair = &infrav1.Repair{Kind: infrav1.RepairAdopted, At: *r.ts(s), Message: msg}
		}); err != nil {
			return ctrl.Result{}, false, err
		}
		err := r.Rotation.Adopt(ctx, s.node)
		if err == nil {
			r.eventf(s.node, corev1.EventTypeWarning, string(infrav1.RepairAdopted), "Repair", "%s", msg)
			countRepair(s, infrav1.RepairAdopted)
			// The spec change brings the machine back through its watch, desired on.
			return ctrl.Result{}, false, nil
		}
		how += "; adopting it failed: " + err.Error()
	}
	return r.openOff(ctx, s, infrav1.RepairOutsidePowerOn, "the machine was powered on from outside ("+how+"); powering it off again")
}

// openOff starts a power-off that repairs an observation, with a drain first (cluster-autoscaler
// did not ask for it). Its record in status says why.
func (r *Reconciler) openOff(ctx context.Context, s *scope, kind infrav1.RepairKind, msg string) (ctrl.Result, bool, error) {
	slot, _ := power.SlotFor(s.eff, power.ActionOff)
	if err := r.write(ctx, s, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressShuttingDown
		st.ProgressSince = r.ts(s)
		st.LastShutdownTime = r.ts(s)
		st.Attempts = 1
		st.LastError, st.LastErrorReason = "", ""
		st.LastRepair = &infrav1.Repair{Kind: kind, At: *r.ts(s), Message: msg}
		st.Operation = &infrav1.PowerOperation{Action: infrav1.PowerActionOff, Attempt: 1, Driver: slot.DriverName(), Drain: true, Repair: kind}
	}); err != nil {
		return ctrl.Result{}, false, err
	}
	r.eventf(s.node, corev1.EventTypeWarning, string(kind), "Repair", "%s", msg)
	countRepair(s, kind)
	return ctrl.Result{}, true, nil
}

// substituteOnBootTimeout asks the group's ledger to power another member on in place of a
// machine whose boot timed out. It returns false when no substitution happened (the policy is
// Retry, there is no other member, or the ledger write failed), and the attempt then fails as
// usual; wait is set when a decision on the machine is still being applied (a replica died
// while applying it), which the group controller rolls forward: the machine looks again soon
// instead of starting another attempt.
func (r *Reconciler) substituteOnBootTimeout(ctx context.Context, s *scope) (substituted, wait bool) {
	if r.Rotation == nil || s.repair.BootFailure == infrav1.BootFailureRetry {
		return false, false
	}
	sub, err := r.Rotation.Substitute(ctx, s.node)
	if err != nil {
		if errors.Is(err, machines.ErrDecisionPending) {
			return false, true
		}
		if !errors.Is(err, machines.ErrNoSubstitute) {
			log.FromContext(ctx).Error(err, "substituting a machine whose boot timed out; retrying it instead")
		}
		return false, false
	}
	r.eventf(s.node, corev1.EventTypeWarning, string(infrav1.RepairSubstituted), "Repair",
		"boot timed out after %s; %s is powered on in its place and this machine is powered off", bootTimeout(s), sub)
	countDrift(s, "BootTimeout")
	countRepair(s, infrav1.RepairSubstituted)
	return true, false
}
