package faults

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Decision is one change of a machine's desired power state that a write on the group's scale
// ledger decided: cluster-autoscaler's IncreaseSize and DeleteNodes, and the manager's own
// Substitute and Adopt.
type Decision struct {
	// Op is the ledger operation's id, Method the call that decided it.
	Op, Method string
	// Generation is the machine's generation the decision saw; the write it leads to creates a
	// later one.
	Generation int64
	On         bool
	// Seen is when the watch first delivered it.
	Seen time.Time
}

// Recorder watches the machines and the Group of one namespace and keeps what the invariants
// need: every power-on and power-off attempt the manager recorded (by its start time), every
// desired power state (spec.online) by generation, every decision of the group's scale ledger,
// the repairs recorded, and the transitions that finished an operation. A watch delivers every
// write, so an attempt recorded and replaced a moment later is still seen; a broken watch (an
// apiserver restart) resumes from the last resourceVersion.
type Recorder struct {
	c  client.WithWatch
	ns string

	mu      sync.Mutex
	latest  map[string]*infrav1.Machine
	changed chan struct{}
	// onAttempts and offAttempts: machine -> attempt start -> attempt number.
	onAttempts, offAttempts map[string]map[time.Time]int32
	// specs: machine -> generation -> desired action (spec.online).
	specs map[string]map[int64]infrav1.PowerAction
	// decisions: machine -> ledger operation id -> the decision about it.
	decisions map[string]map[string]Decision
	// finished counts finished operations: StartingUp to Ready, ShuttingDown to Off, and any
	// change into Failed.
	finished map[infrav1.Progress]int
	// repairs counts the repairs recorded in status.lastRepair, by kind.
	repairs map[infrav1.RepairKind]int
	// specSeen: machine -> generation -> when the watch first delivered it.
	specSeen map[string]map[int64]time.Time
	// trails: machine -> the changes of its progress and operation, in the watch's order.
	trails map[string][]Step
	// gaps are the times in which a watch may have missed writes.
	gaps []Gap
	// rewatches counts how often a watch had to be started again.
	rewatches int
	// energyBack lists every energy account the watch saw go back: a total that shrank, or an
	// account that ended earlier than the one before it.
	energyBack []string
}

// Step is one change of a machine's progress or operation, as the watch delivered it.
type Step struct {
	// Seen is when the watch delivered it.
	Seen     time.Time
	Progress infrav1.Progress
	// Operation is status.operation then (nil when none).
	Operation *infrav1.PowerOperation
}

// String says what the step recorded, for violations.
func (s Step) String() string {
	return fmt.Sprintf("%s %s, operation %s", s.Seen.UTC().Format("15:04:05.000"), s.Progress, describeOperation(s.Operation))
}

// Gap is a time in which a watch may have missed writes: it had to list again (the
// resourceVersion it would have resumed from was too old, as after a kube-apiserver restart), so
// the writes after the last event it delivered and before the new list are not known one by one.
type Gap struct {
	Kind     string
	From, To time.Time
}

// NewRecorder starts watching namespace ns until ctx ends. It returns once the first lists are
// in.
func NewRecorder(ctx context.Context, c client.WithWatch, ns string) (*Recorder, error) {
	r := &Recorder{
		c: c, ns: ns,
		latest: map[string]*infrav1.Machine{}, changed: make(chan struct{}),
		onAttempts: map[string]map[time.Time]int32{}, offAttempts: map[string]map[time.Time]int32{},
		specs: map[string]map[int64]infrav1.PowerAction{}, decisions: map[string]map[string]Decision{},
		finished: map[infrav1.Progress]int{}, repairs: map[infrav1.RepairKind]int{},
		specSeen: map[string]map[int64]time.Time{}, trails: map[string][]Step{},
	}
	machines := watched{
		kind: kindMachines,
		list: func() client.ObjectList { return &infrav1.MachineList{} },
		observe: func(o client.Object) {
			if m, ok := o.(*infrav1.Machine); ok {
				r.observe(m)
			}
		},
	}
	groups := watched{
		kind: kindGroups,
		list: func() client.ObjectList { return &infrav1.GroupList{} },
		observe: func(o client.Object) {
			if g, ok := o.(*infrav1.Group); ok {
				r.observeGroup(g)
			}
		},
	}
	for _, w := range []watched{machines, groups} {
		rv, err := r.list(ctx, w)
		if err != nil {
			return nil, err
		}
		go r.run(ctx, w, rv)
	}
	return r, nil
}

// The kinds the recorder watches, as Gap.Kind names them.
const (
	kindMachines = "machines"
	kindGroups   = "groups"
)

// watched is one kind the recorder follows.
type watched struct {
	kind    string
	list    func() client.ObjectList
	observe func(client.Object)
}

func (r *Recorder) list(ctx context.Context, w watched) (string, error) {
	list := w.list()
	if err := r.c.List(ctx, list, client.InNamespace(r.ns)); err != nil {
		return "", err
	}
	if err := meta.EachListItem(list, func(o runtime.Object) error {
		if co, ok := o.(client.Object); ok {
			w.observe(co)
		}
		return nil
	}); err != nil {
		return "", err
	}
	return list.GetResourceVersion(), nil
}

// run keeps a watch open from rv, starting it again whenever it ends. When it has to list again,
// the time since the last event it delivered is recorded as a gap.
func (r *Recorder) run(ctx context.Context, w watched, rv string) {
	last := time.Now()
	for ctx.Err() == nil {
		wi, err := r.c.Watch(ctx, w.list(), client.InNamespace(r.ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				rv = r.relist(ctx, w, last)
				last = time.Now()
			}
			r.pause(ctx)
			continue
		}
		for ev := range wi.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				if o, ok := ev.Object.(client.Object); ok {
					w.observe(o)
					rv = o.GetResourceVersion()
					last = time.Now()
				}
			case watch.Bookmark:
				if o, ok := ev.Object.(client.Object); ok {
					rv = o.GetResourceVersion()
					last = time.Now()
				}
			case watch.Error:
				if status, ok := ev.Object.(*metav1.Status); ok {
					if err := apierrors.FromObject(status); apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
						rv = "" // too old to resume: list again
					}
				}
			}
		}
		wi.Stop()
		r.mu.Lock()
		r.rewatches++
		r.mu.Unlock()
		if rv == "" {
			rv = r.relist(ctx, w, last)
			last = time.Now()
		}
		r.pause(ctx)
	}
}

// relist lists w again until it succeeds or ctx ends, records the gap since last, and returns
// the list's resourceVersion.
func (r *Recorder) relist(ctx context.Context, w watched, last time.Time) string {
	for ctx.Err() == nil {
		rv, err := r.list(ctx, w)
		if err == nil {
			r.mu.Lock()
			r.gaps = append(r.gaps, Gap{Kind: w.kind, From: last, To: time.Now()})
			r.mu.Unlock()
			return rv
		}
		r.pause(ctx)
	}
	return ""
}

func (r *Recorder) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(200 * time.Millisecond):
	}
}

func (r *Recorder) observe(n *infrav1.Machine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.latest[n.Name]
	r.latest[n.Name] = n.DeepCopy()
	if op := n.Status.Operation; op != nil && op.AttemptStartedAt != nil {
		attempts := r.onAttempts
		if op.Action == infrav1.PowerActionOff {
			attempts = r.offAttempts
		}
		if attempts[n.Name] == nil {
			attempts[n.Name] = map[time.Time]int32{}
		}
		attempts[n.Name][op.AttemptStartedAt.UTC()] = op.Attempt
	}
	if r.specs[n.Name] == nil {
		r.specs[n.Name] = map[int64]infrav1.PowerAction{}
		r.specSeen[n.Name] = map[int64]time.Time{}
	}
	r.specs[n.Name][n.Generation] = n.DesiredAction()
	if _, ok := r.specSeen[n.Name][n.Generation]; !ok {
		r.specSeen[n.Name][n.Generation] = time.Now()
	}
	if prev == nil || prev.Status.Progress != n.Status.Progress || !equality.Semantic.DeepEqual(prev.Status.Operation, n.Status.Operation) {
		r.trails[n.Name] = append(r.trails[n.Name], Step{Seen: time.Now(), Progress: n.Status.Progress, Operation: n.Status.Operation.DeepCopy()})
	}
	if prev != nil {
		if back := energyWentBack(prev.Status.Energy, n.Status.Energy); back != "" {
			r.energyBack = append(r.energyBack, fmt.Sprintf("%s: %s (resourceVersion %s)", n.Name, back, n.ResourceVersion))
		}
	}
	if lr := n.Status.LastRepair; lr != nil && (prev == nil || prev.Status.LastRepair == nil ||
		prev.Status.LastRepair.Kind != lr.Kind || !prev.Status.LastRepair.At.Equal(&lr.At)) {
		r.repairs[lr.Kind]++
	}
	if prev != nil {
		from, to := prev.Status.Progress, n.Status.Progress
		switch {
		case from == infrav1.ProgressStartingUp && to == infrav1.ProgressReady,
			from == infrav1.ProgressShuttingDown && to == infrav1.ProgressOff,
			from != "" && from != to && to == infrav1.ProgressFailed:
			r.finished[to]++
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// observeGroup records the decisions in the Group's scale ledger (status.scaleLedger). Every
// decision is appended in a write of its own and pruned in a later one, so the watch sees each
// at least once.
func (r *Recorder) observeGroup(g *infrav1.Group) {
	if g.Status.ScaleLedger == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, op := range g.Status.ScaleLedger.Ops {
		for _, c := range op.Changes {
			if r.decisions[c.Name] == nil {
				r.decisions[c.Name] = map[string]Decision{}
			}
			if _, ok := r.decisions[c.Name][op.ID]; !ok {
				r.decisions[c.Name][op.ID] = Decision{Op: op.ID, Method: op.Method, Generation: c.Generation, On: c.On, Seen: time.Now()}
			}
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// WaitForDecision waits until the watch has delivered a ledger decision that cond accepts, or
// ctx ends.
func (r *Recorder) WaitForDecision(ctx context.Context, cond func(machine string, d Decision) bool) error {
	for {
		r.mu.Lock()
		ok := false
		for name, ds := range r.decisions {
			for _, d := range ds {
				ok = ok || cond(name, d)
			}
		}
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Latest returns the last seen state of every machine.
func (r *Recorder) Latest() map[string]*infrav1.Machine {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*infrav1.Machine, len(r.latest))
	for k, v := range r.latest {
		out[k] = v.DeepCopy()
	}
	return out
}

// WaitFor waits until cond holds for the machines as last seen, or ctx ends.
func (r *Recorder) WaitFor(ctx context.Context, cond func(map[string]*infrav1.Machine) bool) error {
	for {
		r.mu.Lock()
		ok := cond(r.latest)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// OnAttempts returns machine's recorded power-on attempts: start time -> attempt number.
func (r *Recorder) OnAttempts(machine string) map[time.Time]int32 {
	return r.attempts(r.onAttempts, machine)
}

// OffAttempts returns machine's recorded power-off attempts (those that reached their
// command): start time -> attempt number.
func (r *Recorder) OffAttempts(machine string) map[time.Time]int32 {
	return r.attempts(r.offAttempts, machine)
}

func (r *Recorder) attempts(all map[string]map[time.Time]int32, machine string) map[time.Time]int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[time.Time]int32{}
	for k, v := range all[machine] {
		out[k] = v
	}
	return out
}

// SpecAt returns the desired action (spec.online) seen at generation gen of machine, if seen.
func (r *Recorder) SpecAt(machine string, gen int64) (infrav1.PowerAction, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.specs[machine][gen]
	return v, ok
}

// Specs returns every desired action seen of machine, by generation.
func (r *Recorder) Specs(machine string) map[int64]infrav1.PowerAction {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int64]infrav1.PowerAction{}
	for k, v := range r.specs[machine] {
		out[k] = v
	}
	return out
}

// SpecSeen returns when the watch first delivered each generation of machine.
func (r *Recorder) SpecSeen(machine string) map[int64]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.specSeen[machine])
}

// Trail returns the changes of machine's progress and operation delivered between from and to.
func (r *Recorder) Trail(machine string, from, to time.Time) []Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Step
	for _, s := range r.trails[machine] {
		if !s.Seen.Before(from) && !s.Seen.After(to) {
			out = append(out, s)
		}
	}
	return out
}

// Gaps returns the times in which a watch of kind may have missed writes.
func (r *Recorder) Gaps(kind string) []Gap {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Gap
	for _, g := range r.gaps {
		if g.Kind == kind {
			out = append(out, g)
		}
	}
	return out
}

// Decisions returns the ledger decisions seen about machine.
func (r *Recorder) Decisions(machine string) []Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Decision, 0, len(r.decisions[machine]))
	for _, d := range r.decisions[machine] {
		out = append(out, d)
	}
	return out
}

// DecisionCounts returns how many machine changes the group's ledger decided, by method.
func (r *Recorder) DecisionCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, ds := range r.decisions {
		for _, d := range ds {
			out[d.Method]++
		}
	}
	return out
}

// Finished returns how many power-ons ended Ready, power-offs ended Off, and operations Failed.
func (r *Recorder) Finished() map[infrav1.Progress]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[infrav1.Progress]int{}
	for k, v := range r.finished {
		out[k] = v
	}
	return out
}

// Repairs returns how many repairs the machines recorded (status.lastRepair), by kind.
func (r *Recorder) Repairs() map[infrav1.RepairKind]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[infrav1.RepairKind]int{}
	for k, v := range r.repairs {
		out[k] = v
	}
	return out
}

// energyWentBack says how an energy account went back from a to b, or "" when it did not: an
// account once opened stays, and its end and totals only grow.
func energyWentBack(a, b *infrav1.MachineEnergy) string {
	switch {
	case a == nil:
		return ""
	case b == nil:
		return "the energy account disappeared"
	case !b.Since.Equal(&a.Since):
		return fmt.Sprintf("the account was opened again (since %s, was %s)", b.Since.UTC(), a.Since.UTC())
	case b.AccountedUntil.Before(&a.AccountedUntil):
		return fmt.Sprintf("accountedUntil went back from %s to %s", a.AccountedUntil.UTC(), b.AccountedUntil.UTC())
	case b.UsedJoules < a.UsedJoules || b.SavedJoules < a.SavedJoules || b.OnSeconds < a.OnSeconds || b.OffSeconds < a.OffSeconds:
		return fmt.Sprintf("totals went back from %+v to %+v", a.EnergyTotals, b.EnergyTotals)
	}
	return ""
}

// EnergyWentBack returns what energyWentBack found in the watched writes.
func (r *Recorder) EnergyWentBack() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.energyBack)
}
