// Command homelab-autoscaler is the manager: the controllers (machine power lifecycle, core Node
// sync, Group status) on the leader, cluster-autoscaler's externalgrpc server on every replica,
// the powerState webhook, the metrics endpoint and the health probes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/node"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
	hlwebhook "github.com/homelab-autoscaler/homelab-autoscaler/internal/webhook"
)

type options struct {
	namespace         string
	metricsAddr       string
	probeAddr         string
	leaderElect       bool
	leaderElectionID  string
	writeRetryBackoff optimistic.Backoff
	powerRetryBase    time.Duration
	powerRetryCap     time.Duration
	confirmInterval   time.Duration
	nodeConcurrency   int
	grpcAddr          string
	grpcTLS           cloudprovider.TLSFiles
	grpcInsecure      bool
	webhookPort       int
	webhookCertDir    string
}

func parseFlags(fs *flag.FlagSet, args []string) (*options, *zap.Options, error) {
	o := &options{writeRetryBackoff: optimistic.DefaultBackoff()}
	fs.StringVar(&o.namespace, "namespace", "", "Watch Groups and Nodes in this namespace only; empty watches all namespaces.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the metrics endpoint; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the liveness and readiness probes.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect one leader among replicas to run the controllers.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "homelab-autoscaler.infra.homelab-autoscaler.dev", "Name of the leader election Lease.")
	o.writeRetryBackoff.BindFlags(fs, "write-retry-")
	fs.DurationVar(&o.powerRetryBase, "power-retry-base", node.DefaultRetryBase, "Wait after a failed power attempt before the next one (doubling each time).")
	fs.DurationVar(&o.powerRetryCap, "power-retry-cap", node.DefaultRetryCap, "Longest wait between two power attempts.")
	fs.DurationVar(&o.confirmInterval, "power-confirm-interval", node.DefaultConfirmInterval, "How often a power-off is re-checked, and a blocked drain retried.")
	fs.StringVar(&o.grpcAddr, "grpc-bind-address", cloudprovider.DefaultBindAddress, "Address of cluster-autoscaler's externalgrpc API: host:port, or unix:/path/to.sock.")
	fs.StringVar(&o.grpcTLS.CertFile, "grpc-tls-cert", "", "PEM server certificate of the gRPC API (reloaded when it changes).")
	fs.StringVar(&o.grpcTLS.KeyFile, "grpc-tls-key", "", "PEM private key of --grpc-tls-cert.")
	fs.StringVar(&o.grpcTLS.ClientCAFile, "grpc-client-ca", "", "PEM CA certificates that sign cluster-autoscaler's client certificate; other clients are refused.")
	fs.BoolVar(&o.grpcInsecure, "grpc-insecure", false, "Serve without TLS; refused unless the address is loopback or a unix socket.")
	fs.IntVar(&o.nodeConcurrency, "node-concurrency", node.DefaultConcurrency, "How many machines are reconciled at once (a slow BMC holds up only its own machine).")
	fs.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the admission webhook (it explains an unquoted powerState); 0 disables it.")
	fs.StringVar(&o.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Folder with the webhook's tls.crt and tls.key; without them the webhook is not served.")
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
	cacheOpts := cache.Options{
		// Only the Jobs the manager launched are cached, not every Job in the cluster.
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {Label: labels.SelectorFromSet(nil).Add(mustRequirement(infrav1.LabelPowerAction, selection.Exists))},
		},
	}
	if o.namespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{o.namespace: {}}
	}
	var hooks webhook.Server
	if o.webhookPort != 0 {
		if _, err := os.Stat(filepath.Join(o.webhookCertDir, "tls.crt")); err == nil {
			hooks = webhook.NewServer(webhook.Options{Port: o.webhookPort, CertDir: o.webhookCertDir})
			hooks.Register(hlwebhook.PowerStatePath, &admission.Webhook{Handler: hlwebhook.PowerState{}})
		} else {
			ctrl.Log.WithName("setup").Info("no webhook certificate; the powerState webhook is not served", "certDir", o.webhookCertDir)
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:          hooks,
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
	ctx := ctrl.SetupSignalHandler()
	if _, err := app.Setup(ctx, mgr, app.Config{
		WriteBackoff:    o.writeRetryBackoff,
		RetryBase:       o.powerRetryBase,
		RetryCap:        o.powerRetryCap,
		ConfirmInterval: o.confirmInterval,
		NodeConcurrency: o.nodeConcurrency,
		GRPC: &cloudprovider.Options{
			BindAddress: o.grpcAddr, TLS: o.grpcTLS, Insecure: o.grpcInsecure,
			Logger: ctrl.Log.WithName("cloudprovider"),
		},
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

func mustRequirement(key string, op selection.Operator) labels.Requirement {
	r, err := labels.NewRequirement(key, op, nil)
	if err != nil {
		panic(err)
	}
	return *r
}
