package group

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// scheduleStatus is status.schedule for the limits taken at now: nil for a group without
// schedule windows.
func scheduleStatus(g *infrav1.Group, l machines.Limits, now time.Time) *infrav1.ScheduleStatus {
	if len(g.Spec.Schedules) == 0 {
		return nil
	}
	st := &infrav1.ScheduleStatus{
		Active:    l.Schedule.Open,
		MinSize:   l.Min,
		MaxSize:   l.Max,
		LimitedBy: l.Explain(g, now),
		Invalid:   strings.Join(l.Schedule.Invalid, "; "),
	}
	if !l.Schedule.Next.IsZero() {
		t := metav1.NewTime(l.Schedule.Next.Truncate(time.Second))
		st.NextChange, st.NextWindow = &t, l.Schedule.NextWindow
	}
	return st
}

func activeWindows(g *infrav1.Group) []string {
	if g.Status.Schedule == nil {
		return nil
	}
	return g.Status.Schedule.Active
}

// windowEvents records an Event for each window that opened or closed since the status written
// before: only the replica whose write changed the status gets here with a difference.
func (r *Reconciler) windowEvents(g *infrav1.Group, before []string) {
	after := activeWindows(g)
	observeWindows(g, after)
	if r.Recorder == nil {
		return
	}
	limits := "no schedule limits"
	if st := g.Status.Schedule; st != nil {
		limits = fmt.Sprintf("effective min %d, max %d", st.MinSize, st.MaxSize)
	}
	// One Event per direction: Events of one object, reason and action that follow each other
	// are folded into a series that keeps only the first note, so two windows opening at once
	// must share a note to both be seen.
	if opened := missingFrom(after, before); len(opened) > 0 {
		r.Recorder.Eventf(g, nil, corev1.EventTypeNormal, "WindowOpened", "Schedule", "%s opened: %s", windowList(opened), limits)
	}
	if closed := missingFrom(before, after); len(closed) > 0 {
		r.Recorder.Eventf(g, nil, corev1.EventTypeNormal, "WindowClosed", "Schedule", "%s closed: %s", windowList(closed), limits)
	}
}

// missingFrom lists the names of a that b does not hold.
func missingFrom(a, b []string) []string {
	var out []string
	for _, w := range a {
		if !slices.Contains(b, w) {
			out = append(out, w)
		}
	}
	return out
}

// windowList names windows for an Event: window "a", or windows "a", "b".
func windowList(ws []string) string {
	quoted := make([]string, len(ws))
	for i, w := range ws {
		quoted[i] = strconv.Quote(w)
	}
	if len(ws) == 1 {
		return "window " + quoted[0]
	}
	return "windows " + strings.Join(quoted, ", ")
}

// schedule has the ledger make the group's schedule hold, records what it did, and returns how
// soon something falls due (0 when nothing does).
func (r *Reconciler) schedule(ctx context.Context, g *infrav1.Group, now time.Time) (time.Duration, error) {
	held := g.Status.ScaleLedger != nil && len(g.Status.ScaleLedger.Holds) > 0
	if r.APIReader == nil || (len(g.Spec.Schedules) == 0 && g.Spec.Maintenance == nil && !held) {
		return 0, nil
	}
	out, err := r.Ledger.Schedule(ctx, client.ObjectKeyFromObject(g), r.busy)
	if err != nil {
		return 0, err
	}
	for _, a := range out.Actions {
		log.FromContext(ctx).Info("schedule decision", "machine", a.Machine, "action", a.Kind, "why", a.Message)
		countAction(g, a.Kind)
		if r.Recorder != nil {
			// The machine is the related object: it keeps the Events of several machines handled
			// in one decision apart (those of one regarding object, reason and action would be
			// folded into one series otherwise).
			m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: g.Namespace, Name: a.Machine}}
			r.Recorder.Eventf(g, m, a.EventType(), a.Kind, "Schedule", "%s: %s", a.Machine, a.Message)
		}
	}
	if out.Unmet != "" {
		log.FromContext(ctx).Info("schedule floor unmet", "why", out.Unmet)
		if r.Recorder != nil {
			r.Recorder.Eventf(g, nil, corev1.EventTypeWarning, "FloorUnmet", "Schedule", "%s", out.Unmet)
		}
	}
	if out.Next.IsZero() {
		return 0, nil
	}
	return max(out.Next.Sub(now), 0) + time.Second, nil
}

// busy reports whether a member runs work cluster-autoscaler placed (a pod a drain would evict).
func (r *Reconciler) busy(ctx context.Context, m *infrav1.Machine) (bool, error) {
	node := m.Status.KubernetesNode
	if node == "" {
		return false, nil
	}
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.MatchingFields{"spec.nodeName": node}); err != nil {
		return false, fmt.Errorf("listing pods on %s: %w", node, err)
	}
	for i := range pods.Items {
		if machines.IsWorkload(&pods.Items[i]) {
			return true, nil
		}
	}
	return false, nil
}

// testClock reports whether a clock other than the real one times the controller.
func (r *Reconciler) testClock() bool {
	if r.Clock == nil {
		return false
	}
	_, real := r.Clock.(clock.RealClock)
	return !real
}

// controllerOptions times the controller's requeues by r.Clock when a test drives one; the real
// clock keeps controller-runtime's default queue.
func (r *Reconciler) controllerOptions() controller.Options {
	if !r.testClock() {
		return controller.Options{}
	}
	c := r.Clock
	return controller.Options{
		NewQueue: func(name string, rl workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
			return workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[reconcile.Request]{Name: name, Clock: c})
		},
	}
}
