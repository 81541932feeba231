package app

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/machine"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// Options are the manager command's settings: one field per flag, then the few fields without
// a flag that tests set and the command leaves zero.
type Options struct {
	Namespace string

	MetricsAddr    string
	MetricsSecure  bool
	MetricsCertDir string
	ProbeAddr      string
	ProfilingAddr  string

	LeaderElect              bool
	LeaderElectionID         string
	LeaderElectionNamespace  string
	LeaderElectLeaseDuration time.Duration
	LeaderElectRenewDeadline time.Duration
	LeaderElectRetryPeriod   time.Duration
	ShutdownTimeout          time.Duration
	WriteRetryBackoff        optimistic.Backoff
	PowerRetryBase           time.Duration
	PowerRetryCap            time.Duration
	PowerConfirmInterval     time.Duration
	MachineConcurrency       int
	RecheckInterval          time.Duration
	PowerOnRate              float64
	PowerOnBurst             int
	MaxBooting               int
	DriverEgress             power.EgressPolicy
	JobPolicy                power.JobPolicy
	AllowManagerNamespace    bool
	GRPCAddr                 string
	GRPCTLS                  cloudprovider.TLSFiles
	GRPCInsecure             bool
	GRPCAllowedClients       cloudprovider.AllowedClients
	GRPCAllowAnyClient       bool
	GRPCMaxConcurrentStreams uint
	GRPCHandshakeTimeout     time.Duration

	// ManagerNamespace is the namespace whose Secrets the drivers refuse (unless
	// AllowManagerNamespace); empty is the manager's own: $POD_NAMESPACE, else the pod's
	// service account namespace, else --leader-election-namespace.
	ManagerNamespace string
	// Logger is the manager's logger, its controllers' and gRPC server's included (default
	// ctrl.Log): a test running several managers tells their logs apart, or reads one's.
	Logger logr.Logger
	// Drivers replaces the built-in power drivers (a registry without "job" gets the Job
	// driver): tests stand in for BMCs with drivers of their own.
	Drivers power.Registry
	// WriteMetrics counts the optimistic writes' conflicts (default
	// optimistic.DefaultMetrics): a test or benchmark reads one manager's alone.
	WriteMetrics *optimistic.Metrics
	// GRPCMetrics receives the gRPC calls' metrics (default cloudprovider.DefaultMetrics),
	// likewise.
	GRPCMetrics *cloudprovider.Metrics
	// GRPCCallTimeout bounds every gRPC call (default cloudprovider.DefaultCallTimeout): a test
	// makes calls run out of time.
	GRPCCallTimeout time.Duration
	// GRPCOnly runs the gRPC server without the controllers, as a replica that is not leading
	// does, but for good: tests of the server play the controllers' status writes themselves,
	// and the RPC benchmark keeps the fleet as it wrote it from one call to the next.
	GRPCOnly bool
	// SkipControllerNameValidation lets one process run several managers: controller-runtime
	// refuses a controller name it has seen before in the process, and tests start a manager
	// per test (or several).
	SkipControllerNameValidation bool
	// Clock is the clock of everything time-based (schedule windows, their requeues, power
	// timeouts, energy accounts); default the real one. Tests drive a fake clock through days
	// and daylight-saving changes.
	Clock clock.WithTicker
}

// Defaults of the flags that are not defaults of another package.
const (
	DefaultMetricsAddr      = ":8080"
	DefaultProbeAddr        = ":8081"
	DefaultLeaderElectionID = "homelab-autoscaler.infra.homelab-autoscaler.dev"
	// The leader election timings are client-go's usual ones: a replica that dies is replaced
	// within about 15 s; one that shuts down releases the lease at once.
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	// DefaultShutdownTimeout leaves room for a power driver call in flight (30 s by default) to
	// end by its own timeout after the context is cancelled, and for gRPC calls to finish.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultPowerOnRate and DefaultPowerOnBurst pace power-ons: ten machines start at once, then
	// five a second, which spreads a site of a hundred over about twenty seconds.
	DefaultPowerOnRate  = 5.0
	DefaultPowerOnBurst = 10
)

// BindFlags registers every manager flag on fs (the logging flags included) and returns the
// options that fs.Parse fills. --kubeconfig is registered by controller-runtime on
// flag.CommandLine.
func BindFlags(fs *flag.FlagSet) (*Options, *zap.Options) {
	o := &Options{WriteRetryBackoff: optimistic.DefaultBackoff(), DriverEgress: power.DefaultEgressPolicy()}
	fs.StringVar(&o.Namespace, "namespace", "",
		"Watch Groups and Machines (and their Secrets, ConfigMaps, Jobs) in these namespaces only, a comma-separated `list`; empty watches all namespaces.")

	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", DefaultMetricsAddr, "Address of the metrics endpoint; 0 disables it.")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS to scrapers that authenticate with a bearer token (TokenReview) and may get the non-resource URL /metrics (SubjectAccessReview); false serves plain HTTP to anyone.")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "",
		"Folder with tls.crt and tls.key for the metrics endpoint; empty uses a self-signed certificate generated at start.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", DefaultProbeAddr,
		"Address of /healthz and /readyz; ready once the cache has synced and the gRPC server serves, on every replica, leader or not.")
	fs.StringVar(&o.ProfilingAddr, "profiling-bind-address", "0",
		"Address (host:port) that serves Go's runtime profiles at /debug/pprof/ (CPU, heap, goroutines, traces), for measuring the manager; 0 disables it. It has no authentication and its profiles show the manager's memory: bind it to loopback (127.0.0.1:6060) and reach it with kubectl port-forward.")

	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect one leader among replicas to run the controllers; every replica serves gRPC.")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", DefaultLeaderElectionID, "Name of the leader election Lease.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; empty is the pod's own namespace.")
	fs.DurationVar(&o.LeaderElectLeaseDuration, "leader-elect-lease-duration", DefaultLeaseDuration,
		"How long replicas that are not leading wait, after the last renewal they saw, before taking the lease.")
	fs.DurationVar(&o.LeaderElectRenewDeadline, "leader-elect-renew-deadline", DefaultRenewDeadline,
		"How long the leader keeps retrying to renew the lease before it stops leading (and exits).")
	fs.DurationVar(&o.LeaderElectRetryPeriod, "leader-elect-retry-period", DefaultRetryPeriod,
		"Wait between two attempts to take or renew the lease.")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout,
		"On SIGTERM, how long the manager waits for its parts to stop; the gRPC server lets calls in flight finish within the first half of it. A manager still running 2s after it (its apiserver unresponsive, say) exits with status 1.")

	o.WriteRetryBackoff.BindFlags(fs, "write-retry-")
	fs.DurationVar(&o.PowerRetryBase, "power-retry-base", machine.DefaultRetryBase, "Wait after a failed power attempt before the next one (doubling each time).")
	fs.DurationVar(&o.PowerRetryCap, "power-retry-cap", machine.DefaultRetryCap, "Longest wait between two power attempts.")
	fs.DurationVar(&o.PowerConfirmInterval, "power-confirm-interval", machine.DefaultConfirmInterval, "How often a power-off is re-checked, and a blocked drain retried.")
	fs.IntVar(&o.MachineConcurrency, "machine-concurrency", machine.DefaultConcurrency, "How many machines are reconciled at once (a slow BMC holds up only its own machine).")
	fs.DurationVar(&o.RecheckInterval, "power-recheck-interval", machine.DefaultRecheckInterval,
		"How soon the power state of a machine whose Node went NotReady (or that contradicts its status) is read again at first; the wait grows with the state's age up to the Group's repair.observeInterval.")
	fs.Float64Var(&o.PowerOnRate, "power-on-rate", DefaultPowerOnRate,
		"Most power-on commands per second across all machines (after a site-wide power cut, say), so their inrush current does not trip a breaker; 0 is no limit.")
	fs.IntVar(&o.PowerOnBurst, "power-on-burst", DefaultPowerOnBurst, "Power-on commands that may go at once after a quiet period, within --power-on-rate.")
	fs.Var(&o.DriverEgress, "driver-egress",
		"Adds to the addresses the http, redfish, ipmi, ssh and wakeOnLAN drivers may reach: comma-separated allow=PREFIX and deny=PREFIX items (the flag may repeat); the longest matching prefix decides, deny wins a tie, an address nothing matches is allowed. The built-in denials refuse link-local addresses (the cloud metadata service 169.254.169.254 among them), loopback and the unspecified addresses; e.g. allow=127.0.0.1/32 lets one loopback address through.")
	fs.Var(&o.JobPolicy.Images, power.FlagJobImages,
		"Images the job driver may run, a comma-separated `list` (the flag may repeat): an item ending in /, : or @ allows what starts with it (registry.example/power-scripts/, docker.io/library/busybox:), any other a repository with its tags, digests and sub-repositories; busybox:1.37 reads as docker.io/library/busybox:1.37. Empty refuses every image.")
	fs.Var(&o.JobPolicy.ServiceAccounts, power.FlagJobServiceAccounts,
		"ServiceAccounts the job driver's pods may run as, with their token mounted, a comma-separated `list` of NAME (any namespace) or NAMESPACE/NAME; others are refused, and a pod of the namespace's default ServiceAccount gets no token unless default is listed.")
	fs.BoolVar(&o.JobPolicy.AllowHostNetwork, power.FlagJobAllowHostNetwork, false,
		"Let the job driver's pods use their node's network (hostNetwork), which namespaces enforcing the baseline or restricted Pod Security level refuse.")
	fs.BoolVar(&o.AllowManagerNamespace, power.FlagAllowManagerNamespaceSecret, false,
		"Let the drivers use Secrets of the manager's own namespace (labelled homelab-autoscaler.dev/credentials=true like any other).")
	fs.IntVar(&o.MaxBooting, "max-booting", 0,
		"Most machines booting at once (from the power-on command until the Node is Ready or the boot timeout passes); 0 is no limit.")

	fs.StringVar(&o.GRPCAddr, "grpc-bind-address", cloudprovider.DefaultBindAddress, "Address of cluster-autoscaler's externalgrpc API: host:port, or unix:/path/to.sock.")
	fs.StringVar(&o.GRPCTLS.CertFile, "grpc-tls-cert", "", "PEM server certificate of the gRPC API (reloaded when it changes).")
	fs.StringVar(&o.GRPCTLS.KeyFile, "grpc-tls-key", "", "PEM private key of --grpc-tls-cert.")
	fs.StringVar(&o.GRPCTLS.ClientCAFile, "grpc-client-ca", "", "PEM CA certificates that sign cluster-autoscaler's client certificate; other clients are refused.")
	fs.BoolVar(&o.GRPCInsecure, "grpc-insecure", false, "Serve without TLS; refused unless the address is loopback or a unix socket.")
	fs.Var(&o.GRPCAllowedClients, "grpc-allowed-clients",
		"Client certificates that may call, as a comma-separated `list` (the flag may repeat): cn:NAME matches the Subject common name, uri:URI a URI SAN such as a SPIFFE ID; other certificates of --grpc-client-ca get PermissionDenied. Required with mutual TLS unless --grpc-allow-any-client.")
	fs.BoolVar(&o.GRPCAllowAnyClient, "grpc-allow-any-client", false,
		"Let every certificate that --grpc-client-ca signed call every method, DeleteNodes included (instead of --grpc-allowed-clients).")
	fs.UintVar(&o.GRPCMaxConcurrentStreams, "grpc-max-concurrent-streams", cloudprovider.DefaultMaxConcurrentStreams,
		"Most gRPC calls in flight on one connection; more wait for one to finish.")
	fs.DurationVar(&o.GRPCHandshakeTimeout, "grpc-handshake-timeout", cloudprovider.DefaultHandshakeTimeout,
		"How long a new gRPC connection may take to complete its TLS and HTTP/2 handshakes before it is closed.")

	zo := &zap.Options{}
	zo.BindFlags(fs)
	return o, zo
}

// managerNamespace is ManagerNamespace, else the namespace the manager runs in.
func (o *Options) managerNamespace() string {
	if o.ManagerNamespace != "" {
		return o.ManagerNamespace
	}
	return power.ManagerNamespace(o.LeaderElectionNamespace)
}

// Validate reports settings that cannot work together. (The gRPC transport's files and address
// are checked when its server is created.)
func (o *Options) Validate() error {
	var errs []error
	if _, err := watchedNamespaces(o.Namespace); err != nil {
		errs = append(errs, err)
	}
	if err := cloudprovider.CheckClientAccess(o.GRPCInsecure, o.GRPCTLS.ClientCAFile, o.GRPCAllowedClients, o.GRPCAllowAnyClient); err != nil {
		errs = append(errs, err)
	}
	if err := checkProfilingAddr(o.ProfilingAddr); err != nil {
		errs = append(errs, err)
	}
	if o.GRPCMaxConcurrentStreams == 0 || o.GRPCMaxConcurrentStreams > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("--grpc-max-concurrent-streams must be between 1 and %d, got %d", uint32(math.MaxUint32), o.GRPCMaxConcurrentStreams))
	}
	if o.GRPCHandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--grpc-handshake-timeout must be positive, got %s", o.GRPCHandshakeTimeout))
	}
	if err := o.WriteRetryBackoff.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--write-retry-*: %w", err))
	}
	if o.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout must be positive, got %s", o.ShutdownTimeout))
	}
	if o.PowerOnRate < 0 || o.PowerOnBurst < 0 || o.MaxBooting < 0 {
		errs = append(errs, fmt.Errorf("--power-on-rate (%g), --power-on-burst (%d) and --max-booting (%d) must not be negative",
			o.PowerOnRate, o.PowerOnBurst, o.MaxBooting))
	}
	if o.PowerOnRate > 0 && o.PowerOnBurst == 0 {
		errs = append(errs, errors.New("--power-on-burst must be at least 1 when --power-on-rate is set"))
	}
	if o.LeaderElect {
		// client-go's own rule: the leader must give up before others may take over.
		if o.LeaderElectLeaseDuration <= o.LeaderElectRenewDeadline {
			errs = append(errs, fmt.Errorf("--leader-elect-lease-duration (%s) must be longer than --leader-elect-renew-deadline (%s)",
				o.LeaderElectLeaseDuration, o.LeaderElectRenewDeadline))
		}
		if o.LeaderElectRetryPeriod <= 0 || o.LeaderElectRenewDeadline <= o.LeaderElectRetryPeriod {
			errs = append(errs, fmt.Errorf("--leader-elect-renew-deadline (%s) must be longer than --leader-elect-retry-period (%s), which must be positive",
				o.LeaderElectRenewDeadline, o.LeaderElectRetryPeriod))
		}
		if o.LeaderElectionID == "" {
			errs = append(errs, errors.New("--leader-election-id must not be empty"))
		}
	}
	return errors.Join(errs...)
}

func (o Options) clock() clock.WithTicker {
	if o.Clock != nil {
		return o.Clock
	}
	return clock.RealClock{}
}

// checkProfilingAddr refuses a --profiling-bind-address that is neither 0 (or empty) nor
// host:port, before the manager starts rather than when it binds.
func checkProfilingAddr(addr string) error {
	if addr == "" || addr == "0" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("--profiling-bind-address %q: want host:port, such as 127.0.0.1:6060, or 0 to disable it", addr)
	}
	return nil
}
