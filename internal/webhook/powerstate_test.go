package webhook_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	projectscheme "github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testenv"
	hlwebhook "github.com/homelab-autoscaler/homelab-autoscaler/internal/webhook"
)

// The webhook installed as config/webhook/manifests.yaml says, in front of a real apiserver.
func TestUnquotedPowerStateGetsAMessageThatSaysQuoteIt(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook")},
		},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	o := env.WebhookInstallOptions
	srv := webhook.NewServer(webhook.Options{Host: o.LocalServingHost, Port: o.LocalServingPort, CertDir: o.LocalServingCertDir})
	srv.Register(hlwebhook.PowerStatePath, &admission.Webhook{Handler: hlwebhook.PowerState{}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = srv.Start(ctx) }()
	waitServing(t, fmt.Sprintf("%s:%d", o.LocalServingHost, o.LocalServingPort))

	c, err := client.New(cfg, client.Options{Scheme: projectscheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ value, want string }{
		{"on", `got the boolean true; it must be the string "on" or "off". In YAML quote it (powerState: "on")`},
		{"off", `got the boolean false; it must be the string "on" or "off". In YAML quote it (powerState: "off")`},
		{`"on"`, ""},
	} {
		doc := fmt.Sprintf(`
apiVersion: infra.homelab-autoscaler.dev/v1alpha1
kind: Node
metadata: {name: n%d, namespace: default}
spec:
  group: workers
  powerState: %s
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.1, credentialsSecretRef: {name: bmc}}}
`, i, tc.value)
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		err := c.Create(ctx, u)
		if tc.want == "" {
			if err != nil {
				t.Fatalf("quoted %s rejected: %v", tc.value, err)
			}
			continue
		}
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("powerState: %s gave %v\nwant a message containing %q", tc.value, err, tc.want)
		}
	}
}

func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only probing that the port serves
		if err == nil {
			_ = conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook server not serving on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
