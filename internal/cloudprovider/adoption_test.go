package cloudprovider_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// Nodes no machine may adopt stand for no node group, whatever a machine claims: a control-plane
// Node, one that does not opt in, another namespace's (named by a machine, or carrying the
// providerID a machine copied), one two machines claim. cluster-autoscaler then never counts,
// drains or deletes them as a group's, and NodeGroupDeleteNodes refuses them.
func TestNodesMachinesMayNotAdoptAreNoGroups(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	tenant := newNamespace(t)
	createGroup(t, ns, "workers")
	ms := createMachines(t, ns, "workers", 7, func(i int, m *infrav1.Machine) {
		m.Spec.Online = true
		m.Status.Progress = infrav1.ProgressReady
		switch i {
		case 2:
			m.Spec.KubernetesNodeName = tenant + "-w"
		case 3:
			m.Spec.ProviderID = "homelab://" + tenant + "/x"
		case 4, 5:
			m.Spec.KubernetesNodeName = ns + "-twin"
		}
	})
	optedIn := func(namespace string) func(*corev1.Node) {
		return func(n *corev1.Node) { n.Labels[infrav1.LabelNamespace] = namespace }
	}
	withoutProviderID := func(n *corev1.Node) { n.Spec.ProviderID = "" }
	registerCore(t, ms[0], true, func(n *corev1.Node) { n.Labels["node-role.kubernetes.io/control-plane"] = "" })
	registerCore(t, ms[1], true, func(n *corev1.Node) { delete(n.Labels, infrav1.LabelNamespace) })
	// The tenant's Nodes, each registered for a machine of the tenant's namespace (which has
	// none here, so nothing else could explain an empty answer).
	registerCore(t, ms[2], true, optedIn(tenant), withoutProviderID)
	registerCore(t, ms[3], true, optedIn(tenant), func(n *corev1.Node) { n.Name = tenant + "-x" })
	registerCore(t, ms[4], true, withoutProviderID)
	registerCore(t, ms[6], true)
	r.sync(t, ns)
	waitFor(t, "the tenant's Nodes in the cache", func() bool {
		for _, name := range []string{tenant + "-w", tenant + "-x"} {
			if err := r.cache.Get(ctx5s(t), client.ObjectKey{Name: name}, &corev1.Node{}); err != nil {
				return false
			}
		}
		return true
	})
	workers := gid(ns, "workers")

	cases := []struct {
		name string
		node *pb.ExternalGrpcNode
		want string
	}{
		{"a control-plane Node", node(ms[0]), ""},
		{"a Node that does not opt in", node(ms[1]), ""},
		{"another namespace's Node, by name", &pb.ExternalGrpcNode{Name: tenant + "-w", Labels: map[string]string{infrav1.LabelNamespace: tenant}}, ""},
		{"another namespace's Node, by its providerID", &pb.ExternalGrpcNode{ProviderID: "homelab://" + tenant + "/x", Name: tenant + "-x"}, ""},
		{"another namespace's instance, as a fake node", fakeNode(ms[3], "unregistered"), ""},
		{"a Node two machines claim", &pb.ExternalGrpcNode{Name: ns + "-twin", Labels: map[string]string{infrav1.LabelNamespace: ns}}, ""},
		{"the one Node of the group that opts in", node(ms[6]), workers},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.NodeGroupForNode(ctx5s(t), &pb.NodeGroupForNodeRequest{Node: tc.node})
			if err != nil {
				t.Fatalf("never an error for a node: %v", err)
			}
			if got := res.GetNodeGroup().GetId(); got != tc.want {
				t.Fatalf("group %q, want %q", got, tc.want)
			}
			if tc.want != "" {
				return
			}
			err = deleteNodes(t, c, workers, tc.node)
			expectCode(t, err, codes.InvalidArgument)
			want := "node \"" + tc.node.GetName() + "\" (providerID \"" + tc.node.GetProviderID() + "\") is not a machine of any node group"
			if msg := status.Convert(err).Message(); msg != want {
				t.Fatalf("message %q, want %q", msg, want)
			}
		})
	}
	if got := len(desiredOn(t, ns)); got != 7 {
		t.Fatalf("a refused delete powered a machine off: %d desired on, want 7", got)
	}
}

// A Ready member whose Node is refused is no model for the group's template: the template comes
// from the Group's spec instead, so no control-plane Node's labels and taints are copied.
func TestTemplateNeverCopiesARefusedNode(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g", func(g *infrav1.Group) {
		g.Spec.Template = &infrav1.NodeTemplate{Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"),
		}}
	})
	ms := createMachines(t, ns, "g", 1, func(_ int, m *infrav1.Machine) {
		m.Spec.Online = true
		m.Status.Progress = infrav1.ProgressReady
	})
	registerCore(t, ms[0], true, func(n *corev1.Node) {
		n.Labels["node-role.kubernetes.io/control-plane"] = ""
		n.Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
	})
	r.sync(t, ns)
	n, err := templateOf(t, c, gid(ns, "g"))
	if err != nil {
		t.Fatal(err)
	}
	expectQuantity(t, n.Status.Capacity, corev1.ResourceCPU, "2")
	if _, ok := n.Labels["node-role.kubernetes.io/control-plane"]; ok || hasTaint(n, "node-role.kubernetes.io/control-plane") {
		t.Fatalf("the template copied the control-plane Node: labels %v, taints %v", n.Labels, n.Spec.Taints)
	}
	if n.Labels[infrav1.LabelGroup] != "g" || n.Labels[infrav1.LabelNamespace] != ns {
		t.Fatalf("template labels %v, want the group's name and namespace", n.Labels)
	}
}
