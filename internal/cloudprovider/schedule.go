package cloudprovider

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/schedule"
)

// methodSchedule names the decisions the manager makes on its own for a group's schedule: a
// floor's power-ons, a ceiling's power-offs, maintenance wakes and the end of each.
const methodSchedule = "Schedule"

// Schedule makes the group's schedule hold at the server's clock, in one scale-ledger decision
// (so it never races cluster-autoscaler's calls or another replica, and never passes maxSize):
//
//   - a member powered on for a floor or a maintenance wake whose reason ended is drained and
//     powered off, unless busy says cluster-autoscaler put work on it: then it is only released;
//   - above the ceiling of an open window with powerOffExcess, members are drained and powered
//     off (held ones first, then those not yet Ready, then the most recently started);
//   - below an open window's floor, members are powered on as NodeGroupIncreaseSize would
//     choose them, each held for the floor;
//   - members off for longer than maintenance.offLongerThan are woken, oldest first, at most
//     maintenance.maxConcurrent at a time, never while a window with a ceiling is open.
func (s *Server) Schedule(ctx context.Context, key types.NamespacedName, busy schedule.Busy) (schedule.Outcome, error) {
	// A decision of nothing still costs a fresh read of the Group (the ledger's confirmation), and
	// the group controller calls this on every change of a member: the decision is first made on
	// the cache alone, assuming no member is busy, and made through the ledger only when it would
	// change something.
	if g := (&infrav1.Group{}); s.opts.Reader.Get(ctx, key, g) == nil {
		l := readLedger(g)
		v := newView(g, s.fleet, s.opts.Now())
		// Decisions the cache shows applied are pruned by the ledger write; here they are left out.
		v.holds, v.pending = slices.Clone(l.Holds), unapplied(l, s.fleet, key.Namespace)
		p := &schedulePlan{v: v, busy: func(*infrav1.Machine) (bool, error) { return false, nil }}
		var dry schedule.Outcome
		if err := p.decide(&dry); err == nil && len(p.changes) == 0 && equality.Semantic.DeepEqual(v.holds, l.Holds) {
			return dry, nil
		}
	}
	ctx, cancel := s.writeContext(ctx)
	defer cancel()
	started := s.opts.Now()
	memo := map[string]bool{}
	isBusy := func(m *infrav1.Machine) (bool, error) {
		k := fmt.Sprintf("%s/%d", m.Name, m.Generation)
		if b, ok := memo[k]; ok {
			return b, nil
		}
		b, err := busy(ctx, m)
		if err != nil {
			return false, err
		}
		memo[k] = b
		return b, nil
	}
	var out schedule.Outcome
	changes, err := s.transact(ctx, methodSchedule, key, func(_ context.Context, v *view) ([]ledgerChange, error) {
		p := &schedulePlan{v: v, busy: isBusy}
		out = schedule.Outcome{}
		if err := p.decide(&out); err != nil {
			return nil, err
		}
		return p.changes, nil
	})
	s.logWrite(methodSchedule, key, len(out.Actions), changes, started, err)
	if err != nil {
		return schedule.Outcome{}, err
	}
	return out, nil
}

// schedulePlan is one schedule decision on a view.
type schedulePlan struct {
	v       *view
	busy    func(*infrav1.Machine) (bool, error)
	changes []ledgerChange
	touched map[string]bool
}

func (p *schedulePlan) off(m *infrav1.Machine) {
	p.changes = append(p.changes, ledgerChange{Name: m.Name, Generation: m.Generation, On: false, Drain: true})
	p.touch(m.Name)
}

func (p *schedulePlan) touch(name string) {
	if p.touched == nil {
		p.touched = map[string]bool{}
	}
	p.touched[name] = true
}

func (p *schedulePlan) decide(out *schedule.Outcome) error {
	v := p.v
	target, lim := v.size()
	st := lim.Schedule
	open := map[string]bool{}
	for _, n := range st.Open {
		open[n] = true
	}
	desc := func(name string) string { return scheduleWindowText(v, name) }

	// 1. Holds whose reason ended.
	var kept []infrav1.Hold
	surplus := target - int64(lim.Min)
	for _, h := range v.holds {
		m := v.member(h.Name)
		if m == nil || !v.desiredOn(m) {
			continue
		}
		ended, why := false, ""
		switch h.Reason {
		case infrav1.HoldFloor:
			if open[h.Window] && lim.MinBy != "" {
				break
			}
			switch {
			case surplus > 0:
				ended, why = true, "the floor of "+desc(h.Window)+" ended"
			case lim.MinBy != "":
				// Another window's floor needs it now.
				h.Window = lim.MinBy
			default:
				// spec.minSize needs it: it stays on, as cluster-autoscaler's.
				out.Actions = append(out.Actions, schedule.Action{Machine: m.Name, Kind: schedule.ActionReleased,
					Message: "the floor of " + desc(h.Window) + " ended; the group's minSize keeps it on, so it is left to cluster-autoscaler"})
				continue
			}
		case infrav1.HoldMaintenance:
			switch {
			case st.Ceiling != nil:
				ended, why = true, "maintenance wake cut short by "+desc(st.CeilingWindow)
			case h.Until != nil && !v.now.Before(h.Until.Time):
				ended, why = true, "maintenance wake over"
			case h.Until != nil:
				out.Next = earliest(out.Next, h.Until.Time)
			}
		}
		if !ended || v.inFlight(m.Name) {
			kept = append(kept, h)
			continue
		}
		busy, err := p.busy(m)
		if err != nil {
			return err
		}
		if busy {
			out.Actions = append(out.Actions, schedule.Action{Machine: m.Name, Kind: schedule.ActionReleased, Message: why + "; it runs work cluster-autoscaler placed, so it is left to cluster-autoscaler's scale-down"})
			continue
		}
		kind := schedule.ActionFloorEnd
		if h.Reason == infrav1.HoldMaintenance {
			kind = schedule.ActionMaintenanceEnd
		}
		p.off(m)
		target--
		if h.Reason == infrav1.HoldFloor {
			surplus--
		}
		out.Actions = append(out.Actions, schedule.Action{Machine: m.Name, Kind: kind, Message: why + "; draining and powering off"})
	}
	v.holds = kept

	// 2. A ceiling that powers off the excess.
	if st.Enforced != nil && target > int64(*st.Enforced) {
		excess := int(target - int64(*st.Enforced))
		for _, m := range p.excess(excess) {
			p.off(m)
			target--
			out.Actions = append(out.Actions, schedule.Action{Machine: m.Name, Kind: schedule.ActionCeilingPowerOff, Message: fmt.Sprintf("%s allows %d on (powerOffExcess); draining and powering off", desc(st.EnforcedWindow), *st.Enforced)})
		}
		v.holds = slices.DeleteFunc(v.holds, func(h infrav1.Hold) bool { return p.touched[h.Name] })
	}

	// 3. A floor below which the group fell.
	if lim.MinBy != "" && target < int64(lim.Min) {
		need := int(int64(lim.Min) - target)
		chosen, err := v.choosePowerOnsUpTo(need)
		for _, c := range chosen {
			p.changes = append(p.changes, c)
			p.touch(c.Name)
			v.holds = append(v.holds, infrav1.Hold{Name: c.Name, Reason: infrav1.HoldFloor, Window: lim.MinBy})
			out.Actions = append(out.Actions, schedule.Action{Machine: c.Name, Kind: schedule.ActionFloorPowerOn, Message: fmt.Sprintf("%s keeps at least %d on", desc(lim.MinBy), lim.Min)})
		}
		target += int64(len(chosen))
		if err != nil {
			out.Unmet = fmt.Sprintf("%s keeps at least %d on, but %v", desc(lim.MinBy), lim.Min, err)
			// A member at its daily power-on cap can serve again once the cap lifts.
			cy := cyclingOf(v.group, v.now)
			for _, m := range v.members() {
				if powerOnCandidate(m) && !v.inFlight(m.Name) && cy.capped(m) {
					out.Next = earliest(out.Next, cy.capLifts(m))
				}
			}
		}
	}

	// 4. Maintenance wakes.
	if pol := v.group.Spec.Maintenance; pol != nil && st.Ceiling == nil {
		p.maintenance(pol, target, lim.Max, out)
	}
	return nil
}

// excess picks n desired-on members to power off for a ceiling: held ones first (the manager's
// own), then members not yet Ready, then the most recently started; by name last.
func (p *schedulePlan) excess(n int) []*infrav1.Machine {
	v := p.v
	held := map[string]bool{}
	for _, h := range v.holds {
		held[h.Name] = true
	}
	var on []*infrav1.Machine
	for _, m := range v.members() {
		if v.desiredOn(m) && !v.inFlight(m.Name) && !p.touched[m.Name] && m.DeletionTimestamp.IsZero() {
			on = append(on, m)
		}
	}
	started := func(m *infrav1.Machine) time.Time {
		if m.Status.LastStartupTime == nil {
			return farFuture
		}
		return m.Status.LastStartupTime.Time
	}
	slices.SortFunc(on, func(a, b *infrav1.Machine) int {
		if ha, hb := held[a.Name], held[b.Name]; ha != hb {
			if ha {
				return -1
			}
			return 1
		}
		if ra, rb := a.Status.Progress == infrav1.ProgressReady, b.Status.Progress == infrav1.ProgressReady; ra != rb {
			if rb {
				return -1
			}
			return 1
		}
		if c := started(b).Compare(started(a)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return on[:min(n, len(on))]
}

// maintenance wakes the members due, within the group's room.
func (p *schedulePlan) maintenance(pol *infrav1.MaintenanceWake, target int64, maxSize int32, out *schedule.Outcome) {
	v := p.v
	room := pol.MaxConcurrent
	if room <= 0 {
		room = infrav1.DefaultMaintenanceMaxConcurrent
	}
	for _, h := range v.holds {
		if h.Reason == infrav1.HoldMaintenance {
			room--
		}
	}
	cy := cyclingOf(v.group, v.now)
	type due struct {
		m   *infrav1.Machine
		off time.Time
	}
	var ready []due
	for _, m := range v.members() {
		if v.desiredOn(m) || v.inFlight(m.Name) || p.touched[m.Name] || !m.DeletionTimestamp.IsZero() ||
			m.Status.Progress != infrav1.ProgressOff {
			continue
		}
		if cy.capped(m) {
			out.Next = earliest(out.Next, cy.capLifts(m))
			continue
		}
		since := offSince(m)
		at := since.Add(pol.OffLongerThan.Duration)
		if v.now.Before(at) {
			out.Next = earliest(out.Next, at)
			continue
		}
		ready = append(ready, due{m, since})
	}
	slices.SortFunc(ready, func(a, b due) int {
		return cmp.Or(a.off.Compare(b.off), strings.Compare(a.m.Name, b.m.Name))
	})
	for _, d := range ready {
		if room <= 0 || target+1 > int64(maxSize) {
			// The others are due as soon as one finishes: its end is in out.Next already.
			break
		}
		until := metav1.NewTime(v.now.Add(pol.WakeFor.Duration))
		p.changes = append(p.changes, ledgerChange{Name: d.m.Name, Generation: d.m.Generation, On: true})
		p.touch(d.m.Name)
		v.holds = append(v.holds, infrav1.Hold{Name: d.m.Name, Reason: infrav1.HoldMaintenance, Until: &until})
		out.Next = earliest(out.Next, until.Time)
		out.Actions = append(out.Actions, schedule.Action{Machine: d.m.Name, Kind: schedule.ActionMaintenanceWake, Message: fmt.Sprintf("off since %s (longer than maintenance.offLongerThan %s): awake for %s",
			d.off.UTC().Format(time.RFC3339), pol.OffLongerThan.Duration, pol.WakeFor.Duration)})
		room--
		target++
	}
}

// offSince is when a member was last switched off (its creation when it never was).
func offSince(m *infrav1.Machine) time.Time {
	if t := m.Status.LastShutdownTime; t != nil {
		return t.Time
	}
	return m.CreationTimestamp.Time
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// scheduleWindowText names a window and when it closes.
func scheduleWindowText(v *view, name string) string {
	return schedule.Describe(v.group.Spec.Schedules, name, v.now)
}
