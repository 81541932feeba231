package faults

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/agentproc"
)

// agentKills runs the machines of a world through homelab-agent both ways: wakes relayed by two
// agents of the segment, and power-offs by the agent on each machine's own Node (whose power-off
// command stands in for the host's: it asks the simulator to shut the machine down, as the
// operating system would). Agents are killed with SIGKILL between scale-ups and scale-downs and
// started again. The invariants are the harness's: every command follows its recorded attempt,
// and no attempt gets two wakes (more magic packets than one agent sends) or two power-ons.
func agentKills(t *testing.T, kc string) {
	bin := agentproc.Build(t, t.TempDir())
	hook := &shutdownHook{}
	hookAddr := hook.serve(t)
	w := NewWorld(t, env, managerBin, kc, rng(700), Options{Sim: func(c *sim.Config) { c.WakeVia = "lan-f" }, AgentShutdown: true})
	hook.sim = w.Sim

	base := []string{"--kubeconfig=" + kc, "--namespace=" + w.Namespace, "--metrics-bind-address=0", "--health-probe-bind-address=0"}
	var agents []*Manager
	for i := range 2 {
		node := fmt.Sprintf("%s-relay-%d", w.Group, i)
		agents = append(agents, NewManager("wake-agent-"+node, bin, "",
			append(base, "--segment=lan-f", "--node-name="+node, "--pod-name=agent-"+node)))
	}
	dir := t.TempDir()
	for _, m := range w.Sim.Machines() {
		script := filepath.Join(dir, m.Name+".sh")
		body := fmt.Sprintf("#!/bin/bash\nexec 3<>/dev/tcp/%s\nprintf 'POST /%s HTTP/1.0\\r\\n\\r\\n' >&3\ncat <&3 >/dev/null\n", strings.Replace(hookAddr, ":", "/", 1), m.Name)
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil { //nolint:gosec // an executable test script
			t.Fatal(err)
		}
		agents = append(agents, NewManager("shutdown-agent-"+m.Name, bin, "",
			append(base, "--node-name="+m.Name, "--pod-name=agent-"+m.Name, "--shutdown=command", "--shutdown-command="+script)))
	}
	for _, a := range agents {
		t.Cleanup(func() {
			_ = a.Kill()
			if t.Failed() {
				t.Logf("%s output (last 3000 bytes):\n%s", a.Name, tail(a.Output(), 3000))
			}
		})
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	for range 8 {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		action := w.RandomAction(actx, 0)
		cancel()
		time.Sleep(time.Duration(w.Int64N(int64(1500 * time.Millisecond))))
		victim := agents[w.IntN(len(agents))]
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		w.Stats.Fault("kill:" + strings.SplitN(victim.Name, "-agent-", 2)[0] + "-agent")
		t.Logf("%s, then %s killed", action, victim.Name)
		time.Sleep(time.Duration(w.Int64N(int64(time.Second))))
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
	}
	// An attempt whose agent was killed while acting fails, and the machine's next attempt goes
	// to a live agent; a machine may still use up its attempts, which it must then say.
	w.Finish(ctx, 2*time.Minute, AnyFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}

// shutdownHook is the "host" the shutdown agents' power-off command reaches: a POST names the
// machine whose operating system then shuts it down.
type shutdownHook struct {
	sim *sim.Sim
}

func (h *shutdownHook) serve(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		for _, m := range h.sim.Machines() {
			if m.Name == name {
				m.Do(sim.CommandGracefulShutdown)
				return
			}
		}
		http.NotFound(rw, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}
