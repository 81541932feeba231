package sim_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

// meter is a driver that reads the power draw.
type meter interface {
	power.Driver
	power.Meter
}

// wantReading reads machine 0 through drv and fails unless the state and the draw are as
// wanted (want nil: no draw).
func wantReading(t *testing.T, drv meter, objs sim.Objects, state infrav1.PowerState, want *float64) {
	t.Helper()
	r, err := drv.Read(context.Background(), request(objs, 0, power.ActionStatus))
	if err != nil || r.State != state {
		t.Fatalf("read: %+v, %v; want %s", r, err, state)
	}
	switch {
	case want == nil && r.Watts != nil:
		t.Fatalf("read %v W, want no reading", *r.Watts)
	case want != nil && r.Watts == nil:
		t.Fatalf("read no draw, want %v W", *want)
	case want != nil && *r.Watts != *want:
		t.Fatalf("read %v W, want %v W", *r.Watts, *want)
	}
}

// costs is what one Status and one Read of machine 0 through drv cost in requests at its BMC.
func costs(t *testing.T, m *sim.Machine, objs sim.Objects, drv meter) (status, read int) {
	t.Helper()
	ctx := context.Background()
	before := m.Counters().Requests
	if _, err := drv.Status(ctx, request(objs, 0, power.ActionStatus)); err != nil {
		t.Fatal(err)
	}
	mid := m.Counters().Requests
	if _, err := drv.Read(ctx, request(objs, 0, power.ActionStatus)); err != nil {
		t.Fatal(err)
	}
	return mid - before, m.Counters().Requests - mid
}

// meterCycle powers machine 0 on through drv, sets its load, and checks each Read against what
// the machine serves (served turns its draw into the figure its BMC or plug reports; nil when it
// reports none). offDraw is what it draws off.
func meterCycle(t *testing.T, s *sim.Sim, objs sim.Objects, drv meter, served func(float64) *float64) {
	t.Helper()
	m := s.Machines()[0]
	wantReading(t, drv, objs, infrav1.PoweredOff, served(m.Watts()))
	if out, err := drv.Do(context.Background(), request(objs, 0, power.ActionOn)); err != nil || !out.Done {
		t.Fatalf("power on: %+v, %v", out, err)
	}
	wantReading(t, drv, objs, infrav1.PoweredOn, served(m.Watts()))
	idle := m.Watts()
	for _, load := range []float64{0.5, 1} {
		if err := m.SetLoad(load); err != nil {
			t.Fatal(err)
		}
		if m.Watts() <= idle {
			t.Fatalf("at load %v the machine draws %v W, no more than idle (%v W)", load, m.Watts(), idle)
		}
		wantReading(t, drv, objs, infrav1.PoweredOn, served(m.Watts()))
	}
}

func exactly(w float64) *float64 { return &w }

// The Redfish driver reads the draw each reading the BMC offers serves, in the same session as
// the power state: the chassis and one resource more than a status read.
func TestRedfishReadsDraw(t *testing.T) {
	t.Parallel()
	for _, readings := range sim.PowerReadingsChoices {
		t.Run(string(readings), func(t *testing.T) {
			t.Parallel()
			cfg := config(t)
			cfg.Machines = 1
			cfg.BootDelay = time.Hour
			cfg.WattsSpread = 0.2 // draws that are not round numbers
			cfg.PowerReadings = readings
			s, objs := start(t, cfg)
			m := s.Machines()[0]
			served := exactly
			extra := 2 // the chassis, and its Power or EnvironmentMetrics
			if readings == sim.PowerReadingsNone {
				served = func(float64) *float64 { return nil }
				extra = 1 // the chassis, which links to neither
			}
			status, read := costs(t, m, objs, power.Redfish{})
			if read != status+extra {
				t.Fatalf("a status read costs %d requests, a read with the draw %d; want %d more", status, read, extra)
			}
			t.Logf("%s: status %d requests, read %d", readings, status, read)
			meterCycle(t, s, objs, power.Redfish{}, served)
		})
	}
}

// The IPMI driver reads the DCMI power reading in the session of the chassis status: one command
// more. A BMC without DCMI answers "invalid command", which is no reading and no error.
func TestIPMIReadsDraw(t *testing.T) {
	t.Parallel()
	for _, readings := range []sim.PowerReadings{sim.PowerReadingsBoth, sim.PowerReadingsNone} {
		t.Run(string(readings), func(t *testing.T) {
			t.Parallel()
			cfg := config(t)
			cfg.Machines = 1
			cfg.Protocol = sim.ProtocolIPMI
			cfg.BootDelay = time.Hour
			cfg.WattsSpread = 0.2
			cfg.PowerReadings = readings
			s, objs := start(t, cfg)
			m := s.Machines()[0]
			served := func(w float64) *float64 { return exactly(float64(sim.DCMIWatts(w))) }
			if readings == sim.PowerReadingsNone {
				served = func(float64) *float64 { return nil }
			}
			status, read := costs(t, m, objs, power.IPMI{})
			if read != status+1 {
				t.Fatalf("a status read costs %d messages, a read with the draw %d; want one more", status, read)
			}
			t.Logf("%s: status %d messages, read %d", readings, status, read)
			meterCycle(t, s, objs, power.IPMI{}, served)
		})
	}
}

// ipmitool, an independent IPMI implementation, reads the simulated BMC's DCMI power reading.
func TestIPMIToolReadsDCMIPower(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.Protocol = sim.ProtocolIPMI
	cfg.BootDelay = time.Hour
	cfg.IdleWatts, cfg.LoadedWatts = 60, 160
	s := run(t, cfg)
	m := s.Machines()[0]
	m.Do(sim.CommandOn)
	if err := m.SetLoad(0.5); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(m.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ipmitool", "-I", "lanplus", "-H", host, "-p", port, "-U", m.Username, "-P", m.Password,
		"-C", "17", "-N", "1", "-R", "3", "dcmi", "power", "reading").CombinedOutput()
	if err != nil {
		t.Fatalf("ipmitool dcmi power reading: %v\n%s", err, out)
	}
	got := regexp.MustCompile(`Instantaneous power reading:\s+(\d+) Watts`).FindSubmatch(out)
	if got == nil || string(got[1]) != strconv.Itoa(110) || !regexp.MustCompile(`state is:\s+activated`).Match(out) {
		t.Fatalf("want 110 W, activated:\n%s", out)
	}
}

// The HTTP driver reads a smart plug's state and draw from one Switch.GetStatus answer, as the
// manifests configure it (preset ShellyGen2): a status read and a read with the draw cost one
// request each. The plug off, the machine draws nothing at all.
func TestHTTPReadsPlugDraw(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.Protocol = sim.ProtocolShelly
	cfg.BootDelay = time.Hour
	cfg.WattsSpread = 0.2
	s, objs := start(t, cfg)
	m := s.Machines()[0]
	if m.Watts() != 0 {
		t.Fatalf("a machine behind a plug that is off draws %v W", m.Watts())
	}
	status, read := costs(t, m, objs, power.HTTP{})
	if status != 1 || read != 1 {
		t.Fatalf("a status read costs %d requests, a read with the draw %d; want one each", status, read)
	}
	meterCycle(t, s, objs, power.HTTP{}, func(w float64) *float64 { return exactly(sim.PlugWatts(w)) })

	if out, err := (power.HTTP{}).Do(context.Background(), request(objs, 0, power.ActionOff)); err != nil || !out.Done {
		t.Fatalf("power off: %+v, %v", out, err)
	}
	wantReading(t, power.HTTP{}, objs, infrav1.PoweredOff, exactly(0))
}

// The Redfish BMC serves the chassis with the readings Config.PowerReadings names, and answers
// 404 for the others.
func TestRedfishPowerResources(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		readings           sim.PowerReadings
		power, environment bool
	}{
		{sim.PowerReadingsBoth, true, true},
		{sim.PowerReadingsPower, true, false},
		{sim.PowerReadingsEnvironment, false, true},
		{sim.PowerReadingsNone, false, false},
	} {
		t.Run(string(tc.readings), func(t *testing.T) {
			t.Parallel()
			cfg := config(t)
			cfg.Machines = 1
			cfg.PowerReadings = tc.readings
			s := run(t, cfg)
			m := s.Machines()[0]
			get := func(path string) (int, map[string]any) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, m.Endpoint()+path, nil) //nolint:noctx // loopback
				req.SetBasicAuth(m.Username, m.Password)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = resp.Body.Close() }()
				var out map[string]any
				if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
					t.Fatal(err)
				}
				return resp.StatusCode, out
			}
			_, root := get("/redfish/v1/")
			_, system := get("/redfish/v1/Systems/1")
			_, chassis := get("/redfish/v1/Chassis/1")
			if root["Chassis"] == nil || system["Links"] == nil || (chassis["Power"] != nil) != tc.power || (chassis["EnvironmentMetrics"] != nil) != tc.environment {
				t.Fatalf("service root links %v, system links %v, chassis %v", root["Chassis"], system["Links"], chassis)
			}
			code, p := get("/redfish/v1/Chassis/1/Power")
			if tc.power != (code == http.StatusOK) {
				t.Fatalf("Power: %d", code)
			}
			if tc.power {
				control := p["PowerControl"].([]any)[0].(map[string]any)
				if control["PowerConsumedWatts"] != 2.5 || control["PowerMetrics"].(map[string]any)["AverageConsumedWatts"] != 2.5 {
					t.Fatalf("PowerControl of a machine that is off: %v", control)
				}
			}
			code, e := get("/redfish/v1/Chassis/1/EnvironmentMetrics")
			if tc.environment != (code == http.StatusOK) {
				t.Fatalf("EnvironmentMetrics: %d", code)
			}
			if tc.environment && e["PowerWatts"].(map[string]any)["Reading"] != 2.5 {
				t.Fatalf("EnvironmentMetrics of a machine that is off: %v", e)
			}
		})
	}
}
