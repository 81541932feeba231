package cloudprovider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// The lifecycle controller's repairs that change which members are desired on go through the
// group's scale ledger, like cluster-autoscaler's writes: decided against every decision in
// flight, so a repair and a scale call never choose one machine twice or pass maxSize.
const (
	methodSubstitute = "Substitute"
	methodAdopt      = "Adopt"
)

// errNoSubstitute and errDecisionPending refuse a substitution (a refusal is decided again once
// on a fresh Group).
var (
	errNoSubstitute    = errorf(codes.ResourceExhausted, "%s", machines.ErrNoSubstitute.Error())
	errDecisionPending = errorf(codes.Aborted, "%s", machines.ErrDecisionPending.Error())
)

const methodSettle = "Settle"

// Settle carries out what the group's ledger holds and nobody is applying: a decision whose
// replica died before it applied every change is rolled forward once its deadline has passed.
// Without it only the next write on the group would, and a quiet group could keep a half-applied
// decision (a substitution's power-on never written) forever. It returns how soon to call it
// again while decisions remain, or 0.
func (s *Server) Settle(ctx context.Context, key types.NamespacedName) (time.Duration, error) {
	ctx, cancel := s.writeContext(ctx)
	defer cancel()
	if _, err := s.transact(ctx, methodSettle, key, func(context.Context, *view) ([]ledgerChange, error) { return nil, nil }); err != nil {
		return 0, err
	}
	g := &infrav1.Group{}
	if err := s.opts.Reader.Get(ctx, key, g); err != nil {
		return 0, client.IgnoreNotFound(err)
	}
	var next time.Duration
	now := s.opts.Now().UnixMilli()
	for _, op := range readLedger(g).Ops {
		d := max(time.Duration(op.Deadline-now)*time.Millisecond+time.Second, time.Second)
		if next == 0 || d < next {
			next = d
		}
	}
	return next, nil
}

// Substitute powers another member of m's group on in place of m, whose boot timed out: m is set
// desired off (marked substituted, so its power-off records why) and the member NodeGroupIncreaseSize
// would choose next is set desired on, in one ledger decision, so the group's target size never
// changes. It refuses with machines.ErrNoSubstitute when no member can be powered on, and
// changes nothing when m is no longer desired on at the generation seen.
func (s *Server) Substitute(ctx context.Context, m *infrav1.Machine) (string, error) {
	key := groupKey(m)
	ctx, cancel := s.writeContext(ctx)
	defer cancel()
	started := s.opts.Now()
	var sub string
	changes, err := s.transact(ctx, methodSubstitute, key, func(_ context.Context, v *view) ([]ledgerChange, error) {
		sub = ""
		slow := v.member(m.Name)
		if slow != nil && v.inFlight(slow.Name) {
			return nil, errDecisionPending
		}
		if slow == nil || slow.Generation != m.Generation || !v.desiredOn(slow) {
			return nil, nil
		}
		cy := cyclingOf(v.group, v.now)
		var candidates []*infrav1.Machine
		for _, c := range v.members() {
			// A machine whose own boot timed out since it was last Ready is no substitute: two
			// such machines would otherwise be swapped for each other forever, and neither would
			// ever fail and tell cluster-autoscaler.
			if c.Name != slow.Name && powerOnCandidate(c) && !v.inFlight(c.Name) && c.Status.FailedBoots == 0 && !cy.capped(c) {
				candidates = append(candidates, c)
			}
		}
		best := bestPowerOn(candidates, v.group, cy)
		if best == nil {
			return nil, errNoSubstitute
		}
		sub = best.Name
		return []ledgerChange{
			{Name: slow.Name, Generation: slow.Generation, On: false, SubstitutedBy: best.Name},
			{Name: best.Name, Generation: best.Generation, On: true},
		}, nil
	})
	s.logWrite(methodSubstitute, key, 0, changes, started, err)
	switch {
	case errors.Is(err, errNoSubstitute):
		return "", machines.ErrNoSubstitute
	case errors.Is(err, errDecisionPending):
		return "", machines.ErrDecisionPending
	case err != nil:
		return "", err
	case len(changes) == 0:
		return "", fmt.Errorf("machine %s/%s changed before it could be substituted", m.Namespace, m.Name)
	}
	return sub, nil
}

// Adopt sets m, found running while desired off, desired on, as a scale-up of one would: refused
// (ResourceExhausted) when the group is at its maxSize.
func (s *Server) Adopt(ctx context.Context, m *infrav1.Machine) error {
	key := groupKey(m)
	ctx, cancel := s.writeContext(ctx)
	defer cancel()
	started := s.opts.Now()
	changes, err := s.transact(ctx, methodAdopt, key, func(_ context.Context, v *view) ([]ledgerChange, error) {
		own := v.member(m.Name)
		if own == nil || own.Generation != m.Generation || v.desiredOn(own) || v.inFlight(own.Name) {
			return nil, nil
		}
		target, lim := v.size()
		if target+1 > int64(lim.Max) {
			return nil, errorf(codes.ResourceExhausted, "node group %s is at its maxSize %d%s", GroupID(key.Namespace, key.Name), lim.Max, v.setBy(lim))
		}
		return []ledgerChange{{Name: own.Name, Generation: own.Generation, On: true}}, nil
	})
	s.logWrite(methodAdopt, key, 1, changes, started, err)
	if err == nil && len(changes) == 0 {
		return fmt.Errorf("machine %s/%s changed before it could be adopted", m.Namespace, m.Name)
	}
	return err
}
