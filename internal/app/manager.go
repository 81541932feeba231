package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

// Manager is the manager command's controller-runtime manager with everything added to it.
type Manager struct {
	ctrl.Manager
	// GRPC is cluster-autoscaler's server; its Addr is known once its Started channel closes.
	GRPC *cloudprovider.Server
}

// New builds the manager exactly as the command runs it, acting as the identity of cfg: the
// cache (limited to what the controllers read), the metrics endpoint, the probes, the profiles
// when asked for, leader election, and setup's controllers and gRPC server.
func New(ctx context.Context, cfg *rest.Config, o Options) (*Manager, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	shutdown := o.ShutdownTimeout
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Logger:                  o.Logger,
		Cache:                   cacheOptions(o.Namespace),
		Controller:              config.Controller{SkipNameValidation: ptr.To(o.SkipControllerNameValidation)},
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.ProfilingAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        o.LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		LeaseDuration:           &o.LeaderElectLeaseDuration,
		RenewDeadline:           &o.LeaderElectRenewDeadline,
		RetryPeriod:             &o.LeaderElectRetryPeriod,
		// The command exits as soon as the manager stops, so releasing the lease on the way out
		// is safe, and it lets the next leader start at once instead of after a lease duration.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &shutdown,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	srv, err := setup(ctx, mgr, o)
	if err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// setup added the gRPC server's check ("grpc"), which passes once the server listens, after
	// the machines' and Groups' informers synced. The cache check covers every other informer.
	// Neither depends on leadership: a replica that is not leading serves gRPC and is ready.
	if err := mgr.AddReadyzCheck("cache", cacheSynced(mgr.GetCache())); err != nil {
		return nil, err
	}
	return &Manager{Manager: mgr, GRPC: srv}, nil
}

// cacheOptions keeps the informers to what the controllers need: the project's kinds (in the
// watched namespaces, when set), the Jobs the manager launched (not every Job), and core Nodes,
// the only cluster-scoped kind. Pods of a node being drained, Secrets and ConfigMaps are read
// from the API, never cached. The cached objects lose what the manager never reads (see
// stripUnread and stripNode). Validate has checked namespaces.
func cacheOptions(namespaces string) cache.Options {
	powerJobs, err := labels.NewRequirement(infrav1.LabelPowerAction, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant label key
	}
	o := cache.Options{
		DefaultTransform: stripUnread,
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {Label: labels.NewSelector().Add(*powerJobs)},
			&corev1.Node{}: {Transform: stripNode},
		},
	}
	names, _ := watchedNamespaces(namespaces)
	if len(names) > 0 {
		o.DefaultNamespaces = make(map[string]cache.Config, len(names))
		for _, n := range names {
			o.DefaultNamespaces[n] = cache.Config{}
		}
	}
	return o
}

// stripUnread removes from an object before the cache keeps it what no part of the manager
// reads: its managedFields (often the largest part of a small object) and kubectl's
// last-applied-configuration annotation (a second copy of what was applied). The manager
// writes cached objects only through patches of what it changed (internal/optimistic) or, for
// an AgentRequest, its status subresource, which keeps the stored metadata: what is stripped
// here is never written back, nor lost. Objects of other types (a deleted object's tombstone)
// pass unchanged.
func stripUnread(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil {
		return in, nil //nolint:nilerr // not an object: nothing to strip
	}
	if obj.GetManagedFields() != nil {
		obj.SetManagedFields(nil)
	}
	if a := obj.GetAnnotations(); a != nil {
		delete(a, corev1.LastAppliedConfigAnnotation)
	}
	return in, nil
}

// stripNode keeps of a core Node's status what the manager reads: its conditions (Ready),
// capacity, allocatable and system info (the template node cluster-autoscaler gets from a
// Ready member, internal/cloudprovider). The images a kubelet reports (up to 50, each with its
// names and digests), addresses, volumes, daemon endpoints, runtime handlers and features are
// dropped, with stripUnread's fields. Writes to a Node's main resource ignore its status, so
// the manager's patches (cordon, labels, providerID) cannot clear what is stripped.
func stripNode(in any) (any, error) {
	if n, ok := in.(*corev1.Node); ok {
		n.Status = corev1.NodeStatus{
			Conditions: n.Status.Conditions, Capacity: n.Status.Capacity, Allocatable: n.Status.Allocatable, NodeInfo: n.Status.NodeInfo,
		}
	}
	return stripUnread(in)
}

// metricsOptions serves the metrics over HTTPS to authorized scrapers, or plain HTTP when asked.
func metricsOptions(o Options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.MetricsSecure}
	if !o.MetricsSecure {
		return m
	}
	// The scraper's bearer token is checked with a TokenReview, and its right to get /metrics
	// with a SubjectAccessReview, so the endpoint follows the cluster's RBAC.
	m.FilterProvider = filters.WithAuthenticationAndAuthorization
	// HTTP/2 is turned off: the metrics endpoint gains nothing from it, and it has had
	// denial-of-service flaws (stream resets) that HTTP/1.1 does not share.
	m.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	if o.MetricsCertDir != "" {
		m.CertDir, m.CertName, m.KeyName = o.MetricsCertDir, "tls.crt", "tls.key"
	}
	return m
}

// cacheSynced is a readiness check that passes once every informer the manager started has
// synced.
func cacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("the informer cache has not synced yet")
		}
		return nil
	}
}
