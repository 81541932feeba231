package cloudprovider

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// caDefaults are cluster-autoscaler's own defaults (1.36.1 --help), used for any field neither
// the Group nor the request's defaults give: a missing duration would otherwise reach
// cluster-autoscaler as 0, and a MaxNodeProvisionDuration of 0 deletes every new node on the
// next loop (kubernetes/autoscaler#5935).
func caDefaults() *pb.NodeGroupAutoscalingOptions {
	return &pb.NodeGroupAutoscalingOptions{
		ScaleDownUtilizationThreshold:    0.5,
		ScaleDownGpuUtilizationThreshold: 0.5,
		ScaleDownUnneededDuration:        durationpb.New(10 * time.Minute),
		ScaleDownUnreadyDuration:         durationpb.New(20 * time.Minute),
		MaxNodeProvisionDuration:         durationpb.New(15 * time.Minute),
	}
}

// NodeGroupGetOptions is Unimplemented unless the Group sets spec.autoscalingOptions, so that
// cluster-autoscaler uses its global settings. When set, every field of the answer is filled:
// the Group's value, else the request's default, else cluster-autoscaler's default. Options the
// protocol has no field for (MaxNodeStartupTime, AllowNonAtomicScaleUpToMax) then reach
// cluster-autoscaler as zero whatever is set (kubernetes/autoscaler#10245).
func (s *Server) NodeGroupGetOptions(ctx context.Context, req *pb.NodeGroupAutoscalingOptionsRequest) (*pb.NodeGroupAutoscalingOptionsResponse, error) {
	g, err := s.group(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	o := g.Spec.AutoscalingOptions
	if o == nil {
		return nil, errorf(codes.Unimplemented, "node group %s sets no autoscalingOptions; cluster-autoscaler's global options apply", req.GetId())
	}
	out := mergeDefaults(req.GetDefaults())
	if v, ok, err := threshold(o.ScaleDownUtilizationThreshold); err != nil {
		return nil, errorf(codes.FailedPrecondition, "node group %s: scaleDownUtilizationThreshold: %v", req.GetId(), err)
	} else if ok {
		out.ScaleDownUtilizationThreshold = v
	}
	if v, ok, err := threshold(o.ScaleDownGPUUtilizationThreshold); err != nil {
		return nil, errorf(codes.FailedPrecondition, "node group %s: scaleDownGpuUtilizationThreshold: %v", req.GetId(), err)
	} else if ok {
		out.ScaleDownGpuUtilizationThreshold = v
	}
	if o.ScaleDownUnneededTime != nil {
		out.ScaleDownUnneededDuration = durationpb.New(o.ScaleDownUnneededTime.Duration)
	}
	if o.ScaleDownUnreadyTime != nil {
		out.ScaleDownUnreadyDuration = durationpb.New(o.ScaleDownUnreadyTime.Duration)
	}
	if o.MaxNodeProvisionTime != nil {
		out.MaxNodeProvisionDuration = durationpb.New(o.MaxNodeProvisionTime.Duration)
	}
	if o.ZeroOrMaxNodeScaling != nil {
		out.ZeroOrMaxNodeScaling = *o.ZeroOrMaxNodeScaling
	}
	if o.IgnoreDaemonSetsUtilization != nil {
		out.IgnoreDaemonSetsUtilization = *o.IgnoreDaemonSetsUtilization
	}
	return &pb.NodeGroupAutoscalingOptionsResponse{NodeGroupAutoscalingOptions: out}, nil
}

// mergeDefaults is the request's defaults with cluster-autoscaler's filling any duration it
// lacks (the numbers and booleans of a sent message are taken as sent, zero included).
func mergeDefaults(d *pb.NodeGroupAutoscalingOptions) *pb.NodeGroupAutoscalingOptions {
	out := caDefaults()
	if d == nil {
		return out
	}
	merged, _ := proto.Clone(d).(*pb.NodeGroupAutoscalingOptions)
	if merged.ScaleDownUnneededDuration == nil {
		merged.ScaleDownUnneededDuration = out.ScaleDownUnneededDuration
	}
	if merged.ScaleDownUnreadyDuration == nil {
		merged.ScaleDownUnreadyDuration = out.ScaleDownUnreadyDuration
	}
	if merged.MaxNodeProvisionDuration == nil {
		merged.MaxNodeProvisionDuration = out.MaxNodeProvisionDuration
	}
	return merged
}

// threshold parses an optional fraction such as "0.5".
func threshold(s *string) (float64, bool, error) {
	if s == nil {
		return 0, false, nil
	}
	v, err := strconv.ParseFloat(*s, 64)
	if err != nil {
		return 0, false, err
	}
	return v, true, nil
}
