package cloudprovider

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// machineFor finds the machine a node of cluster-autoscaler's stands for; nil means not ours.
// A node registered as a Node is judged with the matcher the Node controller and the machines'
// lifecycle use (machines.Claimants), on the labels the manager's cache has for that Node: a
// control-plane Node, one that does not opt in to the machine's namespace and one two machines
// claim stand for no machine, so cluster-autoscaler never drains or deletes them as a group's. A
// node with no Node behind it (cluster-autoscaler's fake node of an instance, named by its id) is
// matched by providerID alone. Either way a providerID homelab://NS/... only ever finds a machine
// of NS. The returned machine is shared with the cache: read only.
func (s *Server) machineFor(ctx context.Context, n *pb.ExternalGrpcNode) (*infrav1.Machine, error) {
	if n == nil {
		return nil, nil
	}
	core, err := s.registeredNode(ctx, n)
	if err != nil {
		return nil, err
	}
	// No copies: CA asks for every node on every loop, and the answer only reads the machine.
	var claims []infrav1.Machine
	switch {
	case core != nil:
		if id := n.GetProviderID(); id != "" {
			// cluster-autoscaler's copy may be newer (a providerID just written). Only this
			// call's shallow copy changes, never the cached object.
			core.Spec.ProviderID = id
		}
		claims, err = machines.Claimants(ctx, s.opts.Reader, core, client.UnsafeDisableDeepCopy)
	case n.GetProviderID() != "":
		claims, err = machines.ForNode(ctx, s.opts.Reader, n.GetProviderID(), "", client.UnsafeDisableDeepCopy)
	}
	if err != nil || len(claims) != 1 {
		return nil, err
	}
	return &claims[0], nil
}

// registeredNode is the Node of cluster-autoscaler's node's name from the cache, nil when there
// is none: a fake node (its name is its providerID, which no Node name can be), a template node,
// a Node gone or not yet seen. Shared with the cache: read only.
func (s *Server) registeredNode(ctx context.Context, n *pb.ExternalGrpcNode) (*corev1.Node, error) {
	if n.GetName() == "" || n.GetName() == n.GetProviderID() {
		return nil, nil
	}
	core := &corev1.Node{}
	err := s.opts.Reader.Get(ctx, client.ObjectKey{Name: n.GetName()}, core, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading Node %s: %w", n.GetName(), err)
	}
	return core, nil
}

// members returns a group's machines from the fleet, without copying them: they are shared
// with the cache and must not be modified.
func (s *Server) members(namespace, group string) []*infrav1.Machine {
	return s.fleet.members(types.NamespacedName{Namespace: namespace, Name: group})
}
