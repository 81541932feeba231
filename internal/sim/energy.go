package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"
)

// maxDrawChanges bounds the draw changes a machine keeps. A change is recorded only when the draw
// changes (a power transition, a load change, a plug switched): at one a second that is 18 hours,
// at the few per power cycle a homelab makes it is months. When it is full, the older half goes,
// and EnergyBetween counts from the oldest change kept.
const maxDrawChanges = 1 << 16

// drawChange is the machine's draw from at (Unix nanoseconds) until the next change.
type drawChange struct {
	at    int64
	watts float64
}

// drawProfile is what one machine draws: off (its BMC and network card on standby), on and idle,
// and on at full load.
type drawProfile struct {
	standby, idle, loaded float64
}

// profileOf is the configured draw, moved by a factor within ±cfg.WattsSpread that is the
// machine's own across runs (derived from its provider ID).
func profileOf(cfg *Config, providerID string) drawProfile {
	p := drawProfile{standby: cfg.StandbyWatts, idle: cfg.IdleWatts, loaded: cfg.LoadedWatts}
	if cfg.WattsSpread <= 0 {
		return p
	}
	sum := sha256.Sum256([]byte("draw/" + providerID))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
	f := 1 + cfg.WattsSpread*(2*u-1)
	return drawProfile{standby: p.standby * f, idle: p.idle * f, loaded: p.loaded * f}
}

// drawNow is what the machine draws in its present state; m.mu is held. Behind a plug whose relay
// is off it draws nothing; off, its standby draw; on (booting, running or shutting down), its
// idle draw plus its load's share of the difference to full load.
func (m *Machine) drawNow() float64 {
	switch {
	case !m.relay:
		return 0
	case m.phase == phaseOff:
		return m.profile.standby
	}
	return m.profile.idle + m.load*(m.profile.loaded-m.profile.idle)
}

// noteDraw records the draw when it changed; m.mu is held. Every change of phase, load or relay
// calls it.
func (m *Machine) noteDraw() {
	w := m.drawNow()
	at := m.sim.now().UnixNano()
	n := len(m.draws)
	if n > 0 {
		last := m.draws[n-1]
		if last.watts == w {
			return
		}
		// A clock that steps back must not reorder the history.
		at = max(at, last.at)
		if at == last.at {
			m.draws[n-1].watts = w
			return
		}
	}
	if n == maxDrawChanges {
		m.draws = append(m.draws[:0], m.draws[n/2:]...)
	}
	m.draws = append(m.draws, drawChange{at: at, watts: w})
}

// Watts is what the machine draws now, in watts.
func (m *Machine) Watts() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.drawNow()
}

// Load is the machine's load, from 0 (idle) to 1 (full load).
func (m *Machine) Load() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.load
}

// SetLoad sets the machine's load, from 0 (idle) to 1 (full load). It counts while the machine is
// on, and stays set across power cycles.
func (m *Machine) SetLoad(fraction float64) error {
	if math.IsNaN(fraction) || fraction < 0 || fraction > 1 {
		return fmt.Errorf("load must be between 0 and 1, not %v", fraction)
	}
	m.mu.Lock()
	m.load = fraction
	m.noteDraw()
	m.mu.Unlock()
	m.sim.log.Debug("load set", "machine", m.Name, "load", fraction)
	return nil
}

// EnergySince is when the machine's draw history begins: its creation, or its oldest change
// kept.
func (m *Machine) EnergySince() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return time.Unix(0, m.draws[0].at)
}

// EnergyBetween is the energy the machine drew from from to to, in joules: the exact integral of
// its piecewise-constant draw. Time before its history begins (EnergySince) and after now
// counts nothing.
func (m *Machine) EnergyBetween(from, to time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var joules float64
	m.segments(from.UnixNano(), to.UnixNano(), func(watts float64, nanos int64) {
		joules += watts * float64(nanos) / 1e9
	})
	return joules
}

// drawStats is the machine's least, greatest and average draw over the window before now; m.mu
// is held. A window longer than the history is cut to it.
func (m *Machine) drawStats(window time.Duration) (least, most, average float64) {
	now := m.sim.now().UnixNano()
	least, most = math.Inf(1), math.Inf(-1)
	var weighted, nanos float64
	m.segments(now-window.Nanoseconds(), now, func(watts float64, n int64) {
		least, most = min(least, watts), max(most, watts)
		weighted += watts * float64(n)
		nanos += float64(n)
	})
	if nanos == 0 {
		w := m.drawNow()
		return w, w, w
	}
	return least, most, weighted / nanos
}

// segments calls f with each constant draw within [from, to) (Unix nanoseconds) and how long it
// lasted there, oldest first; m.mu is held.
func (m *Machine) segments(from, to int64, f func(watts float64, nanos int64)) {
	h := m.draws
	from = max(from, h[0].at)
	to = min(to, max(m.sim.now().UnixNano(), h[len(h)-1].at))
	if to <= from {
		return
	}
	// The change in force at from, and each one after it until to.
	i := sort.Search(len(h), func(k int) bool { return h[k].at > from }) - 1
	for t := from; t < to; i++ {
		end := to
		if i+1 < len(h) && h[i+1].at < to {
			end = h[i+1].at
		}
		f(h[i].watts, end-t)
		t = end
	}
}
