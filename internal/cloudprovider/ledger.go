package cloudprovider

import (
	"encoding/json"
	"fmt"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// AnnotationLedger holds a Group's scale ledger: the write operations decided on the group
// whose machine changes may not be visible in every replica's cache yet. It is an annotation,
// not a spec field, because a spec change would bump the Group's generation and make the
// lifecycle controller revisit every member on every scale call.
const AnnotationLedger = "homelab-autoscaler.dev/scale-ledger"

// ledger is the serialization point of a group's write RPCs. Deciding a write means rewriting
// the ledger with a resourceVersion precondition, so decisions on one group are totally
// ordered across replicas; each decision sees every earlier one, either as an operation still
// listed here or, once pruned, through VisibleAt.
type ledger struct {
	// VisibleAt is a machines' resourceVersion (of the group's namespace) at or after which
	// every pruned operation's changes are in a cache that has delivered it.
	VisibleAt string `json:"visibleAt,omitempty"`
	// Ops are the operations decided but not yet known to be visible.
	Ops []ledgerOp `json:"ops,omitempty"`
}

// ledgerOp is one decided write: a set of machines and the power state each must get.
type ledgerOp struct {
	// ID names the operation in logs: the replica and a sequence number.
	ID string `json:"id"`
	// Method is the RPC that decided it.
	Method string `json:"method"`
	// Deadline (Unix milliseconds) is when the deciding replica has surely given up applying it;
	// after it, the next decision on the group applies what is missing (roll forward).
	Deadline int64 `json:"deadline"`
	// Changes are the machines and their new desired power state.
	Changes []ledgerChange `json:"changes"`
}

// ledgerChange sets one machine's desired power state.
type ledgerChange struct {
	Name string `json:"name"`
	// Generation is the machine's metadata.generation the decision saw. A higher generation
	// means its spec changed since, by this change or by someone else; either way the change no
	// longer needs applying.
	Generation int64 `json:"generation"`
	On         bool  `json:"on"`
	// SubstitutedBy, on a power-off, names the member powered on in this machine's place after
	// its boot timed out; the machine's power-off records it.
	SubstitutedBy string `json:"substitutedBy,omitempty"`
}

func (c ledgerChange) action() infrav1.PowerAction {
	if c.On {
		return infrav1.PowerActionOn
	}
	return infrav1.PowerActionOff
}

// readLedger decodes the Group's ledger. A ledger that does not decode (edited by hand) is
// dropped with an error for the log rather than blocking every decision on the group forever.
func readLedger(g *infrav1.Group) (ledger, error) {
	raw := g.Annotations[AnnotationLedger]
	if raw == "" {
		return ledger{}, nil
	}
	var l ledger
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return ledger{}, fmt.Errorf("scale ledger of Group %s/%s: annotation %s does not decode, starting a new ledger: %w", g.Namespace, g.Name, AnnotationLedger, err)
	}
	return l, nil
}

// writeLedger encodes l into the Group's annotations; an empty ledger removes the annotation.
func writeLedger(g *infrav1.Group, l ledger) error {
	if len(l.Ops) == 0 && l.VisibleAt == "" {
		delete(g.Annotations, AnnotationLedger)
		return nil
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encoding the scale ledger of Group %s/%s: %w", g.Namespace, g.Name, err)
	}
	if g.Annotations == nil {
		g.Annotations = map[string]string{}
	}
	g.Annotations[AnnotationLedger] = string(raw)
	return nil
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
