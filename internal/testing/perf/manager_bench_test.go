package perf_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

const (
	envManager = "BENCH_MANAGER" // the manager binary (default: built from ./cmd/homelab-autoscaler)
	// conflictsMetric counts the 409 answers the manager's optimistic writes met
	// (internal/optimistic).
	conflictsMetric = "homelab_autoscaler_optimistic_conflicts_total"
	// profilingFlag serves net/http/pprof; a manager built without it cannot be profiled, and
	// the benchmark then notes the profiles as missing.
	profilingFlag = "profiling-bind-address"
	// managerStartTimeout bounds the wait for /readyz, which passes once the caches have
	// synced and the gRPC server serves: minutes at the largest fleets.
	managerStartTimeout = 10 * time.Minute
	// leaseHolder holds the leader election Lease of a leaderless manager (managerOptions).
	leaseHolder = "benchmark"
)

// manager is a manager under measurement: one or more processes of the binary users run, each
// with a kubeconfig that points at a counting proxy in front of the kube-apiserver, its metrics
// on a loopback port, watching one namespace.
type manager struct {
	// requests counts what every replica sent to the apiserver.
	requests *perf.Counter
	replicas []*replica
	// client is the first replica's gRPC client.
	client pb.CloudProviderClient
	stop   func()
}

// replica is one manager process.
type replica struct {
	cmd    *exec.Cmd
	client pb.CloudProviderClient
	// metrics is the URL of its Prometheus endpoint; profiling the address of its pprof
	// endpoint, "" when it has none.
	metrics   string
	profiling string
}

// managerOptions say how startManager runs the manager.
type managerOptions struct {
	// replicas is the number of processes (default 1).
	replicas int
	// leaderless runs every replica with --leader-elect while the benchmark holds the Lease:
	// every replica serves gRPC and none runs the controllers, as replicas that are not leading
	// do, so the fleet the benchmark wrote stays as it is from one call to the next.
	leaderless bool
	// profile serves pprof on a loopback port (--profiling-bind-address), when the binary has
	// the flag.
	profile bool
	// unpaced turns the pacing of power-ons off (--power-on-rate=0): the default (ten at once,
	// then five a second) spreads a hundred power-ons over about eighteen seconds on purpose, and
	// would hide how fast the manager itself issues them.
	unpaced bool
}

// startManager runs the manager binary on namespace until the benchmark ends (or stop), and
// returns once every replica is ready. With one replica and not leaderless, it runs everything
// the command runs: the three controllers with the real power drivers and the gRPC server.
func (r *run) startManager(namespace string, o managerOptions) *manager {
	b := r.b
	o.replicas = max(1, o.replicas)
	m := &manager{requests: perf.NewCounter()}
	kubeconfig := r.proxyKubeconfig(m.requests)
	bin := r.managerBinary()
	profiling := o.profile && hasFlag(bin, profilingFlag)
	if o.profile && !profiling {
		r.note("the manager binary has no --%s flag: no profiles taken", profilingFlag)
	}
	if o.leaderless {
		r.holdLease(namespace)
	}
	for i := range o.replicas {
		rep := &replica{metrics: "http://" + freeAddr(b) + "/metrics"}
		grpcAddr, probe := freeAddr(b), freeAddr(b)
		args := []string{"--kubeconfig", kubeconfig, "--namespace", namespace,
			"--grpc-bind-address", grpcAddr, "--grpc-insecure",
			"--metrics-bind-address", strings.TrimSuffix(strings.TrimPrefix(rep.metrics, "http://"), "/metrics"), "--metrics-secure=false",
			"--health-probe-bind-address", probe,
			// The simulated BMCs listen on loopback, which the drivers' default egress policy refuses.
			"--driver-egress", "allow=127.0.0.1/32",
			"--shutdown-timeout", "10s"}
		if o.leaderless {
			args = append(args, "--leader-elect", "--leader-election-namespace", namespace)
		}
		if o.unpaced {
			args = append(args, "--power-on-rate", "0")
		}
		if profiling {
			rep.profiling = freeAddr(b)
			args = append(args, "--"+profilingFlag, rep.profiling)
		}
		rep.cmd = r.startManagerProcess(bin, fmt.Sprintf("manager-%s-%d", namespace, i), args)
		waitReady(b, rep.cmd, "http://"+probe+"/readyz")
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		rep.client = pb.NewCloudProviderClient(conn)
		m.replicas = append(m.replicas, rep)
	}
	m.client = m.replicas[0].client
	m.stop = func() {
		for _, rep := range m.replicas {
			stopProcess(rep.cmd)
		}
	}
	return m
}

// proxyKubeconfig starts a counting proxy in front of the apiserver for the rest of the
// benchmark and writes a kubeconfig that points at it; the proxy talks to the apiserver as the
// control plane's administrator.
func (r *run) proxyKubeconfig(c *perf.Counter) string {
	b := r.b
	target, err := url.Parse(r.env.Config.Host)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := rest.TransportFor(r.env.Config)
	if err != nil {
		b.Fatal(err)
	}
	// HTTPS with HTTP/2, as the manager talks to a kube-apiserver: its requests share one
	// connection, as they would in a cluster. The proxy's certificate is its own, so the
	// kubeconfig skips verifying it (loopback only).
	srv := httptest.NewUnstartedServer(c.Proxy(target, rt))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	b.Cleanup(srv.Close)
	kubeconfig := filepath.Join(b.TempDir(), "kubeconfig")
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: proxy
  cluster: {server: "%s", insecure-skip-tls-verify: true}
users:
- name: proxy
  user: {}
contexts:
- name: proxy
  context: {cluster: proxy, user: proxy}
current-context: proxy
`, srv.URL)
	if err := os.WriteFile(kubeconfig, []byte(data), 0o600); err != nil {
		b.Fatal(err)
	}
	return kubeconfig
}

// holdLease takes the manager's leader election Lease in namespace for a day, so that no
// replica leads.
func (r *run) holdLease(namespace string) {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: app.DefaultLeaderElectionID}, Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To(leaseHolder), LeaseDurationSeconds: ptr.To[int32](24 * 3600),
		AcquireTime: ptr.To(metav1.NowMicro()), RenewTime: ptr.To(metav1.NowMicro()),
	}}
	if err := r.env.Client.Create(context.Background(), lease); err != nil {
		r.b.Fatal(err)
	}
}

// managerBinary is BENCH_MANAGER (hack/benchreport builds it as a release does), else the
// manager built from this tree once per run.
func (r *run) managerBinary() string {
	if v := os.Getenv(envManager); v != "" {
		return v
	}
	if r.managerBin == "" {
		r.managerBin = testenv.Build(r.b, r.b.TempDir(), "homelab-autoscaler", "")
	}
	return r.managerBin
}

// hasFlag says whether the binary lists --name in its usage.
func hasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "--help").CombinedOutput() //nolint:gosec // the project's own binary
	return strings.Contains(string(out), "-"+name+" ")
}

// startManagerProcess runs the manager with its output in a file of the benchmark's temporary
// folder (at info level, as users run it), whose end is printed when the benchmark fails.
func (r *run) startManagerProcess(bin, name string, args []string) *exec.Cmd {
	b := r.b
	dir := os.Getenv(envLogDir)
	if dir == "" {
		dir = b.TempDir()
	}
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log) //nolint:gosec // a temporary file of the benchmark
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // the project's own binary
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting %s: %v", name, err)
	}
	b.Cleanup(func() {
		stopProcess(cmd)
		_ = f.Close()
		if b.Failed() {
			data, _ := os.ReadFile(log) //nolint:gosec // written above
			b.Logf("%s output (last 3000 bytes):\n%s", name, data[max(0, len(data)-3000):])
		}
	})
	return cmd
}

// stopProcess ends the manager as Kubernetes does, SIGTERM then SIGKILL after a grace period;
// a second call waits for nothing.
func stopProcess(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitReady waits until readyz answers 200, failing the benchmark when the process exits first.
func waitReady(b *testing.B, cmd *exec.Cmd, readyz string) {
	client := http.Client{Timeout: 2 * time.Second}
	exited := func() bool {
		// Signal 0 checks that the process is still there without touching it.
		return cmd.Process.Signal(syscall.Signal(0)) != nil
	}
	var last error
	if !testenv.Poll(managerStartTimeout, 200*time.Millisecond, func() bool {
		if exited() {
			return true
		}
		resp, err := client.Get(readyz) //nolint:noctx // loopback, bounded by the client
		if err != nil {
			last = err
			return false
		}
		_ = resp.Body.Close()
		last = errors.New(resp.Status)
		return resp.StatusCode == http.StatusOK
	}) {
		b.Fatalf("the manager was not ready within %s: %v", managerStartTimeout, last)
	}
	if exited() {
		b.Fatalf("the manager exited before it was ready")
	}
}

// pid is the first replica's process id.
func (m *manager) pid() int { return m.replicas[0].cmd.Process.Pid }

// sample is the first replica's CPU and memory now.
func (m *manager) sample() perf.Sample { return perf.Observe(m.pid(), m.replicas[0].metrics) }

// metrics scrapes the first replica's metrics; nil when that fails.
func (m *manager) metrics() perf.Metrics {
	s, err := perf.Scrape(m.replicas[0].metrics)
	if err != nil {
		return nil
	}
	return s
}

// conflicts is the 409 answers the replicas' optimistic writes met so far.
func (m *manager) conflicts() float64 {
	sum := 0.0
	for _, rep := range m.replicas {
		if s, err := perf.Scrape(rep.metrics); err == nil {
			sum += s.Sum(conflictsMetric)
		}
	}
	return sum
}
