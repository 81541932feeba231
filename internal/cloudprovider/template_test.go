package cloudprovider_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

func templateOf(t *testing.T, c pb.CloudProviderClient, id string) (*corev1.Node, error) {
	t.Helper()
	res, err := c.NodeGroupTemplateNodeInfo(ctx5s(t), &pb.NodeGroupTemplateNodeInfoRequest{Id: id})
	if err != nil {
		return nil, err
	}
	n := &corev1.Node{}
	// cluster-autoscaler's client decodes exactly this way.
	if err := n.Unmarshal(res.GetNodeBytes()); err != nil {
		t.Fatalf("nodeBytes do not decode with v1.Node.Unmarshal: %v", err)
	}
	return n, nil
}

func expectQuantity(t *testing.T, l corev1.ResourceList, name corev1.ResourceName, want string) {
	t.Helper()
	got, ok := l[name]
	if !ok || got.Cmp(resource.MustParse(want)) != 0 {
		t.Fatalf("%s = %v (present %v), want %s", name, got.String(), ok, want)
	}
}

func hasTaint(n *corev1.Node, key string) bool {
	for _, tt := range n.Spec.Taints {
		if tt.Key == key {
			return true
		}
	}
	return false
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestTemplateNodeInfoFromRegisteredMember(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g", func(g *infrav1.Group) {
		g.Spec.Template = &infrav1.NodeTemplate{Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"),
		}}
	})
	ms := createMachines(t, ns, "g", 2, func(i int, m *infrav1.Machine) {
		m.Spec.Online = true
		m.Spec.TaintsToRemove = []string{"example.com/booting"}
		if i == 0 {
			m.Status.Progress = infrav1.ProgressReady
		}
	})
	registerCore(t, ms[0], true, func(n *corev1.Node) {
		n.Labels["topology.kubernetes.io/zone"] = "rack-a"
		n.Labels[corev1.LabelArchStable] = "amd64"
		n.Spec.Taints = []corev1.Taint{
			{Key: "dedicated", Value: "batch", Effect: corev1.TaintEffectNoSchedule},
			{Key: "example.com/booting", Effect: corev1.TaintEffectNoSchedule},
			{Key: "ToBeDeletedByClusterAutoscaler", Effect: corev1.TaintEffectNoSchedule},
			{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule},
		}
		// A capacity without pods: the template must still carry it.
		n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi")}
		n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("15"), corev1.ResourceMemory: resource.MustParse("60Gi")}
	})
	id := gid(ns, "g")
	r.sync(t, ns)
	var n *corev1.Node
	waitFor(t, "the member's Node in the cache", func() bool {
		var err error
		n, err = templateOf(t, c, id)
		if err != nil {
			t.Fatal(err)
		}
		return n.Status.Capacity.Cpu().Cmp(resource.MustParse("16")) == 0
	})
	expectQuantity(t, n.Status.Capacity, corev1.ResourceMemory, "64Gi")
	expectQuantity(t, n.Status.Capacity, corev1.ResourcePods, "110")
	expectQuantity(t, n.Status.Allocatable, corev1.ResourceCPU, "15")
	expectQuantity(t, n.Status.Allocatable, corev1.ResourceMemory, "60Gi")
	expectQuantity(t, n.Status.Allocatable, corev1.ResourcePods, "110")
	if n.Labels["topology.kubernetes.io/zone"] != "rack-a" || n.Labels[corev1.LabelArchStable] != "amd64" ||
		n.Labels[infrav1.LabelGroup] != "g" || n.Labels[infrav1.LabelNamespace] != ns {
		t.Fatalf("group labels missing: %v", n.Labels)
	}
	if _, ok := n.Labels[corev1.LabelHostname]; ok {
		t.Fatalf("per-node hostname label kept: %v", n.Labels)
	}
	if _, ok := n.Labels[infrav1.LabelMachine]; ok {
		t.Fatalf("per-node machine label kept: %v", n.Labels)
	}
	if !hasTaint(n, "dedicated") || len(n.Spec.Taints) != 1 {
		t.Fatalf("taints %v, want only dedicated (taintsToRemove, cluster-autoscaler's and cordon taints dropped)", n.Spec.Taints)
	}
	if !isReady(n) || n.Spec.ProviderID != "" {
		t.Fatalf("template not Ready or carries a providerID: %+v", n)
	}
}

func TestTemplateNodeInfoFromGroupTemplate(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "from-zero", func(g *infrav1.Group) {
		g.Spec.Template = &infrav1.NodeTemplate{
			// The group's own namespace wins over a template that names another.
			Labels: map[string]string{"node.kubernetes.io/instance-type": "nuc", infrav1.LabelNamespace: "elsewhere"},
			Taints: []corev1.Taint{{Key: "dedicated", Value: "ml", Effect: corev1.TaintEffectNoSchedule}},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"),
				corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
			},
		}
	})
	createMachines(t, ns, "from-zero", 2, nil)
	r.sync(t, ns)
	n, err := templateOf(t, c, gid(ns, "from-zero"))
	if err != nil {
		t.Fatal(err)
	}
	expectQuantity(t, n.Status.Capacity, corev1.ResourceCPU, "4")
	expectQuantity(t, n.Status.Capacity, corev1.ResourceMemory, "16Gi")
	expectQuantity(t, n.Status.Capacity, corev1.ResourcePods, "110")
	expectQuantity(t, n.Status.Allocatable, corev1.ResourceCPU, "4")
	expectQuantity(t, n.Status.Allocatable, corev1.ResourcePods, "110")
	if n.Labels["node.kubernetes.io/instance-type"] != "nuc" || n.Labels[infrav1.LabelGroup] != "from-zero" || n.Labels[infrav1.LabelNamespace] != ns {
		t.Fatalf("labels %v", n.Labels)
	}
	if !hasTaint(n, "dedicated") || !isReady(n) {
		t.Fatalf("taints %v ready %v", n.Spec.Taints, isReady(n))
	}

	// Neither a Ready member nor a template with cpu and memory: no honest node.
	createGroup(t, ns, "bare")
	createGroup(t, ns, "no-memory", func(g *infrav1.Group) {
		g.Spec.Template = &infrav1.NodeTemplate{Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}}
	})
	r.sync(t, ns)
	_, err = templateOf(t, c, gid(ns, "bare"))
	expectCode(t, err, codes.Unimplemented)
	_, err = templateOf(t, c, gid(ns, "no-memory"))
	expectCode(t, err, codes.Unimplemented)
	_, err = templateOf(t, c, gid(ns, "missing"))
	expectCode(t, err, codes.NotFound)
}
