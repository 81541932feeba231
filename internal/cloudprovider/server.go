package cloudprovider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// The server reads Groups, Machines and Nodes, writes Machines' spec.online, and
// writes each Group's scale ledger annotation.
// The permissions this needs are kubebuilder markers in internal/rbac.

// Server answers cluster-autoscaler's CloudProvider service. It is a manager.Runnable that runs
// on every replica (no leader election: its writes are safe concurrently), serving only once
// the cache has synced.
type Server struct {
	pb.UnimplementedCloudProviderServer

	opts    Options
	ep      endpoint
	creds   credentials.TransportCredentials
	fleet   *fleet
	visible *visibility
	health  *health.Server
	commits groupCommits
	replica string
	seq     atomic.Uint64

	serving atomic.Bool
	mu      sync.Mutex
	addr    net.Addr
	started chan struct{}
}

var (
	_ manager.Runnable               = (*Server)(nil)
	_ manager.LeaderElectionRunnable = (*Server)(nil)
	_ pb.CloudProviderServer         = (*Server)(nil)
)

// NewServer checks the options (refusing plaintext reachable from the network, and TLS files
// that do not load) and returns a server to add to the manager.
func NewServer(o Options) (*Server, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("cluster-autoscaler gRPC server: %w", err)
	}
	ep, err := parseBindAddress(o.BindAddress)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if !o.Insecure {
		r, err := newCertReloader(o.TLS, o.Logger)
		if err != nil {
			return nil, fmt.Errorf("cluster-autoscaler gRPC server: %w", err)
		}
		creds = credentials.NewTLS(r.serverConfig())
	}
	visible := newVisibility()
	return &Server{
		opts: o, ep: ep, creds: creds, fleet: newFleet(visible), visible: visible, health: health.NewServer(),
		replica: replicaID(), started: make(chan struct{}),
	}, nil
}

// replicaID names this process in ledger operation ids (for humans reading a ledger).
func replicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "replica"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends: it waits for the machines' informer (and the server's own
// event handler) to sync, listens, and then reports SERVING on the gRPC health service.
func (s *Server) Start(ctx context.Context) error {
	machines, err := s.handle(ctx, &infrav1.Machine{}, s.fleet.handler())
	if err != nil {
		return err
	}
	groups, err := s.handle(ctx, &infrav1.Group{}, s.visible.handler(kindGroups, objectMeta))
	if err != nil {
		return err
	}
	if !toolscache.WaitFor(ctx, "", machines.HasSyncedChecker(), groups.HasSyncedChecker()) {
		return fmt.Errorf("cluster-autoscaler gRPC server: the cache did not sync: %w", ctx.Err())
	}
	lis, err := s.ep.listen()
	if err != nil {
		return fmt.Errorf("cluster-autoscaler gRPC server: %w", err)
	}
	srv := grpc.NewServer(s.serverOptions()...)
	pb.RegisterCloudProviderServer(srv, s)
	healthpb.RegisterHealthServer(srv, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(pb.CloudProvider_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	s.mu.Lock()
	s.addr = lis.Addr()
	s.mu.Unlock()
	s.serving.Store(true)
	close(s.started)
	s.opts.Logger.Info("serving cluster-autoscaler's externalgrpc cloud provider", "address", lis.Addr().String(),
		"network", s.ep.network, "mutualTLS", !s.opts.Insecure)

	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case err := <-done:
		s.serving.Store(false)
		return fmt.Errorf("cluster-autoscaler gRPC server stopped: %w", err)
	case <-ctx.Done():
	}
	s.serving.Store(false)
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(s.opts.ShutdownGrace)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		srv.Stop()
		<-stopped
	}
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// handle adds an event handler to the informer of obj's kind.
func (s *Server) handle(ctx context.Context, obj client.Object, h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	inf, err := s.opts.Cache.GetInformer(ctx, obj)
	if err != nil {
		return nil, fmt.Errorf("informer of %T: %w", obj, err)
	}
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return nil, fmt.Errorf("event handler on the informer of %T: %w", obj, err)
	}
	return reg, nil
}

func objectMeta(o any) (ns, rv string, ok bool) {
	m, ok := o.(metav1.Object)
	if !ok {
		return "", "", false
	}
	return m.GetNamespace(), m.GetResourceVersion(), true
}

// Started is closed once the server listens.
func (s *Server) Started() <-chan struct{} { return s.started }

// Addr is the address the server listens on (nil before Started is closed).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ReadyCheck is a healthz.Checker for the manager's readiness probe: it passes only while the
// server serves, which is after the cache synced.
func (s *Server) ReadyCheck(*http.Request) error {
	if !s.serving.Load() {
		return errors.New("the cluster-autoscaler gRPC server is not serving (cache not synced yet, or stopped)")
	}
	return nil
}
