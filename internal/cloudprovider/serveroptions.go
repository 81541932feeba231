package cloudprovider

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Defaults of the connection limits. cluster-autoscaler keeps one connection for its lifetime
// and makes a few calls at a time on it, so the limits only bound what a broken or hostile
// client can hold.
const (
	// DefaultMaxConcurrentStreams caps the calls in flight on one connection: HTTP/2's
	// recommended minimum, far above what cluster-autoscaler uses, and the bound on how many
	// handlers a client that resets streams as fast as it opens them can keep busy.
	DefaultMaxConcurrentStreams = 100
	// DefaultHandshakeTimeout bounds a new connection's TLS and HTTP/2 handshakes (gRPC's own
	// default is two minutes): a client that connects and stays silent is dropped after it.
	DefaultHandshakeTimeout = 10 * time.Second
)

const (
	// keepaliveTime is how long a connection may stay silent before the server pings it, and
	// keepaliveTimeout how long the ping may go unanswered before the connection is closed: a
	// client that vanished without closing (a node lost) frees its connection in about a
	// minute and a half, not the two hours of gRPC's default.
	keepaliveTime    = time.Minute
	keepaliveTimeout = 20 * time.Second
	// keepaliveMinTime is the shortest interval between a client's pings the server accepts;
	// a client pinging more often is disconnected. Pings are allowed without calls in flight
	// because cluster-autoscaler's connection is idle between its loops.
	keepaliveMinTime = 10 * time.Second
	// maxHeaderListSize bounds the request headers, read before a call is authorized (gRPC's
	// default is 16 MiB); gRPC's own headers take a few hundred bytes.
	maxHeaderListSize = 16 << 10
)

// connectionDefaults fills the zero connection limits and checks them with the access settings.
func (o *Options) connectionDefaults() error {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.HandshakeTimeout < 0 {
		return fmt.Errorf("--grpc-handshake-timeout must be positive, got %s", o.HandshakeTimeout)
	}
	return CheckClientAccess(o.Insecure, o.TLS.ClientCAFile, o.AllowedClients, o.AllowAnyClient)
}

// serverOptions are the gRPC server's transport, limits and interceptors.
func (s *Server) serverOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.MaxMessageSize),
		grpc.MaxSendMsgSize(s.opts.MaxMessageSize),
		grpc.MaxConcurrentStreams(s.opts.MaxConcurrentStreams),
		grpc.ConnectionTimeout(s.opts.HandshakeTimeout),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(s.unary),
	}
	if s.opts.Insecure || s.opts.AllowAnyClient {
		return append(opts, grpc.Creds(s.creds))
	}
	gate := &clientGate{allowed: s.opts.AllowedClients, log: s.opts.Logger}
	return append(opts, grpc.Creds(gate.credentials(s.creds)), grpc.InTapHandle(gate.tap))
}
