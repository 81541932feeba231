package cloudprovider

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// defaultMaxPods is the kubelet's default maxPods, used when neither a registered member nor
// the Group's template says how many pods a node takes: a template node without a pods
// capacity fits no pod at all in cluster-autoscaler's simulation.
const defaultMaxPods = 110

// Taints that belong to one node's moment, never to the group's shape.
const (
	taintToBeDeleted       = "ToBeDeletedByClusterAutoscaler"
	taintDeletionCandidate = "DeletionCandidateOfClusterAutoscaler"
	// Taints under this prefix are set by the node lifecycle controller from conditions
	// (not-ready, unreachable, unschedulable, pressure ...).
	nodeConditionTaintPrefix = "node.kubernetes.io/"
)

// NodeGroupTemplateNodeInfo describes the node the group would add, as raw v1.Node protobuf
// (Node.Marshal(), the only encoding cluster-autoscaler's client decodes): built from a
// registered, Ready member's Node when there is one, else from Group.spec.template. Per-node
// labels and the member's taintsToRemove are left out, and the pods capacity is always set.
// Unimplemented when neither source can describe an honest node (no Ready member, and no
// template with cpu and memory): cluster-autoscaler then cannot scale the group from zero.
func (s *Server) NodeGroupTemplateNodeInfo(ctx context.Context, req *pb.NodeGroupTemplateNodeInfoRequest) (*pb.NodeGroupTemplateNodeInfoResponse, error) {
	g, err := s.group(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	node, err := s.templateNode(ctx, g)
	if err != nil {
		return nil, err
	}
	if node == nil {
		return nil, errorf(codes.Unimplemented, "node group %s has no Ready member to copy and its spec.template does not give cpu and memory capacity", req.GetId())
	}
	raw, err := node.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the template node of %s: %w", req.GetId(), err)
	}
	return &pb.NodeGroupTemplateNodeInfoResponse{NodeBytes: raw}, nil
}

// templateNode builds the group's template node, or nil when it cannot.
func (s *Server) templateNode(ctx context.Context, g *infrav1.Group) (*corev1.Node, error) {
	var ready []*infrav1.Machine
	for _, m := range s.members(g.Namespace, g.Name) {
		if m.Status.Progress == infrav1.ProgressReady {
			ready = append(ready, m)
		}
	}
	slices.SortFunc(ready, func(a, b *infrav1.Machine) int { return strings.Compare(a.Name, b.Name) })
	for _, m := range ready {
		match, err := machines.NodeFor(ctx, s.opts.Reader, m)
		if err != nil {
			return nil, fmt.Errorf("looking up the Node of Machine %s/%s: %w", m.Namespace, m.Name, err)
		}
		if machines.IsNodeReady(match.Node) {
			return fromMember(g, m, match.Node), nil
		}
	}
	return fromSpec(g), nil
}

// fromMember copies a registered member's Node, without what belongs to that node alone.
func fromMember(g *infrav1.Group, m *infrav1.Machine, core *corev1.Node) *corev1.Node {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: templateName(g), Labels: map[string]string{}},
		Status: corev1.NodeStatus{
			Capacity:    core.Status.Capacity.DeepCopy(),
			Allocatable: core.Status.Allocatable.DeepCopy(),
			NodeInfo:    core.Status.NodeInfo,
		},
	}
	perNode := map[string]bool{corev1.LabelHostname: true, infrav1.LabelMachine: true}
	for k, v := range core.Labels {
		if !perNode[k] {
			node.Labels[k] = v
		}
	}
	groupLabels(g, node)
	for _, t := range core.Spec.Taints {
		if !transientTaint(t.Key) && !slices.Contains(m.Spec.TaintsToRemove, t.Key) {
			node.Spec.Taints = append(node.Spec.Taints, t)
		}
	}
	finish(g, node)
	return node
}

// fromSpec builds the node Group.spec.template describes, or nil if it gives no cpu and memory.
func fromSpec(g *infrav1.Group) *corev1.Node {
	t := g.Spec.Template
	if t == nil {
		return nil
	}
	if _, ok := t.Capacity[corev1.ResourceCPU]; !ok {
		return nil
	}
	if _, ok := t.Capacity[corev1.ResourceMemory]; !ok {
		return nil
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: templateName(g), Labels: map[string]string{}},
		Spec:       corev1.NodeSpec{Taints: slices.Clone(t.Taints)},
		Status:     corev1.NodeStatus{Capacity: t.Capacity.DeepCopy(), Allocatable: t.Allocatable.DeepCopy()},
	}
	for k, v := range t.Labels {
		node.Labels[k] = v
	}
	groupLabels(g, node)
	finish(g, node)
	return node
}

// groupLabels sets the labels every Node of the group carries: its name and its namespace (the
// Nodes' opt-in), which together name the group even where other namespaces have a group of the
// same name, so pods that select both land on this group's machines only.
func groupLabels(g *infrav1.Group, node *corev1.Node) {
	node.Labels[infrav1.LabelGroup] = g.Name
	node.Labels[infrav1.LabelNamespace] = g.Namespace
}

// finish fills what every template node needs: pods capacity and allocatable, allocatable
// defaulting to capacity, and a Ready condition.
func finish(g *infrav1.Group, node *corev1.Node) {
	if node.Status.Capacity == nil {
		node.Status.Capacity = corev1.ResourceList{}
	}
	if _, ok := node.Status.Capacity[corev1.ResourcePods]; !ok {
		node.Status.Capacity[corev1.ResourcePods] = templatePods(g)
	}
	if len(node.Status.Allocatable) == 0 {
		node.Status.Allocatable = node.Status.Capacity.DeepCopy()
	}
	if _, ok := node.Status.Allocatable[corev1.ResourcePods]; !ok {
		node.Status.Allocatable[corev1.ResourcePods] = node.Status.Capacity[corev1.ResourcePods].DeepCopy()
	}
	now := metav1.Now()
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "template node of a homelab-autoscaler group", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	node.Status.Phase = corev1.NodeRunning
}

// templatePods is the group template's pods capacity, else the kubelet's default.
func templatePods(g *infrav1.Group) resource.Quantity {
	if t := g.Spec.Template; t != nil {
		if q, ok := t.Capacity[corev1.ResourcePods]; ok {
			return q.DeepCopy()
		}
	}
	return *resource.NewQuantity(defaultMaxPods, resource.DecimalSI)
}

func transientTaint(key string) bool {
	return key == taintToBeDeleted || key == taintDeletionCandidate || strings.HasPrefix(key, nodeConditionTaintPrefix)
}

// templateName is only a placeholder: cluster-autoscaler renames template nodes.
func templateName(g *infrav1.Group) string {
	return "template-node-for-" + g.Namespace + "-" + g.Name
}
