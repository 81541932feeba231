package sim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// plugCall sends one Shelly Gen2 RPC to machine m's plug and decodes the answer.
func plugCall(t *testing.T, m *sim.Machine, method, path, body, auth string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, m.Endpoint()+path, r) //nolint:noctx // loopback
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s answered %d with a body that is not a JSON object: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// A machine behind a smart plug: the plug answers Shelly's Gen2 Switch.GetStatus and Switch.Set
// (by GET with a query, or POST with JSON), wants its token, switching it on boots the machine,
// switching it off cuts the machine's power at once, and off it draws nothing.
func TestPlugSwitchesMachine(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.Protocol = sim.ProtocolShelly
	cfg.BootDelay = 300 * time.Millisecond
	s := run(t, cfg)
	m := s.Machines()[0]
	auth := m.PlugAuthorization()
	get := func(path string) (int, map[string]any) { return plugCall(t, m, http.MethodGet, path, "", auth) }

	if code, _ := plugCall(t, m, http.MethodGet, "/rpc/Switch.GetStatus?id=0", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("status without the token: %d", code)
	}
	if code, _ := plugCall(t, m, http.MethodGet, "/rpc/Switch.Set?id=0&on=true", "", "Bearer not-"+m.Password); code != http.StatusUnauthorized || m.PoweredOn() {
		t.Fatalf("switching with a wrong token: %d, machine on %t", code, m.PoweredOn())
	}
	code, st := get("/rpc/Switch.GetStatus?id=0")
	if code != http.StatusOK || st["id"] != 0.0 || st["output"] != false || st["apower"] != 0.0 {
		t.Fatalf("status of a plug that is off: %d %v", code, st)
	}

	// Power returns: the machine boots and registers its Node.
	if code, out := get("/rpc/Switch.Set?id=0&on=true"); code != http.StatusOK || out["was_on"] != false {
		t.Fatalf("switching on: %d %v", code, out)
	}
	if !m.PoweredOn() || !m.PlugOn() || m.Phase() != "Booting" {
		t.Fatalf("after switching on: plug %t, phase %s", m.PlugOn(), m.Phase())
	}
	testenv.Eventually(t, 10*time.Second, "the Node", func() bool { return env.Node(t, m.Name) != nil })
	if err := m.SetLoad(1); err != nil {
		t.Fatal(err)
	}
	_, st = get("/rpc/Switch.GetStatus?id=0")
	if st["output"] != true || st["apower"] != 120.0 || st["voltage"] != 230.0 {
		t.Fatalf("status of a plug that is on: %v", st)
	}

	// On again: counted, changes nothing.
	if code, out := plugCall(t, m, http.MethodPost, "/rpc/Switch.Set", `{"id":0,"on":true}`, auth); code != http.StatusOK || out["was_on"] != true {
		t.Fatalf("switching on again by POST: %d %v", code, out)
	}
	if m.Phase() != "Running" {
		t.Fatalf("a second switch-on changed the machine: %s", m.Phase())
	}

	// The power button does nothing without power; with the plug off, the machine is off at once.
	if code, out := get("/rpc/Switch.Set?id=0&on=false"); code != http.StatusOK || out["was_on"] != true {
		t.Fatalf("switching off: %d %v", code, out)
	}
	if m.PoweredOn() || m.PlugOn() || m.Watts() != 0 {
		t.Fatalf("after switching off: on %t, plug %t, %v W", m.PoweredOn(), m.PlugOn(), m.Watts())
	}
	// The simulator counts the deregistration once the deletion it sent has returned, a moment
	// after the Node is gone.
	testenv.Eventually(t, 5*time.Second, "the Node to go", func() bool {
		return env.Node(t, m.Name) == nil && m.Counters().Deregistrations == 1
	})
	m.PressPowerButton()
	if m.PoweredOn() {
		t.Fatal("the power button booted a machine whose plug is off")
	}
	c := m.Counters()
	if c.PowerOn != 2 || c.PowerOff != 1 || c.Commands[sim.CommandForceOff] != 1 || c.ButtonPresses != 0 || c.Registrations != 1 || c.Deregistrations != 1 {
		t.Fatalf("counters: %+v", c)
	}

	// A power cut behind the plug: the machine is off, the plug on, and the standby draw flows.
	get("/rpc/Switch.Set?id=0&on=true")
	m.CutPower(sim.NodeGone)
	_, st = get("/rpc/Switch.GetStatus?id=0")
	if m.PoweredOn() || st["output"] != true || st["apower"] != 2.5 {
		t.Fatalf("after a power cut behind the plug: on %t, status %v", m.PoweredOn(), st)
	}

	for _, bad := range []struct{ method, path, body string }{
		{http.MethodGet, "/rpc/Switch.GetStatus?id=1", ""},
		{http.MethodGet, "/rpc/Switch.GetStatus", ""},
		{http.MethodGet, "/rpc/Switch.Set?id=0&on=maybe", ""},
		{http.MethodGet, "/rpc/Switch.Set?id=0", ""},
		{http.MethodPost, "/rpc/Switch.Set", `{"id":0,"on":`},
		{http.MethodPut, "/rpc/Switch.Set?id=0&on=true", ""},
	} {
		if code, out := plugCall(t, m, bad.method, bad.path, bad.body, auth); code != http.StatusBadRequest || out["message"] == nil {
			t.Errorf("%s %s %s: %d %v, want 400 with a message", bad.method, bad.path, bad.body, code, out)
		}
	}
	if code, _ := get("/rpc/Switch.Toggle?id=0"); code != http.StatusNotFound {
		t.Fatalf("an RPC method the plug does not have: %d", code)
	}

	// An injected fault: the plug is busy.
	m.FailBMCFor(time.Hour)
	if code, _ := get("/rpc/Switch.GetStatus?id=0"); code != http.StatusInternalServerError {
		t.Fatalf("status during a fault: %d", code)
	}
	if report := m.Report(); report.PlugOn == nil || !*report.PlugOn {
		t.Fatalf("report: plug %v", report.PlugOn)
	}
}
