package cloudprovider

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Mutual TLS only authenticates: every certificate the client CA signed would otherwise reach
// every method, DeleteNodes included, and a CA is often shared (a cluster-wide cert-manager
// issuer). The allowed identities narrow that to cluster-autoscaler's own certificate.

// ClientIdentity names a client certificate: by its Subject common name (Kind "cn") or by one of
// its URI subject alternative names (Kind "uri", e.g. a SPIFFE ID). Matching is exact.
type ClientIdentity struct {
	Kind  string
	Value string
}

// String is the identity as --grpc-allowed-clients writes it.
func (c ClientIdentity) String() string { return c.Kind + ":" + c.Value }

// AllowedClients is the list of --grpc-allowed-clients. It is a flag.Value: each use of the
// flag adds its comma-separated entries, each "cn:NAME" or "uri:URI".
type AllowedClients []ClientIdentity

// ParseAllowedClients parses a comma-separated list of cn:NAME and uri:URI entries.
func ParseAllowedClients(list string) (AllowedClients, error) {
	var out AllowedClients
	if err := out.Set(list); err != nil {
		return nil, err
	}
	return out, nil
}

// Set adds the entries of one comma-separated list.
func (a *AllowedClients) Set(list string) error {
	var add AllowedClients
	for entry := range strings.SplitSeq(list, ",") {
		id, err := parseClientIdentity(strings.TrimSpace(entry))
		if err != nil {
			return err
		}
		add = append(add, id)
	}
	*a = append(*a, add...)
	return nil
}

// String is the list as --grpc-allowed-clients takes it.
func (a *AllowedClients) String() string {
	if a == nil {
		return ""
	}
	s := make([]string, len(*a))
	for i, id := range *a {
		s[i] = id.String()
	}
	return strings.Join(s, ",")
}

func parseClientIdentity(entry string) (ClientIdentity, error) {
	kind, value, found := strings.Cut(entry, ":")
	if !found || (kind != "cn" && kind != "uri") {
		return ClientIdentity{}, fmt.Errorf("allowed client %q: want cn:NAME (the certificate's Subject common name) or uri:URI (one of its URI SANs)", entry)
	}
	if value == "" {
		return ClientIdentity{}, fmt.Errorf("allowed client %q names nobody: give a name after %q", entry, kind+":")
	}
	if kind == "uri" {
		u, err := url.Parse(value)
		if err != nil || u.Scheme == "" {
			return ClientIdentity{}, fmt.Errorf("allowed client %q: %q is not an absolute URI such as spiffe://cluster.local/ns/kube-system/sa/cluster-autoscaler", entry, value)
		}
		value = u.String()
	}
	return ClientIdentity{Kind: kind, Value: value}, nil
}

// allows reports whether the certificate carries one of the identities.
func (a AllowedClients) allows(cert *x509.Certificate) bool {
	for _, id := range a {
		switch id.Kind {
		case "cn":
			if cert.Subject.CommonName == id.Value {
				return true
			}
		case "uri":
			for _, u := range cert.URIs {
				if u.String() == id.Value {
					return true
				}
			}
		}
	}
	return false
}

// CheckClientAccess refuses access settings that cannot work together: with a client CA, either
// the allowed identities or an explicit allowAny (never both); without TLS, no identities, since
// a plaintext client shows no certificate to match. (A missing client CA is reported with the
// other TLS files.)
func CheckClientAccess(insecure bool, clientCAFile string, allowed AllowedClients, allowAny bool) error {
	switch {
	case insecure && len(allowed) > 0:
		return errors.New("--grpc-allowed-clients needs mutual TLS: a client of --grpc-insecure shows no certificate to match")
	case insecure:
		return nil
	case len(allowed) > 0 && allowAny:
		return errors.New("--grpc-allowed-clients and --grpc-allow-any-client contradict each other: choose one")
	case len(allowed) == 0 && !allowAny && clientCAFile != "":
		return errors.New("gRPC mutual TLS needs --grpc-allowed-clients, the client certificates that may call " +
			"(e.g. cn:cluster-autoscaler), or --grpc-allow-any-client to let every certificate of --grpc-client-ca call every method")
	}
	return nil
}

// clientGate authorizes each connection once, when its TLS handshake completes, and refuses every
// call of a connection whose certificate is not allowed before the call is read or dispatched.
type clientGate struct {
	allowed AllowedClients
	log     logr.Logger
}

// clientAuthInfo is the TLS state of a connection with the gate's decision.
type clientAuthInfo struct {
	credentials.TLSInfo
	allowed bool
	subject string
}

// gatedCredentials are TLS server credentials that record the gate's decision in each
// connection's AuthInfo.
type gatedCredentials struct {
	credentials.TransportCredentials
	gate *clientGate
}

func (g *clientGate) credentials(tlsCreds credentials.TransportCredentials) credentials.TransportCredentials {
	return &gatedCredentials{TransportCredentials: tlsCreds, gate: g}
}

func (c *gatedCredentials) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return conn, info, err
	}
	tlsInfo, ok := info.(credentials.TLSInfo)
	if !ok || len(tlsInfo.State.VerifiedChains) == 0 || len(tlsInfo.State.VerifiedChains[0]) == 0 {
		return nil, nil, errors.New("the TLS handshake verified no client certificate")
	}
	leaf := tlsInfo.State.VerifiedChains[0][0]
	a := clientAuthInfo{TLSInfo: tlsInfo, allowed: c.gate.allowed.allows(leaf), subject: leaf.Subject.String()}
	if !a.allowed {
		// The subject alone: it is what an operator compares with --grpc-allowed-clients, and
		// the rest of the certificate is not for the log.
		c.gate.log.Info("refusing every call of a client certificate not in --grpc-allowed-clients",
			"subject", a.subject, "remote", raw.RemoteAddr().String())
	}
	return conn, a, nil
}

func (c *gatedCredentials) Clone() credentials.TransportCredentials {
	return &gatedCredentials{TransportCredentials: c.TransportCredentials.Clone(), gate: c.gate}
}

// tap runs before a call's stream is created: a refused client's call ends here, with
// PermissionDenied, before its message is read.
func (g *clientGate) tap(ctx context.Context, _ *tap.Info) (context.Context, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ctx, status.Error(codes.PermissionDenied, "no client certificate")
	}
	a, ok := p.AuthInfo.(clientAuthInfo)
	if !ok {
		return ctx, status.Error(codes.PermissionDenied, "no client certificate")
	}
	if !a.allowed {
		return ctx, status.Errorf(codes.PermissionDenied, "client certificate %q is not in the server's --grpc-allowed-clients", a.subject)
	}
	return ctx, nil
}
