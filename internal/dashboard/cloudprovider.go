package dashboard

import (
	"context"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// CloudProvider is what the cloud-provider gRPC server tells cluster-autoscaler.
type CloudProvider struct {
	// Configured is false when the dashboard was started without the gRPC flags.
	Configured bool `json:"configured"`
	// At is when the server last answered NodeGroups; absent before.
	At *time.Time `json:"at,omitempty"`
	// Error is why NodeGroups failed.
	Error  string           `json:"error,omitempty"`
	Groups []cli.CheckGroup `json:"groups"`
}

// askCloudProvider asks the server what cluster-autoscaler asks it (homelabctl cloudprovider
// check), each call within timeout.
func askCloudProvider(ctx context.Context, cp pb.CloudProviderClient, timeout time.Duration, now time.Time) CloudProvider {
	out := CloudProvider{Configured: true, Groups: []cli.CheckGroup{}}
	groups, err := cli.CheckNodeGroups(ctx, cp, timeout)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.At, out.Groups = &now, groups
	return out
}
