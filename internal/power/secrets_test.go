package power

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

func TestClientConfigMapsReadsDataAndBinaryData(t *testing.T) {
	t.Parallel()
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "bmc-ca"},
		Data:       map[string]string{"ca.crt": "PEM"},
		BinaryData: map[string][]byte{"der": {0x30, 0x82}},
	}).Build()
	r := ClientConfigMaps{Reader: c}
	ctx := context.Background()

	if v, err := r.ConfigMapValue(ctx, testNamespace, "bmc-ca", "ca.crt"); err != nil || string(v) != "PEM" {
		t.Fatalf("data key: %q, %v", v, err)
	}
	if v, err := r.ConfigMapValue(ctx, testNamespace, "bmc-ca", "der"); err != nil || len(v) != 2 {
		t.Fatalf("binaryData key: %v, %v", v, err)
	}
	_, err := r.ConfigMapValue(ctx, testNamespace, "bmc-ca", "missing")
	wantClass(t, err, ClassConfig)
	_, err = r.ConfigMapValue(ctx, testNamespace, "other", "ca.crt")
	wantClass(t, err, ClassConfig)
}

// credentialsLabel is the opt-in every Secret a driver reads must carry.
var credentialsLabel = map[string]string{infrav1.LabelCredentials: "true"}

// Only Secrets labelled as credentials are read, never one of the manager's namespace unless
// allowed, and a refusal names the Secret and the label or flag, never any of its content.
func TestClientSecretsUseOnlySecretsThatOptIn(t *testing.T) {
	t.Parallel()
	const token = "Bearer tok-Zq9xK7vW2pL4-never-shown"
	secret := func(ns, name string, labels map[string]string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Data:       map[string][]byte{"Authorization": []byte(token)},
		}
	}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(
		secret(testNamespace, "sa-token", nil),
		secret(testNamespace, "opted-out", map[string]string{infrav1.LabelCredentials: "false"}),
		secret(testNamespace, "plug", credentialsLabel),
		secret("hla-system", "plug", credentialsLabel),
	).Build()
	ctx := context.Background()
	r := ClientSecrets{Reader: c, ManagerNamespace: "hla-system"}

	for _, name := range []string{"sa-token", "opted-out"} {
		_, err := r.SecretData(ctx, testNamespace, name)
		msg := wantClass(t, err, ClassConfig, token, "tok-Zq9xK7vW2pL4")
		if !strings.Contains(msg, infrav1.LabelCredentials) || !strings.Contains(msg, testNamespace+"/"+name) {
			t.Fatalf("the refusal of %s names neither the label nor the Secret: %s", name, msg)
		}
		_, err = r.SecretValue(ctx, testNamespace, name, "Authorization")
		wantClass(t, err, ClassConfig, token)
	}
	if v, err := r.SecretValue(ctx, testNamespace, "plug", "Authorization"); err != nil || string(v) != token {
		t.Fatalf("a labelled Secret: %v", err)
	}

	_, err := r.SecretData(ctx, "hla-system", "plug")
	if msg := wantClass(t, err, ClassConfig, token); !strings.Contains(msg, "--"+FlagAllowManagerNamespaceSecret) {
		t.Fatalf("the refusal of a Secret of the manager's namespace does not name the flag: %s", msg)
	}
	r.AllowManagerNamespace = true
	if _, err := r.SecretData(ctx, "hla-system", "plug"); err != nil {
		t.Fatalf("a labelled Secret of the manager's namespace, allowed: %v", err)
	}

	_, err = r.SecretData(ctx, testNamespace, "missing")
	wantClass(t, err, ClassConfig)
	if !errors.Is(err, errSecretNotFound) {
		t.Fatalf("a missing Secret is not marked as such: %v", err)
	}
}

// POD_NAMESPACE names the manager's namespace; without it, the ServiceAccount's namespace file of
// a pod does, and outside a pod the fallback.
func TestManagerNamespace(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "hla-system")
	if got := ManagerNamespace("lease-ns"); got != "hla-system" {
		t.Fatalf("with POD_NAMESPACE: %q", got)
	}
	t.Setenv("POD_NAMESPACE", "")
	want := "lease-ns"
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil && strings.TrimSpace(string(b)) != "" {
		want = strings.TrimSpace(string(b))
	}
	if got := ManagerNamespace("lease-ns"); got != want {
		t.Fatalf("without POD_NAMESPACE: %q, want %q", got, want)
	}
}
