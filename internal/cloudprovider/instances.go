package cloudprovider

import (
	"context"
	"slices"
	"strings"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// Error classes of cluster-autoscaler's InstanceErrorInfo.
const (
	errorClassOutOfResources int32 = 1
	errorClassOther          int32 = 99
)

// errorCodePowerOnFailed is reported for a failed boot whose reason is unknown.
const errorCodePowerOnFailed = "PowerOnFailed"

// NodeGroupNodes lists the group's instances: every member online (creating until its Node is
// Ready, then running) and every member on its way off (deleting). A member whose boot
// failed for good is reported creating with errorInfo, so cluster-autoscaler records a failed
// scale-up, backs the group off and deletes the instance instead of waiting for it to register.
func (s *Server) NodeGroupNodes(ctx context.Context, req *pb.NodeGroupNodesRequest) (*pb.NodeGroupNodesResponse, error) {
	g, err := s.group(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	resp, _ := s.fleet.derived(keyOf(g), instancesOf).(*pb.NodeGroupNodesResponse)
	return resp, nil
}

// instancesOf builds NodeGroupNodes' answer from a group's members. The answer is shared by
// every call until the group changes: it is never modified after it is built.
func instancesOf(members []*infrav1.Machine) any {
	// Only when no member could be powered on instead does a failure mean the group is out of
	// machines (class out-of-resources), which makes cluster-autoscaler look at other groups.
	outOfMachines := true
	for _, m := range members {
		if powerOnCandidate(m) {
			outOfMachines = false
			break
		}
	}
	out := &pb.NodeGroupNodesResponse{Instances: make([]*pb.Instance, 0, len(members))}
	for _, m := range members {
		if in := instanceOf(m, outOfMachines); in != nil {
			out.Instances = append(out.Instances, in)
		}
	}
	slices.SortFunc(out.Instances, func(a, b *pb.Instance) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// instanceOf is a machine as cluster-autoscaler's instance, or nil for a machine that is off
// and meant to stay off (not an instance at all). The id is the machine's providerID, the key
// cluster-autoscaler matches Nodes by.
func instanceOf(m *infrav1.Machine, outOfMachines bool) *pb.Instance {
	st := &pb.InstanceStatus{}
	progress := m.Status.Progress
	switch {
	case !m.DeletionTimestamp.IsZero():
		st.InstanceState = pb.InstanceStatus_instanceDeleting
	case m.Spec.Online && progress == infrav1.ProgressReady:
		st.InstanceState = pb.InstanceStatus_instanceRunning
	case m.Spec.Online && failedPowerOn(m):
		st.InstanceState = pb.InstanceStatus_instanceCreating
		st.ErrorInfo = bootError(m, outOfMachines)
	case m.Spec.Online:
		st.InstanceState = pb.InstanceStatus_instanceCreating
	case progress == infrav1.ProgressOff || progress == "" || outOfRotation(m):
		return nil
	default:
		// Desired off and not off yet: shutting down, still running, or a power-off that failed.
		st.InstanceState = pb.InstanceStatus_instanceDeleting
	}
	return &pb.Instance{Id: m.ProviderIDOrDefault(), Status: st}
}

// failedPowerOn reports a machine whose power-on failed past its retries.
func failedPowerOn(m *infrav1.Machine) bool {
	op := m.Status.Operation
	return m.Status.Progress == infrav1.ProgressFailed && (op == nil || op.Action == infrav1.PowerActionOn)
}

func bootError(m *infrav1.Machine, outOfMachines bool) *pb.InstanceErrorInfo {
	code := m.Status.LastErrorReason
	if code == "" {
		code = errorCodePowerOnFailed
	}
	msg := m.Status.LastError
	if msg == "" {
		msg = "the machine failed to power on"
	}
	class := errorClassOther
	if outOfMachines {
		class = errorClassOutOfResources
	}
	return &pb.InstanceErrorInfo{ErrorCode: code, ErrorMessage: msg, InstanceErrorClass: class}
}

// powerOnCandidate reports whether a machine could be chosen by NodeGroupIncreaseSize (ignoring
// changes still in flight): desired off, not being deleted, and not failed.
func powerOnCandidate(m *infrav1.Machine) bool {
	return !m.Spec.Online && m.DeletionTimestamp.IsZero() &&
		m.Status.Progress != infrav1.ProgressFailed
}

// outOfRotation reports a machine taken out of rotation after a substitution: off and Failed
// (repair.bootFailure SubstituteAndFail). It is no instance of cluster-autoscaler's.
func outOfRotation(m *infrav1.Machine) bool {
	op := m.Status.Operation
	return m.Status.Progress == infrav1.ProgressFailed && m.Status.PowerState == infrav1.PoweredOff &&
		op != nil && op.Action == infrav1.PowerActionOff && op.Repair == infrav1.RepairSubstituted
}
