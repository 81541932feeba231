package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/simtest"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// homelab is one test's world: kwok, the manager (reconcilers and the cloud-provider server),
// a running simulator, and a gRPC client connected to the server as cluster-autoscaler is.
type homelab struct {
	cfg     sim.Config
	sim     *sim.Sim
	debug   *httptest.Server
	ca      pb.CloudProviderClient
	groupID string
}

var seq atomic.Int64

// newConfig is a fast homelab of four Redfish machines in a namespace of its own, with a group
// name no other test uses (core Nodes are cluster-wide).
func newConfig(t *testing.T) sim.Config {
	t.Helper()
	n := seq.Add(1)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e2e-%d-%d", time.Now().Unix()%100000, n)}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Namespace = ns.Name
	cfg.Group = fmt.Sprintf("e2e%d-%d", time.Now().Unix()%100000, n)
	cfg.Machines = 4
	cfg.Protocol = sim.ProtocolRedfish
	cfg.BootDelay = time.Second
	cfg.ShutdownDelay = time.Second
	return cfg
}

// startHomelab starts kwok and the manager, runs the simulator for cfg, lets edit change the
// simulator's objects (a user editing the manifests before applying them), applies them and
// connects a cluster-autoscaler-like gRPC client.
func startHomelab(t *testing.T, cfg sim.Config, edit func(sim.Objects)) *homelab {
	t.Helper()
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.StartKwok(t, kubeconfig)
	addr := startManager(t, cfg.Namespace)

	s := simtest.Run(t, env.Client, cfg)
	objs := s.Objects()
	if edit != nil {
		edit(objs)
	}
	if err := sim.Apply(context.Background(), env.Client, writer, objs); err != nil {
		t.Fatal(err)
	}
	debug := httptest.NewServer(s.DebugHandler())
	t.Cleanup(debug.Close)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(withCallTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &homelab{
		cfg: cfg, sim: s, debug: debug, ca: pb.NewCloudProviderClient(conn),
		groupID: cloudprovider.GroupID(cfg.Namespace, cfg.Group),
	}
}

// startManager runs the manager as cmd/homelab-autoscaler does (app.New: the cache, the
// reconcilers with the built-in drivers, the cloud-provider gRPC server, here plaintext on
// loopback) with short retry intervals, watching one namespace. It returns the server's
// address once it serves.
func startManager(t *testing.T, namespace string) string {
	t.Helper()
	o := testmanager.Options(namespace)
	o.WriteMetrics = optimistic.NewMetrics()
	o.PowerRetryBase, o.PowerRetryCap, o.PowerConfirmInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	_, addr, _ := testmanager.Start(t, env.Config, o)
	return addr
}

// waitMembers waits until the server's cache holds the group with n members (its maxSize is
// capped by the member count), as a scale-up decided earlier would see fewer machines.
func (h *homelab) waitMembers(t *testing.T, n int32) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("the cloud provider to see %d machines", n), func() bool {
		resp, err := h.ca.NodeGroups(context.Background(), &pb.NodeGroupsRequest{})
		if err != nil {
			t.Fatalf("NodeGroups: %v", err)
		}
		for _, g := range resp.GetNodeGroups() {
			if g.GetId() == h.groupID && g.GetMaxSize() == n {
				return true
			}
		}
		return false
	})
}

// callTimeout bounds every gRPC call, as cluster-autoscaler's grpc_timeout does.
const callTimeout = 10 * time.Second

func withCallTimeout(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (h *homelab) targetSize(t *testing.T) int32 {
	t.Helper()
	resp, err := h.ca.NodeGroupTargetSize(context.Background(), &pb.NodeGroupTargetSizeRequest{Id: h.groupID})
	if err != nil {
		t.Fatalf("NodeGroupTargetSize: %v", err)
	}
	return resp.GetTargetSize()
}

func (h *homelab) increase(t *testing.T, delta int32) {
	t.Helper()
	if _, err := h.ca.NodeGroupIncreaseSize(context.Background(), &pb.NodeGroupIncreaseSizeRequest{Id: h.groupID, Delta: delta}); err != nil {
		t.Fatalf("NodeGroupIncreaseSize(%d): %v", delta, err)
	}
}

// instances returns NodeGroupNodes' answer by instance id.
func (h *homelab) instances(t *testing.T) map[string]*pb.Instance {
	t.Helper()
	resp, err := h.ca.NodeGroupNodes(context.Background(), &pb.NodeGroupNodesRequest{Id: h.groupID})
	if err != nil {
		t.Fatalf("NodeGroupNodes: %v", err)
	}
	out := map[string]*pb.Instance{}
	for _, in := range resp.GetInstances() {
		out[in.GetId()] = in
	}
	return out
}

// desiredOn lists the machines desired on, by name (what an IncreaseSize chose).
func (h *homelab) desiredOn(t *testing.T) map[string]bool {
	t.Helper()
	list := &infrav1.MachineList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(h.cfg.Namespace)); err != nil {
		t.Fatal(err)
	}
	on := map[string]bool{}
	for _, m := range list.Items {
		if m.Spec.Online {
			on[m.Name] = true
		}
	}
	return on
}

func (h *homelab) machine(t *testing.T, name string) *infrav1.Machine {
	t.Helper()
	m := &infrav1.Machine{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: h.cfg.Namespace, Name: name}, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (h *homelab) waitProgress(t *testing.T, name string, p infrav1.Progress, timeout time.Duration) *infrav1.Machine {
	t.Helper()
	var got *infrav1.Machine
	testenv.Eventually(t, timeout, name+" to be "+string(p), func() bool {
		got = h.machine(t, name)
		return got.Status.Progress == p
	})
	return got
}

// counters reads the simulator's counters through its debug API, by machine name.
func (h *homelab) counters(t *testing.T) map[string]sim.MachineReport {
	t.Helper()
	resp, err := http.Get(h.debug.URL + "/debug/counters")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /debug/counters: %s", resp.Status)
	}
	var report struct{ Machines []sim.MachineReport }
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		t.Fatal(err)
	}
	out := map[string]sim.MachineReport{}
	for _, m := range report.Machines {
		out[m.Name] = m
	}
	if len(out) != h.cfg.Machines {
		t.Fatalf("the simulator reports %d machines, want %d", len(out), h.cfg.Machines)
	}
	return out
}
