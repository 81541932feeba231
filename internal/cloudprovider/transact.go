package cloudprovider

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// ledgerGrace is added to the call timeout to make an operation's deadline: past it, the
// deciding replica has surely stopped applying the operation, and another may roll it forward.
// It absorbs clock differences between replicas.
const ledgerGrace = 15 * time.Second

// decideFunc decides a write on a view of the group: the machine changes, or an error (an
// rpcError for a refusal). It may run more than once, each time on a fresher view, and must
// derive everything from the view it is given.
type decideFunc func(ctx context.Context, v *view) ([]ledgerChange, error)

// transact runs one write RPC on a group:
//
//  1. Decide and record: wait until this replica's cache has every machine change the Group's
//     ledger says is visible, prune the operations now visible, decide on the members as the
//     cache shows them plus the changes still in flight, and append the decision to the ledger,
//     written with the Group's resourceVersion as precondition; the calls on the group that
//     arrive while a ledger write of it is in flight are decided in turn and recorded together by
//     the next one (groupcommit.go). A concurrent decision (any replica) makes the write
//     conflict, and the optimistic writer decides again on a fresh read of the newer ledger; so
//     maxSize, minSize and all-or-nothing grants hold however many replicas serve, and no
//     machine is chosen twice. A refusal writes nothing.
//  2. Apply: write each chosen machine's desired power state (and roll forward operations whose
//     replica gave up before applying them). The machines are written only once the ledger
//     holds the decision: a replica that dies in between leaves a recorded operation with a
//     deadline, which the next decision on the group (any replica) rolls forward once the
//     deadline has passed, so no decision is half lost; and a call answers OK only once every
//     machine write of its own decision has landed.
//  3. Wait until this replica's cache has delivered those writes (and the ledger's), so that
//     NodeGroupTargetSize, answered from the cache, shows the change as soon as the call
//     returns, and the next decision here starts from a current Group.
func (s *Server) transact(ctx context.Context, method string, key types.NamespacedName, decide decideFunc) ([]ledgerChange, error) {
	d := &decision{ctx: ctx, method: method, decide: decide, turn: make(chan struct{}),
		id:       s.replica + "-" + strconv.FormatUint(s.seq.Add(1), 10),
		deadline: s.opts.Now().Add(s.opts.CallTimeout + ledgerGrace).UnixMilli()}
	// Step 1, together with the calls on the group that wait for the same ledger write (see
	// groupcommit.go).
	s.decideTogether(key, d)
	if d.err != nil {
		return nil, d.err
	}
	g := d.group
	if d.skipped {
		// The call repeats decisions already made, possibly by another replica still applying
		// them: apply them too (idempotently) so that this replica's answers show them.
		return nil, s.applyAll(ctx, key, d.relied, true)
	}

	// This replica's answers show the decision from the moment its first machine write lands (the
	// target size counts the ledger's unapplied changes): the Group's new version must be in the
	// cache before any machine's is.
	if err := s.visible.wait(ctx, kindGroups, key.Namespace, g.ResourceVersion); err != nil {
		return nil, err
	}
	visible := ""
	for _, c := range d.relied {
		rv, err := s.apply(ctx, key.Namespace, c, true)
		if err != nil {
			return nil, err
		}
		visible = maxVersion(rv, visible)
	}
	for _, op := range d.overdue {
		s.opts.Logger.Info("rolling forward a scale operation its replica did not finish", "group", GroupID(key.Namespace, key.Name),
			"operation", op.ID, "method", op.Method, "machines", changeNames(op.Changes))
		for _, c := range op.Changes {
			rv, err := s.apply(ctx, key.Namespace, c, true)
			if err != nil {
				// It stays in the ledger; the next decision on the group tries again.
				s.opts.Logger.Error(err, "rolling forward", "group", GroupID(key.Namespace, key.Name), "operation", op.ID, "machine", c.Name)
			}
			visible = maxVersion(rv, visible)
		}
	}
	rv, failed, err := s.applyConcurrently(ctx, key.Namespace, d.mine)
	if err != nil {
		return nil, fmt.Errorf("node group %s: the change was decided (operation %s) but applying it to machine %s failed; "+
			"the next write on the group completes it: %w", GroupID(key.Namespace, key.Name), d.id, failed, err)
	}
	visible = maxVersion(rv, visible)
	if err := s.visible.wait(ctx, kindGroups, key.Namespace, g.ResourceVersion); err != nil {
		return nil, err
	}
	if err := s.visible.wait(ctx, kindMachines, key.Namespace, visible); err != nil {
		return nil, err
	}
	if len(d.shaped) > 0 {
		// One Event for the decision: Events of one object, reason and action that follow each
		// other are folded into a series that keeps only the first note.
		note := strings.Join(d.shaped, "; ")
		s.opts.Logger.Info("powerCycling shaped a decision", "group", GroupID(key.Namespace, key.Name), "method", method, "operation", d.id, "note", note)
		s.event(g, corev1.EventTypeNormal, "PowerCycling", method, "%s", note)
	}
	return d.mine, nil
}

// event records an Event on a Group when the server has a recorder.
func (s *Server) event(g *infrav1.Group, kind, reason, action, format string, args ...any) {
	if s.opts.Recorder != nil {
		s.opts.Recorder.Eventf(g, nil, kind, reason, action, format, args...)
	}
}

// decision is one write call's decision on its group. The decision is redone on every attempt
// of its batch's ledger write (see groupcommit.go); the outcome fields hold the last attempt's.
type decision struct {
	ctx      context.Context
	method   string
	decide   decideFunc
	id       string
	deadline int64

	// turn is closed when the call's outcome is known, or when it is to lead the next batch
	// (batch is then set).
	turn  chan struct{}
	batch []*decision

	// The outcome of the last attempt: the changes recorded for the call (mine), the pending
	// changes of earlier decisions it relies on, the overdue operations it rolls forward, how
	// powerCycling shaped it, or its refusal.
	mine, relied []ledgerChange
	overdue      []ledgerOp
	shaped       []string
	refused      error

	// The outcome of the batch: an error (the call's refusal, or the write's failure), else the
	// Group as written, or as read when the batch changed nothing (skipped).
	err     error
	group   *infrav1.Group
	skipped bool
}

// reset forgets the previous attempt's outcome.
func (d *decision) reset() {
	d.mine, d.relied, d.overdue, d.shaped, d.refused = nil, nil, nil, nil, nil
}

// applyAll applies changes and waits until this replica's cache shows them.
func (s *Server) applyAll(ctx context.Context, key types.NamespacedName, changes []ledgerChange, guard bool) error {
	visible := ""
	for _, c := range changes {
		rv, err := s.apply(ctx, key.Namespace, c, guard)
		if err != nil {
			return err
		}
		visible = maxVersion(rv, visible)
	}
	return s.visible.wait(ctx, kindMachines, key.Namespace, visible)
}

// applyConcurrency bounds the machine writes one call makes at once.
const applyConcurrency = 16

// applyConcurrently applies a decision's changes, several at a time: each is an optimistic write
// of its own machine and the ledger already holds the decision, so their order does not matter,
// while one after another a scale-up of a hundred machines took most of the call's deadline. It
// returns the newest resourceVersion written and, on failure, a machine that failed and its error
// (the other writes still finish; whatever is missing, the next decision on the group rolls
// forward).
func (s *Server) applyConcurrently(ctx context.Context, ns string, changes []ledgerChange) (visible, failed string, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, applyConcurrency)
	for _, c := range changes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rv, e := s.apply(ctx, ns, c, false)
			mu.Lock()
			defer mu.Unlock()
			if e != nil {
				if err == nil {
					failed, err = c.Name, e
				}
				return
			}
			visible = maxVersion(rv, visible)
		})
	}
	wg.Wait()
	return visible, failed, err
}

// apply writes one machine's spec.online and returns the resourceVersion the cache must
// reach to show it. (The ledger's record of a power-off, written before, tells the lifecycle
// controller not to drain the node again: cluster-autoscaler drained it.) With guard set (rolling another replica's operation forward), a machine whose spec changed since
// the decision is left alone: someone decided about it since.
func (s *Server) apply(ctx context.Context, ns string, c ledgerChange, guard bool) (string, error) {
	key := types.NamespacedName{Namespace: ns, Name: c.Name}
	m := &infrav1.Machine{}
	// A copy from the cache saves a read; a stale one costs a conflict and a fresh read.
	if err := s.opts.Reader.Get(ctx, key, m); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("reading Machine %s: %w", key, err)
	}
	want := changeAction(c)
	_, err := optimistic.Update(ctx, s.opts.Writer, m, func(m *infrav1.Machine) error {
		if (guard && m.Generation != c.Generation) || m.Spec.Online == c.On {
			return nil
		}
		m.Spec.Online = c.On
		return nil
	}, optimistic.Operation("cloudprovider-power-"+string(want)))
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return m.ResourceVersion, nil
}

func changeNames(cs []ledgerChange) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}
