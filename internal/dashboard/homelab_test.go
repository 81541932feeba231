package dashboard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/simtest"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// homelab is a test's world: kwok keeping Nodes Ready, the manager (reconcilers and the
// cloud-provider gRPC server), homelab-sim's four Redfish machines, and a gRPC client that calls
// the server as cluster-autoscaler does.
type homelab struct {
	cfg     sim.Config
	ca      pb.CloudProviderClient
	groupID string
}

func startHomelab(t *testing.T) *homelab {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Namespace = newNamespace(t, "dash")
	cfg.Group = fmt.Sprintf("dash%d-%d", time.Now().Unix()%100000, seq.Add(1))
	cfg.Machines = 4
	cfg.Protocol = sim.ProtocolRedfish
	cfg.BootDelay, cfg.ShutdownDelay = time.Second, time.Second

	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.StartKwok(t, kubeconfig)
	o := testmanager.Options(cfg.Namespace)
	o.WriteMetrics = optimistic.NewMetrics()
	o.PowerRetryBase, o.PowerRetryCap, o.PowerConfirmInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	_, addr, _ := testmanager.Start(t, env.Config, o)

	s := simtest.Run(t, env.Client, cfg)
	w, err := optimistic.New(env.Client, env.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Apply(context.Background(), env.Client, w, s.Objects()); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &homelab{cfg: cfg, ca: pb.NewCloudProviderClient(conn), groupID: cloudprovider.GroupID(cfg.Namespace, cfg.Group)}
}

// waitMembers waits until the gRPC server's cache holds the group with all its machines (its
// maxSize is capped by the member count), as cluster-autoscaler would before scaling it.
func (h *homelab) waitMembers(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "the cloud provider to see the four machines", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := h.ca.NodeGroups(ctx, &pb.NodeGroupsRequest{})
		if err != nil {
			t.Fatalf("NodeGroups: %v", err)
		}
		for _, g := range resp.GetNodeGroups() {
			if g.GetId() == h.groupID && g.GetMaxSize() == int32(h.cfg.Machines) { //nolint:gosec // four machines
				return true
			}
		}
		return false
	})
}

func (h *homelab) increase(t *testing.T, delta int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.ca.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: h.groupID, Delta: delta}); err != nil {
		t.Fatalf("NodeGroupIncreaseSize(%d): %v", delta, err)
	}
}
