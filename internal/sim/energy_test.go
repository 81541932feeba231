package sim_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// clocked runs a simulator whose draw history follows a clock that starts at t0.
func clocked(t *testing.T, cfg sim.Config, log *slog.Logger, t0 time.Time) (*sim.Sim, *clocktesting.FakeClock) {
	t.Helper()
	s, err := sim.New(cfg, env.Client, log)
	if err != nil {
		t.Fatal(err)
	}
	c := clocktesting.NewFakeClock(t0)
	s.SetClock(c.Now)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, c
}

// The energy a machine drew is the exact integral of its draw over a scripted day of power and
// load changes, over any interval, and the debug endpoint answers the same.
func TestEnergyBetweenIsExact(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	// The boot never completes: its end changes nothing about the draw, and the script's clock
	// is not the timers'.
	cfg.BootDelay = time.Hour
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s, c := clocked(t, cfg, testenv.TestLogger(t, "simulator"), t0)
	m := s.Machines()[0]
	at := func(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }
	wantWatts := func(want float64) {
		t.Helper()
		if got := m.Watts(); got != want {
			t.Fatalf("at %s the machine draws %v W, want %v", c.Now().Sub(t0), got, want)
		}
	}

	wantWatts(2.5) // off: standby
	c.SetTime(at(10))
	m.Do(sim.CommandOn)
	wantWatts(45) // booting, idle
	c.SetTime(at(70))
	if err := m.SetLoad(0.5); err != nil {
		t.Fatal(err)
	}
	wantWatts(82.5)
	c.SetTime(at(130))
	if err := m.SetLoad(1); err != nil {
		t.Fatal(err)
	}
	wantWatts(120)
	c.SetTime(at(190))
	m.Do(sim.CommandForceOff)
	wantWatts(2.5)
	c.SetTime(at(250))
	if err := m.SetLoad(0); err != nil {
		t.Fatal(err)
	}
	wantWatts(2.5) // the load counts only while the machine is on
	c.SetTime(at(300))

	for _, tc := range []struct {
		from, to time.Time
		joules   float64
	}{
		{at(0), at(300), 2.5*10 + 45*60 + 82.5*60 + 120*60 + 2.5*110},
		{at(40), at(160), 45*30 + 82.5*60 + 120*30},
		{at(70), at(130), 82.5 * 60},
		{at(75), at(75), 0},
		{at(100), at(90), 0},
		// Before the history begins nothing counts, nor after now.
		{t0.Add(-time.Hour), at(10), 2.5 * 10},
		{at(290), at(3600), 2.5 * 10},
		{at(130).Add(250 * time.Millisecond), at(130).Add(750 * time.Millisecond), 120 * 0.5},
	} {
		if got := m.EnergyBetween(tc.from, tc.to); got != tc.joules {
			t.Errorf("EnergyBetween(%s, %s) = %v J, want %v", tc.from.Sub(t0), tc.to.Sub(t0), got, tc.joules)
		}
	}
	if since := m.EnergySince(); !since.Equal(t0) {
		t.Fatalf("the history begins at %s, want %s", since, t0)
	}

	srv := httptest.NewServer(s.DebugHandler())
	defer srv.Close()
	var report sim.EnergyReport
	q := url.Values{"from": {at(40).Format(time.RFC3339Nano)}, "to": {at(160).Format(time.RFC3339Nano)}}
	getJSON(t, srv.URL+"/debug/machines/"+m.Name+"/energy?"+q.Encode(), &report)
	if report.Joules != 45*30+82.5*60+120*30 || report.Watts != 2.5 || !report.From.Equal(at(40)) || !report.To.Equal(at(160)) || !report.Since.Equal(t0) {
		t.Fatalf("energy report: %+v", report)
	}
	getJSON(t, srv.URL+"/debug/machines/"+m.Name+"/energy", &report)
	if report.Joules != 2.5*10+45*60+82.5*60+120*60+2.5*110 || !report.From.Equal(t0) || !report.To.Equal(at(300)) {
		t.Fatalf("energy report over the whole history: %+v", report)
	}
	for _, bad := range []string{"/energy?from=yesterday", "/energy?from=" + url.QueryEscape(at(20).Format(time.RFC3339)) + "&to=" + url.QueryEscape(at(10).Format(time.RFC3339))} {
		if code := statusOf(t, http.MethodGet, srv.URL+"/debug/machines/"+m.Name+bad); code != http.StatusBadRequest {
			t.Fatalf("GET %s: %d, want 400", bad, code)
		}
	}
	if code := statusOf(t, http.MethodGet, srv.URL+"/debug/machines/nobody/energy"); code != http.StatusNotFound {
		t.Fatalf("energy of an unknown machine: %d", code)
	}
}

// The load is set from Go and from the debug endpoint; a load outside 0..1 is refused.
func TestSetLoad(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.BootDelay = time.Hour
	cfg.IdleWatts, cfg.LoadedWatts = 50, 150
	s := run(t, cfg)
	m := s.Machines()[0]
	m.Do(sim.CommandOn)
	srv := httptest.NewServer(s.DebugHandler())
	defer srv.Close()

	if code := statusOf(t, http.MethodPost, srv.URL+"/debug/machines/"+m.Name+"/load?fraction=0.25"); code != http.StatusNoContent {
		t.Fatalf("set load: %d", code)
	}
	if m.Load() != 0.25 || m.Watts() != 75 {
		t.Fatalf("load %v, draw %v W; want 0.25 and 75", m.Load(), m.Watts())
	}
	var report sim.MachineReport
	getJSON(t, srv.URL+"/debug/machines/"+m.Name, &report)
	if report.Load != 0.25 || report.Watts != 75 || report.PlugOn != nil {
		t.Fatalf("report: load %v, watts %v, plug %v", report.Load, report.Watts, report.PlugOn)
	}
	for _, bad := range []string{"1.5", "-0.1", "NaN", "half", ""} {
		if code := statusOf(t, http.MethodPost, srv.URL+"/debug/machines/"+m.Name+"/load?fraction="+bad); code != http.StatusBadRequest {
			t.Fatalf("load %q: %d, want 400", bad, code)
		}
	}
	if err := m.SetLoad(2); err == nil || m.Load() != 0.25 {
		t.Fatalf("SetLoad(2): %v, load now %v", err, m.Load())
	}
}

// Over a long soak the history keeps every change it needs: hours of load changes every second
// are integrated exactly. Past its bound, the oldest half goes, and what is kept is still exact.
func TestEnergyHistoryOverALongSoak(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.BootDelay = time.Hour
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	s, c := clocked(t, cfg, slog.New(slog.DiscardHandler), t0)
	m := s.Machines()[0]
	m.Do(sim.CommandOn)

	// Every second the load flips between idle (45 W) and full (120 W): six hours of it.
	const soak = 6 * 3600
	for i := 1; i <= soak; i++ {
		c.SetTime(t0.Add(time.Duration(i) * time.Second))
		if err := m.SetLoad(float64(i % 2)); err != nil {
			t.Fatal(err)
		}
	}
	// Second i..i+1 is drawn at the load set at i: 45 W for even i (0 included), 120 W for odd.
	want := float64(45*soak/2 + 120*soak/2)
	end := t0.Add(soak * time.Second)
	if got := m.EnergyBetween(t0, end); got != want {
		t.Fatalf("six hours: %v J, want %v", got, want)
	}
	if got := m.EnergyBetween(t0.Add(time.Hour+500*time.Millisecond), t0.Add(2*time.Hour)); got != 45*0.5+(45+120)*1799+120 {
		t.Fatalf("one hour in the middle: %v J", got)
	}

	// Far more changes than the history holds: it forgets the oldest, never the recent ones.
	for i := soak + 1; i <= 80000; i++ {
		c.SetTime(t0.Add(time.Duration(i) * time.Second))
		if err := m.SetLoad(float64(i % 2)); err != nil {
			t.Fatal(err)
		}
	}
	since := m.EnergySince()
	if !since.After(t0) || m.DrawChanges() > 1<<16 {
		t.Fatalf("after 80000 changes: %d kept, history from %s", m.DrawChanges(), since.Sub(t0))
	}
	last := t0.Add(80000 * time.Second)
	if got := m.EnergyBetween(last.Add(-10*time.Second), last); got != 5*45+5*120 {
		t.Fatalf("the last ten seconds: %v J", got)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u) //nolint:noctx // loopback
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func statusOf(t *testing.T, method, u string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, nil) //nolint:noctx // loopback
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
