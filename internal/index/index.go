// Package index defines the cache field indexes the controllers and the gRPC server look
// objects up by, so that no hot path lists the whole fleet.
package index

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const (
	// NodeProviderID indexes Nodes by spec.providerID.
	NodeProviderID = "spec.providerID"
	// MachineGroup indexes machines by spec.group.
	MachineGroup = "spec.group"
	// MachineProviderID indexes machines by their effective provider ID.
	MachineProviderID = "providerID"
	// MachineNodeName indexes machines by the name their Node registers as.
	MachineNodeName = "kubernetesNodeName"
)

// Register adds every index to the manager's field indexer. Call it once, before the cache starts.
func Register(ctx context.Context, fi client.FieldIndexer) error {
	if err := fi.IndexField(ctx, &corev1.Node{}, NodeProviderID, func(o client.Object) []string {
		if id := o.(*corev1.Node).Spec.ProviderID; id != "" {
			return []string{id}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := fi.IndexField(ctx, &infrav1.Machine{}, MachineGroup, func(o client.Object) []string {
		return []string{o.(*infrav1.Machine).Spec.Group}
	}); err != nil {
		return err
	}
	if err := fi.IndexField(ctx, &infrav1.Machine{}, MachineProviderID, func(o client.Object) []string {
		return []string{o.(*infrav1.Machine).ProviderIDOrDefault()}
	}); err != nil {
		return err
	}
	return fi.IndexField(ctx, &infrav1.Machine{}, MachineNodeName, func(o client.Object) []string {
		return []string{o.(*infrav1.Machine).KubernetesNodeNameOrDefault()}
	})
}
