package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

// Defaults of the agent's endpoints: on the host network, so apart from the manager's.
const (
	DefaultMetricsAddr = ":8090"
	DefaultProbeAddr   = ":8091"
)

// Power-off methods of --shutdown.
const (
	ShutdownOff     = "off"
	ShutdownLogind  = "logind"
	ShutdownCommand = "command"
)

// DefaultDBusSocket is where the host's D-Bus system bus listens, and where the pod mounts it.
const DefaultDBusSocket = "/run/dbus/system_bus_socket"

// Options are the agent command's settings, as its flags set them.
type Options struct {
	// Segment and Namespace are comma-separated lists, as given.
	Segment, Namespace string
	NodeName, PodName  string
	MetricsAddr        string
	ProbeAddr          string
	// Shutdown is how the agent powers its node off when asked: ShutdownOff or empty (it serves
	// no shutdown), ShutdownLogind or ShutdownCommand.
	Shutdown string
	// ShutdownCommand is the executable ShutdownCommand runs.
	ShutdownCommand string
	// DBusSocket is the host's system bus socket ShutdownLogind talks to.
	DBusSocket string
}

// BindFlags registers the agent's flags on fs, with the logging flags in the returned zap options.
func BindFlags(fs *flag.FlagSet) (*Options, *zap.Options) {
	o := &Options{}
	fs.StringVar(&o.Segment, "segment", "",
		"Network segments this node reaches with a broadcast, a comma-separated `list` (required unless --shutdown is on): the agent sends the magic packets of Machines whose wakeOnLAN.via names one of them.")
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "Name of the node the agent runs on (default $NODE_NAME).")
	fs.StringVar(&o.PodName, "pod-name", os.Getenv("POD_NAME"), "Name of the agent's pod (default $POD_NAME).")
	fs.StringVar(&o.Namespace, "namespace", "",
		"Serve requests of Machines in these namespaces only, a comma-separated `list`; empty serves all namespaces.")
	fs.StringVar(&o.Shutdown, "shutdown", ShutdownOff,
		"How the agent powers its own node off when the manager asks: off (it serves no shutdown), logind (systemd-logind over the host's D-Bus system bus, see --dbus-socket) or command (see --shutdown-command).")
	fs.StringVar(&o.ShutdownCommand, "shutdown-command", "",
		"Executable, an absolute `path`, that --shutdown=command runs with no arguments to power the node off.")
	fs.StringVar(&o.DBusSocket, "dbus-socket", DefaultDBusSocket,
		"The host's D-Bus system bus socket as mounted in the pod, for --shutdown=logind.")
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
	switch {
	case o.Segment == "" && !o.servesShutdowns():
		errs = append(errs, errors.New("--segment is required: name the network segments this node serves, e.g. --segment=lan-2, "+
			"or serve only this node's shutdowns with --shutdown"))
	case o.Segment != "":
		if _, err := names("--segment", o.Segment); err != nil {
			errs = append(errs, err)
		}
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
	if err := o.validateShutdown(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o Options) servesShutdowns() bool { return o.Shutdown != ShutdownOff && o.Shutdown != "" }

// validateShutdown checks the power-off settings, and that what they name is there: a node
// that cannot power off should say so when the agent starts, not when the manager asks.
func (o Options) validateShutdown() error {
	if o.ShutdownCommand != "" && o.Shutdown != ShutdownCommand {
		return fmt.Errorf("--shutdown-command is only used with --shutdown=command, not --shutdown=%s", o.Shutdown)
	}
	switch o.Shutdown {
	case ShutdownOff, "":
		return nil
	case ShutdownLogind:
		if !filepath.IsAbs(o.DBusSocket) {
			return fmt.Errorf("--dbus-socket %q must be an absolute path", o.DBusSocket)
		}
		return checkSocket(o.DBusSocket)
	case ShutdownCommand:
		if o.ShutdownCommand == "" || !filepath.IsAbs(o.ShutdownCommand) {
			return fmt.Errorf("--shutdown=command needs --shutdown-command, the absolute path of the executable that powers the node off (got %q)", o.ShutdownCommand)
		}
		fi, err := os.Stat(o.ShutdownCommand)
		if err != nil {
			return fmt.Errorf("--shutdown-command: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("--shutdown-command %s is not an executable file", o.ShutdownCommand)
		}
		return nil
	}
	return fmt.Errorf("--shutdown=%q: want %s, %s or %s", o.Shutdown, ShutdownOff, ShutdownLogind, ShutdownCommand)
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

// CacheOptions keeps the manager's informers to the wake requests of the agent's segments (in
// the given namespaces, when any): the only objects it reads there.
func CacheOptions(segments, namespaces []string) cache.Options {
	sel := labels.SelectorFromSet(labels.Set{relay.LabelKind: string(infrav1.AgentWake)})
	if len(segments) > 0 {
		seg, err := labels.NewRequirement(relay.LabelSegment, selection.In, segments)
		if err != nil {
			panic(err) // Validate checked the segments
		}
		sel = sel.Add(*seg)
	}
	return requestCache(sel, namespaces)
}

// ShutdownCacheOptions keeps the Shutdowner's informers to the shutdown requests of node (in the
// given namespaces, when any).
func ShutdownCacheOptions(node string, namespaces []string) cache.Options {
	return requestCache(labels.SelectorFromSet(labels.Set{relay.LabelKind: string(infrav1.AgentShutdown), relay.LabelNode: node}), namespaces)
}

func requestCache(sel labels.Selector, namespaces []string) cache.Options {
	o := cache.Options{ByObject: map[client.Object]cache.ByObject{&infrav1.AgentRequest{}: {Label: sel}}}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
		for _, n := range namespaces {
			o.DefaultNamespaces[n] = cache.Config{}
		}
	}
	return o
}

// NewManager builds the agent as the command runs it, acting as the identity of cfg. There is
// no leader election: every agent runs, and each request's resourceVersion picks one.
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
	if err := Add(mgr, o); err != nil {
		return nil, err
	}
	return mgr, nil
}

// Add sets up the agent's controllers and probes on mgr, whose cache CacheOptions restricts:
// the Waker when o names segments, the Shutdowner when o.Shutdown is not off.
func Add(mgr ctrl.Manager, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	segments, _ := names("--segment", o.Segment)
	namespaces, _ := names("--namespace", o.Namespace)
	caches := []cache.Cache{mgr.GetCache()}
	if len(segments) > 0 {
		w := &Waker{Client: mgr.GetClient(), Agent: o.Identity(), Segments: segments}
		if err := w.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the wake controller: %w", err)
		}
	}
	if o.servesShutdowns() {
		requests, err := shutdownCluster(mgr, o.NodeName, namespaces)
		if err != nil {
			return err
		}
		off := CommandPowerOff(o.ShutdownCommand)
		if o.Shutdown == ShutdownLogind {
			off = LogindPowerOff(o.DBusSocket)
		}
		s := &Shutdowner{Client: requests.GetClient(), Agent: o.Identity(), Node: o.NodeName, Method: o.Shutdown, PowerOff: off}
		if err := s.SetupWithManager(mgr, requests.GetCache()); err != nil {
			return fmt.Errorf("setting up the shutdown controller: %w", err)
		}
		caches = append(caches, requests.GetCache())
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("cache", cacheSynced(caches))
}

// shutdownCluster is the Shutdowner's view of the API, started with mgr: a cache of node's
// shutdown requests, and a client that reads from it and writes to the apiserver.
func shutdownCluster(mgr ctrl.Manager, node string, namespaces []string) (cluster.Cluster, error) {
	c, err := cluster.New(mgr.GetConfig(), func(co *cluster.Options) {
		co.Scheme = mgr.GetScheme()
		co.HTTPClient = mgr.GetHTTPClient()
		co.MapperProvider = func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mgr.GetRESTMapper(), nil }
		co.Cache = ShutdownCacheOptions(node, namespaces)
	})
	if err != nil {
		return nil, fmt.Errorf("creating the cache of the shutdown requests of node %s: %w", node, err)
	}
	if err := mgr.Add(c); err != nil {
		return nil, fmt.Errorf("adding the cache of the shutdown requests of node %s: %w", node, err)
	}
	return c, nil
}

// cacheSynced passes once the request informers have synced: before that the agent would miss
// the requests already waiting.
func cacheSynced(caches []cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		for _, c := range caches {
			if !c.WaitForCacheSync(ctx) {
				return errors.New("the request informers have not synced yet")
			}
		}
		return nil
	}
}
