package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/agent"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	testenv.Run(m, func(e *testenv.Env) { env = e })
}

var seq atomic.Int64

// namespace creates a namespace of the test's own.
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("agent-%d-%d-%d", time.Now().Unix()%100000, os.Getpid(), seq.Add(1))}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// nic is a machine's network card: a UDP socket on 127.0.0.1 that keeps every datagram.
type nic struct {
	conn *net.UDPConn
	port int
	mu   sync.Mutex
	got  [][]byte
}

func listen(t *testing.T) *nic {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	n := &nic{conn: c, port: c.LocalAddr().(*net.UDPAddr).Port}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 2048)
		for {
			k, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.got = append(n.got, bytes.Clone(buf[:k]))
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-stopped
	})
	return n
}

// target is the nic's address as a request names it.
func (n *nic) target() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

func (n *nic) packets() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.got)
}

// count is how many datagrams equal p.
func (n *nic) count(p []byte) int {
	k := 0
	for _, q := range n.packets() {
		if bytes.Equal(q, p) {
			k++
		}
	}
	return k
}

// flush sends a marker datagram and waits until it arrived: on the loopback interface, every
// datagram sent before it (by any process) has then arrived too. It is the positive signal
// after which "nothing else was sent" can be asserted.
func (n *nic) flush(t *testing.T) {
	t.Helper()
	marker := fmt.Appendf(nil, "marker-%d", seq.Add(1))
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: n.port})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write(marker); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the marker datagram", func() bool { return n.count(marker) == 1 })
}

// expectOnly fails unless the nic received exactly want[p] copies of each packet p and nothing
// else but markers.
func (n *nic) expectOnly(t *testing.T, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, p := range n.packets() {
		if !bytes.HasPrefix(p, []byte("marker-")) {
			got[string(p)]++
		}
	}
	for p, k := range got {
		if want[p] != k {
			t.Errorf("received %d copies of the %d-byte datagram % x; want %d", k, len(p), p, want[p])
		}
	}
	for p, k := range want {
		if got[p] == 0 && k != 0 {
			t.Errorf("received no copy of the %d-byte datagram % x; want %d", len(p), p, k)
		}
	}
}

// magic is the Wake-on-LAN magic packet for mac, built here from its definition: six 0xFF bytes
// and sixteen copies of the MAC, 102 bytes.
func magic(t *testing.T, mac string) []byte {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte{0xFF}, 6)
	for range 16 {
		p = append(p, hw...)
	}
	if len(p) != 102 {
		t.Fatalf("magic packet of %d bytes", len(p))
	}
	return p
}

// request records a wake request for mac, sent to n, as the manager does.
func request(t *testing.T, ns, machine, segment, mac string, n *nic, deadline time.Time) *infrav1.AgentRequest {
	t.Helper()
	r, err := relay.Request(context.Background(), env.Client, relay.Wake{
		Namespace: ns, Machine: machine, Segment: segment, MAC: mac, Target: n.target(),
		Attempt: 1, Started: time.Now(), Deadline: deadline,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// requestShutdown records a shutdown request of attempt for the machine on node, as the manager
// does.
func requestShutdown(t *testing.T, ns, machine, node string, attempt int32, deadline time.Time) *infrav1.AgentRequest {
	t.Helper()
	r, err := relay.RequestShutdown(context.Background(), env.Client, relay.Shutdown{
		Namespace: ns, Machine: machine, Node: node, Attempt: attempt, Started: time.Now(), Deadline: deadline,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// read reads the request again from the apiserver.
func read(t *testing.T, r *infrav1.AgentRequest) *infrav1.AgentRequest {
	t.Helper()
	got := &infrav1.AgentRequest{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(r), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// waitState waits until the request is in state and returns it.
func waitState(t *testing.T, r *infrav1.AgentRequest, state relay.State, timeout time.Duration) *infrav1.AgentRequest {
	t.Helper()
	var got *infrav1.AgentRequest
	testenv.Eventually(t, timeout, r.Name+" to be "+string(state), func() bool {
		got = read(t, r)
		return relay.StateOf(got) == state
	})
	return got
}

// expectUntouched fails unless the request is still Requested and held by nobody.
func expectUntouched(t *testing.T, r *infrav1.AgentRequest) {
	t.Helper()
	got := read(t, r)
	if relay.StateOf(got) != relay.StateRequested || relay.Holder(got) != "" {
		t.Fatalf("request %s is %q held by %q; want Requested and held by nobody", r.Name, relay.StateOf(got), relay.Holder(got))
	}
}

// startAgent runs a Waker in a controller-runtime manager of its own, watching ns only, until
// the test ends.
func startAgent(t *testing.T, ns, identity string, segments ...string) {
	t.Helper()
	mgr := newManager(t, identity, agent.CacheOptions(segments, []string{ns}))
	w := &agent.Waker{Client: mgr.GetClient(), Agent: identity, Segments: segments}
	if err := w.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	run(t, identity, mgr)
}

// startAgentWith runs the agent that o describes in a controller-runtime manager of its own,
// watching ns only, until the test ends: what the command runs, in the test's process.
func startAgentWith(t *testing.T, ns string, o agent.Options) {
	t.Helper()
	o.Namespace, o.MetricsAddr, o.ProbeAddr = ns, "0", "0"
	segments := []string(nil)
	if o.Segment != "" {
		segments = strings.Split(o.Segment, ",")
	}
	mgr := newManager(t, o.Identity(), agent.CacheOptions(segments, []string{ns}))
	if err := agent.Add(mgr, o); err != nil {
		t.Fatal(err)
	}
	run(t, o.Identity(), mgr)
}

func newManager(t *testing.T, identity string, cache cache.Options) ctrl.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Logger:                 logr.FromSlogHandler(testenv.TestLogger(t, identity).Handler()),
		Cache:                  cache,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

// run starts mgr until the test ends.
func run(t *testing.T, identity string, mgr ctrl.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", identity, err)
		}
	})
}

// newClock is a settable Now for Wakers and relay calls, from now to the second.
func newClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
}
