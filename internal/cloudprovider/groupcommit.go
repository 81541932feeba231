package cloudprovider

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// Group commit of a group's ledger writes.
//
// Every write decision on a group is recorded by one optimistic write of the Group's ledger, and
// those writes are totally ordered by their resourceVersion precondition. Made one per call, the
// calls on one group wait for each other a whole API round trip each (a second one in the same
// replica would only conflict), so with C concurrent callers a call waits for the C−1 before it.
// Instead, the first call on an idle group waits a moment (Options.BatchWindow) for calls that
// come with it, the calls that arrive while a ledger write of their group is in flight wait for
// it to end, and each such set is decided together, in arrival order, and recorded by one ledger
// write; the decisions of a set share one scan of the members (view.go); each call then applies its own machine changes concurrently with the others (and with
// the next batch's ledger write: later decisions see unapplied changes in the ledger, exactly as
// another replica's decisions do).
//
// Each call stays all-or-nothing and its answer exact: the calls of a batch are decided one after
// another on the same view, each on the group as the ones before it left it (their changes are
// pending in the ledger, their holds kept), so a later call sees an earlier call's grants exactly
// as it would had that call's write come first. A call that is refused adds nothing to the ledger
// and leaves the view as it found it; the others are still recorded. The write carries the base's
// resourceVersion: if it succeeds, every decision of the batch, refusals included, was made on the
// current ledger. A conflict (another replica, the group controller, a human) decides the whole
// batch again on a fresh read; any other failure of the write fails every call of the batch, none
// of which is then recorded or applied. A batch in which every call is refused writes nothing
// (as a refused call always did), and its refusals are confirmed on a fresh read of the Group
// when they were made on a copy that might be stale.
//
// Durability is argued as for a single call (transact.go): no machine of a batch is written
// before the batch's ledger write has succeeded, so every machine write is covered by an
// operation in the ledger, with its own call's id and deadline; a replica that dies after the
// write leaves operations that the next decision on the group rolls forward once their deadlines
// pass, exactly as it would one call's. A call answers OK only after its own machine writes (and
// the ones it relies on) have landed and are in this replica's cache. Overdue operations of dead
// replicas are adopted once per batch and rolled forward by the batch's first granted call.
//
// Within a replica this takes the place of a per-group lock: one batch per group is decided and
// written at a time, so the replica's own calls never conflict with each other; correctness
// across replicas still comes from the precondition alone.

// groupCommits queues one replica's decisions per group.
type groupCommits struct {
	mu     sync.Mutex
	groups map[types.NamespacedName]*commitQueue
	// hook, when set (by tests only), runs at the start of every attempt of a batch's decision
	// with the number of calls in the batch: tests hold a batch there to line calls up behind it,
	// or write the Group to make the batch's write conflict.
	hook atomic.Pointer[func(calls int)]
}

// commitQueue is one group's: whether a batch is being decided and written, the calls waiting
// for the next batch, and the Group as the last batch wrote it.
type commitQueue struct {
	writing bool
	waiting []*decision
	// last is the Group as this replica's last ledger write returned it: the next batch takes it
	// as its base when the cache has not caught up with it yet, which saves a conflict (the
	// precondition still catches any write made since).
	last *infrav1.Group
}

// decideTogether decides d with the other calls on its group that wait for the same ledger
// write, and returns once d's outcome is known (d.err, or the Group as written). If no batch of
// the group is being written, d leads the next one at once; otherwise it waits, and is either
// answered by the batch that took it or handed the next batch to lead.
func (s *Server) decideTogether(key types.NamespacedName, d *decision) {
	gc := &s.commits
	gc.mu.Lock()
	if gc.groups == nil {
		gc.groups = map[types.NamespacedName]*commitQueue{}
	}
	q := gc.groups[key]
	if q == nil {
		q = &commitQueue{}
		gc.groups[key] = q
	}
	q.waiting = append(q.waiting, d)
	if q.writing {
		gc.mu.Unlock()
		<-d.turn
		if d.batch == nil {
			return // answered by another call's batch
		}
	} else {
		q.writing = true
		gc.mu.Unlock()
		// Calls that come together (cluster-autoscaler deleting several nodes, one call each)
		// arrive a few milliseconds apart: the first waits that long for them, so that they are
		// decided in its batch rather than each waiting for its write and then their own.
		if w := s.opts.BatchWindow; w > 0 {
			t := time.NewTimer(w)
			select {
			case <-t.C:
			case <-d.ctx.Done():
				t.Stop()
			}
		}
		gc.mu.Lock()
		d.batch, q.waiting = q.waiting, nil
		gc.mu.Unlock()
	}

	written := s.writeBatchOrFail(key, q, d.batch)

	gc.mu.Lock()
	q.last = written
	var next *decision
	if len(q.waiting) > 0 {
		next = q.waiting[0]
		next.batch, q.waiting = q.waiting, nil
	} else {
		// Nothing waits: forget the group (every call of the batch returns only once the cache
		// has its Group at the written version, so the next call's cached copy is as good).
		delete(gc.groups, key)
	}
	gc.mu.Unlock()
	if next != nil {
		close(next.turn)
	}
	for _, o := range d.batch {
		if o != d {
			close(o.turn)
		}
	}
}

// writeBatchOrFail is writeBatch, with a panic (a decision's bug) failing every call of the
// batch instead of leaving the calls waiting behind it stuck: the calls are answered and the
// group's next batch is handed on as usual. Nothing is applied (machines are written only after
// writeBatch returns).
func (s *Server) writeBatchOrFail(key types.NamespacedName, q *commitQueue, calls []*decision) (written *infrav1.Group) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("internal error deciding a write on node group %s: %v", GroupID(key.Namespace, key.Name), r)
			s.opts.Logger.Error(err, "deciding a batch of write calls panicked", "stack", string(debug.Stack()))
			for _, d := range calls {
				d.err, d.group = err, nil
			}
			written = nil
		}
	}()
	return s.writeBatch(key, q, calls)
}

// writeBatch decides the calls of a batch and records them in one ledger write, setting every
// call's outcome. It returns the Group as written, or nil when nothing was written.
func (s *Server) writeBatch(key types.NamespacedName, q *commitQueue, calls []*decision) *infrav1.Group {
	// A call whose deadline passed while it waited is not decided: it could not be applied.
	live := calls[:0:0]
	for _, d := range calls {
		if err := d.ctx.Err(); err != nil {
			d.err = fmt.Errorf("node group %s: waiting to decide: %w", GroupID(key.Namespace, key.Name), err)
			continue
		}
		live = append(live, d)
	}
	if len(live) == 0 {
		return nil
	}
	b := &batch{s: s, calls: live}
	ctx, cancel := b.context()
	defer cancel()
	b.ctx = ctx

	// The cached Group saves a read, and so does the one the last batch wrote when the cache is
	// still behind it; the precondition catches a stale one, and the batch is then decided again on
	// a fresh read.
	g := &infrav1.Group{}
	cached := s.opts.Reader.Get(ctx, key, g) == nil
	s.commits.mu.Lock()
	if q.last != nil && (!cached || newer(q.last.ResourceVersion, g.ResourceVersion)) {
		g, cached = q.last.DeepCopy(), true
	}
	s.commits.mu.Unlock()
	if !cached {
		g = &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	}
	// The ledger is in the Group's status, which the group controller writes too: a decision of
	// nothing on a copy that may be stale is confirmed on a fresh read before it counts.
	write := func(g *infrav1.Group) (optimistic.Result, error) {
		return optimistic.UpdateStatus(ctx, s.opts.Writer, g, b.mutate,
			optimistic.Operation("cloudprovider-"+b.operation()), optimistic.ConfirmUnchanged())
	}
	res, err := write(g)
	var refusal *rpcError
	if cached && errors.As(err, &refusal) {
		// A refusal of the whole batch (the Group being deleted) is final only on the current
		// Group: decide once more on a fresh read.
		g = &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		res, err = write(g)
	}
	s.opts.Metrics.LedgerBatch.Observe(float64(len(live)))
	if apierrors.IsNotFound(err) {
		err = errorf(codes.NotFound, "node group %s: no such Group", GroupID(key.Namespace, key.Name))
	}
	if err != nil {
		// Nothing of the batch is recorded: every call fails with the write's error.
		s.opts.Metrics.LedgerWrites.WithLabelValues(ledgerFailed).Inc()
		for _, d := range live {
			d.err = err
		}
		return nil
	}
	if res.Skipped {
		s.opts.Metrics.LedgerWrites.WithLabelValues(ledgerUnchanged).Inc()
	} else {
		s.opts.Metrics.LedgerWrites.WithLabelValues(ledgerWritten).Inc()
	}
	for _, d := range live {
		if d.refused != nil {
			d.err = d.refused
			continue
		}
		d.group, d.skipped = g, res.Skipped
	}
	if res.Skipped {
		return nil
	}
	return g.DeepCopy()
}

// Outcomes of a batch's ledger write, for LedgerWrites.
const (
	ledgerWritten   = "written"
	ledgerUnchanged = "unchanged"
	ledgerFailed    = "failed"
)

// batch is the calls decided together in one ledger write.
type batch struct {
	s     *Server
	ctx   context.Context
	calls []*decision
}

// context bounds the batch's ledger write by the earliest deadline among its calls, so that
// every call's decision is recorded (or fails) within that call's own deadline.
func (b *batch) context() (context.Context, context.CancelFunc) {
	var deadline time.Time
	for _, d := range b.calls {
		if dl, ok := d.ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
			deadline = dl
		}
	}
	base := context.WithoutCancel(b.calls[0].ctx)
	if deadline.IsZero() {
		return context.WithCancel(base)
	}
	return context.WithDeadline(base, deadline)
}

// operation names the write in the optimistic writer's metrics and errors: the method of its
// calls, or "batch" when they differ.
func (b *batch) operation() string {
	m := b.calls[0].method
	for _, d := range b.calls[1:] {
		if d.method != m {
			return "batch"
		}
	}
	return m
}

// mutate is the batch's ledger write's mutate function; it runs once per attempt, on a fresher
// Group each time, and decides every call anew. An error returned here (the Group being deleted,
// the cache not catching up in time) fails the whole batch; a call's own refusal is kept in the
// call and only leaves it out of the ledger. When every call is refused, the Group is left
// unchanged, so the optimistic writer writes nothing (confirming the verdict on a fresh read when
// its copy may be stale).
func (b *batch) mutate(g *infrav1.Group) error {
	for _, d := range b.calls {
		d.reset()
	}
	if h := b.s.commits.hook.Load(); h != nil {
		(*h)(len(b.calls))
	}
	if !g.DeletionTimestamp.IsZero() {
		return errorf(codes.FailedPrecondition, "node group %s is being deleted", GroupID(g.Namespace, g.Name))
	}
	s := b.s
	l := readLedger(g)
	if err := s.visible.wait(b.ctx, kindMachines, g.Namespace, l.VisibleAt); err != nil {
		return err
	}
	now := s.opts.Now()
	pruning := newView(g, s.fleet, now)
	// Overdue operations are adopted until the latest deadline of the batch's calls: one of them
	// rolls them forward after the write.
	adoptUntil := int64(0)
	for _, d := range b.calls {
		adoptUntil = max(adoptUntil, d.deadline)
	}
	overdue := l.prune(pruning.cached, now, adoptUntil)
	l.prunePowerOffs(pruning.observed)

	var first *decision
	sc := &scan{calls: len(b.calls)}
	for _, d := range b.calls {
		v := newView(g, s.fleet, now)
		v.scan = sc
		// Each call decides on its own copy of the holds (a decision may edit them in place),
		// kept only if the call is not refused.
		v.holds = slices.Clone(l.Holds)
		v.pending = l.pending()
		mine, err := d.decide(d.ctx, v)
		d.relied, d.shaped = v.relied, v.shaped
		if err != nil {
			d.refused = err
			d.relied, d.shaped = nil, nil
			continue
		}
		d.mine = mine
		if first == nil {
			first = d
		}
		if len(mine) > 0 {
			l.Ops = append(l.Ops, ledgerOp{ID: d.id, Method: d.method, Deadline: d.deadline, Changes: mine})
			l.recordPowerOffs(mine)
		}
		// A hold ends with its machine's power-off, whoever decided it (cluster-autoscaler's
		// DeleteNodes included).
		v.pending = l.pending()
		l.Holds = v.holds[:0:0]
		for _, h := range v.holds {
			if m := v.member(h.Name); m != nil && v.desiredOn(m) {
				l.Holds = append(l.Holds, h)
			}
		}
	}
	if first == nil {
		// Every call was refused: nothing is recorded, not even the pruning (a refused call
		// never wrote), and nobody adopts the overdue operations.
		return nil
	}
	first.overdue = overdue
	writeLedger(g, l)
	return nil
}
