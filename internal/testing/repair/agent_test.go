package repair_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/agentproc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Wake-on-LAN relayed through homelab-agent, end to end: the manager (no host network in real
// life) records a wake request per attempt, two agents serve the segment, and exactly one of them
// sends the magic packets that boot homelab-sim's machine.
func TestAgents(t *testing.T) {
	startKwok(t)
	bin := agentproc.Build(t, t.TempDir())
	t.Run("WakeRelayed", func(t *testing.T) { t.Parallel(); testWakeRelayed(t, bin) })
	t.Run("NoAgentForTheSegment", func(t *testing.T) { t.Parallel(); testNoAgent(t) })
	t.Run("ShutdownFromTheInside", func(t *testing.T) { t.Parallel(); testAgentShutdown(t, bin) })
}

// runAgents starts n agents serving segment in ns, as separate processes, and waits until they
// are ready.
func runAgents(t *testing.T, bin, ns, segment string, n int) []*agentproc.Process {
	t.Helper()
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []*agentproc.Process
	for i := range n {
		node := segment + "-node-" + string(rune('a'+i))
		p := agentproc.Run(t, bin, node, nil, "--kubeconfig", kubeconfig, "--segment", segment, "--namespace", ns,
			"--node-name", node, "--pod-name", "agent-"+node)
		out = append(out, p)
	}
	for _, p := range out {
		p.WaitReady(t)
	}
	return out
}

func testWakeRelayed(t *testing.T, bin string) {
	cfg := homelab(t, sim.ProtocolRedfish, 2, func(c *sim.Config) { c.WakeVia = "lan-sim" })
	s, objs := start(t, cfg, nil)
	runAgents(t, bin, cfg.Namespace, "lan-sim", 2)
	manager(t, cfg.Namespace, nil)
	allReady(t, objs, 60*time.Second)
	for i, m := range s.Machines() {
		c := m.Counters()
		// One attempt, one agent: its three copies of the packet, nothing from the other agent.
		if got := c.MagicPackets; got != 3 || c.PowerOn != 0 {
			t.Fatalf("machine %d: %d magic packets (want the 3 copies of one agent), %d BMC power-ons", i, got, c.Commands[sim.CommandOn])
		}
	}
	waitEvent(t, objs.Machines[0], "PowerOn")
	list := &infrav1.AgentRequestList{}
	if err := env.Client.List(t.Context(), list); err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, r := range list.Items {
		if r.Namespace == cfg.Namespace && r.Status.State == infrav1.AgentRequestDone {
			done++
			if !strings.HasPrefix(r.Status.Agent, "lan-sim-node-") {
				t.Fatalf("request %s served by %q", r.Name, r.Status.Agent)
			}
		}
	}
	if done != 2 {
		t.Fatalf("%d requests done, want one per machine", done)
	}
}

// With no agent for the segment, the attempt fails with the documented reason and nothing is
// sent.
func testNoAgent(t *testing.T) {
	cfg := homelab(t, sim.ProtocolRedfish, 1, func(c *sim.Config) { c.WakeVia = "lan-9" })
	s, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.MachineDefaults = &infrav1.MachineDefaults{MaxAttempts: ptrTo[int32](1)}
	})
	manager(t, cfg.Namespace, nil)
	m := objs.Machines[0]
	setOnline(t, m, true)
	got := waitProgress(t, m, infrav1.ProgressFailed, 90*time.Second)
	if !strings.Contains(got.Status.LastError, "no homelab-agent serves segment lan-9") {
		t.Fatalf("last error %q", got.Status.LastError)
	}
	if c := s.Machines()[0].Counters(); c.PowerOn != 0 || c.MagicPackets != 0 {
		t.Fatalf("a machine without an agent got power-ons: %+v", c.History)
	}
}

func ptrTo[T any](v T) *T { return &v }

// power.stop.agent: the agent on the machine's own Node shuts it down. Here its power-off command
// is a script standing in for the host's poweroff (it records the call; the test then shuts the
// simulated machine down as the operating system would). The agent of another node runs nothing.
func testAgentShutdown(t *testing.T, bin string) {
	cfg := homelab(t, sim.ProtocolRedfish, 1, nil)
	s, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.MachineDefaults = &infrav1.MachineDefaults{Power: &infrav1.PowerSpec{Stop: &infrav1.PowerDriver{Agent: &infrav1.AgentDriver{}}}}
	})
	manager(t, cfg.Namespace, nil)
	allReady(t, objs, 60*time.Second)
	m := get(t, objs.Machines[0])
	node := m.Status.KubernetesNode

	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	calls := map[string]string{}
	var agents []*agentproc.Process
	for _, n := range []string{node, node + "-neighbour"} {
		log := filepath.Join(dir, n+".log")
		script := filepath.Join(dir, n+".sh")
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho poweroff >> "+log+"\n"), 0o755); err != nil { //nolint:gosec // an executable test script
			t.Fatal(err)
		}
		calls[n] = log
		agents = append(agents, agentproc.Run(t, bin, n, nil, "--kubeconfig", kubeconfig, "--namespace", cfg.Namespace,
			"--node-name", n, "--pod-name", "agent-"+n, "--shutdown=command", "--shutdown-command", script))
	}
	for _, a := range agents {
		a.WaitReady(t)
	}

	setOnline(t, m, false)
	lines := func(n string) int {
		data, err := os.ReadFile(calls[n])
		if os.IsNotExist(err) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(data), "poweroff")
	}
	testenv.Eventually(t, 60*time.Second, "the machine's own agent to run its power-off", func() bool { return lines(node) > 0 })
	// What the host's poweroff would do.
	s.Machines()[0].Do(sim.CommandGracefulShutdown)
	waitProgress(t, m, infrav1.ProgressOff, 60*time.Second)
	if got, other := lines(node), lines(node+"-neighbour"); got != 1 || other != 0 {
		t.Fatalf("power-off ran %d times on the machine's agent and %d times on the neighbour's, want 1 and 0", got, other)
	}
	if c := s.Machines()[0].Counters(); c.PowerOff != 1 || c.Commands[sim.CommandForceOff] != 0 {
		t.Fatalf("BMC commands: %+v", c.History)
	}
}
