package cloudprovider

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// Defaults for the zero fields of Options.
const (
	DefaultBindAddress = ":8086"
	// DefaultCallTimeout bounds every call even when cluster-autoscaler sets a longer
	// grpc_timeout; the shorter of the two applies.
	DefaultCallTimeout = 10 * time.Second
	// DefaultBatchWindow is how long the first write call on a group waits for others to be
	// decided with it (groupcommit.go). Calls on one group come together when cluster-autoscaler
	// deletes several nodes at once (one DeleteNodes each) or when several of its replicas'
	// loops coincide; without the wait the first is written alone and every other waits for
	// that write and then its own: two ledger round trips instead of one. A call alone pays the
	// window once, a small part of one round trip to the apiserver.
	DefaultBatchWindow = 2 * time.Millisecond
	// DefaultMaxMessageSize fits NodeGroupNodes of a group of tens of thousands of machines.
	DefaultMaxMessageSize = 16 << 20
	// DefaultShutdownGrace is how long Start lets calls in flight finish when its context ends.
	DefaultShutdownGrace = 5 * time.Second
)

// Options configure a Server.
type Options struct {
	// Cache is the manager's cache (mgr.GetCache()): the server registers its event handler on
	// the machines' informer and waits for it to sync before it serves.
	Cache cache.Cache
	// Reader reads from that cache (mgr.GetClient()); the field indexes of internal/index must
	// be registered on it.
	Reader client.Reader
	// Writer performs every write (optimistic.New(mgr.GetClient(), mgr.GetAPIReader())).
	Writer *optimistic.Writer

	// BindAddress is host:port, or unix:/path/to.sock for a unix socket. Default ":8086".
	BindAddress string
	// TLS names the PEM files of mutual TLS. All three are required unless Insecure is set.
	TLS TLSFiles
	// Insecure serves plaintext without client authentication. It is refused unless
	// BindAddress is a loopback address or a unix socket.
	Insecure bool
	// AllowedClients are the client certificates that may call; with mutual TLS, it or
	// AllowAnyClient is required. Other clients of the client CA get PermissionDenied.
	AllowedClients AllowedClients
	// AllowAnyClient lets every certificate the client CA signed call every method.
	AllowAnyClient bool
	// MaxConcurrentStreams caps the calls in flight on one connection (default
	// DefaultMaxConcurrentStreams).
	MaxConcurrentStreams uint32
	// HandshakeTimeout bounds a new connection's TLS and HTTP/2 handshakes (default
	// DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

	// CallTimeout bounds every call (default DefaultCallTimeout).
	CallTimeout time.Duration
	// BatchWindow is how long a write call that finds no batch of its group in flight waits
	// for others to join it before its ledger write (default DefaultBatchWindow; negative: no
	// wait).
	BatchWindow time.Duration
	// MaxMessageSize bounds received and sent messages (default DefaultMaxMessageSize).
	MaxMessageSize int
	// ShutdownGrace bounds the graceful stop (default DefaultShutdownGrace).
	ShutdownGrace time.Duration

	// Logger logs every write call and transport events (default: a discarding logger).
	Logger logr.Logger
	// Metrics receives the call metrics (default DefaultMetrics).
	Metrics *Metrics
	// Now returns the current time; tests may replace it.
	Now func() time.Time
	// Recorder, when set, receives the Events of the server's own decisions on Groups (a
	// schedule's power-ons and power-offs, a choice powerCycling shaped).
	Recorder events.EventRecorder
}

// TLSFiles names the PEM files of the server's mutual TLS. They are read again whenever one of
// them changes on disk (a rotated certificate is served without a restart).
type TLSFiles struct {
	// CertFile is the server certificate chain; its SAN must match the host in
	// cluster-autoscaler's cloud-config address.
	CertFile string
	// KeyFile is the server certificate's private key.
	KeyFile string
	// ClientCAFile holds the CA certificates that sign the clients' (cluster-autoscaler's)
	// certificates. Clients without such a certificate are refused.
	ClientCAFile string
}

func (t TLSFiles) empty() bool { return t.CertFile == "" && t.KeyFile == "" && t.ClientCAFile == "" }

// withDefaults validates o and fills its zero fields.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Cache == nil {
		errs = append(errs, errors.New("a cache is required"))
	}
	if o.Reader == nil {
		errs = append(errs, errors.New("a cache reader is required"))
	}
	if o.Writer == nil {
		errs = append(errs, errors.New("an optimistic writer is required"))
	}
	if o.BindAddress == "" {
		o.BindAddress = DefaultBindAddress
	}
	if o.BatchWindow == 0 {
		o.BatchWindow = DefaultBatchWindow
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("call timeout must be positive, got %s", o.CallTimeout))
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxMessageSize < 0 {
		errs = append(errs, fmt.Errorf("max message size must be positive, got %d", o.MaxMessageSize))
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Metrics == nil {
		o.Metrics = DefaultMetrics
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := o.checkTransport(); err != nil {
		errs = append(errs, err)
	}
	if err := o.connectionDefaults(); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// checkTransport refuses a plaintext server reachable from the network, and an incomplete TLS
// setup.
func (o Options) checkTransport() error {
	ep, err := parseBindAddress(o.BindAddress)
	if err != nil {
		return err
	}
	if o.Insecure {
		if !o.TLS.empty() {
			return errors.New("insecure gRPC (--grpc-insecure) cannot be combined with TLS files: choose one")
		}
		if !ep.local() {
			return fmt.Errorf("insecure gRPC (--grpc-insecure) is only allowed on a loopback address (127.0.0.1, [::1], localhost) or a unix socket (unix:/path), "+
				"and %q is reachable from the network: give --grpc-tls-cert, --grpc-tls-key and --grpc-client-ca for mutual TLS instead", o.BindAddress)
		}
		return nil
	}
	var missing []string
	if o.TLS.CertFile == "" {
		missing = append(missing, "--grpc-tls-cert")
	}
	if o.TLS.KeyFile == "" {
		missing = append(missing, "--grpc-tls-key")
	}
	if o.TLS.ClientCAFile == "" {
		missing = append(missing, "--grpc-client-ca")
	}
	if len(missing) > 0 {
		return fmt.Errorf("gRPC mutual TLS needs a server certificate, its key and the client CA; missing %v "+
			"(or pass --grpc-insecure, allowed only on a loopback address or a unix socket)", missing)
	}
	return nil
}
