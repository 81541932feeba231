package sim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// A never-booting machine powers on (its BMC says On) but no Node ever registers; it
// powers off normally.
func TestNeverBoot(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.NeverBoot = []int{1}
	cfg.BootDelay = 200 * time.Millisecond
	s, objs := start(t, cfg)
	ctx := context.Background()
	good, stuck := s.Machines()[0], s.Machines()[1]

	for i := range 2 {
		if _, err := (power.Redfish{}).Do(ctx, request(objs, i, power.ActionOn)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the good machine's Node", func() bool { return env.Node(t, good.Name) != nil })
	testenv.Eventually(t, 5*time.Second, "the stuck machine to finish booting", func() bool { return stuck.Phase() == "Running" })
	// Give a late registration every chance to show up.
	time.Sleep(5 * cfg.BootDelay)
	if env.Node(t, stuck.Name) != nil {
		t.Fatal("a never-booting machine registered a Node")
	}
	if st, err := (power.Redfish{}).Status(ctx, request(objs, 1, power.ActionStatus)); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("the stuck machine's power: %v, %v; want on", st, err)
	}
	if _, err := (power.Redfish{}).Do(ctx, request(objs, 1, power.ActionOff)); err != nil {
		t.Fatal(err)
	}
	if stuck.PoweredOn() {
		t.Fatal("the stuck machine is still on")
	}
	if c := stuck.Counters(); c.Registrations != 0 || c.PowerOn != 1 || c.PowerOff != 1 {
		t.Fatalf("stuck machine counters: %+v", c)
	}
}

// A BMC in its error window answers 500 to everything, which the driver reports as a BMC error
// with the status code; after the window it works. The debug endpoint opens a window at any time.
func TestBMCErrorWindow(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	window := 3 * time.Second
	cfg.BMCErrors = []sim.Fault{{Index: 1, For: window}}
	beforeStart := time.Now()
	// Not applied: the window runs from the start, and the credentials come straight from the
	// simulator, so the first requests fall well inside it.
	s := run(t, cfg)
	objs := s.Objects()
	ctx := context.Background()
	call := func(i int, action power.Action) power.Request {
		req := request(objs, i, action)
		req.Secrets = staticSecrets{"username": s.Machines()[i].Username, "password": s.Machines()[i].Password}
		return req
	}

	_, err := power.Redfish{}.Status(ctx, call(1, power.ActionStatus))
	wantClass(t, err, power.ClassBMCError, "500")
	_, err = power.Redfish{}.Do(ctx, call(1, power.ActionOn))
	wantClass(t, err, power.ClassBMCError, "500")
	if st, err := (power.Redfish{}).Status(ctx, call(0, power.ActionStatus)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("the healthy machine: %v, %v", st, err)
	}
	testenv.Eventually(t, 3*window, "the error window to end", func() bool {
		_, err := power.Redfish{}.Status(ctx, call(1, power.ActionStatus))
		return err == nil
	})
	if took := time.Since(beforeStart); took < window {
		t.Fatalf("the BMC recovered %s after the start, before its %s window ended", took, window)
	}
	faulty := s.Machines()[1]
	if c := faulty.Counters(); c.FaultAnswers == 0 || c.PowerOn != 0 {
		t.Fatalf("counters: %+v; want fault answers and no command carried out", c)
	}

	debug := httptest.NewServer(s.DebugHandler())
	defer debug.Close()
	resp, err := http.Post(debug.URL+"/debug/machines/"+s.Machines()[0].Name+"/bmc-errors?for=1h", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("injecting a fault: %v, %v", resp, err)
	}
	_ = resp.Body.Close()
	_, err = power.Redfish{}.Status(ctx, call(0, power.ActionStatus))
	wantClass(t, err, power.ClassBMCError, "500")

	resp, err = http.Get(debug.URL + "/debug/counters")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var report struct{ Machines []sim.MachineReport }
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		t.Fatal(err)
	}
	if len(report.Machines) != 2 || report.Machines[0].FaultAnswers == 0 || report.Machines[1].Endpoint != faulty.Endpoint() {
		t.Fatalf("debug counters: %+v", report.Machines)
	}
}

// A simulator started again finds the machines whose Nodes are registered running: a
// machine keeps running while its BMC restarts.
func TestRestartAdoptsRunningMachines(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.BootDelay = 100 * time.Millisecond
	first, objs := start(t, cfg)
	ctx := context.Background()
	if _, err := (power.Redfish{}).Do(ctx, request(objs, 0, power.ActionOn)); err != nil {
		t.Fatal(err)
	}
	name := first.Machines()[0].Name
	testenv.Eventually(t, 10*time.Second, "the Node", func() bool { return env.Node(t, name) != nil })
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, objs := start(t, cfg)
	if !second.Machines()[0].PoweredOn() || second.Machines()[1].PoweredOn() {
		t.Fatal("after a restart, machine 0 should be on and machine 1 off")
	}
	if st, err := (power.Redfish{}).Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("status after the restart: %v, %v", st, err)
	}
	if _, err := (power.Redfish{}).Do(ctx, request(objs, 0, power.ActionOff)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the Node to go", func() bool { return env.Node(t, name) == nil })
}
