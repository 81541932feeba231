// Package machine is the power lifecycle of one Machine: a small state machine over
// status.progress (Off → StartingUp → Ready → ShuttingDown → Off, plus Failed), driven by
// spec.online.
//
// One decision function (next) reads the status and picks one transition; the step loop runs it
// and, when it asks, decides again from the status it wrote. Transitions never call each other,
// so every path through a reconcile is a sequence of single decisions on recorded state, and
// the loop bounds how many one reconcile may take.
//
// Every transition is a status write through the optimistic-concurrency package, and every
// timeout and retry is computed from timestamps in status.operation, so the reconciler keeps no
// memory of its own: a manager that restarts at any instant resumes where the last one stopped.
// An attempt is recorded before its driver is called, so no attempt is ever issued twice; an
// attempt whose command was lost is caught by its timeout and retried as the next attempt.
// Waiting is a watch (Jobs, Nodes) or a requeue at the next deadline, never a sleep.
package machine

import (
	"context"
	"errors"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/index"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/pacing"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// Reconciler drives machines to their desired power state.
type Reconciler struct {
	// Client reads from the manager's cache and performs the few writes that are not
	// read-modify-write (eviction, Job and Node deletion).
	Client client.Client
	// APIReader reads what the cache does not hold: the pods of a node being drained (the
	// manager keeps no cluster-wide Pod informer).
	APIReader client.Reader
	// Writer performs every read-modify-write.
	Writer *optimistic.Writer
	// Drivers power the machines.
	Drivers power.Registry
	// Secrets reads driver credentials at call time.
	Secrets power.SecretReader
	// ConfigMaps reads CA bundles kept in ConfigMaps at call time.
	ConfigMaps power.ConfigMapReader
	// Recorder emits Events on Machines.
	Recorder events.EventRecorder
	// RetryBase and RetryCap bound the wait between failed attempts (doubling from base).
	RetryBase, RetryCap time.Duration
	// ConfirmInterval is how often a power-off is re-checked through a status driver or the core
	// Node, and how often a blocked drain is retried.
	ConfirmInterval time.Duration
	// MaxConcurrentReconciles is how many machines are reconciled at once (never one machine
	// twice): a slow BMC call holds up only its own machine.
	MaxConcurrentReconciles int
	// RecheckInterval is how soon an unsettled machine (a running one whose Node is not Ready, one
	// whose observed power state contradicts its status) is observed again at first; the wait
	// grows with the state's age up to the Group's observe interval.
	RecheckInterval time.Duration
	// Rotation swaps and adopts machines through their group's scale ledger (substitution on a
	// boot timeout, adoption of an outside power-on); nil disables both.
	Rotation Rotation
	// Pacer spaces power-ons out across the manager; nil paces nothing.
	Pacer *pacing.Pacer
	// Now returns the current time; tests may replace it.
	Now func() time.Time

	seedOnce sync.Once
}

// Defaults for the zero fields of a Reconciler.
const (
	DefaultRetryBase       = 10 * time.Second
	DefaultRetryCap        = 5 * time.Minute
	DefaultConfirmInterval = 5 * time.Second
	DefaultRecheckInterval = 15 * time.Second
	// DefaultConcurrency is how many machines are reconciled at once. A worker spends most of a
	// power-on waiting on the apiserver and the BMC, so workers are cheap; with 10, a scale-up
	// of 100 machines queued for more than a second before the last command went out, and ten
	// hung BMCs would stall every other machine.
	DefaultConcurrency = 32
)

// The permissions this needs are kubebuilder markers in internal/rbac.

// staleRequeue is how soon a reconcile that lost a race looks again.
const staleRequeue = 100 * time.Millisecond

// errStale means the object changed under a decision; the reconcile starts over from a fresh view.
var errStale = errors.New("machine changed while deciding; reconciling again")

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	n := &infrav1.Machine{}
	if err := r.Client.Get(ctx, req.NamespacedName, n); err != nil {
		if apierrors.IsNotFound(err) {
			forgetWatts(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !n.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	s, err := r.newScope(ctx, n)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.seedOnce.Do(func() { r.seedPacer(ctx) })
	res, err := r.step(ctx, s)
	if err == nil {
		if d := r.requeueForObservation(s); d > 0 && (res.RequeueAfter == 0 || d < res.RequeueAfter) {
			res.RequeueAfter = d
		}
	}
	r.Pacer.Track(req.NamespacedName, bootingUntil(s.node, bootTimeout(s)))
	exportWatts(s.node)
	// After the step, so that a Job left behind by the operation just replaced goes at once.
	if cerr := r.cleanupJobs(ctx, s.node); cerr != nil && err == nil {
		err = cerr
	}
	if errors.Is(err, errStale) {
		// The watch event of the newer version is on its way; this is a backstop.
		return ctrl.Result{RequeueAfter: staleRequeue}, nil
	}
	if optimistic.IsExhausted(err) {
		log.FromContext(ctx).Info("status write kept conflicting; retrying", "error", err.Error())
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return res, err
}

// bootingUntil is when a machine's boot stops counting for the pacer: its attempt's boot
// deadline while a power-on attempt is in flight, else zero.
func bootingUntil(m *infrav1.Machine, timeout time.Duration) time.Time {
	op := m.Status.Operation
	if m.Status.Progress != infrav1.ProgressStartingUp || op == nil || op.Action != infrav1.PowerActionOn ||
		op.AttemptStartedAt == nil || op.RetryAt != nil {
		return time.Time{}
	}
	return op.AttemptStartedAt.Add(timeout)
}

// seedPacer counts the machines already booting when the manager starts (a restart in the
// middle of a site's power-ons), before the first power-on is admitted. A machine's own boot
// timeout stands in for its Group's until it is reconciled.
func (r *Reconciler) seedPacer(ctx context.Context) {
	if r.Pacer == nil {
		return
	}
	list := &infrav1.MachineList{}
	if err := r.Client.List(ctx, list); err != nil {
		log.FromContext(ctx).Error(err, "listing the machines already booting; pacing counts them as they are reconciled")
		return
	}
	for i := range list.Items {
		m := &list.Items[i]
		timeout := infrav1.DefaultBootTimeout
		if m.Spec.BootTimeout != nil {
			timeout = m.Spec.BootTimeout.Duration
		}
		if until := bootingUntil(m, timeout); !until.IsZero() {
			r.Pacer.Track(client.ObjectKeyFromObject(m), until)
		}
	}
}

// scope is what one reconcile knows about a machine.
type scope struct {
	node *infrav1.Machine
	// eff is node with its Group's machineDefaults and the built-in defaults applied: what the
	// drivers, timeouts and attempts are taken from. Only its spec differs from node's.
	eff   *infrav1.Machine
	group *infrav1.Group // nil when the Group does not exist
	core  machines.NodeMatch
	now   time.Time
	// repair is the Group's repair policy with defaults.
	repair machines.Repair
	// hasStatusDriver is whether a driver can read the machine's power state.
	hasStatusDriver bool
	// obs is the power state read in this reconcile, if any.
	obs *observation
}

func (r *Reconciler) newScope(ctx context.Context, n *infrav1.Machine) (*scope, error) {
	s := &scope{node: n, now: r.now()}
	g := &infrav1.Group{}
	switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: n.Namespace, Name: n.Spec.Group}, g); {
	case err == nil:
		s.group = g
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	s.eff = machines.Effective(n, s.group)
	s.repair = machines.RepairOf(s.group)
	_, s.hasStatusDriver = power.SlotFor(s.eff, power.ActionStatus)
	m, err := machines.NodeFor(ctx, r.Client, n)
	if err != nil {
		return nil, err
	}
	s.core = m
	return s, nil
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler with its watches: the machines themselves (spec and
// annotation changes only, so its own status writes do not trigger it), their power Jobs, the
// Nodes (registration, readiness, cordon and removal, not heartbeats) and their Groups.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.RetryBase == 0 {
		r.RetryBase = DefaultRetryBase
	}
	if r.RetryCap == 0 {
		r.RetryCap = DefaultRetryCap
	}
	if r.ConfirmInterval == 0 {
		r.ConfirmInterval = DefaultConfirmInterval
	}
	if r.RecheckInterval == 0 {
		r.RecheckInterval = DefaultRecheckInterval
	}
	if r.MaxConcurrentReconciles == 0 {
		r.MaxConcurrentReconciles = DefaultConcurrency
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("machine").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		For(&infrav1.Machine{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&batchv1.Job{}).
		// A request to a homelab-agent (internal/relay): its agent's answer finishes the command.
		Owns(&infrav1.AgentRequest{}).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.machinesForCoreNode),
			builder.WithPredicates(coreNodeChanged())).
		Watches(&infrav1.Group{}, handler.EnqueueRequestsFromMapFunc(r.membersOfGroup),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

func (r *Reconciler) machinesForCoreNode(ctx context.Context, o client.Object) []reconcile.Request {
	node := o.(*corev1.Node)
	claims, err := machines.ForNode(ctx, r.Client, node.Spec.ProviderID, node.Name)
	if err != nil {
		log.FromContext(ctx).Error(err, "mapping a Node to machines", "node", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(claims))
	for _, m := range claims {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&m)})
	}
	return out
}

func (r *Reconciler) membersOfGroup(ctx context.Context, o client.Object) []reconcile.Request {
	list := &infrav1.MachineList{}
	if err := r.Client.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index.MachineGroup: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the members of a group", "group", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// coreNodeChanged passes Node events that matter to a machine's lifecycle.
func coreNodeChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
			return machines.IsNodeReady(o) != machines.IsNodeReady(n) ||
				machines.AdoptionChanged(o, n) ||
				o.Spec.ProviderID != n.Spec.ProviderID ||
				o.Spec.Unschedulable != n.Spec.Unschedulable
		},
	}
}

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
