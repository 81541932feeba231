package cloudprovider

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// templateNamePrefix starts the name cluster-autoscaler gives template nodes:
// template-node-for-<node group id>-<random>[-upcoming-<n>].
const templateNamePrefix = "template-node-for-"

// PricingNodePrice is the machine's spec.pricing.hourlyRate times the period in hours. For a
// template node (cluster-autoscaler's price expander prices a group's template) it is the rate of
// the machine NodeGroupIncreaseSize would power on next. Unimplemented when that machine has no
// pricing, or the node is not ours.
func (s *Server) PricingNodePrice(ctx context.Context, req *pb.PricingNodePriceRequest) (*pb.PricingNodePriceResponse, error) {
	start, end := req.GetStartTimestamp(), req.GetEndTimestamp()
	if start == nil || end == nil {
		return nil, errorf(codes.InvalidArgument, "startTimestamp and endTimestamp are required")
	}
	if end.AsTime().Before(start.AsTime()) {
		return nil, errorf(codes.InvalidArgument, "endTimestamp %s is before startTimestamp %s", end.AsTime(), start.AsTime())
	}
	m, err := s.machineFor(ctx, req.GetNode())
	if err != nil {
		return nil, err
	}
	if m == nil {
		if m, err = s.nextMachineForTemplate(ctx, req.GetNode().GetName()); err != nil {
			return nil, err
		}
	}
	if m == nil || m.Spec.Pricing == nil {
		return nil, errorf(codes.Unimplemented, "no pricing for node %q", req.GetNode().GetName())
	}
	hours := end.AsTime().Sub(start.AsTime()).Hours()
	return &pb.PricingNodePriceResponse{Price: m.Spec.Pricing.HourlyRate.AsApproximateFloat64() * hours}, nil
}

// nextMachineForTemplate finds the group a template node's name refers to and returns the
// member NodeGroupIncreaseSize would choose next (or, when none can be powered on, the best
// ranked of all members), or nil.
func (s *Server) nextMachineForTemplate(ctx context.Context, name string) (*infrav1.Machine, error) {
	rest, ok := strings.CutPrefix(name, templateNamePrefix)
	if !ok {
		return nil, nil
	}
	ns, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return nil, nil
	}
	list := &infrav1.GroupList{}
	if err := s.opts.Reader.List(ctx, list); err != nil {
		return nil, err
	}
	// Group names may contain "-": take the longest name followed by "-".
	var key types.NamespacedName
	for i := range list.Items {
		g := &list.Items[i]
		if g.Namespace == ns && strings.HasPrefix(rest, g.Name+"-") && len(g.Name) > len(key.Name) {
			key = keyOf(g)
		}
	}
	if key.Name == "" {
		return nil, nil
	}
	members := s.members(key.Namespace, key.Name)
	if len(members) == 0 {
		return nil, nil
	}
	var candidates []*infrav1.Machine
	for _, m := range members {
		if powerOnCandidate(m) {
			candidates = append(candidates, m)
		}
	}
	if len(candidates) == 0 {
		candidates = members
	}
	return bestPowerOn(candidates).DeepCopy(), nil
}

// PricingPodPrice is Unimplemented: the API has no per-pod rate, and cluster-autoscaler's price
// expander treats the node price alone as the cost of an option.
func (s *Server) PricingPodPrice(context.Context, *pb.PricingPodPriceRequest) (*pb.PricingPodPriceResponse, error) {
	return nil, errorf(codes.Unimplemented, "homelab-autoscaler prices machines, not pods")
}
