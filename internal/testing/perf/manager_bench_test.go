package perf_test

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// manager is a manager under measurement, in this process, watching one namespace.
type manager struct {
	requests *perf.Counter
	writes   *optimistic.Metrics
	srv      *cloudprovider.Server
	client   pb.CloudProviderClient
	conn     *grpc.ClientConn
	cancel   context.CancelFunc
	done     chan struct{}
}

// startManager runs a manager on namespace. full runs everything the manager command runs
// (app.Setup: the three controllers with the real power drivers, and the gRPC server); otherwise
// only the gRPC server runs, over a fleet whose status the benchmark wrote, as the
// cloud-provider package's own benchmarks do.
func (r *run) startManager(namespace string, full bool) *manager {
	b := r.b
	cfg := rest.CopyConfig(r.env.Config)
	// As the manager command has it (controller-runtime's GetConfig): no client-side rate limit,
	// the apiserver's priority and fairness decide.
	cfg.QPS, cfg.Burst = -1, 0
	m := &manager{requests: perf.NewCounter(), writes: optimistic.NewMetrics(), done: make(chan struct{})}
	cfg.WrapTransport = m.requests.Wrap
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 r.env.Scheme,
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// One process starts a manager per part; their controllers share names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	grpcOpts := cloudprovider.Options{BindAddress: "127.0.0.1:0", Insecure: true, Logger: logr.Discard()}
	if full {
		srv, err := app.Setup(ctx, mgr, app.Config{WriteMetrics: m.writes, GRPC: &grpcOpts})
		if err != nil {
			b.Fatal(err)
		}
		m.srv = srv
	} else {
		if err := index.Register(ctx, mgr.GetFieldIndexer()); err != nil {
			b.Fatal(err)
		}
		w, err := optimistic.New(mgr.GetClient(), mgr.GetAPIReader(), optimistic.WithMetrics(m.writes))
		if err != nil {
			b.Fatal(err)
		}
		grpcOpts.Cache, grpcOpts.Reader, grpcOpts.Writer = mgr.GetCache(), mgr.GetClient(), w
		srv, err := cloudprovider.NewServer(grpcOpts)
		if err != nil {
			b.Fatal(err)
		}
		if err := mgr.Add(srv); err != nil {
			b.Fatal(err)
		}
		m.srv = srv
	}
	go func() {
		defer close(m.done)
		if err := mgr.Start(ctx); err != nil {
			b.Errorf("manager: %v", err)
		}
	}()
	select {
	case <-m.srv.Started():
	case <-m.done:
		b.Fatal("the manager stopped before its gRPC server started")
	case <-time.After(5 * time.Minute):
		b.Fatal("the gRPC server did not start within 5 minutes")
	}
	conn, err := grpc.NewClient(m.srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	m.conn, m.client = conn, pb.NewCloudProviderClient(conn)
	b.Cleanup(m.stop)
	return m
}

func (m *manager) stop() {
	m.cancel()
	<-m.done
	_ = m.conn.Close()
}

// conflicts is the 409 answers the manager's optimistic writes met so far.
func (m *manager) conflicts() float64 {
	return sumCounters(m.writes.Conflicts)
}
