// Package app wires homelab-autoscaler into a controller-runtime manager: the cache, its
// indexes, the optimistic writer, the three reconcilers with their power drivers, the
// cluster-autoscaler gRPC server, the metrics endpoint and the probes. New builds the manager
// the command runs; a test runs the same one through internal/testing/testenv/testmanager,
// differing only in the Options it sets, so that it exercises what runs in production.
package app

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/corenode"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/group"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/machine"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// setupConfig is what setup adds to a manager; New fills it from Options. Zero fields take the
// defaults.
type setupConfig struct {
	// Drivers replaces the built-in power drivers; a registry without "job" gets the Job driver.
	Drivers power.Registry
	// WriteBackoff is the retry policy of optimistic writes.
	WriteBackoff optimistic.Backoff
	// WriteMetrics counts conflicts (default: optimistic.DefaultMetrics).
	WriteMetrics *optimistic.Metrics
	// RetryBase, RetryCap, ConfirmInterval and MachineConcurrency tune the machine reconciler.
	RetryBase, RetryCap, ConfirmInterval time.Duration
	MachineConcurrency                   int
	// GRPCOnly adds no controllers (see Options.GRPCOnly).
	GRPCOnly bool
	// GRPC, when set, runs the cloud-provider server with these options (Cache, Reader and
	// Writer are filled in here).
	GRPC *cloudprovider.Options
}

// setup adds the indexes, the controllers and the gRPC server to mgr, the manager New builds,
// and returns the server when one was asked for.
func setup(ctx context.Context, mgr ctrl.Manager, cfg setupConfig) (*cloudprovider.Server, error) {
	if err := index.Register(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	opts := []optimistic.Option{}
	if cfg.WriteBackoff != (optimistic.Backoff{}) {
		opts = append(opts, optimistic.WithBackoff(cfg.WriteBackoff))
	}
	if cfg.WriteMetrics != nil {
		opts = append(opts, optimistic.WithMetrics(cfg.WriteMetrics))
	}
	writer, err := optimistic.New(mgr.GetClient(), mgr.GetAPIReader(), opts...)
	if err != nil {
		return nil, err
	}
	if !cfg.GRPCOnly {
		if err := addControllers(mgr, writer, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.GRPC == nil {
		return nil, nil
	}
	// The gRPC server runs on every replica, leader or not: its writes are optimistic.
	o := *cfg.GRPC
	o.Cache, o.Reader, o.Writer = mgr.GetCache(), mgr.GetClient(), writer
	srv, err := cloudprovider.NewServer(o)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(srv); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("grpc", srv.ReadyCheck); err != nil {
		return nil, err
	}
	return srv, nil
}

// addControllers adds the machine, core Node and Group reconcilers, with the power drivers.
func addControllers(mgr ctrl.Manager, writer *optimistic.Writer, cfg setupConfig) error {
	drivers := cfg.Drivers
	if drivers == nil {
		drivers = BuiltinDrivers(mgr)
	} else if _, ok := drivers[power.DriverJob]; !ok {
		drivers[power.DriverJob] = power.Instrument(power.JobDriver{Client: mgr.GetClient()}, nil)
	}
	setups := []func(ctrl.Manager) error{
		(&machine.Reconciler{
			Client:                  mgr.GetClient(),
			APIReader:               mgr.GetAPIReader(),
			Writer:                  writer,
			Drivers:                 drivers,
			Secrets:                 power.ClientSecrets{Reader: mgr.GetAPIReader()},
			ConfigMaps:              power.ClientConfigMaps{Reader: mgr.GetAPIReader()},
			Recorder:                mgr.GetEventRecorder("homelab-autoscaler"),
			RetryBase:               cfg.RetryBase,
			RetryCap:                cfg.RetryCap,
			ConfirmInterval:         cfg.ConfirmInterval,
			MaxConcurrentReconciles: cfg.MachineConcurrency,
		}).SetupWithManager,
		(&corenode.Reconciler{Client: mgr.GetClient(), Writer: writer}).SetupWithManager,
		(&group.Reconciler{Client: mgr.GetClient(), Writer: writer}).SetupWithManager,
	}
	for _, add := range setups {
		if err := add(mgr); err != nil {
			return err
		}
	}
	return nil
}

// BuiltinDrivers is the registry of every built-in power driver, each counted in the power
// metrics.
func BuiltinDrivers(mgr ctrl.Manager) power.Registry {
	all := append(power.Builtin(), power.JobDriver{Client: mgr.GetClient()})
	for i, d := range all {
		all[i] = power.Instrument(d, nil)
	}
	return power.NewRegistry(all...)
}
