package machine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// annotationCordoned marks a Node the controller cordoned, so that it lifts only its own
// cordon and never a human's.
const annotationCordoned = "homelab-autoscaler.dev/cordoned"

// taintToBeDeleted is the taint cluster-autoscaler puts on a Node before it drains it for a
// scale-down, and keeps there through the DeleteNodes call that follows.
const taintToBeDeleted = "ToBeDeletedByClusterAutoscaler"

// cordon keeps new pods off a Node about to lose its power. A Node that cluster-autoscaler tainted
// for deletion is left as it is: its NoSchedule taint keeps new pods off already (even DaemonSet
// pods, which tolerate a cordon), so a cordon would be a Node write that protects nothing more.
func (r *Reconciler) cordon(ctx context.Context, core *corev1.Node) error {
	if core == nil || core.Spec.Unschedulable || markedForDeletion(core) {
		return nil
	}
	_, err := optimistic.Update(ctx, r.Writer, core, func(c *corev1.Node) error {
		if c.Spec.Unschedulable {
			return nil
		}
		c.Spec.Unschedulable = true
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[annotationCordoned] = "true"
		return nil
	}, optimistic.Operation("cordon"))
	return client.IgnoreNotFound(err)
}

// markedForDeletion reports whether cluster-autoscaler tainted the Node to keep pods off it.
func markedForDeletion(core *corev1.Node) bool {
	for _, t := range core.Spec.Taints {
		if t.Key == taintToBeDeleted && (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) {
			return true
		}
	}
	return false
}

func (r *Reconciler) uncordon(ctx context.Context, core *corev1.Node) error {
	if core == nil || core.Annotations[annotationCordoned] == "" {
		return nil
	}
	_, err := optimistic.Update(ctx, r.Writer, core, func(c *corev1.Node) error {
		if c.Annotations[annotationCordoned] == "" {
			return nil
		}
		c.Spec.Unschedulable = false
		delete(c.Annotations, annotationCordoned)
		return nil
	}, optimistic.Operation("uncordon"))
	return client.IgnoreNotFound(err)
}

// drain evicts the pods of a Node through the Eviction API, which honours
// PodDisruptionBudgets. It returns how many pods remain and, when evictions were refused, why.
func (r *Reconciler) drain(ctx context.Context, core *corev1.Node) (int, string, error) {
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.MatchingFields{"spec.nodeName": core.Name}); err != nil {
		return 0, "", fmt.Errorf("listing pods on %s: %w", core.Name, err)
	}
	remaining := 0
	var blocked []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if !machines.IsWorkload(p) {
			continue
		}
		remaining++
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		err := r.Client.SubResource("eviction").Create(ctx, p, ev)
		switch {
		case err == nil, apierrors.IsNotFound(err):
		case apierrors.IsTooManyRequests(err):
			blocked = append(blocked, fmt.Sprintf("pod %s/%s: %s", p.Namespace, p.Name, evictionRefusal(err)))
		default:
			return remaining, "", fmt.Errorf("evicting pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	sort.Strings(blocked)
	return remaining, strings.Join(blocked, "; "), nil
}

func evictionRefusal(err error) string {
	var se apierrors.APIStatus
	if ok := asAPIStatus(err, &se); ok {
		if d := se.Status().Details; d != nil {
			for _, c := range d.Causes {
				if c.Message != "" {
					return c.Message
				}
			}
		}
		return se.Status().Message
	}
	return err.Error()
}

func asAPIStatus(err error, out *apierrors.APIStatus) bool {
	s, ok := err.(apierrors.APIStatus) //nolint:errorlint // the client returns *StatusError unwrapped
	if ok {
		*out = s
	}
	return ok
}

func (r *Reconciler) deleteCoreNode(ctx context.Context, core *corev1.Node) error {
	uid := core.UID
	err := r.Client.Delete(ctx, core, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting Node %s: %w", core.Name, err)
	}
	return nil
}

// cleanupJobs deletes the machine's power Jobs except the current attempt's, with background
// propagation so their pods go too.
func (r *Reconciler) cleanupJobs(ctx context.Context, n *infrav1.Machine) error {
	jobs := &batchv1.JobList{}
	if err := r.Client.List(ctx, jobs, client.InNamespace(n.Namespace), client.MatchingLabels{infrav1.LabelMachine: n.Name}); err != nil {
		return err
	}
	keep := ""
	if op := n.Status.Operation; op != nil {
		keep = power.JobName(n.Name, op.Action, op.Attempt)
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.Name == keep || !j.DeletionTimestamp.IsZero() || !metav1.IsControlledBy(j, n) {
			continue
		}
		err := r.Client.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting old power job %s: %w", j.Name, err)
		}
	}
	return r.cleanupAgentRequests(ctx, n)
}

// cleanupAgentRequests deletes the machine's requests to homelab-agents except the current
// attempt's (internal/relay): one is made per attempt, and a finished or abandoned one says no
// more than the machine's status and Events. An agent still writing one of them finds it gone and
// stops.
func (r *Reconciler) cleanupAgentRequests(ctx context.Context, n *infrav1.Machine) error {
	list := &infrav1.AgentRequestList{}
	if err := r.Client.List(ctx, list, client.InNamespace(n.Namespace), client.MatchingLabels{relay.LabelMachine: n.Name}); err != nil {
		return err
	}
	keep := map[string]bool{}
	if op := n.Status.Operation; op != nil && op.AttemptStartedAt != nil {
		started := op.AttemptStartedAt.Time
		keep[relay.Wake{Namespace: n.Namespace, Machine: n.Name, Attempt: op.Attempt, Started: started}.Name()] = true
		keep[relay.Shutdown{Namespace: n.Namespace, Machine: n.Name, Attempt: op.Attempt, Started: started}.Name()] = true
	}
	for i := range list.Items {
		a := &list.Items[i]
		if keep[a.Name] || !a.DeletionTimestamp.IsZero() || !metav1.IsControlledBy(a, n) {
			continue
		}
		if err := r.Client.Delete(ctx, a); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting old agent request %s: %w", a.Name, err)
		}
	}
	return nil
}
