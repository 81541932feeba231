package machines

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
)

// Why a machine has no Node although one answers to its providerID or node name: the reason of
// its Stalled condition.
const (
	// ReasonProviderIDConflict: the Node with the machine's node name carries another providerID
	// (it is some other machine), or several Nodes carry the machine's providerID.
	ReasonProviderIDConflict = "ProviderIDConflict"
	// ReasonProviderIDOutsideNamespace: spec.providerID does not start with
	// homelab://<the machine's namespace>/, so the machine claims no Node at all.
	ReasonProviderIDOutsideNamespace = "ProviderIDOutsideNamespace"
	// ReasonControlPlaneNode: the Node is a control-plane node, which no machine may adopt.
	ReasonControlPlaneNode = "ControlPlaneNode"
	// ReasonNodeNotOptedIn: the Node lacks the opt-in label (infrav1.LabelNamespace) for the
	// machine's namespace: it has none, or it opts in to another namespace.
	ReasonNodeNotOptedIn = "NodeNotOptedIn"
	// ReasonNodeClaimedTwice: another machine claims the same Node; neither gets it.
	ReasonNodeClaimedTwice = "NodeClaimedTwice"
)

// providerIDScheme starts every providerID a machine may have.
const providerIDScheme = "homelab://"

// controlPlaneRoles are the role labels kubeadm (and most installers) put on control-plane Nodes;
// kubelets cannot set labels of that prefix themselves.
var controlPlaneRoles = []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}

// NodeMatch is the Node found for a machine.
type NodeMatch struct {
	// Node is the machine's Node, nil when none registered or the one that answers is refused.
	Node *corev1.Node
	// Reason is why a Node that answers to the machine's providerID or node name is not taken as
	// the machine's (one of the Reason constants), or why the machine claims none; empty otherwise.
	Reason string
	// Conflict is Reason spelled out for a human, naming the Node and what to fix.
	Conflict string
}

// ProviderIDInNamespace reports whether m's providerID lies in its own namespace:
// homelab://<namespace>/ and something after it. Every other is refused, so that a machine never
// names the Node of another namespace's machine. The default always qualifies.
func ProviderIDInNamespace(m *infrav1.Machine) bool {
	rest, ok := strings.CutPrefix(m.ProviderIDOrDefault(), providerIDScheme+m.Namespace+"/")
	return ok && rest != ""
}

// NodeRefusal says why no machine of namespace may adopt node: a reason (one of the Reason
// constants) and a message naming the Node; both empty when they may. A control-plane Node is
// never adopted; any other only when it opts in to namespace with infrav1.LabelNamespace.
func NodeRefusal(node *corev1.Node, namespace string) (reason, msg string) {
	for _, role := range controlPlaneRoles {
		if _, ok := node.Labels[role]; ok {
			return ReasonControlPlaneNode, fmt.Sprintf("Node %s is a control-plane node (label %s): no machine adopts one", node.Name, role)
		}
	}
	switch ns, ok := node.Labels[infrav1.LabelNamespace]; {
	case !ok:
		return ReasonNodeNotOptedIn, fmt.Sprintf("Node %s does not opt in to machines: its kubelet must register it with the label %s=%s (--node-labels)",
			node.Name, infrav1.LabelNamespace, namespace)
	case ns != namespace:
		return ReasonNodeNotOptedIn, fmt.Sprintf("Node %s opts in to the machines of namespace %q only (label %s), not of %q",
			node.Name, ns, infrav1.LabelNamespace, namespace)
	}
	return "", ""
}

// NodeFor finds m's Node: by providerID first, then by name, accepting a Node found by name only
// if it has no providerID or the machine's. A Node found is still refused (Node nil, Reason and
// Conflict set) when NodeRefusal refuses it for m's namespace or another machine claims it too;
// a machine whose providerID is outside its namespace claims none.
func NodeFor(ctx context.Context, r client.Reader, m *infrav1.Machine) (NodeMatch, error) {
	id := m.ProviderIDOrDefault()
	if !ProviderIDInNamespace(m) {
		return NodeMatch{Reason: ReasonProviderIDOutsideNamespace, Conflict: fmt.Sprintf(
			"spec.providerID %q does not start with %q: a machine's providerID must lie in its own namespace, and until it does the machine claims no Node",
			id, providerIDScheme+m.Namespace+"/")}, nil
	}
	node, match, err := candidate(ctx, r, m)
	if err != nil || node == nil {
		return match, err
	}
	if reason, msg := NodeRefusal(node, m.Namespace); reason != "" {
		return NodeMatch{Reason: reason, Conflict: msg}, nil
	}
	claims, err := Claimants(ctx, r, node)
	if err != nil {
		return NodeMatch{}, err
	}
	var others []string
	for _, c := range claims {
		if c.Namespace != m.Namespace || c.Name != m.Name {
			others = append(others, c.Name)
		}
	}
	if len(others) > 0 {
		return NodeMatch{Reason: ReasonNodeClaimedTwice, Conflict: fmt.Sprintf(
			"Node %s is also claimed by %s (same spec.providerID or spec.kubernetesNodeName in this namespace): no machine gets it while more than one claims it",
			node.Name, strings.Join(others, ", "))}, nil
	}
	return NodeMatch{Node: node}, nil
}

// candidate is the Node that answers to m's providerID, else to its node name; nil with the
// reason in match when none does.
func candidate(ctx context.Context, r client.Reader, m *infrav1.Machine) (*corev1.Node, NodeMatch, error) {
	id := m.ProviderIDOrDefault()
	list := &corev1.NodeList{}
	if err := r.List(ctx, list, client.MatchingFields{index.NodeProviderID: id}); err != nil {
		return nil, NodeMatch{}, fmt.Errorf("looking up Nodes by providerID %q: %w", id, err)
	}
	switch len(list.Items) {
	case 0:
	case 1:
		return &list.Items[0], NodeMatch{}, nil
	default:
		names := make([]string, len(list.Items))
		for i := range list.Items {
			names[i] = list.Items[i].Name
		}
		slices.Sort(names)
		return nil, NodeMatch{Reason: ReasonProviderIDConflict, Conflict: fmt.Sprintf(
			"Nodes %s all carry providerID %q: no machine gets any of them while more than one does", strings.Join(names, ", "), id)}, nil
	}
	node := &corev1.Node{}
	err := r.Get(ctx, client.ObjectKey{Name: m.KubernetesNodeNameOrDefault()}, node)
	switch {
	case apierrors.IsNotFound(err):
		return nil, NodeMatch{}, nil
	case err != nil:
		return nil, NodeMatch{}, fmt.Errorf("reading Node %s: %w", m.KubernetesNodeNameOrDefault(), err)
	}
	if node.Spec.ProviderID != "" && node.Spec.ProviderID != id {
		return nil, NodeMatch{Reason: ReasonProviderIDConflict, Conflict: fmt.Sprintf(
			"Node %s registered with providerID %q, not %q", node.Name, node.Spec.ProviderID, id)}, nil
	}
	return node, NodeMatch{}, nil
}

// ForNode returns the machines that claim a Node, sorted by namespace/name: by providerID when the
// Node has one, else by the name its kubelet registered. A Node that carries a providerID is never
// matched by name, because then it is some other machine. A machine whose providerID lies outside
// its namespace claims nothing, so a providerID homelab://NS/... only ever finds machines of NS.
// The claims are not yet judged against the Node's labels (Claimants does that): this is for
// waking every machine whose status a Node concerns, and for cluster-autoscaler's instances that
// have no Node yet. opts are added to the List (e.g. client.UnsafeDisableDeepCopy for a read-only
// hot path).
func ForNode(ctx context.Context, r client.Reader, providerID, nodeName string, opts ...client.ListOption) ([]infrav1.Machine, error) {
	field, value := index.MachineProviderID, providerID
	if providerID == "" {
		if nodeName == "" {
			return nil, nil
		}
		field, value = index.MachineNodeName, nodeName
	}
	list := &infrav1.MachineList{}
	if err := r.List(ctx, list, append([]client.ListOption{client.MatchingFields{field: value}}, opts...)...); err != nil {
		return nil, fmt.Errorf("looking up machines by %s=%q: %w", field, value, err)
	}
	out := list.Items[:0]
	for i := range list.Items {
		if ProviderIDInNamespace(&list.Items[i]) {
			out = append(out, list.Items[i])
		}
	}
	slices.SortFunc(out, func(a, b infrav1.Machine) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

// Claimants returns the machines that may have node, sorted by namespace/name: those ForNode
// finds, less those of a namespace NodeRefusal refuses. This is the one matcher of Nodes to
// machines: the Node controller, the machines' own lookups and cluster-autoscaler's calls all go
// through it. The Node stands for a machine only when exactly one remains; more is a duplicate
// claim, which every claimant reports and none wins. Since a Node opts in to one namespace, a
// machine of another cannot take it, nor make it contested. opts are added to the List.
func Claimants(ctx context.Context, r client.Reader, node *corev1.Node, opts ...client.ListOption) ([]infrav1.Machine, error) {
	claims, err := ForNode(ctx, r, node.Spec.ProviderID, node.Name, opts...)
	if err != nil {
		return nil, err
	}
	out := claims[:0]
	for i := range claims {
		if reason, _ := NodeRefusal(node, claims[i].Namespace); reason == "" {
			out = append(out, claims[i])
		}
	}
	return out, nil
}

// AdoptionChanged reports whether a Node update changes which machines may have it: its
// providerID, its opt-in label or its control-plane role.
func AdoptionChanged(old, cur *corev1.Node) bool {
	if old.Spec.ProviderID != cur.Spec.ProviderID {
		return true
	}
	for _, key := range append([]string{infrav1.LabelNamespace}, controlPlaneRoles...) {
		was, wasSet := old.Labels[key]
		is, isSet := cur.Labels[key]
		if was != is || wasSet != isSet {
			return true
		}
	}
	return false
}

// IsNodeReady reports whether a Node's Ready condition is True.
func IsNodeReady(node *corev1.Node) bool {
	if node == nil {
		return false
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
