package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

// Defaults of the agent's endpoints: on the host network, so apart from the manager's.
const (
	DefaultMetricsAddr = ":8090"
	DefaultProbeAddr   = ":8091"
)

// Options are the agent command's settings, as its flags set them.
type Options struct {
	// Segment and Namespace are comma-separated lists, as given.
	Segment, Namespace string
	NodeName, PodName  string
	MetricsAddr        string
	ProbeAddr          string
}

// BindFlags registers the agent's flags on fs, with the logging flags in the returned zap options.
func BindFlags(fs *flag.FlagSet) (*Options, *zap.Options) {
	o := &Options{}
	fs.StringVar(&o.Segment, "segment", "",
		"Network segments this node reaches with a broadcast, a comma-separated `list` (required): the agent sends the magic packets of Machines whose wakeOnLAN.via names one of them.")
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "Name of the node the agent runs on (default $NODE_NAME).")
	fs.StringVar(&o.PodName, "pod-name", os.Getenv("POD_NAME"), "Name of the agent's pod (default $POD_NAME).")
	fs.StringVar(&o.Namespace, "namespace", "",
		"Serve requests of Machines in these namespaces only, a comma-separated `list`; empty serves all namespaces.")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", DefaultMetricsAddr, "Address of the metrics endpoint (plain HTTP); 0 disables it.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", DefaultProbeAddr, "Address of /healthz and /readyz; 0 disables them.")
	zo := &zap.Options{}
	zo.BindFlags(fs)
	return o, zo
}

// Identity is the holder name the agent records on the requests it claims: unique per pod.
func (o Options) Identity() string { return o.NodeName + "/" + o.PodName }

// Validate reports settings the agent cannot run with.
func (o Options) Validate() error {
	var errs []error
	if o.Segment == "" {
		errs = append(errs, errors.New("--segment is required: name the network segments this node serves, e.g. --segment=lan-2"))
	} else if _, err := names("--segment", o.Segment); err != nil {
		errs = append(errs, err)
	}
	if _, err := names("--namespace", o.Namespace); err != nil {
		errs = append(errs, err)
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name (or $NODE_NAME) is required: it names the agent in the requests it takes"))
	}
	if o.PodName == "" {
		errs = append(errs, errors.New("--pod-name (or $POD_NAME) is required: it names the agent in the requests it takes"))
	}
	if strings.Contains(o.NodeName, "/") || strings.Contains(o.PodName, "/") {
		errs = append(errs, fmt.Errorf("--node-name %q and --pod-name %q must not contain '/'", o.NodeName, o.PodName))
	}
	return errors.Join(errs...)
}

// names splits a comma-separated list of segment or namespace names; empty is none. Both are
// DNS labels (the API's pattern for wakeOnLAN.via is one), and a misspelt name is refused
// rather than served in silence.
func names(flagName, list string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	out := strings.Split(list, ",")
	seen := make(map[string]bool, len(out))
	for _, n := range out {
		if n == "" {
			return nil, fmt.Errorf("%s %q has an empty name (a comma too many)", flagName, list)
		}
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			return nil, fmt.Errorf("%s %q: %q is not a valid name: %s", flagName, list, n, strings.Join(errs, "; "))
		}
		if seen[n] {
			return nil, fmt.Errorf("%s %q names %q twice", flagName, list, n)
		}
		seen[n] = true
	}
	return out, nil
}

// CacheOptions keeps the agent's informers to the wake requests of its segments (in the given
// namespaces, when any): the only objects it reads.
func CacheOptions(segments, namespaces []string) cache.Options {
	kind, err := labels.NewRequirement(relay.LabelKind, selection.Equals, []string{relay.KindWake})
	if err != nil {
		panic(err) // constant key and value
	}
	sel := labels.NewSelector().Add(*kind)
	if len(segments) > 0 {
		seg, err := labels.NewRequirement(relay.LabelSegment, selection.In, segments)
		if err != nil {
			panic(err) // Validate checked the segments
		}
		sel = sel.Add(*seg)
	}
	o := cache.Options{ByObject: map[client.Object]cache.ByObject{&coordinationv1.Lease{}: {Label: sel}}}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
		for _, n := range namespaces {
			o.DefaultNamespaces[n] = cache.Config{}
		}
	}
	return o
}

// NewManager builds the agent as the command runs it, acting as the identity of cfg. There is
// no leader election: every agent of a segment runs, and each request's Lease picks one.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	segments, _ := names("--segment", o.Segment)
	namespaces, _ := names("--namespace", o.Namespace)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme.New(),
		Cache:                  CacheOptions(segments, namespaces),
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.ProbeAddr,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the agent's manager: %w", err)
	}
	w := &Waker{Client: mgr.GetClient(), Agent: o.Identity(), Segments: segments}
	if err := w.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the wake controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("cache", cacheSynced(mgr.GetCache())); err != nil {
		return nil, err
	}
	return mgr, nil
}

// cacheSynced passes once the request informer has synced: before that the agent would miss
// the requests already waiting.
func cacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("the request informer has not synced yet")
		}
		return nil
	}
}
