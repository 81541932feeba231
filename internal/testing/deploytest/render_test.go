package deploytest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// manifests is a rendered set of objects.
type manifests []*unstructured.Unstructured

// find returns the objects of a kind, or the one with that kind and name when name is set.
func (m manifests) find(kind, name string) manifests {
	var out manifests
	for _, u := range m {
		if u.GetKind() == kind && (name == "" || u.GetName() == name) {
			out = append(out, u)
		}
	}
	return out
}

// one returns the single object of that kind and name, failing the test otherwise.
func (m manifests) one(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	found := m.find(kind, name)
	if len(found) != 1 {
		t.Fatalf("want one %s %q, rendered %d", kind, name, len(found))
	}
	return found[0]
}

// into converts an object into a typed one.
func into[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func decode(t *testing.T, raw []byte) manifests {
	t.Helper()
	var out manifests
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding rendered manifests: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func run(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

// kustomize renders an overlay with the kubectl of the test control plane (kustomize built in).
func kustomize(t *testing.T, overlay string) manifests {
	t.Helper()
	return decode(t, run(t, repoRoot(t), filepath.Join(env.AssetsDir, "kubectl"), "kustomize", overlay))
}

// helmBinary is the pinned Helm (hack/tools/helm), built once into Go's build cache; `go tool -n`
// prints its path, so that each run does not pay for go tool's staleness check.
var helmBinary = sync.OnceValues(func() (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "tool", "-n", "-modfile=hack/tools/helm/go.mod", "helm")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the pinned helm: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
})

// helmTemplate renders the chart, CRDs included.
func helmTemplate(t *testing.T, release, namespace string, args ...string) manifests {
	t.Helper()
	bin, err := helmBinary()
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"template", release, "charts/homelab-autoscaler", "--namespace", namespace, "--include-crds"}
	return decode(t, run(t, repoRoot(t), bin, append(base, args...)...))
}

// helm runs Helm and returns its combined output, for the runs expected to fail.
func helm(args ...string) (string, error) {
	bin, err := helmBinary()
	if err != nil {
		return "", err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// apply installs the objects the manager's permissions depend on (namespaces, CRDs, the
// ServiceAccount and RBAC) with server-side apply, and has the apiserver validate everything
// else it knows the kind of with a dry-run create. Kinds of cert-manager and the
// prometheus-operator are not installed here and are left out.
func apply(t *testing.T, objs manifests) {
	t.Helper()
	ctx := context.Background()
	for _, u := range objs {
		switch u.GetKind() {
		case "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
				client.FieldOwner("deploytest"), client.ForceOwnership); err != nil {
				t.Fatalf("applying %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		case "Certificate", "Issuer", "ServiceMonitor", "PrometheusRule":
		default:
			if err := env.Client.Create(ctx, u.DeepCopy(), client.DryRunAll); err != nil {
				t.Fatalf("%s %s/%s refused by the apiserver: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	}
}

// ensureNamespace creates a namespace that the rendered objects live in but do not create.
func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// access is one question to the apiserver's authorizer about a ServiceAccount; name is the
// object's, for rules limited to named objects.
type access struct {
	verb, group, resource, subresource, name, namespace string
	allowed                                             bool
}

func checkAccess(t *testing.T, namespace, serviceAccount string, checks []access) {
	t.Helper()
	user := "system:serviceaccount:" + namespace + ":" + serviceAccount
	for _, c := range checks {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.subresource, Name: c.name, Namespace: c.namespace,
			},
		}}
		if err := env.Client.Create(context.Background(), sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.allowed {
			what := c.group + "/" + c.resource
			if c.subresource != "" {
				what += "/" + c.subresource
			}
			if c.name != "" {
				what += " " + c.name
			}
			t.Errorf("%s: %s %s in namespace %q: allowed=%v, want %v (%s)", serviceAccount,
				c.verb, what, c.namespace, sar.Status.Allowed, c.allowed, sar.Status.Reason)
		}
	}
}
