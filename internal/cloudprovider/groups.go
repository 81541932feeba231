package cloudprovider

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// GroupID is the node group id cluster-autoscaler knows a Group by: "<namespace>/<name>".
// Groups are namespaced, so the namespace is part of the id even when one namespace is watched.
func GroupID(namespace, name string) string { return namespace + "/" + name }

// parseGroupID splits a node group id, refusing anything that cannot name a Group.
func parseGroupID(id string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(id, "/")
	if !ok || ns == "" || name == "" {
		return types.NamespacedName{}, errorf(codes.InvalidArgument, "node group id %q: want <namespace>/<name>", id)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return types.NamespacedName{}, errorf(codes.InvalidArgument, "node group id %q: bad namespace: %s", id, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return types.NamespacedName{}, errorf(codes.InvalidArgument, "node group id %q: bad name: %s", id, strings.Join(errs, "; "))
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// group reads a Group from the cache by node group id: InvalidArgument for a malformed id,
// NotFound for an unknown one.
func (s *Server) group(ctx context.Context, id string) (*infrav1.Group, error) {
	key, err := parseGroupID(id)
	if err != nil {
		return nil, err
	}
	g := &infrav1.Group{}
	if err := s.opts.Reader.Get(ctx, key, g); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errorf(codes.NotFound, "node group %s: no such Group", id)
		}
		return nil, fmt.Errorf("reading Group %s: %w", key, err)
	}
	return g, nil
}

// nodeGroup is the protocol's view of a Group, identical in NodeGroups and NodeGroupForNode
// (cluster-autoscaler takes minSize and maxSize from either).
func (s *Server) nodeGroup(g *infrav1.Group) *pb.NodeGroup {
	t := s.fleet.count(types.NamespacedName{Namespace: g.Namespace, Name: g.Name})
	now := s.opts.Now()
	l := machines.LimitsOf(g, t.members, now)
	debug := fmt.Sprintf("Group %s/%s: %d members, target %d (online), min %d, max %d",
		g.Namespace, g.Name, t.members, t.on, l.Min, l.Max)
	if e := l.Explain(g, now); e != "" {
		debug += " (" + e + ")"
	}
	return &pb.NodeGroup{Id: GroupID(g.Namespace, g.Name), MinSize: l.Min, MaxSize: l.Max, Debug: debug}
}

// NodeGroups lists every Group the cache holds.
func (s *Server) NodeGroups(ctx context.Context, _ *pb.NodeGroupsRequest) (*pb.NodeGroupsResponse, error) {
	list := &infrav1.GroupList{}
	if err := s.opts.Reader.List(ctx, list); err != nil {
		return nil, fmt.Errorf("listing Groups: %w", err)
	}
	out := &pb.NodeGroupsResponse{NodeGroups: make([]*pb.NodeGroup, 0, len(list.Items))}
	for i := range list.Items {
		out.NodeGroups = append(out.NodeGroups, s.nodeGroup(&list.Items[i]))
	}
	return out, nil
}

// NodeGroupTargetSize is the number of members desired on, from the fleet's counts.
func (s *Server) NodeGroupTargetSize(ctx context.Context, req *pb.NodeGroupTargetSizeRequest) (*pb.NodeGroupTargetSizeResponse, error) {
	g, err := s.group(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	key := types.NamespacedName{Namespace: g.Namespace, Name: g.Name}
	l := readLedger(g)
	if len(l.Ops) == 0 {
		return &pb.NodeGroupTargetSizeResponse{TargetSize: s.fleet.count(key).on}, nil
	}
	// A decision being applied counts at once: a substitution writes one machine off and another
	// on, and cluster-autoscaler must never see the target step down or up in between.
	_, target := s.fleet.targetWith(key, unapplied(l, s.fleet, key.Namespace))
	return &pb.NodeGroupTargetSizeResponse{TargetSize: int32(target)}, nil //nolint:gosec // at most the members
}

// unapplied returns the ledger's changes whose machine the cache still shows at the generation
// the decision saw: an applied change (or one someone superseded) is in the cache's count already.
func unapplied(l ledger, f *fleet, ns string) map[string]ledgerChange {
	out := map[string]ledgerChange{}
	for name, c := range l.pending() {
		if m := f.machine(types.NamespacedName{Namespace: ns, Name: name}); m != nil && m.Generation == c.Generation {
			out[name] = c
		}
	}
	return out
}

// NodeGroupForNode finds the machine by providerID, then by name; anything that is not a
// member of an existing Group (control plane, foreign nodes, cluster-autoscaler's template
// nodes, unknown fake nodes) gets an empty id, never an error: an error here aborts
// cluster-autoscaler's whole scale-up.
func (s *Server) NodeGroupForNode(ctx context.Context, req *pb.NodeGroupForNodeRequest) (*pb.NodeGroupForNodeResponse, error) {
	none := &pb.NodeGroupForNodeResponse{NodeGroup: &pb.NodeGroup{}}
	m, err := s.machineFor(ctx, req.GetNode())
	if err != nil || m == nil {
		if err != nil {
			s.opts.Logger.Error(err, "looking up a node's machine; answering 'not managed'", "node", req.GetNode().GetName())
		}
		return none, nil
	}
	g := &infrav1.Group{}
	if err := s.opts.Reader.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.Group}, g); err != nil {
		if !apierrors.IsNotFound(err) {
			s.opts.Logger.Error(err, "reading a machine's Group; answering 'not managed'", "machine", m.Namespace+"/"+m.Name)
		}
		return none, nil
	}
	return &pb.NodeGroupForNodeResponse{NodeGroup: s.nodeGroup(g)}, nil
}
