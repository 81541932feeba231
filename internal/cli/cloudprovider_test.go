package cli_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpki"
)

// startServer runs the manager as cmd/homelab-autoscaler does (app.New, through testmanager)
// with only the Job power driver, its gRPC server plaintext on loopback, watching namespace, and
// returns the server's address.
func startServer(t *testing.T, namespace string) string {
	t.Helper()
	o := testmanager.Options(namespace)
	o.Drivers = power.Registry{}
	_, addr, _ := testmanager.Start(t, env.Config, o)
	return addr
}

func TestCloudProviderCommands(t *testing.T) {
	ctx := context.Background()
	ns := "cp"
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rack"}, Spec: infrav1.GroupSpec{
		Template: &infrav1.NodeTemplate{Capacity: resources("4", "16Gi", "110")},
	}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := machine(fmt.Sprintf("r%d", i))
		m.Namespace, m.Spec.Group = ns, "rack"
		if err := env.Client.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	addr := startServer(t, ns)
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	out, _, err := run(t, "cloudprovider", "scale-up", ns+"/rack", "2", "--address", addr, "--insecure")
	if err != nil || !strings.Contains(out, "target size now 2") {
		t.Fatalf("scale-up: %q %v", out, err)
	}
	out, _, err = run(t, "cloudprovider", "check", "--address", addr, "--insecure")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"group " + ns + "/rack: min 0, max 3, target 2", "template: decodes (cpu 4, memory 16Gi, pods 110", "homelab://" + ns + "/r"} {
		if !strings.Contains(out, want) {
			t.Fatalf("check output lacks %q:\n%s", want, out)
		}
	}
	on := []string{}
	list := &infrav1.MachineList{}
	if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		if n.Spec.Online {
			on = append(on, n.Name)
		}
	}
	if len(on) != 2 {
		t.Fatalf("%d machines desired on after scale-up 2", len(on))
	}
	out, _, err = run(t, "cloudprovider", "scale-down", ns+"/rack", on[0], "--address", addr, "--insecure", "--kubeconfig", kubeconfig, "-n", ns)
	if err != nil || !strings.Contains(out, "target size now 1") {
		t.Fatalf("scale-down: %q %v", out, err)
	}
	if _, _, err := run(t, "cloudprovider", "scale-up", ns+"/rack", "5", "--address", addr, "--insecure"); err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("scale-up past max: %v", err)
	}
	if _, _, err := run(t, "cloudprovider", "check", "--address", addr); err == nil || !strings.Contains(err.Error(), "mTLS needs") {
		t.Fatalf("check without credentials or --insecure: %v", err)
	}
}

// homelabctl speaks mutual TLS as cluster-autoscaler does, and --server-name checks the server's
// certificate for a name other than --address's host, as through a port-forward.
func TestCloudProviderMutualTLS(t *testing.T) {
	ctx := context.Background()
	ns := "cp-mtls"
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t, "homelab-autoscaler-grpc")
	dir := t.TempDir()
	srvCert, srvKey := ca.Issue(t, "homelab-autoscaler", true)
	cliCert, cliKey := ca.Issue(t, "cluster-autoscaler", false)
	o := testmanager.Options(ns)
	o.Drivers = power.Registry{}
	o.GRPCInsecure, o.GRPCAllowAnyClient = false, true
	o.GRPCTLS = cloudprovider.TLSFiles{
		CertFile: testpki.WriteFile(t, dir, "srv.crt", srvCert), KeyFile: testpki.WriteFile(t, dir, "srv.key", srvKey),
		ClientCAFile: testpki.WriteFile(t, dir, "ca.crt", ca.PEM),
	}
	_, addr, _ := testmanager.Start(t, env.Config, o)
	creds := []string{"--cert", testpki.WriteFile(t, dir, "tls.crt", cliCert), "--key", testpki.WriteFile(t, dir, "tls.key", cliKey), "--cacert", filepath.Join(dir, "ca.crt")}
	check := func(args ...string) (string, error) {
		out, _, err := run(t, append(append([]string{"cloudprovider", "check", "--address", addr}, creds...), args...)...)
		return out, err
	}
	if out, err := check(); err != nil || !strings.Contains(out, "no node groups") {
		t.Fatalf("check over mTLS: %v\n%s", err, out)
	}
	// The server's certificate names 127.0.0.1 and localhost.
	if out, err := check("--server-name", "localhost"); err != nil || !strings.Contains(out, "no node groups") {
		t.Fatalf("check with --server-name localhost: %v\n%s", err, out)
	}
	if _, err := check("--server-name", "homelab-autoscaler-grpc.homelab-autoscaler.svc"); err == nil || !strings.Contains(err.Error(), "certificate is valid for localhost, not homelab-autoscaler-grpc.homelab-autoscaler.svc") {
		t.Fatalf("a server name the certificate does not carry: %v", err)
	}
}
