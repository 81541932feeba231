package cli_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/agent"
)

// `homelabctl wol test` on a relayed machine: the agent of its segment sends the packets, the
// command says which agent it was, and the test request is gone afterwards.
func TestWOLTest(t *testing.T) {
	ctx := t.Context()
	ns := "wol-test"
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nic, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nic.Close() }()
	port := nic.LocalAddr().(*net.UDPAddr).Port

	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "relayed"}, Spec: infrav1.MachineSpec{
		Group: "g",
		Power: &infrav1.PowerSpec{
			Start: &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: "aa:bb:cc:dd:ee:01", BroadcastAddress: "127.0.0.1", Port: int32(port), Via: "lan-2"}}, //nolint:gosec // a UDP port
			Stop:  &infrav1.PowerDriver{Agent: &infrav1.AgentDriver{}},
		},
	}}
	if err := env.Client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	o := agent.Options{Segment: "lan-2", NodeName: "node-1", PodName: "agent-1", Namespace: ns, MetricsAddr: "0", ProbeAddr: "0", Shutdown: "off"}
	mgr, err := agent.NewManager(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(agentCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()

	out, _, err := run(t, "wol", "test", "relayed", "--kubeconfig", kubeconfig, "-n", ns)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Sent: sent 3 magic packets for aa:bb:cc:dd:ee:01 to 127.0.0.1:"+strconv.Itoa(port)) || !strings.Contains(out, "homelab-agent node-1/agent-1") {
		t.Fatalf("output:\n%s", out)
	}
	_ = nic.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	for i := range 3 {
		n, _, err := nic.ReadFromUDP(buf)
		if err != nil || n != 102 {
			t.Fatalf("packet %d: %d bytes, %v", i, n, err)
		}
	}
	list := &infrav1.AgentRequestList{}
	if err := env.Client.List(ctx, list); err != nil {
		t.Fatal(err)
	}
	for _, r := range list.Items {
		if r.Namespace == ns && r.DeletionTimestamp.IsZero() {
			t.Fatalf("the test request %s is left behind", r.Name)
		}
	}
}
