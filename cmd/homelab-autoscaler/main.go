// Command homelab-autoscaler is the manager: it runs the controllers, (soon) the cluster-autoscaler
// gRPC server, the metrics endpoint and the health probes.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

type options struct {
	namespace         string
	metricsAddr       string
	probeAddr         string
	leaderElect       bool
	leaderElectionID  string
	writeRetryBackoff optimistic.Backoff
}

func parseFlags(fs *flag.FlagSet, args []string) (*options, *zap.Options, error) {
	o := &options{writeRetryBackoff: optimistic.DefaultBackoff()}
	fs.StringVar(&o.namespace, "namespace", "", "Watch Groups and Nodes in this namespace only; empty watches all namespaces.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the metrics endpoint; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the liveness and readiness probes.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect one leader among replicas to run the controllers.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "homelab-autoscaler.infra.homelab-autoscaler.dev", "Name of the leader election Lease.")
	o.writeRetryBackoff.BindFlags(fs, "write-retry-")
	zo := &zap.Options{}
	zo.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := o.writeRetryBackoff.Validate(); err != nil {
		return nil, nil, fmt.Errorf("--write-retry-*: %w", err)
	}
	return o, zo, nil
}

func main() {
	o, zo, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zo)))
	log := ctrl.Log.WithName("setup")
	if err := run(o); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(o *options) error {
	// --kubeconfig is registered by controller-runtime; GetConfig honours it, then
	// KUBECONFIG, then the in-cluster configuration.
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes configuration: %w", err)
	}
	cacheOpts := cache.Options{}
	if o.namespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{o.namespace: {}}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme.New(),
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       o.leaderElectionID,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if _, err := optimistic.New(mgr.GetClient(), mgr.GetAPIReader(), optimistic.WithBackoff(o.writeRetryBackoff)); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
