package app_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// TestCacheKeepsWhatTheManagerReads runs the manager with its profiling endpoint on and reads
// through its client (its cache): the Machines and Groups come without managedFields or kubectl's
// last-applied-configuration, their other annotations kept; a Node keeps its labels, spec,
// conditions, capacity, allocatable and system info but not the images, addresses and daemon
// endpoints its kubelet reported, which the apiserver still holds. The manager watches no
// Secrets, Pods or ConfigMaps. /debug/pprof/ serves the profiles.
func TestCacheKeepsWhatTheManagerReads(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "cache-strip")
	mustCreate(t, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "g"}})
	mustCreate(t, &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m1", Annotations: map[string]string{
		corev1.LastAppliedConfigAnnotation: `{"apiVersion":"infra.homelab-autoscaler.dev/v1alpha1","kind":"Machine"}`,
		"example.org/kept":                 "yes",
	}}, Spec: infrav1.MachineSpec{Group: "g"}})
	// A Node no machine claims: the controllers leave it as its kubelet wrote it.
	node := kubeletNode(ns, "cache-strip-node")
	mustCreate(t, node)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), node) })

	cfg := rest.CopyConfig(env.Config)
	watched := &watchLog{}
	cfg.Wrap(watched.wrap)
	o := testmanager.Options(ns)
	o.ProfilingAddr = freeAddr(t)
	m, _, _ := testmanager.Start(t, cfg, o)
	c := m.GetClient()

	var machine infrav1.Machine
	testenv.Eventually(t, 30*time.Second, "the manager's cache to hold Machine m1", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "m1"}, &machine) == nil
	})
	if len(machine.ManagedFields) > 0 {
		t.Errorf("the cached Machine has managedFields: %v", machine.ManagedFields)
	}
	if _, ok := machine.Annotations[corev1.LastAppliedConfigAnnotation]; ok || machine.Annotations["example.org/kept"] != "yes" {
		t.Errorf("the cached Machine's annotations are %v; want example.org/kept alone", machine.Annotations)
	}
	var group infrav1.Group
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "g"}, &group); err != nil {
		t.Fatal(err)
	}
	if len(group.ManagedFields) > 0 {
		t.Errorf("the cached Group has managedFields: %v", group.ManagedFields)
	}

	var cached corev1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: node.Name}, &cached); err != nil {
		t.Fatal(err)
	}
	st := cached.Status
	if len(cached.ManagedFields) > 0 || len(st.Images) > 0 || len(st.Addresses) > 0 || st.DaemonEndpoints.KubeletEndpoint.Port != 0 {
		t.Errorf("the cached Node keeps managedFields (%d), images (%d), addresses %v or daemon endpoints %v",
			len(cached.ManagedFields), len(st.Images), st.Addresses, st.DaemonEndpoints)
	}
	if len(st.Conditions) != len(node.Status.Conditions) || !st.Capacity.Cpu().Equal(*node.Status.Capacity.Cpu()) ||
		!st.Allocatable.Memory().Equal(*node.Status.Allocatable.Memory()) || st.NodeInfo != node.Status.NodeInfo {
		t.Errorf("the cached Node's status lost what the manager reads: %+v", st)
	}
	if cached.Spec.ProviderID != node.Spec.ProviderID || cached.Labels[infrav1.LabelNamespace] != ns {
		t.Errorf("the cached Node lost its spec or labels: %+v %v", cached.Spec, cached.Labels)
	}
	stored := env.Node(t, node.Name)
	if len(stored.Status.Images) != len(node.Status.Images) || len(stored.ManagedFields) == 0 {
		t.Errorf("the apiserver's Node has %d images and %d managedFields entries; want the kubelet's %d and some",
			len(stored.Status.Images), len(stored.ManagedFields), len(node.Status.Images))
	}

	for _, r := range watched.resources() {
		if r == "secrets" || r == "pods" || r == "configmaps" {
			t.Errorf("the manager watches %s (it watches %v)", r, watched.resources())
		}
	}
	if got := watched.resources(); !slices.Contains(got, "nodes") || !slices.Contains(got, "machines") {
		t.Errorf("the manager watches %v; want nodes and machines among them", got)
	}

	code, body := get(t, "http://"+o.ProfilingAddr+"/debug/pprof/", "")
	if code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Errorf("GET /debug/pprof/ = %d %q; want 200 and the list of profiles", code, body)
	}
	if code, _ := get(t, "http://"+o.ProfilingAddr+"/debug/pprof/heap", ""); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/heap = %d; want 200", code)
	}
}

// TestProfilingOffByDefault: the flag's default is 0, and a manager started with it serves no
// profiles on its other endpoints either.
func TestProfilingOffByDefault(t *testing.T) {
	if o, _ := app.BindFlags(newFlagSet()); o.ProfilingAddr != "0" {
		t.Fatalf("--profiling-bind-address defaults to %q; want 0", o.ProfilingAddr)
	}
	ns := createNamespace(t, "profiling-off")
	opts := testmanager.Options(ns)
	opts.ProbeAddr = freeAddr(t)
	testmanager.Start(t, env.Config, opts)
	testenv.Eventually(t, 30*time.Second, "/readyz to pass", func() bool {
		return httpStatus(t, "http://"+opts.ProbeAddr+"/readyz", "") == http.StatusOK
	})
	if code := httpStatus(t, "http://"+opts.ProbeAddr+"/debug/pprof/", ""); code != http.StatusNotFound {
		t.Errorf("the probe endpoint answers /debug/pprof/ with %d; want 404", code)
	}
}

// watchLog records the resources a client watches.
type watchLog struct {
	mu    sync.Mutex
	names []string
}

func (w *watchLog) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Query().Get("watch") == "true" {
			parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
			w.mu.Lock()
			if r := parts[len(parts)-1]; !slices.Contains(w.names, r) {
				w.names = append(w.names, r)
			}
			w.mu.Unlock()
		}
		return next.RoundTrip(req)
	})
}

func (w *watchLog) resources() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(slices.Values(w.names))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
