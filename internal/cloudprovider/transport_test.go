package cloudprovider_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpki"
)

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := testpki.NewCA(t, "homelab CA"), testpki.NewCA(t, "someone else's CA")
	srvCert, srvKey := ca.Issue(t, "homelab-autoscaler", true)
	files := cloudprovider.TLSFiles{
		CertFile:     testpki.WriteFile(t, dir, "tls.crt", srvCert),
		KeyFile:      testpki.WriteFile(t, dir, "tls.key", srvKey),
		ClientCAFile: testpki.WriteFile(t, dir, "ca.crt", ca.PEM),
	}
	r := startReplica(t, func(o *app.Options) {
		o.GRPCInsecure, o.GRPCTLS, o.GRPCAllowedClients = false, files, allowed(t, "cn:cluster-autoscaler")
	})
	addr := r.srv.Addr().String()

	caCert, caKey := ca.Issue(t, "cluster-autoscaler", false)
	good := dial(t, addr, tlsCreds(testpki.ClientTLS(t, ca, caCert, caKey)))
	if _, err := good.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{}); err != nil {
		t.Fatalf("a client with a certificate of the client CA is refused: %v", err)
	}

	otherCert, otherKey := other.Issue(t, "intruder", false)
	for name, c := range map[string]pb.CloudProviderClient{
		"no client certificate":            dial(t, addr, tlsCreds(testpki.ClientTLS(t, ca, nil, nil))),
		"certificate of another CA":        dial(t, addr, tlsCreds(testpki.ClientTLS(t, ca, otherCert, otherKey))),
		"plaintext":                        dial(t, addr),
		"server not trusted by the client": dial(t, addr, tlsCreds(testpki.ClientTLS(t, other, caCert, caKey))),
	} {
		_, err := c.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
		if err == nil {
			t.Fatalf("%s: call accepted", name)
		}
		expectCode(t, err, codes.Unavailable)
	}

	// Rotation: new files on disk are served to new connections, without a restart.
	rotCert, rotKey := ca.Issue(t, "homelab-autoscaler-rotated-certificate", true)
	testpki.WriteFile(t, dir, "tls.crt", rotCert)
	testpki.WriteFile(t, dir, "tls.key", rotKey)
	var mu sync.Mutex
	var seen string
	cfg := testpki.ClientTLS(t, ca, caCert, caKey)
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		mu.Lock()
		defer mu.Unlock()
		seen = cs.PeerCertificates[0].Subject.CommonName
		return nil
	}
	rotated := dial(t, addr, tlsCreds(cfg))
	if _, err := rotated.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != "homelab-autoscaler-rotated-certificate" {
		t.Fatalf("server presented %q after rotation", seen)
	}
	// The connection opened before the rotation keeps working.
	if _, err := good.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestTransportOptionsAreChecked(t *testing.T) {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := optimistic.New(mgr.GetClient(), mgr.GetAPIReader())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	c, k := ca.Issue(t, "server", true)
	files := cloudprovider.TLSFiles{
		CertFile: testpki.WriteFile(t, dir, "tls.crt", c), KeyFile: testpki.WriteFile(t, dir, "tls.key", k), ClientCAFile: testpki.WriteFile(t, dir, "ca.crt", ca.PEM),
	}
	build := func(addr string, insecure bool, tlsFiles cloudprovider.TLSFiles, mutate ...func(*cloudprovider.Options)) error {
		o := cloudprovider.Options{
			Cache: mgr.GetCache(), Reader: mgr.GetClient(), Writer: w, BindAddress: addr, Insecure: insecure, TLS: tlsFiles,
		}
		if !insecure {
			o.AllowedClients = allowed(t, "cn:cluster-autoscaler")
		}
		for _, f := range mutate {
			f(&o)
		}
		_, err := cloudprovider.NewServer(o)
		return err
	}
	for _, addr := range []string{":8086", "0.0.0.0:8086", "[::]:8086", "10.1.2.3:8086", "example.com:8086"} {
		err := build(addr, true, cloudprovider.TLSFiles{})
		if err == nil || !strings.Contains(err.Error(), "only allowed on a loopback address") {
			t.Fatalf("insecure on %s: %v, want a refusal naming loopback", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:8086", "[::1]:0", "localhost:8086", "unix:/run/ca.sock", "unix:///run/ca.sock"} {
		if err := build(addr, true, cloudprovider.TLSFiles{}); err != nil {
			t.Fatalf("insecure on %s refused: %v", addr, err)
		}
	}
	if err := build(":8086", false, cloudprovider.TLSFiles{CertFile: files.CertFile}); err == nil ||
		!strings.Contains(err.Error(), "--grpc-tls-key") || !strings.Contains(err.Error(), "--grpc-client-ca") {
		t.Fatalf("missing TLS files: %v", err)
	}
	if err := build("127.0.0.1:0", true, files); err == nil {
		t.Fatal("insecure together with TLS files accepted")
	}
	if err := build(":8086", false, cloudprovider.TLSFiles{CertFile: files.CertFile, KeyFile: files.KeyFile, ClientCAFile: filepath.Join(dir, "nope")}); err == nil {
		t.Fatal("a client CA file that does not exist accepted")
	}
	if err := build(":8086", false, cloudprovider.TLSFiles{CertFile: files.CertFile, KeyFile: files.ClientCAFile, ClientCAFile: files.ClientCAFile}); err == nil {
		t.Fatal("a key that does not match accepted")
	}
	if err := build(":8086", false, files); err != nil {
		t.Fatalf("mutual TLS on every interface refused: %v", err)
	}
	// Who may call, and the connection limits.
	for name, c := range map[string]struct {
		insecure bool
		mutate   func(*cloudprovider.Options)
		want     string
	}{
		"mutual TLS without allowed clients": {false, func(o *cloudprovider.Options) { o.AllowedClients = nil }, "--grpc-allow-any-client"},
		"allowed clients and any client":     {false, func(o *cloudprovider.Options) { o.AllowAnyClient = true }, "contradict"},
		"allowed clients without TLS":        {true, func(o *cloudprovider.Options) { o.AllowedClients = allowed(t, "cn:a") }, "needs mutual TLS"},
		"negative handshake timeout":         {false, func(o *cloudprovider.Options) { o.HandshakeTimeout = -time.Second }, "--grpc-handshake-timeout must be positive"},
	} {
		tf := files
		addr := ":8086"
		if c.insecure {
			tf, addr = cloudprovider.TLSFiles{}, "127.0.0.1:0"
		}
		if err := build(addr, c.insecure, tf, c.mutate); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
	if err := build(":8086", false, files, func(o *cloudprovider.Options) { o.AllowedClients, o.AllowAnyClient = nil, true }); err != nil {
		t.Fatalf("mutual TLS open to any client of the CA refused: %v", err)
	}
	for _, addr := range []string{"nope", "unix:", "127.0.0.1:"} {
		if err := build(addr, true, cloudprovider.TLSFiles{}); err == nil {
			t.Fatalf("bad address %q accepted", addr)
		}
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "provider.sock")
	r := startReplica(t, func(o *app.Options) { o.GRPCAddr = "unix:" + sock })
	if got := r.srv.Addr().String(); got != sock {
		t.Fatalf("listening on %q", got)
	}
	c := dial(t, "unix://"+sock)
	if _, err := c.Refresh(ctx5s(t), &pb.RefreshRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestHealthReadinessAndDeadline(t *testing.T) {
	r := startReplica(t, func(o *app.Options) { o.GRPCCallTimeout = time.Nanosecond })
	if err := r.srv.ReadyCheck(nil); err != nil {
		t.Fatalf("not ready after start: %v", err)
	}
	conn := dialConn(t, r.srv.Addr().String())
	for _, svc := range []string{"", "clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider"} {
		res, err := healthpb.NewHealthClient(conn).Check(ctx5s(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v, %v", svc, res, err)
		}
	}
	// The server's own call timeout bounds a write even when the caller allows more.
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	createMachines(t, ns, "g", 1, nil)
	r.sync(t, ns)
	c := pb.NewCloudProviderClient(conn)
	_, err := c.NodeGroupIncreaseSize(context.Background(), &pb.NodeGroupIncreaseSizeRequest{Id: gid(ns, "g"), Delta: 1})
	expectCode(t, err, codes.DeadlineExceeded)

	r.stop(t)
	if err := r.srv.ReadyCheck(nil); err == nil {
		t.Fatal("ready after stop")
	}
	// A server that never started is not ready either.
	idle, err := cloudprovider.NewServer(cloudprovider.Options{Cache: r.cache, Reader: env.Client, Writer: testWriter, BindAddress: "127.0.0.1:0", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.ReadyCheck(nil); err == nil {
		t.Fatal("ready before start")
	}
}

// TestTransportHandshakeTimeout: a client that opens a TCP connection and never completes the
// TLS handshake (or, in plaintext, never sends the HTTP/2 preface) is disconnected by the server.
func TestTransportHandshakeTimeout(t *testing.T) {
	ca := testpki.NewCA(t, "homelab CA")
	for name, mutate := range map[string]func(*app.Options){
		"mutual TLS": func(o *app.Options) {
			o.GRPCInsecure, o.GRPCTLS, o.GRPCAllowedClients = false, serverFiles(t, ca), allowed(t, "cn:cluster-autoscaler")
		},
		"plaintext": func(*app.Options) {},
	} {
		t.Run(name, func(t *testing.T) {
			r := startReplica(t, mutate, func(o *app.Options) { o.GRPCHandshakeTimeout = 500 * time.Millisecond })
			conn, err := net.Dial("tcp", r.srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			// The bound is only there to end the test if the server never closes.
			if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
				t.Fatal(err)
			}
			// Reading ends when the server closes (after its SETTINGS frame, in plaintext).
			if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the server kept a silent connection open")
			}
			// A client that completes its handshake is served as before.
			c := r.client(t)
			if name == "mutual TLS" {
				cc, ck := ca.Issue(t, "cluster-autoscaler", false)
				c = r.client(t, tlsCreds(testpki.ClientTLS(t, ca, cc, ck)))
			}
			if _, err := c.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTransportStreamLimits: the server's HTTP/2 SETTINGS cap the concurrent calls of a
// connection (--grpc-max-concurrent-streams) and the size of request headers.
func TestTransportStreamLimits(t *testing.T) {
	ca := testpki.NewCA(t, "homelab CA")
	for name, c := range map[string]struct {
		mutate func(*app.Options)
		want   uint32
	}{
		"default":    {func(*app.Options) {}, cloudprovider.DefaultMaxConcurrentStreams},
		"configured": {func(o *app.Options) { o.GRPCMaxConcurrentStreams = 7 }, 7},
	} {
		t.Run(name, func(t *testing.T) {
			r := startReplica(t, c.mutate)
			conn, err := net.Dial("tcp", r.srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			got := serverSettings(t, conn)
			if got[http2.SettingMaxConcurrentStreams] != c.want {
				t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", got[http2.SettingMaxConcurrentStreams], c.want)
			}
			if got[http2.SettingMaxHeaderListSize] != 16<<10 {
				t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want %d", got[http2.SettingMaxHeaderListSize], 16<<10)
			}
		})
	}
	// Over mutual TLS (ALPN h2) the same.
	r := startReplica(t, func(o *app.Options) {
		o.GRPCInsecure, o.GRPCTLS, o.GRPCAllowedClients = false, serverFiles(t, ca), allowed(t, "cn:cluster-autoscaler")
	})
	cc, ck := ca.Issue(t, "cluster-autoscaler", false)
	cfg := testpki.ClientTLS(t, ca, cc, ck)
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", r.srv.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if got := serverSettings(t, conn)[http2.SettingMaxConcurrentStreams]; got != cloudprovider.DefaultMaxConcurrentStreams {
		t.Errorf("over TLS, SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", got, cloudprovider.DefaultMaxConcurrentStreams)
	}
}

// serverSettings speaks HTTP/2 as a client up to the server's first SETTINGS frame and returns
// its values.
func serverSettings(t *testing.T, conn net.Conn) map[http2.SettingID]uint32 {
	t.Helper()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		out := map[http2.SettingID]uint32{}
		if err := sf.ForeachSetting(func(s http2.Setting) error {
			out[s.ID] = s.Val
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
}
