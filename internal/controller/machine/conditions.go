package machine

import (
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// setConditions derives the Ready, Reconciling and Stalled conditions from the status just written
// and what the reconcile saw. Derived, not stored separately, so they never drift from progress.
// Reconciling and Stalled carry the meanings kstatus gives them: a machine powering on or off (or
// waiting for its next attempt) is InProgress, a Failed one (or one whose Group or Node a human
// must fix) is Failed, any other is Current.
func setConditions(n *infrav1.Machine, s *scope) {
	st := &n.Status
	gen := n.Generation
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}

	switch {
	case s.group == nil:
		set(infrav1.ConditionReady, metav1.ConditionFalse, "GroupNotFound", "group "+n.Spec.Group+" does not exist")
	case st.Progress == infrav1.ProgressReady && machines.IsNodeReady(s.core.Node):
		set(infrav1.ConditionReady, metav1.ConditionTrue, "Running", "Node "+s.core.Node.Name+" is Ready")
	case st.Progress == infrav1.ProgressReady && st.PowerState == infrav1.PoweredOff:
		set(infrav1.ConditionReady, metav1.ConditionFalse, string(infrav1.RepairPowerLost), "the machine was observed off although it should run")
	case st.Progress == infrav1.ProgressReady:
		set(infrav1.ConditionReady, metav1.ConditionFalse, "NodeNotReady", "the machine runs but its Node is not Ready")
	case st.Progress == infrav1.ProgressOff && !n.Spec.Online:
		set(infrav1.ConditionReady, metav1.ConditionTrue, "PoweredOff", "the machine is off, as desired")
	case st.Progress == infrav1.ProgressFailed:
		set(infrav1.ConditionReady, metav1.ConditionFalse, "Failed", st.LastError)
	default:
		set(infrav1.ConditionReady, metav1.ConditionFalse, string(st.Progress), "power "+string(n.DesiredAction())+" not reached yet")
	}

	switch {
	case s.group == nil:
		set(infrav1.ConditionReconciling, metav1.ConditionFalse, "GroupNotFound", "no power action is taken until group "+n.Spec.Group+" exists")
	case st.Progress == infrav1.ProgressStartingUp:
		set(infrav1.ConditionReconciling, metav1.ConditionTrue, "PoweringOn", operationMessage(st))
	case st.Progress == infrav1.ProgressShuttingDown:
		set(infrav1.ConditionReconciling, metav1.ConditionTrue, "PoweringOff", operationMessage(st))
	default:
		set(infrav1.ConditionReconciling, metav1.ConditionFalse, "Idle", "no power operation in flight")
	}

	switch {
	case s.group == nil:
		set(infrav1.ConditionStalled, metav1.ConditionTrue, "GroupNotFound", "group "+n.Spec.Group+" does not exist; no power action is taken until it does")
	case s.core.Reason != "":
		// The Node that answers to the machine is refused (see machines.NodeFor): a human must
		// fix the Node's labels, the providerID or the duplicate claim. Ahead of a failure, which
		// it explains when the boot timed out for want of an adopted Node (lastError keeps it).
		set(infrav1.ConditionStalled, metav1.ConditionTrue, s.core.Reason, s.core.Conflict)
	case st.Progress == infrav1.ProgressFailed:
		set(infrav1.ConditionStalled, metav1.ConditionTrue, reasonOr(st.LastErrorReason, "Failed"), st.LastError)
	default:
		set(infrav1.ConditionStalled, metav1.ConditionFalse, "AsExpected", "nothing needs a human")
	}
}

func operationMessage(st *infrav1.MachineStatus) string {
	op := st.Operation
	if op == nil {
		return ""
	}
	msg := "attempt " + itoa(op.Attempt) + " with " + op.Driver
	if op.RetryAt != nil {
		msg += ", next attempt at " + op.RetryAt.UTC().Format("15:04:05")
	}
	if st.LastError != "" {
		msg += "; last error (" + st.LastErrorReason + "): " + st.LastError
	}
	return msg
}

func reasonOr(reason, fallback string) string {
	if reason == "" {
		return fallback
	}
	return reason
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }
