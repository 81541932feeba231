package optimistic

import (
	"flag"
	"testing"
	"time"
)

func TestBackoffDelayGrowsAndCaps(t *testing.T) {
	b := Backoff{Attempts: 10, Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond, Factor: 2, Jitter: 0}
	want := []time.Duration{0, 10, 20, 40, 80, 100, 100}
	for n, w := range want {
		if got := b.Delay(n); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	if got := b.Delay(5000); got != b.Cap {
		t.Errorf("Delay(5000) = %v, want the cap", got)
	}
}

func TestBackoffJitterStaysInRange(t *testing.T) {
	b := Backoff{Attempts: 3, Base: 100 * time.Millisecond, Cap: time.Second, Factor: 2, Jitter: 0.5}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := b.jittered(100 * time.Millisecond)
		if d < 50*time.Millisecond || d > 150*time.Millisecond {
			t.Fatalf("jittered delay %v outside ±50%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("jitter produced only %d distinct delays", len(seen))
	}
	if d := b.jittered(time.Second); d > b.Cap {
		t.Fatalf("jitter exceeded the cap: %v", d)
	}
}

func TestBackoffValidate(t *testing.T) {
	if err := DefaultBackoff().Validate(); err != nil {
		t.Fatalf("default backoff invalid: %v", err)
	}
	bad := []Backoff{
		{Attempts: 0, Base: 1, Cap: 1, Factor: 1},
		{Attempts: 1, Base: 2, Cap: 1, Factor: 1},
		{Attempts: 1, Base: 1, Cap: 1, Factor: 0.5},
		{Attempts: 1, Base: 1, Cap: 1, Factor: 1, Jitter: 2},
	}
	for _, b := range bad {
		if b.Validate() == nil {
			t.Errorf("%+v accepted", b)
		}
	}
}

func TestBackoffFlags(t *testing.T) {
	b := DefaultBackoff()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	b.BindFlags(fs, "write-retry-")
	err := fs.Parse([]string{"--write-retry-attempts=3", "--write-retry-base=20ms", "--write-retry-cap=2s",
		"--write-retry-factor=3", "--write-retry-jitter=0.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := Backoff{Attempts: 3, Base: 20 * time.Millisecond, Cap: 2 * time.Second, Factor: 3, Jitter: 0.1}
	if b != want {
		t.Fatalf("flags gave %+v, want %+v", b, want)
	}
}
