package power

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// talosCA is a Talos "OS" certificate authority made for one test: it signs the machine's apid
// certificate and the talosconfig's client certificates, as Talos's does.
type talosCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
	pem  []byte
}

func newTalosCA(t testing.TB, name string) *talosCA {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{name}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &talosCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs an Ed25519 leaf certificate with the key in the PEM form a talosconfig holds
// (PKCS #8 under "ED25519 PRIVATE KEY"). A client certificate carries its Talos role as its
// organization; a server certificate names 127.0.0.1 and localhost.
func (ca *talosCA) issue(t testing.TB, serial int64, role string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.issueUntil(t, serial, role, server, time.Now().Add(24*time.Hour))
}

func (ca *talosCA) issueUntil(t testing.TB, serial int64, role string, server bool, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{role}},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "ED25519 PRIVATE KEY", Bytes: kder})
}

// talosAPI is a Talos API on a loopback port: the machinery's own MachineService server over
// mutual TLS with the client CA, with Talos's role check (os:admin or os:operator may shut down).
// Shutdown records each request's Force instead of shutting anything down.
type talosAPI struct {
	machine.UnimplementedMachineServiceServer

	ca   *talosCA
	srv  *grpc.Server
	port int

	mu        sync.Mutex
	shutdowns []bool
	// reply, when set, is the error Shutdown answers with.
	reply error
}

func startTalosAPI(t *testing.T) *talosAPI {
	t.Helper()
	api := &talosAPI{ca: newTalosCA(t, "talos")}
	serverCert, serverKey := api.ca.issue(t, 2, "", true)
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(api.ca.cert)
	srv := grpc.NewServer(
		grpc.Creds(grpccreds.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{pair}, ClientCAs: clients,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		})),
		grpc.UnaryInterceptor(requireTalosRole),
	)
	machine.RegisterMachineServiceServer(srv, api)
	api.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api.port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return api
}

// requireTalosRole refuses a client certificate whose organization is no role that may shut a
// machine down, with the code Talos's apid uses.
func requireTalosRole(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(grpccreds.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no client certificate")
	}
	roles := info.State.PeerCertificates[0].Subject.Organization
	if !slices.Contains(roles, "os:admin") && !slices.Contains(roles, "os:operator") {
		return nil, status.Errorf(codes.PermissionDenied, "not authorized")
	}
	return handler(ctx, req)
}

func (a *talosAPI) Shutdown(_ context.Context, r *machine.ShutdownRequest) (*machine.ShutdownResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.shutdowns = append(a.shutdowns, r.GetForce())
	if a.reply != nil {
		return nil, a.reply
	}
	return &machine.ShutdownResponse{Messages: []*machine.Shutdown{{ActorId: "test"}}}, nil
}

func (a *talosAPI) calls() []bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.shutdowns)
}

func (a *talosAPI) setReply(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reply = err
}

// credentials returns a talosconfig's ca, crt and key for a client certificate of role, as the
// Secret holds them.
func (a *talosAPI) credentials(t *testing.T, serial int64, role string) map[string][]byte {
	t.Helper()
	crt, key := a.ca.issue(t, serial, role, false)
	return map[string][]byte{talosCAKey: a.ca.pem, talosCertKey: crt, talosKeyKey: key}
}

func (a *talosAPI) slot(endpoint string, force bool) Slot {
	if endpoint == "" {
		endpoint = "127.0.0.1:" + strconv.Itoa(a.port)
	}
	return Slot{Timeout: 10 * time.Second, Talos: &infrav1.TalosDriver{
		Endpoint: endpoint, CredentialsSecretRef: &infrav1.SecretReference{Name: "talos"}, Force: force,
	}}
}

// keyLines are the lines of a PEM key that a message must never hold.
func keyLines(keyPEM []byte) []string {
	lines := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")
	return append([]string{string(keyPEM)}, lines[1:len(lines)-1]...)
}

func TestTalosShutdown(t *testing.T) {
	t.Parallel()
	api := startTalosAPI(t)
	ctx := context.Background()
	creds := api.credentials(t, 10, "os:operator")
	secrets := fakeSecrets{"talos": creds}

	out, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), secrets))
	if err != nil || !out.Done {
		t.Fatalf("Do: %+v, %v", out, err)
	}
	if got := api.calls(); !slices.Equal(got, []bool{false}) {
		t.Fatalf("Shutdown calls (their force): %v; want one graceful", got)
	}
	t.Logf("outcome: %s", out.Detail)

	// By host name, on the port written in the endpoint; the certificate names localhost.
	out, err = Talos{}.Do(ctx, request(ActionOff, api.slot("localhost:"+strconv.Itoa(api.port), true), secrets))
	if err != nil || !out.Done {
		t.Fatalf("Do with force: %+v, %v", out, err)
	}
	if got := api.calls(); !slices.Equal(got, []bool{false, true}) {
		t.Fatalf("Shutdown calls (their force): %v; want a graceful one, then a forced one", got)
	}
	if !strings.Contains(out.Detail, "forced") {
		t.Fatalf("the outcome does not say the shutdown was forced: %s", out.Detail)
	}
	noSecretIn(t, out.Detail, keyLines(creds[talosKeyKey])...)

	t.Run("os:admin may shut down too", func(t *testing.T) {
		secrets := fakeSecrets{"talos": api.credentials(t, 11, "os:admin")}
		if _, err := (Talos{}).Do(ctx, request(ActionOff, api.slot("", false), secrets)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTalosRefusals(t *testing.T) {
	t.Parallel()
	api := startTalosAPI(t)
	ctx := context.Background()
	creds := api.credentials(t, 20, "os:operator")
	key := keyLines(creds[talosKeyKey])
	with := func(changes map[string][]byte) fakeSecrets {
		data := map[string][]byte{}
		for k, v := range creds {
			data[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(data, k)
			} else {
				data[k] = v
			}
		}
		return fakeSecrets{"talos": data}
	}
	before := len(api.calls())

	t.Run("client certificate of another CA", func(t *testing.T) {
		otherCrt, otherKey := newTalosCA(t, "other").issue(t, 21, "os:admin", false)
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(map[string][]byte{talosCertKey: otherCrt, talosKeyKey: otherKey})))
		msg := wantClass(t, err, ClassAuthFailed, keyLines(otherKey)...)
		if !strings.Contains(msg, "refused the client certificate") || !strings.Contains(msg, `"tls.crt"`) {
			t.Fatalf("want the client certificate named as refused: %v", msg)
		}
	})

	t.Run("expired client certificate", func(t *testing.T) {
		crt, expiredKey := api.ca.issueUntil(t, 24, "os:operator", false, time.Now().Add(-time.Hour))
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(map[string][]byte{talosCertKey: crt, talosKeyKey: expiredKey})))
		wantClass(t, err, ClassAuthFailed, keyLines(expiredKey)...)
	})

	t.Run("machine certificate of another CA", func(t *testing.T) {
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(map[string][]byte{talosCAKey: newTalosCA(t, "other").pem})))
		msg := wantClass(t, err, ClassAuthFailed, key...)
		if !strings.Contains(msg, "does not verify against secret homelab/talos key \"ca.crt\"") {
			t.Fatalf("want the CA named: %v", msg)
		}
	})

	t.Run("endpoint the certificate does not name", func(t *testing.T) {
		// The same server on 127.0.0.2, which its certificate does not name.
		l, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = api.srv.Serve(l) }()
		_, err = Talos{}.Do(ctx, request(ActionOff, api.slot(l.Addr().String(), false), with(nil)))
		msg := wantClass(t, err, ClassAuthFailed, key...)
		if !strings.Contains(msg, "127.0.0.2") {
			t.Fatalf("want the address the certificate lacks named: %v", msg)
		}
	})

	t.Run("role that may not shut down", func(t *testing.T) {
		secrets := fakeSecrets{"talos": api.credentials(t, 22, "os:reader")}
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), secrets))
		msg := wantClass(t, err, ClassAuthFailed, keyLines(secrets["talos"][talosKeyKey])...)
		if !strings.Contains(msg, "PermissionDenied") || !strings.Contains(msg, "os:operator") {
			t.Fatalf("want the refusal and the role it needs: %v", msg)
		}
	})

	t.Run("missing keys", func(t *testing.T) {
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(map[string][]byte{talosKeyKey: nil})))
		msg := wantClass(t, err, ClassConfig)
		if !strings.Contains(msg, `secret homelab/talos has no value for key "tls.key"`) {
			t.Fatalf("want the missing key named: %v", msg)
		}
		_, err = Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(map[string][]byte{talosCAKey: nil, talosCertKey: {}})))
		msg = wantClass(t, err, ClassConfig, key...)
		if !strings.Contains(msg, `no value for key "ca.crt", "tls.crt"`) {
			t.Fatalf("want both missing keys named: %v", msg)
		}
	})

	t.Run("missing Secret", func(t *testing.T) {
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), fakeSecrets{}))
		wantClass(t, err, ClassConfig)
	})

	t.Run("values as the talosconfig writes them, still base64", func(t *testing.T) {
		encoded := []byte(base64.StdEncoding.EncodeToString(creds[talosKeyKey]))
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(map[string][]byte{talosKeyKey: encoded})))
		msg := wantClass(t, err, ClassConfig, append(key, string(encoded), string(encoded[8:40]))...)
		if !strings.Contains(msg, `key "tls.key" is base64-encoded PEM`) {
			t.Fatalf("want the encoding named: %v", msg)
		}
	})

	t.Run("key of another certificate", func(t *testing.T) {
		_, otherKey := api.ca.issue(t, 23, "os:operator", false)
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(map[string][]byte{talosKeyKey: otherKey})))
		msg := wantClass(t, err, ClassConfig, keyLines(otherKey)...)
		if !strings.Contains(msg, `keys "tls.crt" and "tls.key" are not a certificate and its private key`) {
			t.Fatalf("want the mismatch named: %v", msg)
		}
	})

	t.Run("endpoint as a URL", func(t *testing.T) {
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("https://127.0.0.1:50000", false), with(nil)))
		wantClass(t, err, ClassConfig)
	})

	if after := len(api.calls()); after != before {
		t.Fatalf("a refused call reached Shutdown")
	}

	t.Run("nobody listening", func(t *testing.T) {
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("127.0.0.1:"+strconv.Itoa(freeTCPPort(t)), false), with(nil)))
		wantClass(t, err, ClassUnreachable, key...)
	})

	t.Run("server that never greets", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Close() }()
		var held sync.WaitGroup
		defer held.Wait()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				held.Go(func() {
					// Reads the client's hello and never answers, until the client gives up.
					_, _ = io.Copy(io.Discard, c)
					_ = c.Close()
				})
			}
		}()
		slot := api.slot(l.Addr().String(), false)
		slot.Timeout = 500 * time.Millisecond
		_, err = Talos{}.Do(ctx, request(ActionOff, slot, with(nil)))
		wantClass(t, err, ClassTimeout, key...)
		_ = l.Close()
	})

	t.Run("machine that answers with an error holding the key", func(t *testing.T) {
		api.setReply(status.Errorf(codes.Internal, "cannot shut down: %s", creds[talosKeyKey]))
		defer api.setReply(nil)
		_, err := Talos{}.Do(ctx, request(ActionOff, api.slot("", false), with(nil)))
		msg := wantClass(t, err, ClassBMCError, key...)
		if !strings.Contains(msg, "cannot shut down") {
			t.Fatalf("want the machine's answer, blanked: %v", msg)
		}
	})

	t.Run("egress policy", func(t *testing.T) {
		l := recordingListener(t)
		policy := DefaultEgressPolicy()
		_, err := Talos{Egress: &policy}.Do(ctx, request(ActionOff, api.slot(l.Addr().String(), false), with(nil)))
		msg := wantClass(t, err, ClassConfig, key...)
		if !strings.Contains(msg, "refused by the manager's egress policy (deny=127.0.0.0/8)") {
			t.Fatalf("want the egress policy named: %v", msg)
		}
		expectNoConnection(t, l)
	})

	t.Run("power on and status are unsupported", func(t *testing.T) {
		_, err := Talos{}.Do(ctx, request(ActionOn, api.slot("", false), with(nil)))
		wantClass(t, err, ClassUnsupported)
		_, err = Talos{}.Status(ctx, request(ActionStatus, api.slot("", false), with(nil)))
		wantClass(t, err, ClassUnsupported)
	})
}

// The Talos driver is built in and synchronous: the lifecycle confirms the power-off by the Node
// as soon as the call returns.
func TestTalosRegistered(t *testing.T) {
	slot := slotFrom(infrav1.PowerDriver{Talos: &infrav1.TalosDriver{Endpoint: "10.0.0.21", CredentialsSecretRef: &infrav1.SecretReference{Name: "talos"}}})
	d, err := NewRegistry(Builtin()...).For(slot, ActionOff)
	if err != nil || d.Name() != DriverTalos {
		t.Fatalf("registry: %v, %v", d, err)
	}
	if Async(slot) {
		t.Fatal("the talos driver is synchronous")
	}
}

func TestTalosAddress(t *testing.T) {
	for endpoint, want := range map[string][2]string{
		"10.0.0.21":            {"10.0.0.21:50000", "10.0.0.21"},
		"node-1.lan:6443":      {"node-1.lan:6443", "node-1.lan"},
		"fd00::21":             {"[fd00::21]:50000", "fd00::21"},
		"[fd00::21]":           {"[fd00::21]:50000", "fd00::21"},
		"[fd00::21]:50001":     {"[fd00::21]:50001", "fd00::21"},
		"worker-3.example.lan": {"worker-3.example.lan:50000", "worker-3.example.lan"},
	} {
		addr, host, err := talosAddress(endpoint)
		if err != nil || addr != want[0] || host != want[1] {
			t.Errorf("talosAddress(%q) = %q, %q, %v; want %q, %q", endpoint, addr, host, err, want[0], want[1])
		}
	}
	for _, endpoint := range []string{"", "https://10.0.0.21", "10.0.0.21/", "node 1", "node:", ":50000", "node:http", "node:70000", "a:b:c", "[]"} {
		if _, _, err := talosAddress(endpoint); err == nil {
			t.Errorf("talosAddress(%q) accepted it", endpoint)
		}
	}
}
