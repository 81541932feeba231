package optimistic

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff says how often and how patiently a conflicting write is retried.
type Backoff struct {
	// Attempts is the most writes made for one call, the first included.
	Attempts int
	// Base is the wait after the first conflict.
	Base time.Duration
	// Cap bounds any single wait.
	Cap time.Duration
	// Factor multiplies the wait after each further conflict.
	Factor float64
	// Jitter spreads each wait uniformly over ±Jitter of its value (0 to 1), so that writers
	// which collided once do not collide again in lock-step.
	Jitter float64
}

// DefaultBackoff suits writers contending on one hot object (a Group under many concurrent
// cluster-autoscaler calls): 12 attempts waiting 5 ms, 10 ms, 20 ms ... capped at 1 s, about 4 s in
// all, inside cluster-autoscaler's 5 s call budget.
func DefaultBackoff() Backoff {
	return Backoff{Attempts: 12, Base: 5 * time.Millisecond, Cap: time.Second, Factor: 2, Jitter: 0.5}
}

// Validate reports a setting that cannot work.
func (b Backoff) Validate() error {
	var errs []error
	if b.Attempts < 1 {
		errs = append(errs, fmt.Errorf("attempts must be at least 1, got %d", b.Attempts))
	}
	if b.Base < 0 || b.Cap < 0 {
		errs = append(errs, errors.New("base and cap must not be negative"))
	}
	if b.Cap < b.Base {
		errs = append(errs, fmt.Errorf("cap %s must not be below base %s", b.Cap, b.Base))
	}
	if b.Factor < 1 {
		errs = append(errs, fmt.Errorf("factor must be at least 1, got %g", b.Factor))
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		errs = append(errs, fmt.Errorf("jitter must be between 0 and 1, got %g", b.Jitter))
	}
	return errors.Join(errs...)
}

// Delay is the wait after the given number of conflicts (1 for the first), before jitter.
func (b Backoff) Delay(conflicts int) time.Duration {
	if conflicts < 1 {
		return 0
	}
	d := float64(b.Base) * math.Pow(b.Factor, float64(conflicts-1))
	if d > float64(b.Cap) || math.IsInf(d, 0) || math.IsNaN(d) {
		return b.Cap
	}
	return time.Duration(d)
}

// jittered spreads d over [d·(1-Jitter), d·(1+Jitter)], never above Cap.
func (b Backoff) jittered(d time.Duration) time.Duration {
	if b.Jitter == 0 || d == 0 {
		return d
	}
	j := float64(d) * b.Jitter * (2*rand.Float64() - 1) //nolint:gosec // jitter needs no cryptographic randomness
	out := time.Duration(float64(d) + j)
	if out > b.Cap {
		out = b.Cap
	}
	if out < 0 {
		out = 0
	}
	return out
}

// BindFlags registers the backoff settings on fs under prefix (e.g. "write-retry-"), with b's
// values as defaults.
func (b *Backoff) BindFlags(fs *flag.FlagSet, prefix string) {
	fs.IntVar(&b.Attempts, prefix+"attempts", b.Attempts,
		"Most attempts of one optimistic write (the first included) before it fails with a conflict error.")
	fs.DurationVar(&b.Base, prefix+"base", b.Base, "Wait after the first write conflict.")
	fs.DurationVar(&b.Cap, prefix+"cap", b.Cap, "Longest wait between two attempts of one write.")
	fs.Float64Var(&b.Factor, prefix+"factor", b.Factor, "Growth of the wait after each further conflict.")
	fs.Float64Var(&b.Jitter, prefix+"jitter", b.Jitter, "Random spread of each wait, as a fraction of it (0 to 1).")
}
