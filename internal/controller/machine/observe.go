package machine

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// observation is one reading of a machine's power state, made in this reconcile.
type observation struct {
	state  infrav1.PowerState
	source infrav1.PowerStateSource
	// err is the status driver's error when the state was inferred from the Node after a failed
	// read.
	err error
	// watts is the power draw the status driver measured in the same visit, if it measures one.
	watts *float64
}

// observeJitter is the largest random part of a settled machine's observation interval, as a
// fraction of it: the reads of machines that settled together spread out over a fifth of the
// interval instead of reaching their BMCs in the same second forever after.
const observeJitter = 0.2

// unsettled reports whether what the machine's status says and what its Node shows disagree in a
// way that an observation settles: a running machine whose Node is not Ready, or one last seen
// off; a machine that is off while its Node is Ready.
func unsettled(s *scope) bool {
	st := &s.node.Status
	ready := machines.IsNodeReady(s.core.Node)
	switch st.Progress {
	case infrav1.ProgressReady:
		return !ready || st.PowerState != infrav1.PoweredOn
	case infrav1.ProgressOff:
		return ready
	}
	return false
}

// settled reports whether the machine is in a state its periodic observation watches.
func settled(p infrav1.Progress) bool {
	return p == infrav1.ProgressReady || p == infrav1.ProgressOff || p == infrav1.ProgressFailed
}

// observeDue reports whether this reconcile reads the machine's power state: once per
// reconcile, when the machine is unsettled (the requeue cadence of recheckAfter bounds how
// often) or when its settled interval has passed since the recorded observation.
func (r *Reconciler) observeDue(s *scope) bool {
	if s.obs != nil || !settled(s.node.Status.Progress) {
		return false
	}
	if unsettled(s) {
		return true
	}
	if !s.hasStatusDriver {
		// The Node's readiness is read from the cache: nothing to poll, its watch brings changes.
		return s.node.Status.PowerStateObservedAt == nil
	}
	return !s.now.Before(r.nextObservation(s))
}

// nextObservation is when a settled machine's power state is read next: its interval after the
// recorded observation, plus a jitter derived from the machine and that observation (the same
// on every reconcile and every replica, so it never moves the schedule by itself).
func (r *Reconciler) nextObservation(s *scope) time.Time {
	st := &s.node.Status
	if st.PowerStateObservedAt == nil {
		return s.now
	}
	last := st.PowerStateObservedAt.Time
	h := fnv.New32a()
	_, _ = h.Write([]byte(string(s.node.UID) + "/" + strconv.FormatInt(last.Unix(), 10)))
	frac := float64(h.Sum32()%1000) / 1000 * observeJitter
	interval := s.repair.ObserveInterval
	return last.Add(interval + time.Duration(frac*float64(interval)))
}

// recheckAfter is how soon an unsettled machine is read again: often at first, then less and
// less often the longer the state lasts (a quarter of its age, between the recheck interval and
// the observation interval), so that a Node that hangs for days, or a BMC that keeps
// contradicting a Ready Node, costs little.
func (r *Reconciler) recheckAfter(s *scope) time.Duration {
	since := s.now
	if t := s.node.Status.NodeNotReadySince; t != nil {
		since = t.Time
	}
	d := s.now.Sub(since) / 4
	return min(max(d, r.RecheckInterval), s.repair.ObserveInterval)
}

// requeueForObservation is when the reconcile must run again for the machine's observation,
// or 0 when no observation is scheduled (transitions look after themselves).
func (r *Reconciler) requeueForObservation(s *scope) time.Duration {
	st := &s.node.Status
	switch {
	case s.group == nil || !settled(st.Progress):
		return 0
	case unsettled(s):
		return r.recheckAfter(s)
	case !s.hasStatusDriver:
		return 0
	}
	return max(r.nextObservation(s).Sub(s.now), time.Second)
}

// observe reads the machine's power state and records it when it changed, when the source
// changed, or when the recorded observation is older than the observation interval (so that
// powerStateObservedAt is never older than that while the state holds). Then the next
// transition is decided on what was read.
func (r *Reconciler) observe(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	o := r.read(ctx, s)
	s.obs = &o
	countObservation(o)
	st := &s.node.Status
	fresh := st.PowerStateObservedAt != nil && s.now.Sub(st.PowerStateObservedAt.Time) < s.repair.ObserveInterval
	if st.PowerState == o.state && st.PowerStateSource == o.source && fresh {
		return ctrl.Result{}, true, nil
	}
	if o.err != nil && st.PowerStateSource == infrav1.PowerStateFromDriver {
		// Said once per change of source, not on every failed read.
		r.eventf(s.node, corev1.EventTypeWarning, "StatusReadFailed", "PowerStatus",
			"reading the power state failed (%s): %v; inferring it from the Node", power.ClassOf(o.err), o.err)
	}
	err := r.write(ctx, s, func(st *infrav1.MachineStatus) { recordObservation(st, o, s.now) })
	return ctrl.Result{}, err == nil, err
}

// recordObservation writes o into a status.
func recordObservation(st *infrav1.MachineStatus, o observation, now time.Time) {
	t := metav1.NewTime(now)
	st.PowerState, st.PowerStateSource, st.PowerStateObservedAt = o.state, o.source, &t
}

// read observes the machine's power state: through its status driver when it has one, else (or
// when the read fails) from its Node: a Ready Node means the machine runs; no Node, or one that
// is not Ready, means off for a machine that is off and unknown for one that should run.
func (r *Reconciler) read(ctx context.Context, s *scope) observation {
	rd, err := r.readStatus(ctx, s)
	if err == nil {
		return observation{state: rd.State, source: infrav1.PowerStateFromDriver, watts: rd.Watts}
	}
	o := observation{source: infrav1.PowerStateFromNode}
	if !errors.Is(err, errNoStatusDriver) {
		o.err = err
	}
	switch {
	case machines.IsNodeReady(s.core.Node):
		o.state = infrav1.PoweredOn
	case s.node.Status.Progress == infrav1.ProgressOff && s.core.Node == nil:
		o.state = infrav1.PoweredOff
	default:
		o.state = infrav1.PowerUnknown
	}
	return o
}

// observedOff reports whether the machine's status driver said off, in this reconcile or after
// its Node stopped being Ready.
func observedOff(s *scope) bool {
	if s.obs != nil {
		return s.obs.source == infrav1.PowerStateFromDriver && s.obs.state == infrav1.PoweredOff
	}
	st := &s.node.Status
	return st.PowerStateSource == infrav1.PowerStateFromDriver && st.PowerState == infrav1.PoweredOff &&
		st.NodeNotReadySince != nil && st.PowerStateObservedAt != nil && !st.PowerStateObservedAt.Before(st.NodeNotReadySince)
}

// observedOn reports whether the machine was seen running although its status says otherwise:
// its status driver says on, or its Node is Ready.
func observedOn(s *scope) bool {
	if machines.IsNodeReady(s.core.Node) {
		return true
	}
	if s.obs != nil {
		return s.obs.source == infrav1.PowerStateFromDriver && s.obs.state == infrav1.PoweredOn
	}
	return false
}
