package cloudprovider

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
)

// machineFor finds the machine a node of cluster-autoscaler's stands for, through the cache's
// indexes: by providerID first (registered nodes, and the fake nodes whose name and providerID
// are an instance id), then, only for a node without a providerID, by the name its kubelet
// registers as. A node that carries another providerID is never matched by name: it is some
// other machine. nil means not ours. The returned machine is shared with the cache: read only.
func (s *Server) machineFor(ctx context.Context, n *pb.ExternalGrpcNode) (*infrav1.Node, error) {
	if n == nil {
		return nil, nil
	}
	if id := n.GetProviderID(); id != "" {
		return s.oneMachine(ctx, index.NodeProviderID, id)
	}
	if name := n.GetName(); name != "" {
		return s.oneMachine(ctx, index.NodeKubernetesName, name)
	}
	return nil, nil
}

// oneMachine returns the machine an index value names. Two machines with the same provider ID
// or node name are a configuration error the Node conditions report; the first by
// namespace/name is taken so the answer is at least stable.
func (s *Server) oneMachine(ctx context.Context, field, value string) (*infrav1.Node, error) {
	list := &infrav1.NodeList{}
	// No copy: CA asks for every node on every loop, and the answer only reads the machine.
	if err := s.opts.Reader.List(ctx, list, client.MatchingFields{field: value}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("looking up machines by %s=%q: %w", field, value, err)
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	slices.SortFunc(list.Items, func(a, b infrav1.Node) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return &list.Items[0], nil
}

// members returns a group's machines from the fleet, without copying them: they are shared
// with the cache and must not be modified.
func (s *Server) members(namespace, group string) []*infrav1.Node {
	return s.fleet.members(types.NamespacedName{Namespace: namespace, Name: group})
}
