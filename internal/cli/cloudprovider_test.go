package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// startServer runs the cloud-provider gRPC server (plaintext, loopback) in a manager.
func startServer(t *testing.T) string {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := index.Register(ctx, mgr.GetFieldIndexer()); err != nil {
		t.Fatal(err)
	}
	w, err := optimistic.New(mgr.GetClient(), mgr.GetAPIReader())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloudprovider.NewServer(cloudprovider.Options{
		Cache: mgr.GetCache(), Reader: mgr.GetClient(), Writer: w, BindAddress: "127.0.0.1:0", Insecure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(srv); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-srv.Started():
	case <-time.After(30 * time.Second):
		t.Fatal("the gRPC server did not start")
	}
	return srv.Addr().String()
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
	addr := startServer(t)
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
	list := &infrav1.NodeList{}
	if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		if n.Spec.PowerState == infrav1.PowerOn {
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
