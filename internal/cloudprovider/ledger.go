package cloudprovider

import (
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// ledger is the serialization point of a group's writes (status.scaleLedger of the Group).
// Deciding a write means rewriting the ledger with a resourceVersion precondition, so decisions
// on one group are totally ordered across replicas; each decision sees every earlier one, either
// as an operation still listed here or, once pruned, through VisibleAt. It lives in the Group's
// status: a spec field would bump the Group's generation (and make the lifecycle controller
// revisit every member on every scale call), and an annotation could be edited by whoever may
// edit the Group.
type ledger infrav1.ScaleLedger

// ledgerOp is one decided write: a set of machines and the power state each must get.
type ledgerOp = infrav1.ScaleOperation

// ledgerChange sets one machine's desired power state.
type ledgerChange = infrav1.ScaleChange

func changeAction(c ledgerChange) infrav1.PowerAction {
	if c.On {
		return infrav1.PowerActionOn
	}
	return infrav1.PowerActionOff
}

// readLedger returns a copy of the Group's ledger.
func readLedger(g *infrav1.Group) ledger {
	if g.Status.ScaleLedger == nil {
		return ledger{}
	}
	return ledger(*g.Status.ScaleLedger.DeepCopy())
}

// writeLedger puts l into the Group's status; an empty ledger removes it.
func writeLedger(g *infrav1.Group, l ledger) {
	if len(l.Ops) == 0 && l.VisibleAt == "" && len(l.PowerOffs) == 0 && len(l.Holds) == 0 {
		g.Status.ScaleLedger = nil
		return
	}
	sl := infrav1.ScaleLedger(l)
	g.Status.ScaleLedger = &sl
}

// recordPowerOffs adds the power-offs among changes, which the lifecycle controller then does not
// drain (see infrav1.ScaleLedger.PowerOffs): the generation each creates is the one after the
// decision's.
func (l *ledger) recordPowerOffs(changes []ledgerChange) {
	for _, c := range changes {
		if !c.On && !c.Drain {
			l.PowerOffs = append(l.PowerOffs, infrav1.DecidedPowerOff{Name: c.Name, Generation: c.Generation + 1, SubstitutedBy: c.SubstitutedBy})
		}
	}
}

// prunePowerOffs drops the recorded power-offs the lifecycle controller has started (the
// machine's status reflects that generation or a later one), that someone else's spec change
// superseded, or whose machine is gone.
func (l *ledger) prunePowerOffs(observed func(name string) (generation, observedGeneration int64, ok bool)) {
	kept := l.PowerOffs[:0]
	for _, p := range l.PowerOffs {
		gen, seen, ok := observed(p.Name)
		if !ok || gen > p.Generation || seen >= p.Generation {
			continue
		}
		kept = append(kept, p)
	}
	l.PowerOffs = kept
}

// machineState is what the ledger needs to know of a machine in the deciding replica's cache.
type machineState struct {
	generation      int64
	resourceVersion string
	on              bool
}

// prune drops the operations whose changes the cache shows applied (or superseded, or whose
// machine is gone), advancing VisibleAt past them, and returns the overdue operations that
// still have changes to apply: their replica gave up, and the caller rolls them forward. The
// caller adopts them until adoptUntil (Unix milliseconds), so that other replicas leave them to
// it meanwhile.
func (l *ledger) prune(cached func(name string) (machineState, bool), now time.Time, adoptUntil int64) (overdue []ledgerOp) {
	kept := l.Ops[:0]
	for _, op := range l.Ops {
		var missing []ledgerChange
		for _, c := range op.Changes {
			m, ok := cached(c.Name)
			if !ok {
				continue
			}
			if m.generation > c.Generation || m.on == c.On {
				l.VisibleAt = maxVersion(m.resourceVersion, l.VisibleAt)
				continue
			}
			missing = append(missing, c)
		}
		if len(missing) == 0 {
			continue
		}
		if now.UnixMilli() > op.Deadline {
			op.Deadline = adoptUntil
			overdue = append(overdue, ledgerOp{ID: op.ID, Method: op.Method, Deadline: op.Deadline, Changes: missing})
		}
		kept = append(kept, op)
	}
	l.Ops = kept
	return overdue
}

// pending returns the changes listed operations make, by machine.
func (l *ledger) pending() map[string]ledgerChange {
	out := map[string]ledgerChange{}
	for _, op := range l.Ops {
		for _, c := range op.Changes {
			out[c.Name] = c
		}
	}
	return out
}
