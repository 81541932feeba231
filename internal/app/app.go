// Package app wires homelab-autoscaler into a controller-runtime manager: the cache, its
// indexes, the optimistic writer, the three reconcilers with their power drivers, the
// cluster-autoscaler gRPC server, the metrics endpoint and the probes. New builds the manager
// the command runs; a test runs the same one through internal/testing/testenv/testmanager,
// differing only in the Options it sets, so that it exercises what runs in production.
package app

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/corenode"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/group"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/machine"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/pacing"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// setup adds the indexes, the optimistic writer, the controllers (unless o.GRPCOnly) and
// cluster-autoscaler's gRPC server to mgr, the manager New builds, and returns the server.
func setup(ctx context.Context, mgr ctrl.Manager, o Options) (*cloudprovider.Server, error) {
	if err := index.Register(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	opts := []optimistic.Option{}
	if o.WriteRetryBackoff != (optimistic.Backoff{}) {
		opts = append(opts, optimistic.WithBackoff(o.WriteRetryBackoff))
	}
	if o.WriteMetrics != nil {
		opts = append(opts, optimistic.WithMetrics(o.WriteMetrics))
	}
	writer, err := optimistic.New(mgr.GetClient(), mgr.GetAPIReader(), opts...)
	if err != nil {
		return nil, err
	}
	// The gRPC server runs on every replica, leader or not: its writes are optimistic.
	srv, err := cloudprovider.NewServer(cloudprovider.Options{
		BindAddress: o.GRPCAddr, TLS: o.GRPCTLS, Insecure: o.GRPCInsecure,
		AllowedClients: o.GRPCAllowedClients, AllowAnyClient: o.GRPCAllowAnyClient,
		MaxConcurrentStreams: uint32(o.GRPCMaxConcurrentStreams), //nolint:gosec // Validate bounds it
		HandshakeTimeout:     o.GRPCHandshakeTimeout,
		CallTimeout:          o.GRPCCallTimeout,
		// The gRPC server stops first and the controllers after it, all within the one shutdown
		// timeout: the gRPC calls in flight get half of it (more than a call may last by
		// default), the controllers at least the rest.
		ShutdownGrace: o.ShutdownTimeout / 2,
		Logger:        mgr.GetLogger().WithName("cloudprovider"),
		Metrics:       o.GRPCMetrics,
		Cache:         mgr.GetCache(), Reader: mgr.GetClient(), Writer: writer,
		Now:      o.clock().Now,
		Recorder: mgr.GetEventRecorder("homelab-autoscaler"),
	})
	if err != nil {
		return nil, err
	}
	if !o.GRPCOnly {
		// The server is also the machines' Rotation (repairs go through its scale ledger) and the
		// groups' Ledger (decisions a dead replica left half done are rolled forward).
		if err := addControllers(mgr, writer, o, srv); err != nil {
			return nil, err
		}
	}
	if err := mgr.Add(srv); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("grpc", srv.ReadyCheck); err != nil {
		return nil, err
	}
	return srv, nil
}

// addControllers adds the machine, Node and Group reconcilers, with the power drivers.
func addControllers(mgr ctrl.Manager, writer *optimistic.Writer, o Options, srv *cloudprovider.Server) error {
	drivers := o.Drivers
	if drivers == nil {
		drivers = BuiltinDrivers(mgr, o.DriverEgress, o.JobPolicy)
	} else if _, ok := drivers[power.DriverJob]; !ok {
		drivers[power.DriverJob] = power.Instrument(power.JobDriver{Client: mgr.GetClient(), Policy: o.JobPolicy}, nil)
	}
	secrets := power.ClientSecrets{Reader: mgr.GetAPIReader(), ManagerNamespace: o.managerNamespace(), AllowManagerNamespace: o.AllowManagerNamespace}
	if secrets.ManagerNamespace == "" {
		mgr.GetLogger().Info("the manager's namespace is unknown (no POD_NAMESPACE, service account or --leader-election-namespace): the drivers may use Secrets of every watched namespace")
	}
	setups := []func(ctrl.Manager) error{
		(&machine.Reconciler{
			Client:                  mgr.GetClient(),
			APIReader:               mgr.GetAPIReader(),
			Writer:                  writer,
			Drivers:                 drivers,
			Secrets:                 secrets,
			ConfigMaps:              power.ClientConfigMaps{Reader: mgr.GetAPIReader()},
			Recorder:                mgr.GetEventRecorder("homelab-autoscaler"),
			RetryBase:               o.PowerRetryBase,
			RetryCap:                o.PowerRetryCap,
			ConfirmInterval:         o.PowerConfirmInterval,
			MaxConcurrentReconciles: o.MachineConcurrency,
			RecheckInterval:         o.RecheckInterval,
			Rotation:                srv,
			Now:                     o.clock().Now,
			Pacer: pacing.New(pacing.Limits{
				PerSecond: o.PowerOnRate, Burst: o.PowerOnBurst, MaxBooting: o.MaxBooting,
			}),
		}).SetupWithManager,
		(&corenode.Reconciler{Client: mgr.GetClient(), Writer: writer}).SetupWithManager,
		(&group.Reconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Writer: writer, Ledger: srv,
			Recorder: mgr.GetEventRecorder("homelab-autoscaler"), Clock: o.clock(),
		}).SetupWithManager,
	}
	for _, add := range setups {
		if err := add(mgr); err != nil {
			return err
		}
	}
	return nil
}

// BuiltinDrivers is the registry of every built-in power driver, each counted in the power
// metrics, those that dial an address within the egress policy, the Job driver within jobs.
func BuiltinDrivers(mgr ctrl.Manager, egress power.EgressPolicy, jobs power.JobPolicy) power.Registry {
	all := append(power.BuiltinWith(power.Options{Egress: &egress, Relay: mgr.GetClient()}), power.JobDriver{Client: mgr.GetClient(), Policy: jobs})
	for i, d := range all {
		all[i] = power.Instrument(d, nil)
	}
	return power.NewRegistry(all...)
}
