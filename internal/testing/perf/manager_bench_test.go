package perf_test

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/rest"

	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// manager is a manager under measurement, in this process, watching one namespace.
type manager struct {
	requests *perf.Counter
	writes   *optimistic.Metrics
	client   pb.CloudProviderClient
	stop     func()
}

// startManager runs a manager on namespace as the manager command builds it (app.New). full
// runs everything the command runs (the three controllers with the real power drivers, and the
// gRPC server); otherwise only the gRPC server runs (app.Options.GRPCOnly), over a fleet whose
// status the benchmark wrote, as the cloud-provider package's own benchmarks do. It stops when
// the benchmark ends, or before with stop.
func (r *run) startManager(namespace string, full bool) *manager {
	b := r.b
	cfg := rest.CopyConfig(r.env.Config)
	// As the manager command has it (controller-runtime's GetConfig): no client-side rate limit,
	// the apiserver's priority and fairness decide.
	cfg.QPS, cfg.Burst = -1, 0
	m := &manager{requests: perf.NewCounter(), writes: optimistic.NewMetrics()}
	cfg.WrapTransport = m.requests.Wrap
	o := testmanager.Options(namespace)
	o.WriteMetrics = m.writes
	o.GRPCOnly = !full
	_, addr, stop := testmanager.Start(b, cfg, o)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	m.client = pb.NewCloudProviderClient(conn)
	m.stop = func() {
		if err := stop(); err != nil {
			b.Errorf("manager: %v", err)
		}
	}
	return m
}

// conflicts is the 409 answers the manager's optimistic writes met so far.
func (m *manager) conflicts() float64 {
	return sumCounters(m.writes.Conflicts)
}
