package cloudprovider

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// machineFor finds the machine a node of cluster-autoscaler's stands for, with the matcher the
// Node controller uses (machines.ForNode): by providerID (registered nodes, and the fake nodes
// whose name and providerID are an instance id), else, only for a node without a providerID, by
// the name its kubelet registers as. nil means not ours. Two machines claiming one node are a
// configuration error their conditions report; the first by namespace/name is taken so the
// answer is at least stable. The returned machine is shared with the cache: read only.
func (s *Server) machineFor(ctx context.Context, n *pb.ExternalGrpcNode) (*infrav1.Machine, error) {
	if n == nil {
		return nil, nil
	}
	// No copy: CA asks for every node on every loop, and the answer only reads the machine.
	claims, err := machines.ForNode(ctx, s.opts.Reader, n.GetProviderID(), n.GetName(), client.UnsafeDisableDeepCopy)
	if err != nil || len(claims) == 0 {
		return nil, err
	}
	return &claims[0], nil
}

// members returns a group's machines from the fleet, without copying them: they are shared
// with the cache and must not be modified.
func (s *Server) members(namespace, group string) []*infrav1.Machine {
	return s.fleet.members(types.NamespacedName{Namespace: namespace, Name: group})
}
