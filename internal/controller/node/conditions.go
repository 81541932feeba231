package node

import (
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/corenode"
)

// setConditions derives the Ready, PowerOperation and Degraded conditions from the status just
// written and what the reconcile saw. Derived, not stored separately, so they never drift from
// progress.
func setConditions(n *infrav1.Node, s *scope) {
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
	case st.Progress == infrav1.ProgressReady && corenode.IsReady(s.core.Node):
		set(infrav1.ConditionReady, metav1.ConditionTrue, "Running", "core Node "+s.core.Node.Name+" is Ready")
	case st.Progress == infrav1.ProgressReady:
		set(infrav1.ConditionReady, metav1.ConditionFalse, "CoreNodeNotReady", "the machine runs but its core Node is not Ready")
	case st.Progress == infrav1.ProgressOff && n.DesiredPowerState() == infrav1.PowerOff:
		set(infrav1.ConditionReady, metav1.ConditionTrue, "PoweredOff", "the machine is off, as desired")
	case st.Progress == infrav1.ProgressFailed:
		set(infrav1.ConditionReady, metav1.ConditionFalse, "Failed", st.LastError)
	default:
		set(infrav1.ConditionReady, metav1.ConditionFalse, string(st.Progress), "power state "+string(n.DesiredPowerState())+" not reached yet")
	}

	switch st.Progress {
	case infrav1.ProgressStartingUp:
		set(infrav1.ConditionPowerOperation, metav1.ConditionTrue, "PoweringOn", operationMessage(st))
	case infrav1.ProgressShuttingDown:
		set(infrav1.ConditionPowerOperation, metav1.ConditionTrue, "PoweringOff", operationMessage(st))
	default:
		set(infrav1.ConditionPowerOperation, metav1.ConditionFalse, "Idle", "no power operation in flight")
	}

	switch {
	case s.group == nil:
		set(infrav1.ConditionDegraded, metav1.ConditionTrue, "GroupNotFound", "group "+n.Spec.Group+" does not exist; no power action is taken until it does")
	case st.Progress == infrav1.ProgressFailed:
		set(infrav1.ConditionDegraded, metav1.ConditionTrue, reasonOr(st.LastErrorReason, "Failed"), st.LastError)
	case s.core.Conflict != "":
		set(infrav1.ConditionDegraded, metav1.ConditionTrue, "ProviderIDConflict", s.core.Conflict)
	case st.LastErrorReason != "":
		set(infrav1.ConditionDegraded, metav1.ConditionTrue, st.LastErrorReason, st.LastError)
	default:
		set(infrav1.ConditionDegraded, metav1.ConditionFalse, "AsExpected", "no failure")
	}
}

func operationMessage(st *infrav1.NodeStatus) string {
	op := st.Operation
	if op == nil {
		return ""
	}
	msg := "attempt " + itoa(op.Attempt) + " with " + op.Driver
	if op.RetryAt != nil {
		msg += ", next attempt at " + op.RetryAt.UTC().Format("15:04:05")
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
