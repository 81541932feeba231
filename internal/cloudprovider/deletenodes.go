package cloudprovider

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

const methodDeleteNodes = "NodeGroupDeleteNodes"

// NodeGroupDeleteNodes powers off the machines behind the given nodes, lowering the target by
// one per machine that was desired on. Nodes are matched like NodeGroupForNode (providerID, then
// name), so cluster-autoscaler's fake nodes (name = providerID = instance id) work. Every node
// must be a member of this group, or nothing changes (InvalidArgument). It is idempotent: a
// machine already desired off is not counted again, however often or concurrently it is asked.
// The power-off is marked as cluster-autoscaler's, so the node is not drained a second time. It
// refuses (FailedPrecondition) to take the target below minSize when a registered node is among
// the machines; unregistered or failed machines can always be removed.
func (s *Server) NodeGroupDeleteNodes(ctx context.Context, req *pb.NodeGroupDeleteNodesRequest) (*pb.NodeGroupDeleteNodesResponse, error) {
	started := s.opts.Now()
	if len(req.GetNodes()) == 0 {
		return nil, errorf(codes.InvalidArgument, "no nodes to delete")
	}
	g, err := s.group(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	key := keyOf(g)
	names, err := s.membersNamed(ctx, key, req.GetNodes())
	if err != nil {
		s.logWrite(methodDeleteNodes, key, nodeNames(req.GetNodes()), nil, started, err)
		return nil, err
	}
	ctx, cancel := s.writeContext(ctx)
	defer cancel()
	changes, err := s.transact(ctx, methodDeleteNodes, key, func(ctx context.Context, v *view) ([]ledgerChange, error) {
		var out []ledgerChange
		anyRegistered := false
		for _, name := range names {
			m := v.member(name)
			if m == nil {
				continue // deleted meanwhile: nothing left to power off
			}
			if c, inFlight := v.pending[name]; inFlight {
				if c.On {
					return nil, errorf(codes.Aborted, "machine %s/%s is being powered on by a concurrent call; retry", key.Namespace, name)
				}
				v.rely(c) // already decided off by a concurrent call
				continue
			}
			if !v.desiredOn(m) {
				continue
			}
			reg, err := s.registered(ctx, m)
			if err != nil {
				return nil, err
			}
			anyRegistered = anyRegistered || reg
			out = append(out, ledgerChange{Name: name, Generation: m.Generation, On: false})
		}
		if target, lim := v.size(); anyRegistered && target-int64(len(out)) < int64(lim.Min) {
			return nil, errorf(codes.FailedPrecondition, "node group %s: deleting %d nodes would take the target from %d below minSize %d%s",
				req.GetId(), len(out), target, lim.Min, v.setBy(lim))
		}
		return out, nil
	})
	s.logWrite(methodDeleteNodes, key, nodeNames(req.GetNodes()), changes, started, err)
	if err != nil {
		return nil, err
	}
	return &pb.NodeGroupDeleteNodesResponse{}, nil
}

// membersNamed resolves the nodes to machine names, refusing the whole call if any node is not
// a member of the group.
func (s *Server) membersNamed(ctx context.Context, key types.NamespacedName, nodes []*pb.ExternalGrpcNode) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for _, n := range nodes {
		m, err := s.machineFor(ctx, n)
		if err != nil {
			return nil, err
		}
		if m == nil {
			return nil, errorf(codes.InvalidArgument, "node %q (providerID %q) is not a machine of any node group", n.GetName(), n.GetProviderID())
		}
		if m.Namespace != key.Namespace || m.Spec.Group != key.Name {
			return nil, errorf(codes.InvalidArgument, "node %q (providerID %q) is machine %s/%s of node group %s, not of %s",
				n.GetName(), n.GetProviderID(), m.Namespace, m.Name, GroupID(m.Namespace, m.Spec.Group), GroupID(key.Namespace, key.Name))
		}
		if !seen[m.Name] {
			seen[m.Name] = true
			names = append(names, m.Name)
		}
	}
	return names, nil
}

// registered reports whether a machine's Node has registered (Ready or not).
func (s *Server) registered(ctx context.Context, m *infrav1.Machine) (bool, error) {
	if m.Status.Progress == infrav1.ProgressReady {
		return true, nil
	}
	match, err := machines.NodeFor(ctx, s.opts.Reader, m)
	if err != nil {
		return false, fmt.Errorf("looking up the Node of Machine %s/%s: %w", m.Namespace, m.Name, err)
	}
	return match.Node != nil, nil
}

func nodeNames(nodes []*pb.ExternalGrpcNode) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.GetName()
	}
	return out
}

func keyOf(g *infrav1.Group) types.NamespacedName {
	return types.NamespacedName{Namespace: g.Namespace, Name: g.Name}
}
