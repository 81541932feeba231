package cloudprovider_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testenv"
)

// readManifests decodes every document of the YAML files.
func readManifests(t *testing.T, files ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	return out
}

// TestClusterAutoscalerManifests checks the example deployment in config/cluster-autoscaler: the
// real apiserver accepts every object (server-side dry run), and the pieces agree with each other
// and with the server: the cloud-config's files are where the Deployment mounts them, and its
// address is the gRPC Service, on the server's default port, named in the server certificate.
func TestClusterAutoscalerManifests(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "config", "cluster-autoscaler")
	kust := struct {
		Resources []string `json:"resources"`
	}{}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &kust); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, r := range kust.Resources {
		files = append(files, filepath.Join(dir, r))
	}
	objs := readManifests(t, files...)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "homelab-autoscaler-system"}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	var deploy appsv1.Deployment
	var secret corev1.Secret
	var svc corev1.Service
	for _, u := range objs {
		if err := env.Client.Create(context.Background(), u.DeepCopy(), client.DryRunAll); err != nil {
			t.Fatalf("%s %s/%s refused by the apiserver: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		var into any
		switch u.GetKind() {
		case "Deployment":
			into = &deploy
		case "Secret":
			into = &secret
		case "Service":
			into = &svc
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
			t.Fatal(err)
		}
	}

	cfg := struct {
		Address string `json:"address"`
		Cert    string `json:"cert"`
		Key     string `json:"key"`
		CACert  string `json:"cacert"`
	}{}
	if err := yaml.Unmarshal([]byte(secret.StringData["cloud-config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		t.Fatal(err)
	}
	if host != svc.Name+"."+svc.Namespace+".svc" || port != "8086" || svc.Spec.Ports[0].Port != 8086 {
		t.Fatalf("cloud-config address %s does not name the Service %s/%s on 8086", cfg.Address, svc.Namespace, svc.Name)
	}
	c := deploy.Spec.Template.Spec.Containers[0]
	mounts := map[string]string{} // mount path -> secret
	for _, m := range c.VolumeMounts {
		for _, v := range deploy.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				mounts[m.MountPath] = v.Secret.SecretName
			}
		}
	}
	for _, f := range []string{cfg.Cert, cfg.Key, cfg.CACert} {
		if mounts[filepath.Dir(f)] != "cluster-autoscaler-grpc-client" {
			t.Fatalf("cloud-config file %s is not in the mounted client TLS Secret (mounts %v)", f, mounts)
		}
	}
	cloudConfig := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--cloud-config="); ok {
			cloudConfig = v
		}
	}
	if mounts[filepath.Dir(cloudConfig)] != secret.Name || filepath.Base(cloudConfig) != "cloud-config.yaml" {
		t.Fatalf("--cloud-config=%s is not the mounted Secret %s", cloudConfig, secret.Name)
	}
	if !slices.Contains(c.Args, "--cloud-provider=externalgrpc") {
		t.Fatal("cluster-autoscaler is not told to use externalgrpc")
	}

	var dnsNames []string
	for _, u := range readManifests(t, filepath.Join(dir, "certificates.yaml")) {
		if u.GetName() == "homelab-autoscaler-grpc-server" {
			dnsNames, _, _ = unstructured.NestedStringSlice(u.Object, "spec", "dnsNames")
		}
	}
	if !slices.Contains(dnsNames, host) {
		t.Fatalf("the server certificate names %v, not the cloud-config host %s", dnsNames, host)
	}
}
