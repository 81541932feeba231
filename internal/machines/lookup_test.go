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

// createNode plays a kubelet registering a Node with a providerID (empty for none) and labels.
func createNode(t *testing.T, name, providerID string, labels map[string]string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), n) })
	return n
}

// optIn is the label a kubelet registers its Node with for the machines of ns.
func optIn(ns string, extra ...string) map[string]string {
	l := map[string]string{infrav1.LabelNamespace: ns}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func TestNodeFor(t *testing.T) {
	p := unique(t)
	r := indexedCache(t)
	ctx := context.Background()

	// Found by providerID although its name is not the machine's node name.
	byID := createMachine(t, p, "by-id", nil)
	createNode(t, p+"-renamed", "homelab://"+p+"/by-id", optIn(p))
	// Found by name: a Node registered without a providerID (kubeadm's).
	byName := createMachine(t, p, "by-name", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-by-name" })
	createNode(t, p+"-by-name", "", optIn(p))
	// Found by name with its own providerID set explicitly.
	ownID := createMachine(t, p, "own-id", func(m *infrav1.Machine) {
		m.Spec.KubernetesNodeName = p + "-own-id"
		m.Spec.ProviderID = "homelab://" + p + "/rack-1/blade-7"
	})
	createNode(t, p+"-own-id", "homelab://"+p+"/rack-1/blade-7", optIn(p))
	// A Node with the machine's node name but another providerID is some other machine.
	conflict := createMachine(t, p, "conflict", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-conflict" })
	createNode(t, p+"-conflict", "other://"+p, optIn(p))
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
		if (got.Reason != "") != (c.wantConflict != "") {
			t.Fatalf("NodeFor(%s) reason %q with conflict %q", c.m.Name, got.Reason, got.Conflict)
		}
	}
}

// Every Node a machine may not adopt is refused with the reason its Stalled condition shows: a
// control-plane Node, one that does not opt in to the machine's namespace (another tenant's), a
// providerID outside the machine's namespace, and a Node two machines claim.
func TestNodeForRefuses(t *testing.T) {
	a := unique(t)
	b := unique(t)
	r := indexedCache(t)
	ctx := context.Background()
	nodeName := func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = a + "-" + m.Name }
	withID := func(id string) func(*infrav1.Machine) {
		return func(m *infrav1.Machine) { m.Spec.ProviderID = id }
	}

	createNode(t, a+"-cp", "", optIn(a, "node-role.kubernetes.io/control-plane", ""))
	cp := createMachine(t, a, "cp", nodeName)
	createNode(t, a+"-master", "", optIn(a, "node-role.kubernetes.io/master", ""))
	master := createMachine(t, a, "master", nodeName)
	createNode(t, a+"-plain", "", nil)
	plain := createMachine(t, a, "plain", nodeName)
	// Namespace b's Node, claimed from a by its name and by its providerID.
	createNode(t, b+"-w1", "homelab://"+b+"/w1", optIn(b))
	createMachine(t, b, "w1", nil)
	createNode(t, b+"-w2", "", optIn(b))
	byName := createMachine(t, a, "by-name", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = b + "-w2" })
	byID := createMachine(t, a, "by-id", withID("homelab://"+b+"/w1"))
	otherScheme := createMachine(t, a, "other-scheme", withID("metal://"+a+"/7"))
	emptyRest := createMachine(t, a, "empty-rest", withID("homelab://"+a+"/"))
	// A namespace whose name starts with a's is still another namespace.
	prefixed := createMachine(t, a, "prefixed", withID("homelab://"+a+"x/7"))
	// Two machines of a claim one Node: by name, and by providerID.
	twinA := createMachine(t, a, "twin-a", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = a + "-twin" })
	twinB := createMachine(t, a, "twin-b", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = a + "-twin" })
	createNode(t, a+"-twin", "", optIn(a))
	sameA := createMachine(t, a, "same-a", withID("homelab://"+a+"/same"))
	sameB := createMachine(t, a, "same-b", withID("homelab://"+a+"/same"))
	createNode(t, a+"-same", "homelab://"+a+"/same", optIn(a))
	// One machine, two Nodes with its providerID.
	twoNodes := createMachine(t, a, "two-nodes", nil)
	createNode(t, a+"-two-1", "homelab://"+a+"/two-nodes", optIn(a))
	createNode(t, a+"-two-2", "homelab://"+a+"/two-nodes", optIn(a))

	for _, c := range []struct {
		m      *infrav1.Machine
		reason string
		msg    string
	}{
		{cp, machines.ReasonControlPlaneNode, "Node " + a + "-cp is a control-plane node (label node-role.kubernetes.io/control-plane): no machine adopts one"},
		{master, machines.ReasonControlPlaneNode, "Node " + a + "-master is a control-plane node (label node-role.kubernetes.io/master): no machine adopts one"},
		{plain, machines.ReasonNodeNotOptedIn, "Node " + a + "-plain does not opt in to machines: its kubelet must register it with the label homelab-autoscaler.dev/namespace=" + a + " (--node-labels)"},
		{byName, machines.ReasonNodeNotOptedIn, fmt.Sprintf("Node %s-w2 opts in to the machines of namespace %q only (label homelab-autoscaler.dev/namespace), not of %q", b, b, a)},
		{byID, machines.ReasonProviderIDOutsideNamespace, fmt.Sprintf("spec.providerID %q does not start with %q: a machine's providerID must lie in its own namespace, and until it does the machine claims no Node", "homelab://"+b+"/w1", "homelab://"+a+"/")},
		{otherScheme, machines.ReasonProviderIDOutsideNamespace, ""},
		{emptyRest, machines.ReasonProviderIDOutsideNamespace, ""},
		{prefixed, machines.ReasonProviderIDOutsideNamespace, ""},
		{twinA, machines.ReasonNodeClaimedTwice, "Node " + a + "-twin is also claimed by twin-b (same spec.providerID or spec.kubernetesNodeName in this namespace): no machine gets it while more than one claims it"},
		{twinB, machines.ReasonNodeClaimedTwice, "Node " + a + "-twin is also claimed by twin-a (same spec.providerID or spec.kubernetesNodeName in this namespace): no machine gets it while more than one claims it"},
		{sameA, machines.ReasonNodeClaimedTwice, "Node " + a + "-same is also claimed by same-b (same spec.providerID or spec.kubernetesNodeName in this namespace): no machine gets it while more than one claims it"},
		{sameB, machines.ReasonNodeClaimedTwice, ""},
		{twoNodes, machines.ReasonProviderIDConflict, fmt.Sprintf("Nodes %s-two-1, %s-two-2 all carry providerID %q: no machine gets any of them while more than one does", a, a, "homelab://"+a+"/two-nodes")},
	} {
		var got machines.NodeMatch
		testenv.Eventually(t, 10*time.Second, c.m.Name+" to be refused with "+c.reason, func() bool {
			var err error
			if got, err = machines.NodeFor(ctx, r, c.m); err != nil {
				t.Fatal(err)
			}
			return got.Reason == c.reason
		})
		if got.Node != nil {
			t.Errorf("NodeFor(%s) took Node %s although it refused it (%s)", c.m.Name, got.Node.Name, got.Reason)
		}
		if c.msg != "" && got.Conflict != c.msg {
			t.Errorf("NodeFor(%s) message\n%s\nwant\n%s", c.m.Name, got.Conflict, c.msg)
		}
	}
}

// A machine of another namespace that names a Node opted in to this one neither gets it nor
// makes it contested: the Node's own machine keeps it.
func TestNodeForIgnoresClaimsFromOtherNamespaces(t *testing.T) {
	a := unique(t)
	b := unique(t)
	r := indexedCache(t)
	ctx := context.Background()
	own := createMachine(t, a, "w1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = "w1-" + a })
	createNode(t, "w1-"+a, "", optIn(a))
	createMachine(t, b, "intruder", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = "w1-" + a })
	createMachine(t, b, "impostor", func(m *infrav1.Machine) { m.Spec.ProviderID = "homelab://" + a + "/w1" })
	// The cache has seen both intruders before the verdict counts.
	testenv.Eventually(t, 10*time.Second, "the cache to show every claim", func() bool {
		claims, err := machines.ForNode(ctx, r, "", "w1-"+a)
		if err != nil {
			t.Fatal(err)
		}
		list := &infrav1.MachineList{}
		if err := r.List(ctx, list, client.InNamespace(b)); err != nil {
			t.Fatal(err)
		}
		return len(claims) == 2 && len(list.Items) == 2
	})
	got, err := machines.NodeFor(ctx, r, own)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node == nil || got.Node.Name != "w1-"+a || got.Reason != "" {
		t.Fatalf("NodeFor(%s/w1) = %+v, want its Node w1-%s", a, got, a)
	}
	core := &corev1.Node{}
	if err := r.Get(ctx, client.ObjectKey{Name: "w1-" + a}, core); err != nil {
		t.Fatal(err)
	}
	claims, err := machines.Claimants(ctx, r, core)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 1 || claims[0].Namespace != a || claims[0].Name != "w1" {
		t.Fatalf("Claimants(w1-%s) = %s, want only %s/w1", a, names(claims), a)
	}
}

func TestForNode(t *testing.T) {
	p := unique(t)
	other := unique(t)
	r := indexedCache(t)
	ctx := context.Background()

	createMachine(t, p, "a", nil)
	createMachine(t, p, "b", func(m *infrav1.Machine) { m.Spec.ProviderID = "homelab://" + p + "/blade-7" })
	// Two machines, in two namespaces, claim the same node name: both are returned, sorted, for
	// the caller to judge against the Node (Claimants).
	createMachine(t, p, "shared-2", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-shared" })
	createMachine(t, other, "shared-1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-shared" })
	// Its node name defaulting to its own name.
	createMachine(t, p, p+"-plain", nil)
	// A machine of another namespace that copies a's providerID, or names a Node by name while
	// its providerID lies outside its namespace, claims nothing.
	createMachine(t, other, "copy", func(m *infrav1.Machine) { m.Spec.ProviderID = "homelab://" + p + "/a" })
	createMachine(t, other, "outside", func(m *infrav1.Machine) {
		m.Spec.ProviderID = "metal://" + other + "/1"
		m.Spec.KubernetesNodeName = p + "-plain"
	})

	// Each lookup that finds nothing follows one that found the machines it must not find, so it
	// cannot pass merely because the cache has not seen them yet.
	for _, c := range []struct {
		what, providerID, nodeName, want string
	}{
		{"the default providerID, never a copy in another namespace", "homelab://" + p + "/a", "ignored", p + "/a"},
		{"an explicit providerID", "homelab://" + p + "/blade-7", "", p + "/b"},
		{"a machine's default providerID no longer counts once it set its own", "homelab://" + p + "/b", "", ""},
		{"the node name, for a Node without providerID", "", p + "-shared", sorted(other+"/shared-1", p+"/shared-2")},
		{"the node name defaulting to the machine's name, never a machine with a providerID outside its namespace", "", p + "-plain", p + "/" + p + "-plain"},
		// A Node that carries a providerID is never matched by name: it is some other machine.
		{"a providerID no machine has, with a known node name", "other://" + p, p + "-plain", ""},
		{"a providerID outside the namespace of the machine that has it", "metal://" + other + "/1", "", ""},
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

// Claimants keeps only the claims a Node accepts: its opt-in namespace's, and none for a
// control-plane Node.
func TestClaimants(t *testing.T) {
	p := unique(t)
	other := unique(t)
	r := indexedCache(t)
	ctx := context.Background()
	createMachine(t, p, "w1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-w1" })
	createMachine(t, other, "w1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-w1" })
	createMachine(t, p, "cp", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-cp" })

	for _, c := range []struct {
		what string
		node *corev1.Node
		want string
	}{
		{"opted in to p", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p + "-w1", Labels: optIn(p)}}, p + "/w1"},
		{"opted in to other", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p + "-w1", Labels: optIn(other)}}, other + "/w1"},
		{"opted in to no namespace", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p + "-w1"}}, ""},
		{"opted in to a namespace without claims", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p + "-w1", Labels: optIn("nobody")}}, ""},
		{"a control-plane Node, although opted in", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p + "-cp",
			Labels: optIn(p, "node-role.kubernetes.io/control-plane", "")}}, ""},
	} {
		// The raw claims are in the cache first, so an empty answer is the Node's refusal.
		testenv.Eventually(t, 10*time.Second, "the cache to show the claims on "+c.node.Name, func() bool {
			got, err := machines.ForNode(ctx, r, "", c.node.Name)
			if err != nil {
				t.Fatal(err)
			}
			return len(got) > 0 && (c.node.Name != p+"-w1" || len(got) == 2)
		})
		got, err := machines.Claimants(ctx, r, c.node)
		if err != nil {
			t.Fatal(err)
		}
		if names(got) != c.want {
			t.Errorf("Claimants(%s) = %q, want %q", c.what, names(got), c.want)
		}
	}
}

func TestAdoptionChanged(t *testing.T) {
	base := func(mutate func(*corev1.Node)) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{infrav1.LabelNamespace: "a", "other": "x"}}}
		mutate(n)
		return n
	}
	same := func(*corev1.Node) {}
	for _, c := range []struct {
		what   string
		mutate func(*corev1.Node)
		want   bool
	}{
		{"nothing", same, false},
		{"an unrelated label", func(n *corev1.Node) { n.Labels["other"] = "y" }, false},
		{"the providerID", func(n *corev1.Node) { n.Spec.ProviderID = "homelab://a/n" }, true},
		{"the opt-in namespace", func(n *corev1.Node) { n.Labels[infrav1.LabelNamespace] = "b" }, true},
		{"the opt-in removed", func(n *corev1.Node) { delete(n.Labels, infrav1.LabelNamespace) }, true},
		{"a control-plane role added", func(n *corev1.Node) { n.Labels["node-role.kubernetes.io/control-plane"] = "" }, true},
	} {
		if got := machines.AdoptionChanged(base(same), base(c.mutate)); got != c.want {
			t.Errorf("AdoptionChanged(%s) = %v, want %v", c.what, got, c.want)
		}
	}
}

// names joins the namespace/name keys of machines.
func names(list []infrav1.Machine) string {
	var out []string
	for _, m := range list {
		out = append(out, m.Namespace+"/"+m.Name)
	}
	return strings.Join(out, ",")
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
