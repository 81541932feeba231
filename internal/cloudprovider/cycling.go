package cloudprovider

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// cycling is a group's powerCycling policy at one instant: which off members were powered off
// too recently to be the first choice, and which were powered on too often today to be chosen at
// all.
type cycling struct {
	minOff time.Duration
	maxOns int32
	now    time.Time
}

func cyclingOf(g *infrav1.Group, now time.Time) cycling {
	c := cycling{now: now}
	if p := g.Spec.PowerCycling; p != nil {
		if p.MinOffTime != nil {
			c.minOff = p.MinOffTime.Duration
		}
		if p.MaxPowerOnsPerDay != nil {
			c.maxOns = *p.MaxPowerOnsPerDay
		}
	}
	return c
}

// coolingDown reports whether m was powered off less than minOffTime ago.
func (c cycling) coolingDown(m *infrav1.Machine) bool {
	t := m.Status.LastShutdownTime
	return c.minOff > 0 && t != nil && c.now.Sub(t.Time) < c.minOff
}

// capped reports whether m was powered on maxPowerOnsPerDay times in the last 24 hours.
func (c cycling) capped(m *infrav1.Machine) bool {
	if c.maxOns <= 0 {
		return false
	}
	return int32(recentPowerOns(m, c.now)) >= c.maxOns //nolint:gosec // at most MaxPowerOnsKept
}

// capLifts is when a capped machine's oldest power-on of the last 24 hours is 24 hours old.
func (c cycling) capLifts(m *infrav1.Machine) time.Time {
	var oldest time.Time
	for _, t := range m.Status.PowerOns {
		if c.now.Sub(t.Time) < 24*time.Hour && (oldest.IsZero() || t.Before(&metav1.Time{Time: oldest})) {
			oldest = t.Time
		}
	}
	return oldest.Add(24 * time.Hour)
}

// recentPowerOns counts m's power-ons within the 24 hours before now.
func recentPowerOns(m *infrav1.Machine, now time.Time) int {
	n := 0
	for _, t := range m.Status.PowerOns {
		if now.Sub(t.Time) < 24*time.Hour {
			n++
		}
	}
	return n
}

// choosePowerOns picks n members to power on, best first (rankPowerOn), among those that are off,
// not in flight and under the daily cap, or none and says why it cannot (all or nothing). The
// cap and the minimum off time are reported (v.shaped) when they shape the choice.
func (v *view) choosePowerOns(n int) ([]ledgerChange, error) {
	out, err := v.choosePowerOnsUpTo(n)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// powerOnCandidates returns the members that may be powered on (off, not in flight, under the
// daily cap) and how many in-flight-free members the cap passed over. The members are split once
// per scan; when decisions share the scan they are also ranked once (rankPowerOn), and the
// candidates then come in that order, at least want of them unless fewer exist; otherwise they
// come unordered, all of them, for the caller to pick the best.
func (v *view) powerOnCandidates(cy cycling, want int) (candidates []*infrav1.Machine, capped int) {
	type split struct{ ok, capped []*infrav1.Machine }
	r, _ := v.derive("power-on", func() (any, error) {
		var sp split
		for _, m := range v.members() {
			switch {
			case !powerOnCandidate(m):
			case cy.capped(m):
				sp.capped = append(sp.capped, m)
			default:
				sp.ok = append(sp.ok, m)
			}
		}
		if v.shared() {
			rankPowerOn(sp.ok, v.group, cy)
		}
		return sp, nil
	})
	sp := r.(split)
	for _, m := range sp.ok {
		if !v.inFlight(m.Name) {
			candidates = append(candidates, m)
			if v.shared() && len(candidates) == want {
				break
			}
		}
	}
	for _, m := range sp.capped {
		if !v.inFlight(m.Name) {
			capped++
		}
	}
	return candidates, capped
}

// choosePowerOnsUpTo is choosePowerOns that takes as many as it can, with the error saying why
// it took fewer than n.
func (v *view) choosePowerOnsUpTo(n int) ([]ledgerChange, error) {
	cy := cyclingOf(v.group, v.now)
	candidates, capped := v.powerOnCandidates(cy, n)
	var short error
	if len(candidates) < n {
		why := "the others are on, being deleted, or Failed"
		if capped > 0 {
			why = fmt.Sprintf("%d reached powerCycling.maxPowerOnsPerDay (%d); %s", capped, cy.maxOns, why)
		}
		short = fmt.Errorf("%d machines asked for, only %d can be powered on (%s)", n, len(candidates), why)
		n = len(candidates)
	}
	chosen := candidates
	if !v.shared() {
		chosen = bestPowerOnN(candidates, n, v.group, cy)
	}
	out := make([]ledgerChange, 0, n)
	var cooling []string
	for _, m := range chosen[:n] {
		if cy.coolingDown(m) {
			cooling = append(cooling, m.Name)
		}
		out = append(out, ledgerChange{Name: m.Name, Generation: m.Generation, On: true})
	}
	v.shaped = nil
	if len(cooling) > 0 {
		v.shaped = append(v.shaped, fmt.Sprintf("powered off less than powerCycling.minOffTime (%s) ago, chosen because no other member could serve: %s",
			cy.minOff, strings.Join(cooling, ", ")))
	}
	if capped > 0 {
		v.shaped = append(v.shaped, fmt.Sprintf("%d members passed over: powered on powerCycling.maxPowerOnsPerDay (%d) times in 24h", capped, cy.maxOns))
	}
	return out, short
}
