package machines_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// indexedCache is a reader like the manager's: an informer cache of the apiserver with the
// project's field indexes, which the lookups query.
func indexedCache(t *testing.T) client.Reader {
	t.Helper()
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := index.Register(ctx, c); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Start(ctx); err != nil {
			t.Errorf("cache: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("the cache did not sync")
	}
	return c
}

var seq atomic.Int64

// unique prefixes the cluster-scoped and namespaced names of one test.
func unique(t *testing.T) string {
	t.Helper()
	p := fmt.Sprintf("lk%d-%d", time.Now().Unix()%100000, seq.Add(1))
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p}}); err != nil {
		t.Fatal(err)
	}
	return p
}

func createMachine(t *testing.T, ns, name string, mutate func(*infrav1.Machine)) *infrav1.Machine {
	t.Helper()
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: infrav1.MachineSpec{Group: "workers"}}
	if mutate != nil {
		mutate(m)
	}
	if err := env.Client.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func createNode(t *testing.T, name, providerID string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), n) })
	return n
}

func TestNodeFor(t *testing.T) {
	p := unique(t)
	r := indexedCache(t)
	ctx := context.Background()

	// Found by providerID although its name is not the machine's node name.
	byID := createMachine(t, p, "by-id", nil)
	createNode(t, p+"-renamed", "homelab://"+p+"/by-id")
	// Found by name: a Node registered without a providerID (kubeadm's).
	byName := createMachine(t, p, "by-name", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-by-name" })
	createNode(t, p+"-by-name", "")
	// Found by name with its own providerID set explicitly.
	ownID := createMachine(t, p, "own-id", func(m *infrav1.Machine) {
		m.Spec.KubernetesNodeName = p + "-own-id"
		m.Spec.ProviderID = "metal://" + p + "/7"
	})
	createNode(t, p+"-own-id", "metal://"+p+"/7")
	// A Node with the machine's node name but another providerID is some other machine.
	conflict := createMachine(t, p, "conflict", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-conflict" })
	createNode(t, p+"-conflict", "other://"+p)
	none := createMachine(t, p, "none", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-none" })

	for _, c := range []struct {
		m            *infrav1.Machine
		wantNode     string
		wantConflict string
	}{
		{m: byID, wantNode: p + "-renamed"},
		{m: byName, wantNode: p + "-by-name"},
		{m: ownID, wantNode: p + "-own-id"},
		{m: conflict, wantConflict: fmt.Sprintf("Node %s-conflict registered with providerID %q, not %q", p, "other://"+p, "homelab://"+p+"/conflict")},
		{m: none},
	} {
		var got machines.NodeMatch
		testenv.Eventually(t, 10*time.Second, "the cache to show "+c.m.Name+"'s Node", func() bool {
			var err error
			if got, err = machines.NodeFor(ctx, r, c.m); err != nil {
				t.Fatal(err)
			}
			return (got.Node != nil) == (c.wantNode != "") && got.Conflict == c.wantConflict
		})
		if got.Node != nil && got.Node.Name != c.wantNode {
			t.Fatalf("NodeFor(%s) = Node %s, want %s", c.m.Name, got.Node.Name, c.wantNode)
		}
	}
}

func TestForNode(t *testing.T) {
	p := unique(t)
	other := unique(t)
	r := indexedCache(t)
	ctx := context.Background()

	createMachine(t, p, "a", nil)
	createMachine(t, p, "b", func(m *infrav1.Machine) { m.Spec.ProviderID = "metal://" + p + "/7" })
	// Two machines, in two namespaces, claim the same node name: both are returned, sorted, for
	// the caller to report the conflict.
	createMachine(t, p, "shared-2", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-shared" })
	createMachine(t, other, "shared-1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-shared" })
	// Its node name defaults to its own name.
	createMachine(t, p, p+"-plain", nil)

	names := func(list []infrav1.Machine) string {
		var out []string
		for _, m := range list {
			out = append(out, m.Namespace+"/"+m.Name)
		}
		return strings.Join(out, ",")
	}
	// Each lookup that finds nothing follows one that found the machines it must not find, so it
	// cannot pass merely because the cache has not seen them yet.
	for _, c := range []struct {
		what, providerID, nodeName, want string
	}{
		{"the default providerID", "homelab://" + p + "/a", "ignored", p + "/a"},
		{"an explicit providerID", "metal://" + p + "/7", "", p + "/b"},
		{"a machine's default providerID no longer counts once it set its own", "homelab://" + p + "/b", "", ""},
		{"the node name, for a Node without providerID", "", p + "-shared", sorted(other+"/shared-1", p+"/shared-2")},
		{"the node name defaulting to the machine's name", "", p + "-plain", p + "/" + p + "-plain"},
		// A Node that carries a providerID is never matched by name: it is some other machine.
		{"a providerID no machine has, with a known node name", "other://" + p, p + "-plain", ""},
		{"neither", "", "", ""},
	} {
		var got []infrav1.Machine
		testenv.Eventually(t, 10*time.Second, c.what, func() bool {
			var err error
			if got, err = machines.ForNode(ctx, r, c.providerID, c.nodeName); err != nil {
				t.Fatal(err)
			}
			return names(got) == c.want
		})
	}
}

// sorted joins namespace/name keys in the order ForNode returns them.
func sorted(keys ...string) string {
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

func TestIsNodeReady(t *testing.T) {
	ready := func(s corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue},
			{Type: corev1.NodeReady, Status: s},
		}}}
	}
	for _, c := range []struct {
		name string
		node *corev1.Node
		want bool
	}{
		{"nil", nil, false},
		{"no conditions", &corev1.Node{}, false},
		{"Ready True", ready(corev1.ConditionTrue), true},
		{"Ready False", ready(corev1.ConditionFalse), false},
		{"Ready Unknown", ready(corev1.ConditionUnknown), false},
	} {
		if got := machines.IsNodeReady(c.node); got != c.want {
			t.Errorf("IsNodeReady(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}
