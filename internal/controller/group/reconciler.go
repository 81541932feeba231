// Package group aggregates a Group's members into its status: counts by progress, the target
// (members desired on: what cluster-autoscaler sees as the target size), and the Ready,
// Reconciling and Stalled conditions, including min/max that the members cannot satisfy, reported
// rather than silently clamped.
package group

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/schedule"
)

// Reconciler keeps Group status in step with the group's members.
type Reconciler struct {
	Client client.Client
	// APIReader lists the pods on a member before the manager powers off one it powered on by
	// itself (there is no pod cache); nil skips schedules.
	APIReader client.Reader
	// Recorder emits the Events of window edges and of the schedule's decisions; may be nil.
	Recorder events.EventRecorder
	Writer   *optimistic.Writer
	// Ledger rolls forward decisions of the groups' scale ledgers left half done; nil leaves them
	// to the next write on the group.
	Ledger Ledger
	// Now returns the current time; tests may replace it. Clock, when set, replaces it and also
	// times the controller's requeues, so a test that drives it sees windows open and close.
	Now   func() time.Time
	Clock clock.WithTicker
}

// The permissions this needs are kubebuilder markers in internal/rbac.

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &infrav1.Group{}
	if err := r.Client.Get(ctx, req.NamespacedName, g); err != nil {
		if apierrors.IsNotFound(err) {
			forget(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The members are only read (counted and their energy accounts added up), so they are the
	// cache's own objects rather than deep copies: a large group's reconcile, which each member
	// change brings, would otherwise copy every member's status, history and energy days.
	members := &infrav1.MachineList{}
	if err := r.Client.List(ctx, members, client.InNamespace(g.Namespace), client.MatchingFields{index.MachineGroup: g.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	want := Summarize(g, members.Items)
	now := r.now()
	limits := machines.LimitsOf(g, want.Members, now)
	want.Schedule = scheduleStatus(g, limits, now)
	observe(g, want, limits)
	prevActive := activeWindows(g)
	refresh := machines.RepairOf(g).ObserveInterval
	var energyDue time.Duration
	_, err := optimistic.UpdateStatus(ctx, r.Writer, g, func(fresh *infrav1.Group) error {
		prev, prevConditions := fresh.Status, slices.Clone(fresh.Status.Conditions)
		fresh.Status = want
		// The ledger is the cloud provider's part of the status; the energy sums are decided below.
		fresh.Status.Conditions, fresh.Status.ScaleLedger, fresh.Status.Energy = prevConditions, prev.ScaleLedger, prev.Energy
		fresh.Status.ObservedGeneration = fresh.Generation
		setConditions(fresh, limits)
		energyDue = 0
		if e := prev.Energy; e != nil && now.Sub(e.UpdatedAt.Time) < refresh && sameCounts(prev, fresh.Status) {
			// Members' accounts move at every observation; their sums are written with the next
			// change the group's status has anyway, or once per observation interval. They are
			// only added up then: a large group's member writes each bring a reconcile.
			energyDue = e.UpdatedAt.Add(refresh).Sub(now)
			return nil
		}
		if sums := energy.Sum(members.Items, now, g.Spec.Energy); !sameTotals(prev.Energy, sums) {
			fresh.Status.Energy = sums
		}
		return nil
	}, optimistic.Operation("group-status"))
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	observeEnergy(g, g.Status.Energy)
	r.windowEvents(g, prevActive)
	if energyDue > 0 {
		energyDue += time.Second
	}
	next := energyDue
	if st := g.Status.Schedule; st != nil && st.NextChange != nil {
		next = sooner(next, st.NextChange.Sub(now)+time.Second)
	}
	if r.Ledger == nil {
		return ctrl.Result{RequeueAfter: next}, nil
	}
	if due, err := r.schedule(ctx, g, now); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	} else if due > 0 {
		next = sooner(next, due)
	}
	if g.Status.ScaleLedger == nil || len(g.Status.ScaleLedger.Ops) == 0 {
		return ctrl.Result{RequeueAfter: next}, nil
	}
	// Decisions in the ledger: roll forward those whose replica gave up, and look again when the
	// others' deadlines pass.
	settle, err := r.Ledger.Settle(ctx, req.NamespacedName)
	if settle > 0 {
		next = sooner(next, settle)
	}
	return ctrl.Result{RequeueAfter: next}, client.IgnoreNotFound(err)
}

// sooner is the sooner of two requeue delays, 0 meaning none.
func sooner(a, b time.Duration) time.Duration {
	if b <= 0 {
		return a
	}
	if a <= 0 || b < a {
		return b
	}
	return a
}

// sameCounts reports whether two statuses say the same but for their scale ledger and energy
// sums: the part of the status this reconciler decides, conditions included.
func sameCounts(a, b infrav1.GroupStatus) bool {
	a.ScaleLedger, a.Energy, b.ScaleLedger, b.Energy = nil, nil, nil, nil
	return equality.Semantic.DeepEqual(a, b)
}

// sameTotals reports whether two sums say the same, whenever they were taken: a group whose
// members' accounts stood still is not rewritten for a new updatedAt.
func sameTotals(a, b *infrav1.GroupEnergy) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := a.DeepCopy(), b.DeepCopy()
	x.UpdatedAt, y.UpdatedAt = metav1.Time{}, metav1.Time{}
	return equality.Semantic.DeepEqual(x, y)
}

func (r *Reconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock.Now()
	}
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Ledger carries out the decisions a group's scale ledger holds that nobody is applying
// (internal/cloudprovider).
type Ledger interface {
	// Settle rolls forward the group's overdue decisions and returns how soon to call it again
	// while decisions remain, or 0.
	Settle(ctx context.Context, key client.ObjectKey) (time.Duration, error)
	// Schedule makes the group's schedule windows, maintenance wakes and holds hold now, in one
	// ledger decision; busy tells whether a member runs work cluster-autoscaler placed.
	Schedule(ctx context.Context, key client.ObjectKey, busy schedule.Busy) (schedule.Outcome, error)
}

// Summarize counts a group's members by progress and desired state. It only reads members,
// which may be shared with the cache.
func Summarize(g *infrav1.Group, members []infrav1.Machine) infrav1.GroupStatus {
	st := infrav1.GroupStatus{Members: int32(len(members))} //nolint:gosec // a group never has 2^31 members
	for i := range members {
		m := &members[i]
		if m.Spec.Online {
			st.Target++
		}
		switch m.Status.Progress {
		case infrav1.ProgressReady:
			st.Ready++
		case infrav1.ProgressStartingUp:
			st.StartingUp++
		case infrav1.ProgressShuttingDown:
			st.ShuttingDown++
		case infrav1.ProgressFailed:
			st.Failed++
		default:
			st.PoweredOff++
		}
	}
	return st
}

// setConditions sets Ready, Reconciling and Stalled with the meanings kstatus gives them: Stalled
// while a human must act (a failed member, a minSize the members cannot reach), Reconciling while
// members are on their way to where their specs ask, Ready when every member is there.
func setConditions(g *infrav1.Group, limits machines.Limits) {
	st := &g.Status
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: g.Generation,
		})
	}
	var problems []string
	reason := "AsExpected"
	if st.Failed > 0 {
		problems = append(problems, fmt.Sprintf("%d members failed", st.Failed))
		reason = "MembersFailed"
	}
	if g.Spec.MinSize > st.Members {
		problems = append(problems, fmt.Sprintf("minSize %d exceeds the %d members", g.Spec.MinSize, st.Members))
		reason = "MinSizeExceedsMembers"
	}
	if limits.Schedule.Floor > st.Members {
		problems = append(problems, fmt.Sprintf("window %s's minOnline %d exceeds the %d members", limits.Schedule.FloorWindow, limits.Schedule.Floor, st.Members))
		reason = "MinOnlineExceedsMembers"
	}
	if s := st.Schedule; s != nil && s.Invalid != "" {
		problems = append(problems, "schedule windows ignored: "+s.Invalid)
		reason = "InvalidSchedule"
	}
	if len(problems) > 0 {
		set(infrav1.ConditionStalled, metav1.ConditionTrue, reason, join(problems))
	} else {
		set(infrav1.ConditionStalled, metav1.ConditionFalse, reason, "no member needs a human")
	}
	capped := ""
	if g.Spec.MaxSize != nil && *g.Spec.MaxSize > st.Members {
		capped = fmt.Sprintf("; maxSize %d exceeds the %d members, so the effective maximum is %d", *g.Spec.MaxSize, st.Members, limits.Max)
	}
	settled := st.StartingUp == 0 && st.ShuttingDown == 0 && st.Ready == st.Target
	// A failed member explains the gap to the target by itself (Stalled says so): the group is
	// reconciling only while a member is on its way on or off, or a gap remains that no failure
	// explains. Reconciling and Stalled both true would leave kstatus's verdict to their order.
	inFlight := st.StartingUp > 0 || st.ShuttingDown > 0 || (st.Ready != st.Target && st.Failed == 0)
	if !inFlight {
		set(infrav1.ConditionReconciling, metav1.ConditionFalse, "Settled", "no member is powering on or off")
	} else {
		set(infrav1.ConditionReconciling, metav1.ConditionTrue, "Scaling",
			fmt.Sprintf("target %d: %d ready, %d starting, %d shutting down", st.Target, st.Ready, st.StartingUp, st.ShuttingDown))
	}
	switch {
	case st.Failed > 0:
		set(infrav1.ConditionReady, metav1.ConditionFalse, "MembersFailed", join(problems))
	case settled:
		set(infrav1.ConditionReady, metav1.ConditionTrue, "Settled", fmt.Sprintf("%d of %d members on, as desired%s", st.Ready, st.Members, capped))
	default:
		set(infrav1.ConditionReady, metav1.ConditionFalse, "Scaling",
			fmt.Sprintf("target %d: %d ready, %d starting, %d shutting down%s", st.Target, st.Ready, st.StartingUp, st.ShuttingDown, capped))
	}
}

func join(parts []string) string { return strings.Join(parts, "; ") }

// SetupWithManager registers the reconciler; any change of a member, status included, updates
// its group, as do the group's own spec and scale ledger changes.
//
// Every event enqueues the group after coalesceDelay rather than at once: a member's power
// transition is a burst of changes (its spec, the ledger decision behind it, the progress that
// follows within milliseconds), and the queue keeps one entry per group, so the whole burst is one
// reconcile and at most one status write instead of one per change. Nothing reads the group's
// counts to act on them (the cloud provider decides from the ledger and the members themselves),
// so the delay costs only how soon status shows a change; the reconcile's own requeues (window
// edges, energy sums, ledger deadlines) are not delayed.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	delay := coalesceDelay
	if r.testClock() {
		// The queue's delays wait for a clock the test drives: a member change would wait for
		// time the test does not advance.
		delay = 0
	}
	toGroup := func(_ context.Context, o client.Object) client.ObjectKey {
		if m, ok := o.(*infrav1.Machine); ok {
			return client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.Group}
		}
		return client.ObjectKeyFromObject(o)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("group").
		WithOptions(r.controllerOptions()).
		Watches(&infrav1.Group{}, coalesced(delay, toGroup),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, ledgerChanged()))).
		Watches(&infrav1.Machine{}, coalesced(delay, toGroup)).
		Complete(r)
}

// coalesceDelay is how long a group's reconcile waits after the first change of a burst; a
// single machine's scale sends its burst within milliseconds, and the next progress (Ready, Off)
// comes seconds later, so it is one write per step rather than one per change.
const coalesceDelay = time.Second

// coalesced enqueues the group key(o) names, delay after the event; an entry already waiting is
// not moved later, so a burst is reconciled delay after its first change.
func coalesced(delay time.Duration, key func(context.Context, client.Object) client.ObjectKey) handler.EventHandler {
	add := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		req := reconcile.Request{NamespacedName: key(ctx, o)}
		if delay <= 0 {
			q.Add(req)
			return
		}
		q.AddAfter(req, delay)
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectOld, q)
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}

// ledgerChanged passes Group updates whose scale ledger gained or lost decisions, so that a
// decision nobody applies is noticed even in a group where nothing else changes.
func ledgerChanged() predicate.Predicate {
	ops := func(g *infrav1.Group) int {
		if g.Status.ScaleLedger == nil {
			return 0
		}
		return len(g.Status.ScaleLedger.Ops)
	}
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return ops(e.ObjectOld.(*infrav1.Group)) != ops(e.ObjectNew.(*infrav1.Group))
		},
	}
}
