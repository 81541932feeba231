package cloudprovider

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// templateNamePrefix starts the name cluster-autoscaler gives template nodes:
// template-node-for-<node group id>-<random>[-upcoming-<n>].
const templateNamePrefix = "template-node-for-"

// PricingNodePrice is the machine's hourly rate (spec.pricing, else its Group's
// machineDefaults.pricing) times the period in hours. For a template node (cluster-autoscaler's
// price expander prices a group's template) it is the rate of the machine NodeGroupIncreaseSize
// would power on next. Unimplemented when that machine has no pricing, or the node is not ours.
func (s *Server) PricingNodePrice(ctx context.Context, req *pb.PricingNodePriceRequest) (*pb.PricingNodePriceResponse, error) {
	start, end := req.GetStartTimestamp(), req.GetEndTimestamp()
	if start == nil || end == nil {
		return nil, errorf(codes.InvalidArgument, "startTimestamp and endTimestamp are required")
	}
	if end.AsTime().Before(start.AsTime()) {
		return nil, errorf(codes.InvalidArgument, "endTimestamp %s is before startTimestamp %s", end.AsTime(), start.AsTime())
	}
	var g *infrav1.Group
	m, err := s.machineFor(ctx, req.GetNode())
	switch {
	case err != nil:
		return nil, err
	case m != nil:
		g, err = s.groupOf(ctx, m)
	default:
		m, g, err = s.nextMachineForTemplate(ctx, req.GetNode().GetName())
	}
	if err != nil {
		return nil, err
	}
	var pricing *infrav1.Pricing
	if m != nil {
		pricing = machines.PricingOf(m, g)
	}
	if pricing == nil {
		return nil, errorf(codes.Unimplemented, "no pricing for node %q", req.GetNode().GetName())
	}
	hours := end.AsTime().Sub(start.AsTime()).Hours()
	return &pb.PricingNodePriceResponse{Price: pricing.HourlyRate.AsApproximateFloat64() * hours}, nil
}

// groupOf reads a machine's Group from the cache; nil when it does not exist.
func (s *Server) groupOf(ctx context.Context, m *infrav1.Machine) (*infrav1.Group, error) {
	g := &infrav1.Group{}
	err := s.opts.Reader.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.Group}, g)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading Group %s/%s of machine %s: %w", m.Namespace, m.Spec.Group, m.Name, err)
	}
	return g, nil
}

// nextMachineForTemplate finds the group a template node's name refers to and returns the
// member NodeGroupIncreaseSize would choose next (or, when none can be powered on, the best
// ranked of all members) with its Group, or nil.
func (s *Server) nextMachineForTemplate(ctx context.Context, name string) (*infrav1.Machine, *infrav1.Group, error) {
	rest, ok := strings.CutPrefix(name, templateNamePrefix)
	if !ok {
		return nil, nil, nil
	}
	ns, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return nil, nil, nil
	}
	list := &infrav1.GroupList{}
	if err := s.opts.Reader.List(ctx, list); err != nil {
		return nil, nil, err
	}
	// Group names may contain "-": take the longest name followed by "-".
	var group *infrav1.Group
	for i := range list.Items {
		g := &list.Items[i]
		if g.Namespace == ns && strings.HasPrefix(rest, g.Name+"-") && (group == nil || len(g.Name) > len(group.Name)) {
			group = g
		}
	}
	if group == nil {
		return nil, nil, nil
	}
	members := s.members(group.Namespace, group.Name)
	if len(members) == 0 {
		return nil, nil, nil
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
	return bestPowerOn(candidates, group, cyclingOf(group, s.opts.Now())).DeepCopy(), group, nil
}

// PricingPodPrice is Unimplemented: the API has no per-pod rate, and cluster-autoscaler's price
// expander treats the node price alone as the cost of an option.
func (s *Server) PricingPodPrice(context.Context, *pb.PricingPodPriceRequest) (*pb.PricingPodPriceResponse, error) {
	return nil, errorf(codes.Unimplemented, "homelab-autoscaler prices machines, not pods")
}
