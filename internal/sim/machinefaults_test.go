package sim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Machine faults that bypass the BMC, with kwok keeping the registered Nodes Ready, for both BMC
// protocols. Not parallel with the other tests: kwok manages every annotated Node in the
// cluster, theirs too.
func TestMachineFaults(t *testing.T) {
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.StartKwok(t, kubeconfig)
	for _, b := range []struct {
		protocol sim.Protocol
		driver   power.Driver
	}{{sim.ProtocolRedfish, power.Redfish{}}, {sim.ProtocolIPMI, power.IPMI{}}} {
		t.Run("power cut/"+string(b.protocol), func(t *testing.T) {
			t.Parallel()
			testPowerCut(t, b.protocol, b.driver)
		})
		t.Run("power button/"+string(b.protocol), func(t *testing.T) {
			t.Parallel()
			testPowerButton(t, b.protocol, b.driver)
		})
		t.Run("kubelet hang/"+string(b.protocol), func(t *testing.T) {
			t.Parallel()
			testKubeletHang(t, b.protocol, b.driver)
		})
	}
	t.Run("from the command line", func(t *testing.T) {
		t.Parallel()
		testFaultsFromConfig(t)
	})
	t.Run("debug endpoint", func(t *testing.T) {
		t.Parallel()
		testFaultEndpoints(t)
	})
}

// A power cut turns the machine off with no BMC command: its BMC says Off, and its Node stays
// NotReady (kwok no longer sets it Ready) or is gone. Powered on again through the BMC, each
// machine registers one Ready Node with its name and provider ID.
func testPowerCut(t *testing.T, protocol sim.Protocol, drv power.Driver) {
	cfg := config(t)
	cfg.Protocol = protocol
	cfg.BootDelay = 200 * time.Millisecond
	s, objs := start(t, cfg)
	ctx := context.Background()
	stays, gone := s.Machines()[0], s.Machines()[1]
	for i := range 2 {
		powerOn(t, drv, objs, i)
	}
	before := waitReady(t, stays.Name)
	waitReady(t, gone.Name)

	stays.CutPower(sim.NodeNotReady)
	gone.CutPower(sim.NodeGone)
	for i := range 2 {
		wantPower(t, drv, objs, i, infrav1.PoweredOff)
	}
	if core := waitNotReady(t, stays.Name); core.UID != before.UID {
		t.Fatal("the power cut replaced the Node instead of leaving it NotReady")
	}
	testenv.Eventually(t, 5*time.Second, "the Node of the machine cut with node=gone to go", func() bool { return env.Node(t, gone.Name) == nil })
	// Give kwok every chance to set the Node Ready again.
	time.Sleep(time.Second)
	if core := env.Node(t, stays.Name); readyOf(core) != corev1.ConditionUnknown {
		t.Fatalf("the NotReady Node of a machine without power became %s", readyOf(core))
	}
	for _, m := range s.Machines() {
		if c := m.Counters(); c.PowerCuts != 1 || c.PowerOn != 1 || c.PowerOff != 0 || len(c.History) != 1 || m.PoweredOn() {
			t.Fatalf("%s after the cut: on %v, counters %+v", m.Name, m.PoweredOn(), c)
		}
	}
	// Cutting a machine that is off changes nothing.
	stays.CutPower(sim.NodeGone)
	if c := stays.Counters(); c.PowerCuts != 1 || env.Node(t, stays.Name) == nil {
		t.Fatalf("a cut of a machine already off: counters %+v, Node there %v", c, env.Node(t, stays.Name) != nil)
	}

	// A heartbeat kwok scheduled before it let go of the Node sets it Ready: the machine looks
	// again and marks it NotReady.
	core := env.Node(t, stays.Name)
	for i, c := range core.Status.Conditions {
		if c.Type == corev1.NodeReady {
			core.Status.Conditions[i].Status, core.Status.Conditions[i].Reason = corev1.ConditionTrue, "KubeletReady"
		}
	}
	if err := env.Client.Status().Update(ctx, core); err != nil {
		t.Fatal(err)
	}
	stays.RecheckNotReady()
	waitNotReady(t, stays.Name)

	for i := range 2 {
		powerOn(t, drv, objs, i)
	}
	for _, m := range s.Machines() {
		if core := waitReady(t, m.Name); core.Spec.ProviderID != m.ProviderID {
			t.Fatalf("%s's Node after the power-on: providerID %q", m.Name, core.Spec.ProviderID)
		}
		if c := m.Counters(); c.PowerOn != 2 || c.PowerCuts != 1 {
			t.Fatalf("%s's counters after the power-on: %+v", m.Name, c)
		}
	}
	if core := env.Node(t, stays.Name); core.UID != before.UID {
		t.Fatal("the Node the cut left was replaced instead of made Ready again")
	}
	if c := stays.Counters(); c.Registrations != 1 {
		t.Fatalf("the Node the cut left was registered again: %+v", c)
	}
}

// A press on the power button boots an off machine as a BMC power-on does, with no BMC command;
// a press on a machine that is on changes nothing.
func testPowerButton(t *testing.T, protocol sim.Protocol, drv power.Driver) {
	cfg := config(t)
	cfg.Protocol = protocol
	cfg.Machines = 1
	cfg.BootDelay = 200 * time.Millisecond
	s, objs := start(t, cfg)
	m := s.Machines()[0]

	m.PressPowerButton()
	wantPower(t, drv, objs, 0, infrav1.PoweredOn)
	if core := waitReady(t, m.Name); core.Spec.ProviderID != m.ProviderID {
		t.Fatalf("providerID %q", core.Spec.ProviderID)
	}
	m.PressPowerButton()
	if c := m.Counters(); c.ButtonPresses != 1 || c.PowerOn != 0 || len(c.History) != 0 || c.Registrations != 1 || m.Phase() != "Running" {
		t.Fatalf("after two presses: phase %s, counters %+v", m.Phase(), c)
	}
	if _, err := drv.Do(context.Background(), request(objs, 0, power.ActionOff)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the Node to go", func() bool { return env.Node(t, m.Name) == nil })
	if c := m.Counters(); c.PowerOff != 1 || c.PowerOn != 0 {
		t.Fatalf("after the power-off: %+v", c)
	}
}

// A hung kubelet leaves the machine on and its Node NotReady. A power cycle ends a hang that is
// not sticky; a sticky one hangs every boot until ClearFaults.
func testKubeletHang(t *testing.T, protocol sim.Protocol, drv power.Driver) {
	cfg := config(t)
	cfg.Protocol = protocol
	cfg.Machines = 1
	cfg.BootDelay = 200 * time.Millisecond
	s, objs := start(t, cfg)
	m := s.Machines()[0]
	powerOn(t, drv, objs, 0)
	before := waitReady(t, m.Name)

	m.HangKubelet(false)
	wantPower(t, drv, objs, 0, infrav1.PoweredOn)
	if core := waitNotReady(t, m.Name); core.UID != before.UID {
		t.Fatal("the hang replaced the Node")
	}
	time.Sleep(time.Second)
	if core := env.Node(t, m.Name); readyOf(core) != corev1.ConditionUnknown {
		t.Fatalf("a hung kubelet's Node became %s", readyOf(core))
	}
	powerCycle(t, drv, objs, m)
	waitReady(t, m.Name)
	if hung, _ := m.KubeletHang(); hung {
		t.Fatal("the power cycle did not end the hang")
	}

	m.HangKubelet(true)
	waitNotReady(t, m.Name)
	powerCycle(t, drv, objs, m)
	wantPower(t, drv, objs, 0, infrav1.PoweredOn)
	waitNotReady(t, m.Name)
	time.Sleep(time.Second)
	if core := env.Node(t, m.Name); readyOf(core) != corev1.ConditionUnknown {
		t.Fatalf("a sticky hang's Node became %s after the reboot", readyOf(core))
	}
	m.ClearFaults()
	waitReady(t, m.Name)
	if c := m.Counters(); c.KubeletHangs != 2 || c.PowerOn != 3 || c.PowerOff != 2 || c.Registrations != 3 {
		t.Fatalf("counters: %+v", c)
	}
}

// --power-cut cuts a machine once, after it first runs; --power-button boots one with no BMC
// command; --kubelet-hang hangs one on every boot.
func testFaultsFromConfig(t *testing.T) {
	cfg := config(t)
	cfg.Machines = 3
	cfg.BootDelay = 200 * time.Millisecond
	cfg.PowerCut = []sim.Fault{{Index: 0, For: 300 * time.Millisecond}}
	cfg.PowerButton = []sim.Fault{{Index: 1, For: 100 * time.Millisecond}}
	cfg.KubeletHang = []int{2}
	s, objs := start(t, cfg)
	drv := power.Redfish{}
	cut, pressed, hung := s.Machines()[0], s.Machines()[1], s.Machines()[2]

	waitReady(t, pressed.Name)
	if c := pressed.Counters(); c.ButtonPresses != 1 || c.PowerOn != 0 {
		t.Fatalf("the pressed machine: %+v", c)
	}

	powerOn(t, drv, objs, 0)
	testenv.Eventually(t, 10*time.Second, "the power cut", func() bool { return cut.Counters().PowerCuts == 1 })
	wantPower(t, drv, objs, 0, infrav1.PoweredOff)
	waitNotReady(t, cut.Name)
	powerOn(t, drv, objs, 0)
	waitReady(t, cut.Name)
	// The cut follows the first boot only.
	time.Sleep(time.Second)
	if c := cut.Counters(); c.PowerCuts != 1 || !cut.PoweredOn() {
		t.Fatalf("after the second boot: on %v, counters %+v", cut.PoweredOn(), c)
	}

	if h, sticky := hung.KubeletHang(); !h || !sticky || hung.Counters().KubeletHangs != 1 {
		t.Fatalf("--kubelet-hang machine: hung %v, sticky %v", h, sticky)
	}
	powerOn(t, drv, objs, 2)
	waitNotReady(t, hung.Name)
	powerCycle(t, drv, objs, hung)
	waitNotReady(t, hung.Name)
	hung.ClearFaults()
	waitReady(t, hung.Name)
}

// The debug endpoint injects the machine faults and reports them; bad parameters get 400 and
// unknown machines 404.
func testFaultEndpoints(t *testing.T) {
	cfg := config(t)
	cfg.BootDelay = 200 * time.Millisecond
	s, objs := start(t, cfg)
	drv := power.Redfish{}
	debug := httptest.NewServer(s.DebugHandler())
	defer debug.Close()
	post := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Post(debug.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	pressed, other := s.Machines()[0], s.Machines()[1]

	for _, tc := range []struct {
		path    string
		code    int
		mention string
	}{
		{"/debug/machines/" + pressed.Name + "/power-cut?node=melted", http.StatusBadRequest, "not-ready or gone"},
		{"/debug/power-cut?node=melted", http.StatusBadRequest, "not-ready or gone"},
		{"/debug/machines/" + pressed.Name + "/kubelet-hang?sticky=maybe", http.StatusBadRequest, "sticky=true"},
		{"/debug/machines/nosuch/power-cut", http.StatusNotFound, "no such machine"},
		{"/debug/machines/nosuch/power-button", http.StatusNotFound, "no such machine"},
		{"/debug/machines/nosuch/kubelet-hang", http.StatusNotFound, "no such machine"},
		{"/debug/machines/nosuch/clear-faults", http.StatusNotFound, "no such machine"},
	} {
		if code, body := post(tc.path); code != tc.code || !strings.Contains(body, tc.mention) {
			t.Errorf("POST %s: %d %q, want %d mentioning %q", tc.path, code, body, tc.code, tc.mention)
		}
	}
	if pressed.PoweredOn() || pressed.Counters().KubeletHangs != 0 {
		t.Fatal("a refused request changed the machine")
	}

	if code, _ := post("/debug/machines/" + pressed.Name + "/power-button"); code != http.StatusNoContent {
		t.Fatalf("power-button: %d", code)
	}
	waitReady(t, pressed.Name)
	powerOn(t, drv, objs, 1)
	waitReady(t, other.Name)

	if code, _ := post("/debug/machines/" + other.Name + "/kubelet-hang?sticky=true"); code != http.StatusNoContent {
		t.Fatalf("kubelet-hang: %d", code)
	}
	waitNotReady(t, other.Name)
	if r := other.Report(); !r.KubeletHung || !r.KubeletHangSticky || r.KubeletHangs != 1 {
		t.Fatalf("report of the hung machine: %+v", r)
	}
	if code, _ := post("/debug/machines/" + other.Name + "/clear-faults"); code != http.StatusNoContent {
		t.Fatalf("clear-faults: %d", code)
	}
	waitReady(t, other.Name)

	if code, _ := post("/debug/machines/" + pressed.Name + "/power-cut"); code != http.StatusNoContent {
		t.Fatalf("power-cut: %d", code)
	}
	wantPower(t, drv, objs, 0, infrav1.PoweredOff)
	waitNotReady(t, pressed.Name)

	code, body := post("/debug/power-cut?node=gone")
	var answer struct{ Cut *int }
	if err := json.Unmarshal([]byte(body), &answer); err != nil || code != http.StatusOK || answer.Cut == nil || *answer.Cut != 1 {
		t.Fatalf("site-wide power cut: %d %q (%v); want one machine cut", code, body, err)
	}
	wantPower(t, drv, objs, 1, infrav1.PoweredOff)
	testenv.Eventually(t, 5*time.Second, "the Node of the machine cut with node=gone to go", func() bool { return env.Node(t, other.Name) == nil })

	resp, err := http.Get(debug.URL + "/debug/counters")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var report struct{ Machines []sim.MachineReport }
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		t.Fatal(err)
	}
	p, o := report.Machines[0], report.Machines[1]
	if p.ButtonPresses != 1 || p.PowerCuts != 1 || p.PowerOn != 0 || !p.NodeLeftNotReady || p.Phase != "Off" {
		t.Errorf("report of the pressed, then cut machine: %+v", p)
	}
	if o.KubeletHangs != 1 || o.KubeletHung || o.PowerCuts != 1 || o.PowerOn != 1 || o.NodeLeftNotReady {
		t.Errorf("report of the machine hung, cleared, then cut with its Node: %+v", o)
	}
}

// powerOn powers machine i on through its BMC with the project's driver.
func powerOn(t *testing.T, drv power.Driver, objs sim.Objects, i int) {
	t.Helper()
	if _, err := drv.Do(context.Background(), request(objs, i, power.ActionOn)); err != nil {
		t.Fatal(err)
	}
}

// powerCycle shuts machine m down through its BMC, waits for its Node to go, and powers it on.
func powerCycle(t *testing.T, drv power.Driver, objs sim.Objects, m *sim.Machine) {
	t.Helper()
	if _, err := drv.Do(context.Background(), request(objs, m.Index, power.ActionOff)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, m.Name+"'s Node to go", func() bool { return env.Node(t, m.Name) == nil })
	powerOn(t, drv, objs, m.Index)
}

// wantPower reads machine i's power state over its BMC protocol.
func wantPower(t *testing.T, drv power.Driver, objs sim.Objects, i int, want infrav1.PowerState) {
	t.Helper()
	if st, err := drv.Status(context.Background(), request(objs, i, power.ActionStatus)); err != nil || st != want {
		t.Fatalf("machine %d's BMC says %v (%v), want %v", i, st, err, want)
	}
}

// readyOf is the status of the Node's Ready condition; empty for no Node or no condition.
func readyOf(core *corev1.Node) corev1.ConditionStatus {
	if core == nil {
		return ""
	}
	for _, c := range core.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// waitReady waits until the Node is Ready and kwok keeps it so, and returns it.
func waitReady(t *testing.T, name string) *corev1.Node {
	t.Helper()
	var core *corev1.Node
	testenv.Eventually(t, 10*time.Second, name+"'s Node to be Ready, in kwok's hands", func() bool {
		core = env.Node(t, name)
		return readyOf(core) == corev1.ConditionTrue && core.Annotations[sim.KwokNodeAnnotation] == "fake"
	})
	return core
}

// waitNotReady waits until the Node is registered NotReady as the node lifecycle controller
// marks the Node of a kubelet that stopped posting, out of kwok's hands, and returns it.
func waitNotReady(t *testing.T, name string) *corev1.Node {
	t.Helper()
	var core *corev1.Node
	testenv.Eventually(t, 10*time.Second, name+"'s Node to be NotReady", func() bool {
		core = env.Node(t, name)
		if readyOf(core) != corev1.ConditionUnknown {
			return false
		}
		for _, c := range core.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Reason != "NodeStatusUnknown" {
				return false
			}
		}
		_, kwoks := core.Annotations[sim.KwokNodeAnnotation]
		return !kwoks
	})
	return core
}
