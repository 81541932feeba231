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

// NodeMatch is the Node found for a machine.
type NodeMatch struct {
	// Node is the machine's Node, nil when none registered.
	Node *corev1.Node
	// Conflict explains why a Node with the machine's node name is not taken as the machine's (it
	// carries another providerID); empty otherwise.
	Conflict string
}

// NodeFor finds m's Node: by providerID first, then by name, accepting a Node found by name only
// if it has no providerID or the machine's.
func NodeFor(ctx context.Context, r client.Reader, m *infrav1.Machine) (NodeMatch, error) {
	id := m.ProviderIDOrDefault()
	list := &corev1.NodeList{}
	if err := r.List(ctx, list, client.MatchingFields{index.NodeProviderID: id}); err != nil {
		return NodeMatch{}, fmt.Errorf("looking up Nodes by providerID %q: %w", id, err)
	}
	if len(list.Items) > 0 {
		return NodeMatch{Node: &list.Items[0]}, nil
	}
	node := &corev1.Node{}
	err := r.Get(ctx, client.ObjectKey{Name: m.KubernetesNodeNameOrDefault()}, node)
	switch {
	case apierrors.IsNotFound(err):
		return NodeMatch{}, nil
	case err != nil:
		return NodeMatch{}, fmt.Errorf("reading Node %s: %w", m.KubernetesNodeNameOrDefault(), err)
	}
	if node.Spec.ProviderID != "" && node.Spec.ProviderID != id {
		return NodeMatch{Conflict: fmt.Sprintf("Node %s registered with providerID %q, not %q", node.Name, node.Spec.ProviderID, id)}, nil
	}
	return NodeMatch{Node: node}, nil
}

// ForNode returns the machines a Node stands for, sorted by namespace/name: by providerID when the
// Node has one, else by the name its kubelet registered. A Node that carries a providerID is never
// matched by name, because then it is some other machine. This is the one matcher: the Node
// controller and cluster-autoscaler's calls both use it. More than one result is a configuration
// conflict the caller reports. opts are added to the List (e.g. client.UnsafeDisableDeepCopy for a
// read-only hot path).
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
	slices.SortFunc(list.Items, func(a, b infrav1.Machine) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return list.Items, nil
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
