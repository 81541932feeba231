package sim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// A hung BMC holds requests until the driver's timeout: the command in a request the client gave
// up on is never carried out. When the window ends, the BMC answers again.
func TestBMCHang(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.BMCFaults = []sim.Fault{{Index: 0, For: time.Hour, Kind: sim.FaultHang}}
	s, objs := start(t, cfg)
	m := s.Machines()[0]

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := (power.Redfish{}).Do(ctx, request(objs, 0, power.ActionOn)); err == nil {
		t.Fatal("a power-on through a hung BMC succeeded")
	}
	if c := m.Counters(); c.PowerOn != 0 || c.Faults[sim.FaultHang] == 0 || m.PoweredOn() {
		t.Fatalf("counters after a hung request: %+v, powered on %v", c, m.PoweredOn())
	}
	if err := m.InjectFault(sim.FaultHang, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := (power.Redfish{}).Do(context.Background(), request(objs, 0, power.ActionOn)); err != nil {
		t.Fatal(err)
	}
	if c := m.Counters(); c.PowerOn != 1 || !m.PoweredOn() {
		t.Fatalf("counters after the window: %+v", c)
	}
}

// A lying BMC reports the opposite power state while its commands still work; a garbage BMC
// answers 200 with a body that is not JSON, which the driver reports as an error, never as a
// power state.
func TestBMCLiesAndGarbage(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	s, objs := start(t, cfg)
	ctx := context.Background()
	debug := httptest.NewServer(s.DebugHandler())
	defer debug.Close()
	inject := func(name string, kind sim.FaultKind, d string) {
		t.Helper()
		resp, err := http.Post(debug.URL+"/debug/machines/"+name+"/faults?kind="+string(kind)+"&for="+d, "", nil)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("injecting %s: %v, %v", kind, resp, err)
		}
		_ = resp.Body.Close()
	}

	liar, garbage := s.Machines()[0], s.Machines()[1]
	inject(liar.Name, sim.FaultLie, "1h")
	if st, err := (power.Redfish{}).Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("a lying BMC of a machine that is off: %v, %v; want it to say on", st, err)
	}
	if liar.PoweredOn() || liar.Counters().Faults[sim.FaultLie] == 0 {
		t.Fatalf("the liar: on %v, counters %+v", liar.PoweredOn(), liar.Counters())
	}
	inject(liar.Name, sim.FaultLie, "0s")
	if st, err := (power.Redfish{}).Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("after the window: %v, %v", st, err)
	}

	inject(garbage.Name, sim.FaultGarbage, "1h")
	if st, err := (power.Redfish{}).Status(ctx, request(objs, 1, power.ActionStatus)); err == nil {
		t.Fatalf("a garbage answer read as %v", st)
	}
	if c := garbage.Counters(); c.Faults[sim.FaultGarbage] == 0 || c.PowerOn != 0 {
		t.Fatalf("garbage counters: %+v", c)
	}

	resp, err := http.Post(debug.URL+"/debug/machines/"+liar.Name+"/faults?kind=melt&for=1s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an unknown fault kind: %s", resp.Status)
	}
}

// A late machine registers its Node the late-boot delay after the boot delay, every boot.
func TestLateBoot(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.BootDelay = 100 * time.Millisecond
	late := 1500 * time.Millisecond
	cfg.LateBoot = []sim.Fault{{Index: 1, For: late}}
	s, objs := start(t, cfg)
	ctx := context.Background()
	for i := range 2 {
		if _, err := (power.Redfish{}).Do(ctx, request(objs, i, power.ActionOn)); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now()
	testenv.Eventually(t, 10*time.Second, "the punctual machine's Node", func() bool { return env.Node(t, s.Machines()[0].Name) != nil })
	if env.Node(t, s.Machines()[1].Name) != nil {
		t.Fatal("the late machine registered with the punctual one")
	}
	testenv.Eventually(t, 10*time.Second, "the late machine's Node", func() bool { return env.Node(t, s.Machines()[1].Name) != nil })
	if took := time.Since(started); took < late-200*time.Millisecond {
		t.Fatalf("the late machine registered %s after power-on, before its delay of %s", took, late)
	}
}

// A flapping machine's Node alternates between Ready and NotReady, written by the
// simulator, then is handed to kwok (annotated), which keeps it Ready.
func TestFlap(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.BootDelay = 100 * time.Millisecond
	cfg.Flap = []sim.Fault{{Index: 0, For: 2 * time.Second}}
	s, objs := start(t, cfg)
	m := s.Machines()[0]
	if _, err := (power.Redfish{}).Do(context.Background(), request(objs, 0, power.ActionOn)); err != nil {
		t.Fatal(err)
	}
	seen := map[corev1.ConditionStatus]bool{}
	testenv.Eventually(t, 10*time.Second, "the Node to be Ready and NotReady in turn, then handed to kwok", func() bool {
		core := env.Node(t, m.Name)
		if core == nil {
			return false
		}
		for _, c := range core.Status.Conditions {
			if c.Type == corev1.NodeReady {
				seen[c.Status] = true
			}
		}
		return core.Annotations[sim.KwokNodeAnnotation] == "fake"
	})
	if !seen[corev1.ConditionTrue] || !seen[corev1.ConditionFalse] || m.Counters().Flaps < 2 {
		t.Fatalf("seen %v, flaps %d", seen, m.Counters().Flaps)
	}
}
