package cloudprovider

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
//     written with the Group's resourceVersion as precondition. A concurrent decision (any
//     replica) makes the write conflict, and the optimistic writer decides again on a fresh
//     read of the newer ledger; so maxSize, minSize and all-or-nothing grants hold however many
//     replicas serve, and no machine is chosen twice. A refusal writes nothing.
//  2. Apply: write each chosen machine's desired power state (and roll forward operations whose
//     replica gave up before applying them).
//  3. Wait until this replica's cache has delivered those writes (and the ledger's), so that
//     NodeGroupTargetSize, answered from the cache, shows the change as soon as the call
//     returns, and the next decision here starts from a current Group.
func (s *Server) transact(ctx context.Context, method string, key types.NamespacedName, decide decideFunc) ([]ledgerChange, error) {
	// Serializing a group's writes inside one replica only saves conflicts; correctness comes
	// from the ledger's precondition.
	unlock := s.locks.lock(key)
	defer unlock()

	d := &decision{ctx: ctx, s: s, method: method, decide: decide,
		id:       s.replica + "-" + strconv.FormatUint(s.seq.Add(1), 10),
		deadline: s.opts.Now().Add(s.opts.CallTimeout + ledgerGrace).UnixMilli()}
	// The cached Group saves a read; the precondition catches a stale one, and the decision is
	// then made again on a fresh read.
	g := &infrav1.Group{}
	cached := s.opts.Reader.Get(ctx, key, g) == nil
	if !cached {
		g = &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	}
	// The ledger is in the Group's status, which the group controller writes too: a decision of
	// nothing on the cached copy is confirmed on a fresh read before it counts.
	write := func(g *infrav1.Group) (optimistic.Result, error) {
		return optimistic.UpdateStatus(ctx, s.opts.Writer, g, d.mutate,
			optimistic.Operation("cloudprovider-"+method), optimistic.ConfirmUnchanged())
	}
	res, err := write(g)
	var refusal *rpcError
	if cached && errors.As(err, &refusal) {
		// A refusal is final only on the current Group: decide once more on a fresh read.
		g = &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		res, err = write(g)
	}
	if apierrors.IsNotFound(err) {
		return nil, errorf(codes.NotFound, "node group %s: no such Group", GroupID(key.Namespace, key.Name))
	}
	if err != nil {
		return nil, err
	}
	if res.Skipped {
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

// decision is one write call's decision on its group, redone on every attempt of the ledger
// write; the fields hold the outcome of the last attempt.
type decision struct {
	ctx      context.Context
	s        *Server
	method   string
	decide   decideFunc
	id       string
	deadline int64

	mine, relied []ledgerChange
	overdue      []ledgerOp
	shaped       []string
}

// mutate is the ledger write's mutate function. Deciding nothing leaves the Group unchanged,
// which the optimistic writer confirms on a fresh read before it skips the write.
func (d *decision) mutate(g *infrav1.Group) error {
	d.mine, d.relied, d.overdue = nil, nil, nil
	if !g.DeletionTimestamp.IsZero() {
		return errorf(codes.FailedPrecondition, "node group %s is being deleted", GroupID(g.Namespace, g.Name))
	}
	l := readLedger(g)
	ctx := d.ctx
	if err := d.s.visible.wait(ctx, kindMachines, g.Namespace, l.VisibleAt); err != nil {
		return err
	}
	v := newView(g, d.s.fleet, d.s.opts.Now())
	v.holds = l.Holds
	d.overdue = l.prune(v.cached, d.s.opts.Now(), d.deadline)
	l.prunePowerOffs(v.observed)
	v.pending = l.pending()
	mine, err := d.decide(ctx, v)
	d.mine = mine
	d.relied = v.relied
	d.shaped = v.shaped
	if err != nil {
		return err
	}
	if len(d.mine) > 0 {
		l.Ops = append(l.Ops, ledgerOp{ID: d.id, Method: d.method, Deadline: d.deadline, Changes: d.mine})
		l.recordPowerOffs(d.mine)
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
	writeLedger(g, l)
	return nil
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

// groupLocks serializes one replica's writes per group (striped, so it needs no cleanup).
type groupLocks [64]sync.Mutex

func (l *groupLocks) lock(key types.NamespacedName) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key.Namespace + "/" + key.Name))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}
