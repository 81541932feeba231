// Package corenode keeps the Node side of each machine in order: the machine's providerID written
// onto a Node that registered without one, and the group and machine labels. Which Node stands for
// which machine is decided by internal/machines; a Node it refuses (a control-plane Node, one that
// does not opt in to the machine's namespace, one two machines claim) is never written to.
package corenode

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// Reconciler labels Nodes with their machine's group and name, and writes the machine's
// providerID onto a Node that registered without one. It never overwrites a different
// providerID, and never touches a Node the machine's lookup refuses (the machine's reconciler
// reports both). The namespace label is the Node's own opt-in and is only ever read.
type Reconciler struct {
	Client client.Client
	Writer *optimistic.Writer
}

// The permissions this needs are kubebuilder markers in internal/rbac.

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	core := &corev1.Node{}
	if err := r.Client.Get(ctx, req.NamespacedName, core); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	claims, err := machines.Claimants(ctx, r.Client, core)
	if err != nil || len(claims) != 1 {
		// Not ours, or claimed twice (which the machines' own status reports).
		return ctrl.Result{}, err
	}
	m := &claims[0]
	if !needsSync(core, m) {
		return ctrl.Result{}, nil
	}
	// The machine's own view decides, so that a Node is only ever written for the machine whose
	// lifecycle will act on it (not, say, one of two Nodes that carry its providerID).
	match, err := machines.NodeFor(ctx, r.Client, m)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("looking up the Node of Machine %s/%s: %w", m.Namespace, m.Name, err)
	}
	if match.Node == nil || match.Node.UID != core.UID {
		return ctrl.Result{}, nil
	}
	id := m.ProviderIDOrDefault()
	_, err = optimistic.Update(ctx, r.Writer, core, func(c *corev1.Node) error {
		// Judged again on the copy being written: a Node that lost its opt-in or got another
		// providerID since is left as it is.
		if reason, _ := machines.NodeRefusal(c, m.Namespace); reason != "" || (c.Spec.ProviderID != "" && c.Spec.ProviderID != id) {
			return nil
		}
		if c.Spec.ProviderID == "" {
			c.Spec.ProviderID = id
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels[infrav1.LabelGroup] = m.Spec.Group
		c.Labels[infrav1.LabelMachine] = m.Name
		return nil
	}, optimistic.Operation("sync-node"))
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("syncing Node %s with machine %s/%s: %w", core.Name, m.Namespace, m.Name, err)
	}
	return ctrl.Result{}, nil
}

func needsSync(core *corev1.Node, m *infrav1.Machine) bool {
	return core.Spec.ProviderID == "" ||
		core.Labels[infrav1.LabelGroup] != m.Spec.Group ||
		core.Labels[infrav1.LabelMachine] != m.Name
}

// SetupWithManager registers the reconciler. Nodes are watched for registration and for
// changes of providerID or of the labels it writes or reads, not for their frequent heartbeats.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("corenode").
		For(&corev1.Node{}, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
				return machines.AdoptionChanged(o, n) ||
					o.Labels[infrav1.LabelGroup] != n.Labels[infrav1.LabelGroup] ||
					o.Labels[infrav1.LabelMachine] != n.Labels[infrav1.LabelMachine]
			},
			DeleteFunc: func(event.DeleteEvent) bool { return false },
		})).
		// A machine created (or renamed) after its Node registered, or deleted, which may leave
		// a contested Node with one claimant.
		Watches(&infrav1.Machine{}, handler.EnqueueRequestsFromMapFunc(r.nodesOfMachine),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// nodesOfMachine maps a machine to the Nodes it may claim: the one of its node name and those
// that carry its providerID.
func (r *Reconciler) nodesOfMachine(ctx context.Context, o client.Object) []reconcile.Request {
	m := o.(*infrav1.Machine)
	out := []reconcile.Request{{NamespacedName: client.ObjectKey{Name: m.KubernetesNodeNameOrDefault()}}}
	list := &corev1.NodeList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{index.NodeProviderID: m.ProviderIDOrDefault()}); err != nil {
		log.FromContext(ctx).Error(err, "looking up the Nodes that carry a machine's providerID", "machine", m.Namespace+"/"+m.Name)
		return out
	}
	for i := range list.Items {
		if name := list.Items[i].Name; name != m.KubernetesNodeNameOrDefault() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: name}})
		}
	}
	return out
}
