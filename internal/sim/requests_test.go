package sim_test

import (
	"context"
	"net/http"
	"testing"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

// A Redfish BMC counts every HTTP request it receives, served or refused, and a status read
// through the project's driver costs the same number of requests each time.
func TestRedfishBMCCountsEveryRequest(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	s, objs := start(t, cfg)
	m := s.Machines()[0]

	for _, path := range []string{"/redfish/v1", "/redfish/v1/Systems/1", "/redfish/v1/no-such-thing"} {
		resp, err := http.Get(m.Endpoint() + path) //nolint:noctx // loopback
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if got := m.Counters().Requests; got != 3 {
		t.Fatalf("after 3 requests (one served, one unauthorized, one unknown): %d counted", got)
	}

	perRead := statusReads(t, m, objs, power.Redfish{})
	// A read logs in, reads the system and logs out at least.
	if perRead < 3 {
		t.Fatalf("a Redfish status read counted %d requests", perRead)
	}
	if got := m.Report().Requests; got != m.Counters().Requests {
		t.Fatalf("the report says %d requests, the counters %d", got, m.Counters().Requests)
	}
}

// An IPMI BMC counts every message it receives: a status read through the project's driver (its
// RMCP+ session handshake, the command and the session's close) costs the same number each time.
func TestIPMIBMCCountsEveryMessage(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.Protocol = sim.ProtocolIPMI
	s, objs := start(t, cfg)
	m := s.Machines()[0]
	if got := m.Counters().Requests; got != 0 {
		t.Fatalf("%d messages counted before any was sent", got)
	}
	// Opening a session takes several messages before the command.
	if perRead := statusReads(t, m, objs, power.IPMI{}); perRead < 3 {
		t.Fatalf("an IPMI status read counted %d messages", perRead)
	}
}

// statusReads reads machine 0's power state twice through drv and returns the requests the BMC
// counted for each read, failing unless both reads cost the same.
func statusReads(t *testing.T, m *sim.Machine, objs sim.Objects, drv power.Driver) int {
	t.Helper()
	var costs []int
	for range 2 {
		before := m.Counters().Requests
		st, err := drv.Status(context.Background(), request(objs, 0, power.ActionStatus))
		if err != nil || st != infrav1.PoweredOff {
			t.Fatalf("status: %v, %v", st, err)
		}
		costs = append(costs, m.Counters().Requests-before)
	}
	if costs[0] != costs[1] {
		t.Fatalf("two status reads counted %d and %d requests", costs[0], costs[1])
	}
	t.Logf("%s: %d requests per status read", m.Name, costs[0])
	return costs[0]
}
