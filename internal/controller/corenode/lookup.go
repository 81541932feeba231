// Package corenode maps core Kubernetes Nodes to machines (our Nodes) and keeps the core Node
// side in order: the machine's providerID written onto a core Node that registered without one,
// and the group labels.
package corenode

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
)

// Match is the core Node found for a machine.
type Match struct {
	// Node is the machine's core Node, nil when none registered.
	Node *corev1.Node
	// Conflict explains why a core Node with the machine's name is not taken as the machine's
	// (it carries another providerID); empty otherwise.
	Conflict string
}

// ForMachine finds n's core Node: by providerID first, then by name, accepting a core Node found
// by name only if it has no providerID or the machine's.
func ForMachine(ctx context.Context, r client.Reader, n *infrav1.Node) (Match, error) {
	id := n.ProviderIDOrDefault()
	list := &corev1.NodeList{}
	if err := r.List(ctx, list, client.MatchingFields{index.CoreNodeProviderID: id}); err != nil {
		return Match{}, err
	}
	if len(list.Items) > 0 {
		return Match{Node: &list.Items[0]}, nil
	}
	core := &corev1.Node{}
	err := r.Get(ctx, client.ObjectKey{Name: n.KubernetesNodeNameOrDefault()}, core)
	switch {
	case apierrors.IsNotFound(err):
		return Match{}, nil
	case err != nil:
		return Match{}, err
	}
	if core.Spec.ProviderID != "" && core.Spec.ProviderID != id {
		return Match{Conflict: fmt.Sprintf("core Node %s registered with providerID %q, not %q", core.Name, core.Spec.ProviderID, id)}, nil
	}
	return Match{Node: core}, nil
}

// MachinesFor returns the machines a core Node belongs to: by its providerID, else by its name.
// More than one means a configuration conflict the caller reports.
func MachinesFor(ctx context.Context, r client.Reader, core *corev1.Node) ([]infrav1.Node, error) {
	list := &infrav1.NodeList{}
	if core.Spec.ProviderID != "" {
		if err := r.List(ctx, list, client.MatchingFields{index.NodeProviderID: core.Spec.ProviderID}); err != nil {
			return nil, err
		}
		if len(list.Items) > 0 {
			return list.Items, nil
		}
	}
	if err := r.List(ctx, list, client.MatchingFields{index.NodeKubernetesName: core.Name}); err != nil {
		return nil, err
	}
	out := list.Items[:0]
	for _, m := range list.Items {
		if core.Spec.ProviderID == "" || core.Spec.ProviderID == m.ProviderIDOrDefault() {
			out = append(out, m)
		}
	}
	return out, nil
}

// IsReady reports whether a core Node's Ready condition is True.
func IsReady(core *corev1.Node) bool {
	if core == nil {
		return false
	}
	for _, c := range core.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
