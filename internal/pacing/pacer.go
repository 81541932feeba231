// Package pacing spaces out power-ons across the whole manager, so that every machine of a site
// coming back from a power cut (or a large scale-up) does not draw its inrush current in the same
// second and trip a breaker.
//
// Two limits apply to every power-on command the manager sends: a rate (a token bucket: so many
// per second, with a burst) and, optionally, how many machines may boot at once (a machine boots
// from its power-on command until its Node is Ready, its attempt ends or its boot timeout passes).
// The pacer only delays commands; it records nothing. What it counts is rebuilt from the
// Machines' status (Track, from a first listing and then from every reconcile), so a restarted
// manager paces the machines already booting too.
package pacing

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
)

// Limits configure a Pacer. The zero value paces nothing.
type Limits struct {
	// PerSecond is how many power-ons may start per second; 0 is no limit.
	PerSecond float64
	// Burst is how many may start at once after a quiet period (at least 1 when PerSecond is set).
	Burst int
	// MaxBooting is how many machines may boot at once; 0 is no limit.
	MaxBooting int
}

// Pacer admits power-ons within Limits. It is safe for concurrent use.
type Pacer struct {
	limits Limits
	bucket *rate.Limiter

	mu sync.Mutex
	// booting maps each machine that boots to when its boot stops counting (its boot deadline).
	booting map[types.NamespacedName]time.Time
	// waiting counts Admit refusals, for the metric.
	refused uint64
}

// New returns a pacer for l.
func New(l Limits) *Pacer {
	p := &Pacer{limits: l, booting: map[types.NamespacedName]time.Time{}}
	if l.PerSecond > 0 {
		p.bucket = rate.NewLimiter(rate.Limit(l.PerSecond), max(1, l.Burst))
	}
	return p
}

// Admit asks to send a power-on command for machine key now; until is when its boot stops
// counting (the attempt's boot deadline). It returns 0 when the command may go (the machine is
// then counted as booting), or how long to wait before asking again.
func (p *Pacer) Admit(key types.NamespacedName, now, until time.Time) time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limits.MaxBooting > 0 {
		n, soonest := 0, time.Duration(math.MaxInt64)
		for k, end := range p.booting {
			if !now.Before(end) {
				delete(p.booting, k)
				continue
			}
			if k != key {
				n++
				soonest = min(soonest, end.Sub(now))
			}
		}
		if n >= p.limits.MaxBooting {
			p.refused++
			// A Ready Node ends a boot early, and its watch event does not reach the machines
			// waiting here: look again soon, and at the latest when the first boot times out.
			return min(soonest, time.Second)
		}
	}
	if p.bucket != nil {
		r := p.bucket.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			p.refused++
			return d
		}
	}
	p.booting[key] = until
	return 0
}

// Track records what a reconcile found: machine key boots until until, or (zero until) does
// not boot.
func (p *Pacer) Track(key types.NamespacedName, until time.Time) {
	if p == nil || p.limits.MaxBooting == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if until.IsZero() {
		delete(p.booting, key)
		return
	}
	p.booting[key] = until
}

// Booting is how many machines count as booting at now.
func (p *Pacer) Booting(now time.Time) int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, end := range p.booting {
		if now.Before(end) {
			n++
		}
	}
	return n
}

// Refused is how many times Admit asked a power-on to wait.
func (p *Pacer) Refused() uint64 {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}
