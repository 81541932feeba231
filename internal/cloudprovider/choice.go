package cloudprovider

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// rankPowerOn orders the machines NodeGroupIncreaseSize may power on, best first:
//
//  0. machines powered off longer ago than the group's powerCycling.minOffTime ahead of those
//     powered off more recently: a machine just switched off is switched on again only when
//     nothing else can serve;
//  1. machines with fewer boots that timed out since they were last Ready (status.failedBoots)
//     first: a machine substituted after a boot timeout is used again only when no other can;
//  2. machines that have registered a Ready Node before (status.providerID is recorded
//     then) ahead of machines never seen to boot;
//  3. cheaper ahead of dearer (spec.pricing.hourlyRate, else the Group's
//     machineDefaults.pricing; a machine without pricing counts as the dearest, since its cost is
//     unknown);
//  4. the least recently used first (the latest of its last power-on and power-off; a machine
//     that is still running or shutting down counts as in use now), spreading wear and keeping
//     a machine that was just released available to come straight back;
//  5. by name, so that the choice is deterministic.
//
// g is the machines' Group, whose machineDefaults may price them; c its powerCycling policy now.
func rankPowerOn(ms []*infrav1.Machine, g *infrav1.Group, c cycling) {
	slices.SortFunc(ms, powerOnOrder(g, c))
}

// bestPowerOn is the first machine rankPowerOn would give, found in one pass.
func bestPowerOn(ms []*infrav1.Machine, g *infrav1.Group, c cycling) *infrav1.Machine {
	compare := powerOnOrder(g, c)
	var best *infrav1.Machine
	for _, m := range ms {
		if best == nil || compare(m, best) < 0 {
			best = m
		}
	}
	return best
}

// bestPowerOnN returns the first n machines rankPowerOn would give (n <= len(ms)). A scale-up
// usually asks for a few machines out of many, so for small n it selects in n passes instead of
// sorting the whole group; ms is reordered.
func bestPowerOnN(ms []*infrav1.Machine, n int, g *infrav1.Group, c cycling) []*infrav1.Machine {
	if n > 8 {
		rankPowerOn(ms, g, c)
		return ms[:n]
	}
	compare := powerOnOrder(g, c)
	for i := range n {
		best := i
		for j := i + 1; j < len(ms); j++ {
			if compare(ms[j], ms[best]) < 0 {
				best = j
			}
		}
		ms[i], ms[best] = ms[best], ms[i]
	}
	return ms[:n]
}

// powerOnOrder is rankPowerOn's comparison for the members of g.
func powerOnOrder(g *infrav1.Group, cy cycling) func(a, b *infrav1.Machine) int {
	return func(a, b *infrav1.Machine) int {
		if ca, cb := cy.coolingDown(a), cy.coolingDown(b); ca != cb {
			if cb {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.Status.FailedBoots, b.Status.FailedBoots); c != 0 {
			return c
		}
		if pa, pb := proven(a), proven(b); pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		if c := comparePrice(hourlyRate(a, g), hourlyRate(b, g)); c != 0 {
			return c
		}
		if c := lastUsed(a).Compare(lastUsed(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	}
}

func proven(m *infrav1.Machine) bool { return m.Status.ProviderID != "" }

// comparePrice orders hourly rates, unpriced (nil) last.
func comparePrice(ra, rb *resource.Quantity) int {
	switch {
	case ra == nil && rb == nil:
		return 0
	case ra == nil:
		return 1
	case rb == nil:
		return -1
	default:
		return ra.Cmp(*rb)
	}
}

func hourlyRate(m *infrav1.Machine, g *infrav1.Group) *resource.Quantity {
	if p := machines.PricingOf(m, g); p != nil {
		return &p.HourlyRate
	}
	return nil
}

// farFuture marks a machine in use now.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func lastUsed(m *infrav1.Machine) time.Time {
	switch m.Status.Progress {
	case infrav1.ProgressReady, infrav1.ProgressStartingUp, infrav1.ProgressShuttingDown:
		return farFuture
	}
	var t time.Time
	if s := m.Status.LastStartupTime; s != nil && s.After(t) {
		t = s.Time
	}
	if s := m.Status.LastShutdownTime; s != nil && s.After(t) {
		t = s.Time
	}
	return t
}

// rankCancel orders the unregistered machines NodeGroupDecreaseTargetSize may cancel, first
// cancelled first: machines whose boot failed, then machines whose power-on has not started,
// then those that started booting most recently (furthest from registering); by name last.
func rankCancel(ms []*infrav1.Machine) {
	stage := func(m *infrav1.Machine) int {
		switch {
		case failedPowerOn(m):
			return 0
		case m.Status.Progress != infrav1.ProgressStartingUp:
			return 1
		default:
			return 2
		}
	}
	started := func(m *infrav1.Machine) time.Time {
		if m.Status.LastStartupTime == nil {
			return time.Time{}
		}
		return m.Status.LastStartupTime.Time
	}
	slices.SortStableFunc(ms, func(a, b *infrav1.Machine) int {
		if sa, sb := stage(a), stage(b); sa != sb {
			return sa - sb
		}
		if c := started(b).Compare(started(a)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}
