package agent_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/agentproc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

func TestAgentCommandRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	bin := agentproc.Build(t, dir)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--segment", "lan-2,LAN 3", "--node-name", "n1"}, []string{`"LAN 3" is not a valid name`, "--pod-name (or $POD_NAME) is required"}},
		{[]string{"--node-name", "n1", "--pod-name", "p1"}, []string{"--segment is required"}},
		{[]string{"--node-name", "n1", "--pod-name", "p1", "--shutdown", "logind", "--dbus-socket", filepath.Join(dir, "bus")},
			[]string{"the host's D-Bus system bus socket " + filepath.Join(dir, "bus") + " is not there (mount the host's /run/dbus/system_bus_socket into the pod)"}},
		{[]string{"--node-name", "n1", "--pod-name", "p1", "--shutdown", "command"}, []string{"--shutdown=command needs --shutdown-command"}},
		{[]string{"--segment", "lan-2", "--node-name", "n1", "--pod-name", "p1", "--shutdown", "halt"}, []string{`--shutdown="halt": want off, logind or command`}},
	} {
		cmd := exec.Command(bin, tc.args...) //nolint:gosec // the project's own binary
		cmd.Env = append(os.Environ(), "POD_NAME=", "KUBECONFIG=/nonexistent")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: exit %v; want status 2\n%s", tc.args, err, out)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(string(out), want) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, want, out)
			}
		}
	}
}

// Two agent processes on nodes node-a and node-b serve segment lan-2 and their own node's
// shutdowns against the apiserver, as a DaemonSet's pods would; a script of each, standing in
// for the host's poweroff, appends a line to a file of its own.
func TestAgentProcesses(t *testing.T) {
	dir := t.TempDir()
	bin := agentproc.Build(t, dir)
	kubeconfig, err := env.WriteKubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace(t)
	offA, offB := poweroffScript(t, dir, "node-a"), poweroffScript(t, dir, "node-b")
	a := agentproc.Run(t, bin, "node-a/agent-a", nil,
		"--kubeconfig", kubeconfig, "--segment", "lan-2", "--namespace", ns, "--node-name", "node-a", "--pod-name", "agent-a",
		"--shutdown", "command", "--shutdown-command", offA.script)
	// The other takes its identity from the environment, as the DaemonSet sets it.
	b := agentproc.Run(t, bin, "node-b/agent-b", []string{"NODE_NAME=node-b", "POD_NAME=agent-b"},
		"--kubeconfig", kubeconfig, "--segment", "lan-1,lan-2", "--namespace", "other-ns,"+ns,
		"--shutdown=command", "--shutdown-command="+offB.script)
	a.WaitReady(t)
	b.WaitReady(t)
	agents := map[string]*agentproc.Process{a.Identity: a, b.Identity: b}

	t.Run("one of two sends, as wakeonlan would", func(t *testing.T) {
		n := listen(t)
		l := request(t, ns, "m1", "lan-2", mac1, n, time.Now().Add(time.Minute))
		done := waitState(t, l, relay.StateDone, 30*time.Second)
		if agents[relay.Holder(done)] == nil {
			t.Fatalf("Done by %q", relay.Holder(done))
		}
		n.flush(t)
		n.expectOnly(t, map[string]int{string(magic(t, mac1)): 3})

		// Debian's wakeonlan sends the same 102 bytes for the MAC.
		if out, err := exec.Command("wakeonlan", "-i", "127.0.0.1", "-p", strconv.Itoa(n.port), mac1).CombinedOutput(); err != nil {
			t.Fatalf("wakeonlan: %v\n%s", err, out)
		}
		n.flush(t)
		n.expectOnly(t, map[string]int{string(magic(t, mac1)): 4})
	})

	t.Run("a claim that ran out is taken over", func(t *testing.T) {
		n := listen(t)
		// Recorded with a segment nobody serves, claimed 9 s ago by an agent that stopped,
		// then moved to lan-2 in one write, so that the agents first see it claimed.
		l := request(t, ns, "m2", "lan-0", mac2, n, time.Now().Add(time.Minute))
		if err := relay.Claim(context.Background(), env.Client, l, "node-x/dead", time.Now().Add(-relay.ClaimDuration+time.Second)); err != nil {
			t.Fatal(err)
		}
		l.Labels[relay.LabelSegment], l.Spec.Segment = "lan-2", "lan-2"
		if err := env.Client.Update(context.Background(), l); err != nil {
			t.Fatal(err)
		}
		done := waitState(t, l, relay.StateDone, 30*time.Second)
		if agents[relay.Holder(done)] == nil {
			t.Fatalf("Done by %q", relay.Holder(done))
		}
		n.flush(t)
		n.expectOnly(t, map[string]int{string(magic(t, mac2)): 3})
	})

	t.Run("nobody serves lan-9", func(t *testing.T) {
		n := listen(t)
		orphan := request(t, ns, "m3", "lan-9", mac3, n, time.Now().Add(2*time.Second))
		// Served after the orphan was recorded: the agents are at work and saw it.
		served := request(t, ns, "m4", "lan-2", "aa:bb:cc:dd:ee:04", n, time.Now().Add(time.Minute))
		waitState(t, served, relay.StateDone, 30*time.Second)
		testenv.Eventually(t, 30*time.Second, "the manager's verdict on the orphan to be a failure", func() bool {
			return relay.Read(read(t, orphan), time.Now()).Failed != ""
		})
		if v := relay.Read(read(t, orphan), time.Now()); v.Failed != "no homelab-agent serves segment lan-9: nobody took the request by its deadline" {
			t.Fatalf("verdict %+v", v)
		}
		expectUntouched(t, orphan)
		n.flush(t)
		n.expectOnly(t, map[string]int{string(magic(t, "aa:bb:cc:dd:ee:04")): 3})
	})

	t.Run("a Shutdown runs the command of its node's agent, once", func(t *testing.T) {
		// Labelled for node-a but asking node-c: recorded first, and node-a's agent serves
		// one shutdown at a time in order, so it has looked at it before the next one.
		wrong := requestShutdown(t, ns, "m6", "node-c", 1, time.Now().Add(time.Minute))
		wrong.Labels[relay.LabelNode] = "node-a"
		update(t, wrong)
		nobody := requestShutdown(t, ns, "m7", "node-c", 1, time.Now().Add(time.Minute))
		first := requestShutdown(t, ns, "m8", "node-a", 1, time.Now().Add(time.Minute))
		done := waitState(t, first, relay.StateDone, 30*time.Second)
		if relay.Holder(done) != a.Identity || done.Status.Detail != "shutting down node-a with command" {
			t.Fatalf("Done by %q with %q; want by %s", relay.Holder(done), done.Status.Detail, a.Identity)
		}
		ranOnceEach(t, ns, "m8", offA, offB, wrong, nobody)
	})

	// Last: it leaves one agent.
	t.Run("SIGKILL of the agent that claimed", func(t *testing.T) {
		n := listen(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		w, err := env.Client.Watch(ctx, &infrav1.AgentRequestList{}, client.InNamespace(ns))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		l := request(t, ns, "m5", "lan-2", "aa:bb:cc:dd:ee:05", n, time.Now().Add(time.Minute))
		var killed *agentproc.Process
		var seen relay.State
		for ev := range w.ResultChan() {
			got, ok := ev.Object.(*infrav1.AgentRequest)
			if !ok || got.Name != l.Name || relay.Holder(got) == "" {
				continue
			}
			killed, seen = agents[relay.Holder(got)], relay.StateOf(got)
			if killed == nil {
				t.Fatalf("request held by %q", relay.Holder(got))
			}
			killed.Kill(t)
			break
		}
		if killed == nil {
			t.Fatal("no agent claimed the request")
		}
		// Killed while Claimed, the other agent takes over once the claim runs out; killed later,
		// the request ends Done or stays Acting, which the manager reports.
		var final *infrav1.AgentRequest
		testenv.Eventually(t, 3*relay.ClaimDuration, "the request to be Done or failed", func() bool {
			final = read(t, l)
			return relay.StateOf(final) == relay.StateDone || relay.Read(final, time.Now()).Failed != ""
		})
		n.flush(t)
		sent := n.count(magic(t, "aa:bb:cc:dd:ee:05"))
		t.Logf("killed %s when it saw %s; the request ended %s held by %s after %d packets", killed.Identity, seen, relay.StateOf(final), relay.Holder(final), sent)
		switch relay.StateOf(final) {
		case relay.StateDone:
			n.expectOnly(t, map[string]int{string(magic(t, "aa:bb:cc:dd:ee:05")): 3})
		case relay.StateActing:
			if relay.Holder(final) != killed.Identity {
				t.Fatalf("Acting by %q, which was not killed", relay.Holder(final))
			}
			if v := relay.Read(final, time.Now()); !strings.Contains(v.Failed, "stopped after it took the request") {
				t.Fatalf("verdict %+v", v)
			}
			// Killed while sending: some of one set of packets, never more.
			if sent > 3 {
				t.Fatalf("%d packets sent; at most one set of 3", sent)
			}
			n.expectOnly(t, map[string]int{string(magic(t, "aa:bb:cc:dd:ee:05")): sent})
		default:
			t.Fatalf("request ended %s: %+v", relay.StateOf(final), relay.Read(final, time.Now()))
		}
	})
}
