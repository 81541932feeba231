package cli

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// grpcNodes names machines the way cluster-autoscaler does: by the core Node's name and the
// machine's providerID.
func grpcNodes(ctx context.Context, kf *kubeFlags, machines []string) ([]*pb.ExternalGrpcNode, error) {
	c, ns, err := kf.client()
	if err != nil {
		return nil, err
	}
	var out []*pb.ExternalGrpcNode
	for _, name := range machines {
		n := &infrav1.Machine{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, n); err != nil {
			return nil, fmt.Errorf("machine %s/%s: %w", ns, name, err)
		}
		out = append(out, &pb.ExternalGrpcNode{Name: n.KubernetesNodeNameOrDefault(), ProviderID: n.ProviderIDOrDefault()})
	}
	return out, nil
}
