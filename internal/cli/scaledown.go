package cli

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// grpcNodes names Machines the way cluster-autoscaler does: by their Node's name and the
// Machine's providerID.
func grpcNodes(ctx context.Context, c client.Client, ns string, machines []string) ([]*pb.ExternalGrpcNode, error) {
	var out []*pb.ExternalGrpcNode
	for _, name := range machines {
		m := &infrav1.Machine{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
			return nil, fmt.Errorf("reading Machine %s/%s: %w", ns, name, err)
		}
		out = append(out, &pb.ExternalGrpcNode{Name: m.KubernetesNodeNameOrDefault(), ProviderID: m.ProviderIDOrDefault()})
	}
	return out, nil
}
