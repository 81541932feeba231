package power

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The keys of a talos credentials Secret: a talosconfig context's ca, crt and key, base64-decoded.
const (
	talosCAKey   = "ca.crt"
	talosCertKey = "tls.crt"
	talosKeyKey  = "tls.key"
)

// Talos shuts Talos Linux machines down through the Talos API: MachineService.Shutdown, served by
// apid on the machine itself, over mutual TLS with a talosconfig's client certificate. Talos
// acknowledges the request and then shuts down, so the call is Done once Talos accepted it;
// whether the machine went off shows in the confirmation that follows. The API answers only
// while the machine runs, so the driver neither powers on nor reads the power state.
type Talos struct {
	// Egress limits the addresses the driver connects to; nil allows every address.
	Egress *EgressPolicy
}

// Name implements Driver.
func (Talos) Name() string { return DriverTalos }

// Do asks Talos to shut the machine down (ActionOff).
func (d Talos) Do(ctx context.Context, req Request) (Outcome, error) {
	req, g := guard(DriverTalos, req)
	out, err := d.do(ctx, req)
	return g.outcome(out), g.err(err)
}

func (d Talos) do(ctx context.Context, req Request) (Outcome, error) {
	if req.Action != ActionOff {
		return Outcome{}, Errorf(DriverTalos, req.Action, ClassUnsupported, "the Talos API can only shut a machine down")
	}
	cfg := req.Slot.Talos
	if cfg == nil {
		return Outcome{}, Errorf(DriverTalos, req.Action, ClassConfig, "the slot has no talos configuration")
	}
	if cfg.CredentialsSecretRef == nil {
		return Outcome{}, Errorf(DriverTalos, req.Action, ClassConfig, "talos has no credentialsSecretRef")
	}
	addr, host, err := talosAddress(cfg.Endpoint)
	if err != nil {
		return Outcome{}, &Error{Driver: DriverTalos, Action: req.Action, Class: ClassConfig, Err: err}
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()

	tlsCfg, err := talosTLS(ctx, req, cfg.CredentialsSecretRef.Name, host)
	if err != nil {
		return Outcome{}, err
	}
	seen := &talosConnErrors{}
	// passthrough hands the address to the dialer as written: the name is resolved by the
	// egress policy's dialer, which checks the address it resolves to.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(talosCredentials{TransportCredentials: grpccreds.NewTLS(tlsCfg), seen: seen}),
		grpc.WithContextDialer(seen.dialer(d.Egress)),
		grpc.WithDisableRetry(),
	)
	if err != nil {
		return Outcome{}, Errorf(DriverTalos, req.Action, ClassConfig, "endpoint %q: %v", cfg.Endpoint, err)
	}
	defer func() { _ = conn.Close() }()

	if _, err := machine.NewMachineServiceClient(conn).Shutdown(ctx, &machine.ShutdownRequest{Force: cfg.Force}); err != nil {
		return Outcome{}, talosError(ctx, req, addr, err, seen)
	}
	detail := fmt.Sprintf("%s: Talos accepted the shutdown", addr)
	if cfg.Force {
		detail += " (forced: without cordoning and draining)"
	}
	return Outcome{Done: true, Detail: detail}, nil
}

// Status implements Driver: the Talos API answers only while the machine runs.
func (Talos) Status(context.Context, Request) (infrav1.PowerState, error) {
	return infrav1.PowerUnknown, Errorf(DriverTalos, ActionStatus, ClassUnsupported, "the Talos API cannot read the power state: it answers only while the machine runs")
}

// talosAddress reads an endpoint written as a host, host:port, [IPv6] or [IPv6]:port, and a bare
// IPv6 address too. It returns the address to dial and the host the certificate must name.
func talosAddress(endpoint string) (addr, host string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("endpoint %q %s: want a host name or IP address with an optional port, such as 10.0.0.21 or node-1.lan:50000", endpoint, why)
	}
	if endpoint == "" {
		return bad("is empty")
	}
	if strings.ContainsAny(endpoint, "/ ") {
		return bad("has a scheme, a path or a space")
	}
	port := strconv.Itoa(int(infrav1.DefaultTalosPort))
	h, p, splitErr := net.SplitHostPort(endpoint)
	switch {
	case splitErr == nil:
		host, port = h, p
	case strings.HasPrefix(endpoint, "[") && strings.HasSuffix(endpoint, "]"):
		host = endpoint[1 : len(endpoint)-1]
	case strings.Count(endpoint, ":") > 1 && net.ParseIP(endpoint) != nil:
		host = endpoint
	case strings.Contains(endpoint, ":"):
		return bad("is not host:port")
	default:
		host = endpoint
	}
	if host == "" {
		return bad("has no host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("has a port that is not a number from 1 to 65535")
	}
	return net.JoinHostPort(host, port), host, nil
}

// talosTLS builds the client side of the Talos API's mutual TLS from the credentials Secret: the
// talosconfig's CA is the only root the machine's certificate may chain to, and the talosconfig's
// certificate and key are what the client shows. Messages name the Secret's keys, never anything
// they hold.
func talosTLS(ctx context.Context, req Request, secret, host string) (*tls.Config, error) {
	if req.Secrets == nil {
		return nil, Errorf(DriverTalos, req.Action, ClassConfig, "no Secret reader to read secret %s/%s", req.namespace(), secret)
	}
	data, err := req.Secrets.SecretData(ctx, req.namespace(), secret)
	if err != nil {
		return nil, attribute(ctx, DriverTalos, req.Action, err)
	}
	where := fmt.Sprintf("secret %s/%s", req.namespace(), secret)
	var missing []string
	for _, k := range []string{talosCAKey, talosCertKey, talosKeyKey} {
		if len(data[k]) == 0 {
			missing = append(missing, strconv.Quote(k))
		}
	}
	if len(missing) > 0 {
		return nil, Errorf(DriverTalos, req.Action, ClassConfig,
			"%s has no value for key %s: it needs %q, %q and %q, the ca, crt and key of a talosconfig context, base64-decoded",
			where, strings.Join(missing, ", "), talosCAKey, talosCertKey, talosKeyKey)
	}
	for _, k := range []string{talosCAKey, talosCertKey, talosKeyKey} {
		if why := notPEM(data[k]); why != "" {
			return nil, Errorf(DriverTalos, req.Action, ClassConfig, "%s key %q %s", where, k, why)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[talosCAKey]) {
		return nil, Errorf(DriverTalos, req.Action, ClassConfig, "%s key %q holds no PEM certificate", where, talosCAKey)
	}
	cert, err := tls.X509KeyPair(data[talosCertKey], data[talosKeyKey])
	if err != nil {
		// The library's reasons are fixed texts ("private key does not match public key"); none
		// repeats what the keys hold.
		return nil, Errorf(DriverTalos, req.Action, ClassConfig, "%s keys %q and %q are not a certificate and its private key: %v",
			where, talosCertKey, talosKeyKey, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		ServerName:   host,
	}, nil
}

// notPEM says why a value is not PEM, or "" when it is. A value that is PEM once base64-decoded
// is the talosconfig's field copied as it stands, which is a common slip worth naming.
func notPEM(v []byte) string {
	if block, _ := pem.Decode(v); block != nil {
		return ""
	}
	if decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(v))); err == nil {
		if block, _ := pem.Decode(decoded); block != nil {
			return "is base64-encoded PEM: store the talosconfig's value base64-decoded (base64 -d)"
		}
	}
	return "is not PEM"
}

// talosConnErrors keeps what went wrong below gRPC on the call's connection: gRPC reports a failed
// connection as a status whose message is all that is left of the cause, and the driver classifies
// by the cause.
type talosConnErrors struct {
	mu sync.Mutex
	// dial is the first failure to connect, handshake the first failed TLS handshake (a refused
	// client certificate included).
	dial, handshake error
}

func (e *talosConnErrors) record(slot *error, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if *slot == nil {
		*slot = err
	}
}

func (e *talosConnErrors) get() (dial, handshake error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dial, e.handshake
}

// dialer connects through the egress policy and records a failure.
func (e *talosConnErrors) dialer(egress *EgressPolicy) func(context.Context, string) (net.Conn, error) {
	d := egress.dialer()
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			e.record(&e.dial, err)
		}
		return c, err
	}
}

// talosCredentials are TLS transport credentials whose handshake ends only once the machine sent
// its first bytes, and that record a failed handshake. With TLS 1.3 a server refuses a client
// certificate after the client's side of the handshake is over: read first, the refusal arrives
// as the alert that names it; written first (gRPC's client preface), it mostly arrives as a
// broken pipe. Reading first is safe with Talos's apid, a gRPC server, which sends its HTTP/2
// settings without waiting for the client's preface.
type talosCredentials struct {
	grpccreds.TransportCredentials
	seen *talosConnErrors
}

// ClientHandshake implements credentials.TransportCredentials.
func (c talosCredentials) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, grpccreds.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil {
		var first []byte
		if first, err = readFirst(ctx, conn); err == nil {
			return &prereadConn{Conn: conn, pending: first}, info, nil
		}
		_ = conn.Close()
	}
	c.seen.record(&c.seen.handshake, err)
	return nil, nil, err
}

// Clone implements credentials.TransportCredentials.
func (c talosCredentials) Clone() grpccreds.TransportCredentials {
	return talosCredentials{TransportCredentials: c.TransportCredentials.Clone(), seen: c.seen}
}

// readFirst reads what the peer sends first, giving up when ctx ends.
func readFirst(ctx context.Context, conn net.Conn) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if !stop() {
		return nil, ctx.Err()
	}
	if n == 0 && err == nil {
		err = io.ErrNoProgress
	}
	if n == 0 {
		return nil, err
	}
	return buf[:n], nil
}

// prereadConn returns the bytes readFirst took before reading on.
type prereadConn struct {
	net.Conn
	pending []byte
}

func (c *prereadConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// isTLSAlert reports whether err is a TLS alert the peer sent: the machine refused the handshake,
// which with a valid TLS server means it refused the client certificate.
func isTLSAlert(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "remote error"
}

// talosError classifies a failed Shutdown call by what happened on the connection, then by the
// gRPC status.
func talosError(ctx context.Context, req Request, addr string, err error, seen *talosConnErrors) *Error {
	action := req.Action
	st := status.Convert(err)
	secret := fmt.Sprintf("secret %s/%s", req.namespace(), req.Slot.Talos.CredentialsSecretRef.Name)
	dialErr, handshakeErr := seen.get()
	switch {
	case ctx.Err() != nil || st.Code() == codes.DeadlineExceeded:
		return Errorf(DriverTalos, action, ClassTimeout, "%s: no answer within the timeout", addr)
	case dialErr != nil:
		if denied, ok := egressRefusal(dialErr); ok {
			return Errorf(DriverTalos, action, ClassConfig, "%s: %v", addr, denied)
		}
		return Errorf(DriverTalos, action, classify(ctx, dialErr), "%s: connect: %v", addr, dialErr)
	case handshakeErr != nil && isTLSVerificationError(handshakeErr):
		return Errorf(DriverTalos, action, ClassAuthFailed,
			"%s: the machine's certificate does not verify against %s key %q (the talosconfig's ca; the endpoint must be a name or address the certificate holds): %v",
			addr, secret, talosCAKey, handshakeErr)
	case handshakeErr != nil && isTLSAlert(handshakeErr):
		return Errorf(DriverTalos, action, ClassAuthFailed, "%s refused the client certificate of %s key %q: %v", addr, secret, talosCertKey, handshakeErr)
	case handshakeErr != nil:
		class := classify(ctx, handshakeErr)
		if class == ClassBMCError && (errors.Is(handshakeErr, io.EOF) || isConnDrop(handshakeErr)) {
			class = ClassUnreachable
		}
		return Errorf(DriverTalos, action, class, "%s: TLS handshake: %v", addr, handshakeErr)
	}
	switch st.Code() {
	case codes.PermissionDenied, codes.Unauthenticated:
		return Errorf(DriverTalos, action, ClassAuthFailed, "%s refused the shutdown: %s: %s (the certificate's role must be os:operator or os:admin)",
			addr, st.Code(), st.Message())
	case codes.Unavailable:
		return Errorf(DriverTalos, action, ClassUnreachable, "%s: %s", addr, st.Message())
	case codes.Unimplemented:
		return Errorf(DriverTalos, action, ClassUnsupported, "%s does not serve the Talos MachineService: %s", addr, st.Message())
	}
	return Errorf(DriverTalos, action, ClassBMCError, "%s: shutdown: %s: %s", addr, st.Code(), st.Message())
}
