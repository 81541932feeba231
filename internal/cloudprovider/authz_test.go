package cloudprovider_test

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpki"
)

const caSPIFFE = "spiffe://cluster.local/ns/kube-system/sa/cluster-autoscaler"

// serverFiles writes a server certificate of ca, and ca as the client CA, into dir.
func serverFiles(t *testing.T, ca *testpki.CA) cloudprovider.TLSFiles {
	t.Helper()
	dir := t.TempDir()
	c, k := ca.Issue(t, "homelab-autoscaler", true)
	return cloudprovider.TLSFiles{
		CertFile: testpki.WriteFile(t, dir, "tls.crt", c), KeyFile: testpki.WriteFile(t, dir, "tls.key", k), ClientCAFile: testpki.WriteFile(t, dir, "ca.crt", ca.PEM),
	}
}

func allowed(t *testing.T, list string) cloudprovider.AllowedClients {
	t.Helper()
	a, err := cloudprovider.ParseAllowedClients(list)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAuthzAllowedClients: every client certificate comes from the one client CA, and only those
// named by --grpc-allowed-clients (by common name or URI SAN) may call; the others get
// PermissionDenied on every method, and their DeleteNodes changes nothing.
func TestAuthzAllowedClients(t *testing.T) {
	ca := testpki.NewCA(t, "homelab CA")
	logs := &testenv.SyncBuffer{}
	r := startReplica(t, func(o *app.Options) {
		o.GRPCInsecure, o.GRPCTLS = false, serverFiles(t, ca)
		o.GRPCAllowedClients = allowed(t, "cn:cluster-autoscaler,uri:"+caSPIFFE)
		o.Logger = logr.FromSlogHandler(slog.NewTextHandler(logs, nil))
	})
	addr := r.srv.Addr().String()
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	ms := createMachines(t, ns, "g", 2, func(_ int, m *infrav1.Machine) { m.Spec.Online = true })
	registerCore(t, ms[0], true)
	setStatus(t, ms[0], func(s *infrav1.MachineStatus) { s.Progress = infrav1.ProgressReady })
	r.sync(t, ns)
	id := gid(ns, "g")

	client := func(cn string, uris ...string) pb.CloudProviderClient {
		c, k := ca.Issue(t, cn, false, uris...)
		return dial(t, addr, tlsCreds(testpki.ClientTLS(t, ca, c, k)))
	}
	for name, c := range map[string]pb.CloudProviderClient{
		"wrong common name and URI": client("intruder", "spiffe://cluster.local/ns/evil/sa/intruder"),
		"common name in a URI":      client("cn-in-uri", "spiffe://cluster-autoscaler"),
		"allowed name as a prefix":  client("cluster-autoscaler-2"),
	} {
		_, err := c.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
		expectCode(t, err, codes.PermissionDenied)
		if !strings.Contains(status.Convert(err).Message(), "is not in the server's --grpc-allowed-clients") {
			t.Errorf("%s: message %q does not say what refused it", name, status.Convert(err).Message())
		}
		expectCode(t, deleteNodes(t, c, id, node(ms[0])), codes.PermissionDenied)
	}
	if !fresh(t, ms[0]).Spec.Online {
		t.Fatal("a refused client's DeleteNodes powered the machine off")
	}
	intruder := client("intruder", "spiffe://cluster.local/ns/evil/sa/intruder")
	_, err := intruder.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
	if got, want := status.Convert(err).Message(), `client certificate "CN=intruder" is not in the server's --grpc-allowed-clients`; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	// Other services too: the refusal comes before any method is chosen.
	ic, ik := ca.Issue(t, "intruder", false)
	conn := dialConn(t, addr, tlsCreds(testpki.ClientTLS(t, ca, ic, ik)))
	_, err = healthpb.NewHealthClient(conn).Check(ctx5s(t), &healthpb.HealthCheckRequest{})
	expectCode(t, err, codes.PermissionDenied)

	// Logged once per connection (not per call), with the subject and nothing else of the
	// certificate.
	for range 3 {
		_, _ = intruder.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
	}
	out := logs.String()
	if n := strings.Count(out, "CN=cluster-autoscaler-2"); n != 1 {
		t.Errorf("refusal of cluster-autoscaler-2 logged %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "evil") || strings.Contains(out, "CERTIFICATE") {
		t.Errorf("the log shows more of a refused certificate than its subject:\n%s", out)
	}

	// The allowed ones: by common name, and by URI SAN whatever the common name.
	byCN, byURI := client("cluster-autoscaler"), client("any name", caSPIFFE)
	for _, c := range []pb.CloudProviderClient{byCN, byURI} {
		res, err := c.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !hasGroup(res, id) {
			t.Fatalf("NodeGroups lacks %s: %v", id, res)
		}
	}
	if err := deleteNodes(t, byCN, id, node(ms[0])); err != nil {
		t.Fatal(err)
	}
	if fresh(t, ms[0]).Spec.Online {
		t.Fatal("an allowed client's DeleteNodes left the machine desired on")
	}
	if got := targetSize(t, byURI, id); got != 1 {
		t.Fatalf("target after the delete: %d, want 1", got)
	}
	if strings.Contains(logs.String(), "CN=cluster-autoscaler\"") || strings.Contains(logs.String(), "subject=\"CN=any name\"") {
		t.Errorf("an allowed client was logged as refused:\n%s", logs.String())
	}
}

func hasGroup(res *pb.NodeGroupsResponse, id string) bool {
	for _, g := range res.GetNodeGroups() {
		if g.GetId() == id {
			return true
		}
	}
	return false
}

// TestAuthzAllowAnyClient: --grpc-allow-any-client lets every certificate of the client CA call.
func TestAuthzAllowAnyClient(t *testing.T) {
	ca := testpki.NewCA(t, "homelab CA")
	r := startReplica(t, func(o *app.Options) {
		o.GRPCInsecure, o.GRPCTLS, o.GRPCAllowAnyClient = false, serverFiles(t, ca), true
	})
	c, k := ca.Issue(t, "anyone", false)
	if _, err := dial(t, r.srv.Addr().String(), tlsCreds(testpki.ClientTLS(t, ca, c, k))).NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestAuthzFlags: the list syntax, through the manager's own flag set, and the combinations the
// manager refuses to start with.
func TestAuthzFlags(t *testing.T) {
	parse := func(args ...string) (*app.Options, error) {
		fs := flag.NewFlagSet("homelab-autoscaler", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o, _ := app.BindFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return o, o.Validate()
	}
	tls := []string{"--grpc-tls-cert=tls.crt", "--grpc-tls-key=tls.key", "--grpc-client-ca=ca.crt"}

	o, err := parse(append(tls, "--grpc-allowed-clients=cn:cluster-autoscaler, uri:"+caSPIFFE, "--grpc-allowed-clients=cn:backup")...)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := o.GRPCAllowedClients.String(), "cn:cluster-autoscaler,uri:"+caSPIFFE+",cn:backup"; got != want {
		t.Fatalf("parsed %q, want %q", got, want)
	}
	if _, err := parse(append(tls, "--grpc-allow-any-client")...); err != nil {
		t.Fatalf("--grpc-allow-any-client refused: %v", err)
	}
	// Without a client CA, the missing TLS files are what the server reports when it is built.
	if _, err := parse(); err != nil {
		t.Fatalf("the defaults refused: %v", err)
	}
	if _, err := parse("--grpc-insecure", "--grpc-bind-address=127.0.0.1:8086"); err != nil {
		t.Fatalf("plaintext on loopback refused: %v", err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{tls, "gRPC mutual TLS needs --grpc-allowed-clients, the client certificates that may call (e.g. cn:cluster-autoscaler), " +
			"or --grpc-allow-any-client to let every certificate of --grpc-client-ca call every method"},
		{append(tls, "--grpc-allowed-clients=cn:a", "--grpc-allow-any-client"),
			"--grpc-allowed-clients and --grpc-allow-any-client contradict each other: choose one"},
		{[]string{"--grpc-insecure", "--grpc-allowed-clients=cn:a"},
			"--grpc-allowed-clients needs mutual TLS: a client of --grpc-insecure shows no certificate to match"},
		{append(tls, "--grpc-allowed-clients=cluster-autoscaler"),
			`invalid value "cluster-autoscaler" for flag -grpc-allowed-clients: allowed client "cluster-autoscaler": want cn:NAME (the certificate's Subject common name) or uri:URI (one of its URI SANs)`},
		{append(tls, "--grpc-allowed-clients=dns:ca.example"),
			`allowed client "dns:ca.example": want cn:NAME (the certificate's Subject common name) or uri:URI (one of its URI SANs)`},
		{append(tls, "--grpc-allowed-clients="), `allowed client "": want cn:NAME`},
		{append(tls, "--grpc-allowed-clients=cn:a,,cn:b"), `allowed client "": want cn:NAME`},
		{append(tls, "--grpc-allowed-clients=cn:"), `allowed client "cn:" names nobody: give a name after "cn:"`},
		{append(tls, "--grpc-allowed-clients=uri:cluster-autoscaler"),
			`allowed client "uri:cluster-autoscaler": "cluster-autoscaler" is not an absolute URI such as spiffe://cluster.local/ns/kube-system/sa/cluster-autoscaler`},
		{append(tls, "--grpc-allow-any-client", "--grpc-max-concurrent-streams=0"), "--grpc-max-concurrent-streams must be between 1 and 4294967295, got 0"},
		{append(tls, "--grpc-allow-any-client", "--grpc-handshake-timeout=0s"), "--grpc-handshake-timeout must be positive, got 0s"},
	} {
		_, err := parse(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
