package pacing

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func key(i int) types.NamespacedName {
	return types.NamespacedName{Namespace: "ns", Name: fmt.Sprint("m", i)}
}

// Fifty machines asking at once after a site-wide cut, with a driven clock: no more than the
// burst goes in the first instant, then no more than the rate per second, and never more
// booting at once than MaxBooting; everyone is admitted in the end.
func TestPacerSpacesASiteWidePowerOn(t *testing.T) {
	p := New(Limits{PerSecond: 5, Burst: 10, MaxBooting: 20})
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	boot := 8 * time.Second
	admitted := map[int]time.Time{}
	for now := start; len(admitted) < 50; now = now.Add(100 * time.Millisecond) {
		if now.Sub(start) > time.Minute {
			t.Fatalf("only %d of 50 admitted after a minute", len(admitted))
		}
		for i := range 50 {
			if _, ok := admitted[i]; ok {
				continue
			}
			if p.Admit(key(i), now, now.Add(boot)) == 0 {
				admitted[i] = now
			}
		}
		if b := p.Booting(now); b > 20 {
			t.Fatalf("%d booting at %s, limit 20", b, now.Sub(start))
		}
	}
	first := 0
	for _, at := range admitted {
		if at.Equal(start) {
			first++
		}
	}
	if first != 10 {
		t.Errorf("%d admitted in the first instant, want the burst of 10", first)
	}
	// Any window of one second holds at most burst + rate admissions.
	for _, from := range admitted {
		n := 0
		for _, at := range admitted {
			if !at.Before(from) && at.Before(from.Add(time.Second)) {
				n++
			}
		}
		if n > 15 {
			t.Fatalf("%d admitted within a second from %s", n, from.Sub(start))
		}
	}
	if p.Refused() == 0 {
		t.Error("nothing was ever asked to wait")
	}
}

// A boot that ends (the Node is Ready: Track with a zero time) frees its place at once; a boot
// nobody reports ends by itself at its deadline.
func TestPacerBootsEndByTrackOrDeadline(t *testing.T) {
	p := New(Limits{MaxBooting: 1})
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if d := p.Admit(key(1), now, now.Add(time.Minute)); d != 0 {
		t.Fatalf("first admission waits %s", d)
	}
	if d := p.Admit(key(2), now, now.Add(time.Minute)); d == 0 {
		t.Fatal("second machine admitted while the first boots")
	}
	if d := p.Admit(key(1), now, now.Add(time.Minute)); d != 0 {
		t.Fatalf("the booting machine itself must be admitted again (its next attempt), waits %s", d)
	}
	p.Track(key(1), time.Time{})
	if d := p.Admit(key(2), now, now.Add(time.Minute)); d != 0 {
		t.Fatalf("admission after the first boot ended waits %s", d)
	}
	if d := p.Admit(key(3), now.Add(59*time.Second), now.Add(2*time.Minute)); d == 0 {
		t.Fatal("third admitted before the second boot's deadline")
	}
	if d := p.Admit(key(3), now.Add(time.Minute), now.Add(2*time.Minute)); d != 0 {
		t.Fatalf("third still waits %s after the second boot's deadline", d)
	}
}

// The zero Limits and a nil pacer admit everything.
func TestPacerWithoutLimits(t *testing.T) {
	now := time.Now()
	for _, p := range []*Pacer{nil, New(Limits{})} {
		for i := range 1000 {
			if d := p.Admit(key(i), now, now.Add(time.Minute)); d != 0 {
				t.Fatalf("admission %d waits %s", i, d)
			}
		}
	}
}
