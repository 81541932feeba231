package cloudprovider

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// view is a group as a write decision sees it: the Group at the ledger's version, its members
// from a fleet that has caught up with the ledger, and the changes still in flight. Members are
// read from the fleet only as far as a decision needs them.
type view struct {
	group *infrav1.Group
	key   types.NamespacedName
	// now is the instant the decision is made at: schedule windows and powerCycling are read at it.
	now time.Time
	// holds are the ledger's holds; a decision may change them (the schedule's decisions do).
	holds []infrav1.Hold
	// shaped says how powerCycling shaped the decision, for its log line and Event.
	shaped  []string
	fleet   *fleet
	pending map[string]ledgerChange
	// relied lists the pending changes of other decisions that this decision counts as its own
	// effect (a repeated deletion); transact makes sure they are applied and visible before
	// the call returns.
	relied []ledgerChange
	// scan, when set, is shared by the decisions of one attempt of a batch.
	scan *scan
}

// scan is what the decisions of one attempt of a batch (groupcommit.go) share: the group's
// members, read from the fleet once, and what the decisions derive from the members alone, each
// derived at most once. The changes in flight grow from one decision to the next, so nothing
// derived here may depend on them; a decision applies them to what it gets. The decisions of a
// batch of sixteen calls then walk five thousand members a few times instead of sixteen, while
// the calls wait for the batch (the cost was most of a batch's decision time).
type scan struct {
	// calls is the number of decisions that share it.
	calls   int
	members []*infrav1.Machine
	derived map[string]any
}

func newView(g *infrav1.Group, f *fleet, now time.Time) *view {
	return &view{group: g, key: keyOf(g), fleet: f, now: now}
}

// members are the group's machines (shared with the cache: read only).
func (v *view) members() []*infrav1.Machine {
	if v.scan == nil {
		return v.fleet.members(v.key)
	}
	if v.scan.members == nil {
		v.scan.members = v.fleet.members(v.key)
	}
	return v.scan.members
}

// shared says whether derivations are worth keeping: other decisions share this view's scan.
func (v *view) shared() bool { return v.scan != nil && v.scan.calls > 1 }

// derive returns what build derives from the members alone (never from the changes in flight),
// built once per scan; without a scan, every time.
func (v *view) derive(name string, build func() (any, error)) (any, error) {
	if v.scan == nil {
		return build()
	}
	if d, ok := v.scan.derived[name]; ok {
		return d, nil
	}
	value, err := build()
	if err != nil {
		// One decision's failure (its own context ending, say) is not the others'.
		return nil, err
	}
	if v.scan.derived == nil {
		v.scan.derived = map[string]any{}
	}
	v.scan.derived[name] = value
	return value, nil
}

// member returns the named machine if it is a member of the group, else nil.
func (v *view) member(name string) *infrav1.Machine {
	m := v.fleet.machine(types.NamespacedName{Namespace: v.key.Namespace, Name: name})
	if m == nil || m.Spec.Group != v.key.Name {
		return nil
	}
	return m
}

// cached is the state of a member in the cache, for the ledger's pruning.
func (v *view) cached(name string) (machineState, bool) {
	m := v.member(name)
	if m == nil {
		return machineState{}, false
	}
	return machineState{generation: m.Generation, resourceVersion: m.ResourceVersion, on: m.Spec.Online}, true
}

// observed is the machine's generation and its status.observedGeneration in the cache, for the
// ledger's pruning of recorded power-offs.
func (v *view) observed(name string) (generation, observedGeneration int64, ok bool) {
	m := v.member(name)
	if m == nil {
		return 0, 0, false
	}
	return m.Generation, m.Status.ObservedGeneration, true
}

// inFlight reports whether an earlier decision's change to the machine may not be applied yet:
// no decision touches such a machine, so two decisions never race on one machine.
func (v *view) inFlight(name string) bool {
	_, ok := v.pending[name]
	return ok
}

// desiredOn is the machine's desired power state once every decided change is applied.
func (v *view) desiredOn(m *infrav1.Machine) bool {
	if c, ok := v.pending[m.Name]; ok {
		return c.On
	}
	return m.Spec.Online
}

// rely records that the call's outcome rests on an earlier decision's pending change.
func (v *view) rely(c ledgerChange) { v.relied = append(v.relied, c) }

// size is the group's target once every decided change is applied, and its limits.
func (v *view) size() (int64, machines.Limits) {
	members, target := v.fleet.targetWith(v.key, v.pending)
	return target, machines.LimitsOf(v.group, members, v.now)
}

// setBy explains, for a refusal, what set the limits when a schedule window did ("" otherwise).
func (v *view) setBy(l machines.Limits) string {
	if e := l.Explain(v.group, v.now); e != "" {
		return ": " + e
	}
	return ""
}
