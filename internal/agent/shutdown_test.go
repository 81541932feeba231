package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/agent"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil { //nolint:gosec // an executable of the test's own
		t.Fatal(err)
	}
	return path
}

// poweroff is a script standing in for a node's poweroff: each run appends the node's name to
// a file of its own.
type poweroff struct {
	script, file string
}

func poweroffScript(t *testing.T, dir, node string) poweroff {
	t.Helper()
	p := poweroff{file: filepath.Join(dir, node+".log")}
	if err := os.WriteFile(p.file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p.script = writeScript(t, dir, "poweroff-"+node, fmt.Sprintf("echo %s >> %s", node, p.file))
	return p
}

// lines are the lines the script wrote.
func (p poweroff) lines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(p.file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// ranOnceEach checks the shutdown of machine on node-a that just finished: a second attempt,
// served after it, makes node-a's command write a second line (so the first ran only once),
// node-b's command never ran, and the requests for other nodes (wrong, nobody) stay untouched.
func ranOnceEach(t *testing.T, ns, machine string, offA, offB poweroff, wrong, nobody *infrav1.AgentRequest) {
	t.Helper()
	offA.waitLines(t, 1)
	again := requestShutdown(t, ns, machine, "node-a", 2, time.Now().Add(time.Minute))
	waitState(t, again, relay.StateDone, 30*time.Second)
	offA.waitLines(t, 2)
	if got := offA.lines(t); len(got) != 2 || got[0] != "node-a" || got[1] != "node-a" {
		t.Fatalf("node-a's command wrote %q; want one line per request", got)
	}
	if got := offB.lines(t); len(got) != 0 {
		t.Fatalf("node-b's command ran: %q", got)
	}
	expectUntouched(t, wrong)
	expectUntouched(t, nobody)
}

func (p poweroff) waitLines(t *testing.T, n int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d runs of %s", n, p.script), func() bool { return len(p.lines(t)) >= n })
}

func reconcileShutdown(t *testing.T, s *agent.Shutdowner, r *infrav1.AgentRequest) ctrl.Result {
	t.Helper()
	res, err := s.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(r)})
	if err != nil {
		t.Fatalf("%s reconciling %s: %v", s.Agent, r.Name, err)
	}
	return res
}

// powerOffs records the power-offs of a Shutdowner, with the state of the request each found:
// it must already be Done.
type powerOffs struct {
	mu     sync.Mutex
	states []relay.State
	fail   error
}

func (p *powerOffs) shutdowner(c client.Client, node string, r func() *infrav1.AgentRequest) *agent.Shutdowner {
	return &agent.Shutdowner{Client: c, Agent: node + "/agent", Node: node, Method: "test",
		PowerOff: func(ctx context.Context) error {
			got := &infrav1.AgentRequest{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(r()), got); err != nil {
				return err
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			p.states = append(p.states, relay.StateOf(got))
			return p.fail
		}}
}

func (p *powerOffs) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.states)
}

// The agent acknowledges a shutdown of its node (Done) and then powers off, once: a request
// reconciled again, by the same agent restarted, is not run again. The power-off is counted.
func TestShutdownAcknowledgesThenPowersOffOnce(t *testing.T) {
	ns := namespace(t)
	started := agent.ShutdownsTotal.WithLabelValues("node-s1", "started")
	before := testutil.ToFloat64(started)
	var cur *infrav1.AgentRequest
	var p powerOffs
	s := p.shutdowner(env.Client, "node-s1", func() *infrav1.AgentRequest { return cur })
	cur = requestShutdown(t, ns, "m1", "node-s1", 1, time.Now().Add(time.Minute))
	reconcileShutdown(t, s, cur)
	if p.count() != 1 || p.states[0] != relay.StateDone {
		t.Fatalf("powered off with the request in states %q; want once, after Done", p.states)
	}
	got := read(t, cur)
	if relay.StateOf(got) != relay.StateDone || relay.Holder(got) != s.Agent || got.Status.Detail != "shutting down node-s1 with test" {
		t.Fatalf("request %s held by %q (%q)", relay.StateOf(got), relay.Holder(got), got.Status.Detail)
	}
	if v := relay.Read(got, time.Now()); !v.Done || v.Detail != "shutting down node-s1 with test (homelab-agent node-s1/agent)" {
		t.Fatalf("verdict %+v", v)
	}
	restarted := p.shutdowner(env.Client, "node-s1", func() *infrav1.AgentRequest { return cur })
	for _, a := range []*agent.Shutdowner{s, restarted} {
		if res := reconcileShutdown(t, a, cur); res != (ctrl.Result{}) {
			t.Fatalf("result %+v for a Done request", res)
		}
	}
	if p.count() != 1 {
		t.Fatalf("powered off %d times; want once", p.count())
	}
	if d := testutil.ToFloat64(started) - before; d != 1 {
		t.Fatalf("homelab_agent_shutdowns_total{node=node-s1,result=started} rose by %v; want 1", d)
	}
	// Registered on controller-runtime's registry, which the metrics endpoint serves.
	if n, err := testutil.GatherAndCount(ctrlmetrics.Registry, "homelab_agent_shutdowns_total"); err != nil || n == 0 {
		t.Fatalf("homelab_agent_shutdowns_total on controller-runtime's registry: %d series, %v", n, err)
	}
}

// Requests of another node (whatever their labels say), of another kind, past their deadline,
// or left Acting by the agent itself are never run.
func TestShutdownLeavesOtherRequestsAlone(t *testing.T) {
	ns, n, clk := namespace(t), listen(t), newClock()
	t0 := clk.Now()
	var p powerOffs
	var cur *infrav1.AgentRequest
	s := p.shutdowner(env.Client, "node-s2", func() *infrav1.AgentRequest { return cur })
	s.Now = clk.Now
	otherNode := requestShutdown(t, ns, "m1", "node-c", 1, t0.Add(time.Minute))
	mislabelled := requestShutdown(t, ns, "m2", "node-c", 1, t0.Add(time.Minute))
	mislabelled.Labels[relay.LabelNode] = "node-s2"
	update(t, mislabelled)
	wake := request(t, ns, "m3", "lan-2", mac1, n, t0.Add(time.Minute))
	wake.Labels[relay.LabelNode] = "node-s2"
	update(t, wake)
	late := requestShutdown(t, ns, "m4", "node-s2", 1, t0.Add(5*time.Second))
	for _, r := range []*infrav1.AgentRequest{otherNode, mislabelled, wake} {
		cur = r
		reconcileShutdown(t, s, r)
		expectUntouched(t, r)
	}
	clk.SetTime(t0.Add(5 * time.Second))
	cur = late
	reconcileShutdown(t, s, late)
	expectUntouched(t, late)

	// The agent stopped after Acting, before Done: it did not power off, and it may not
	// acknowledge now, after the manager may have given up.
	acting := requestShutdown(t, ns, "m5", "node-s2", 1, t0.Add(time.Minute))
	if err := relay.Claim(context.Background(), env.Client, acting, s.Agent, t0); err != nil {
		t.Fatal(err)
	}
	if err := relay.Acting(context.Background(), env.Client, acting, s.Agent, t0); err != nil {
		t.Fatal(err)
	}
	cur = acting
	reconcileShutdown(t, s, acting)
	if got := read(t, acting); relay.StateOf(got) != relay.StateActing {
		t.Fatalf("request %s; want still Acting", relay.StateOf(got))
	}
	if p.count() != 0 {
		t.Fatalf("powered off %d times; want never", p.count())
	}
}

// A claim of another agent of the node (a pod being replaced) that ran out is taken over.
func TestShutdownTakesOverAClaimThatRanOut(t *testing.T) {
	ns, clk := namespace(t), newClock()
	t0 := clk.Now()
	var p powerOffs
	var cur *infrav1.AgentRequest
	s := p.shutdowner(env.Client, "node-s3", func() *infrav1.AgentRequest { return cur })
	s.Now = clk.Now
	cur = requestShutdown(t, ns, "m1", "node-s3", 1, t0.Add(time.Minute))
	if err := relay.Claim(context.Background(), env.Client, cur, "node-s3/old", t0); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(t0.Add(time.Second))
	if res := reconcileShutdown(t, s, cur); res.RequeueAfter != relay.ClaimDuration-time.Second {
		t.Fatalf("result %+v; want a look again when the claim runs out", res)
	}
	clk.SetTime(t0.Add(relay.ClaimDuration))
	reconcileShutdown(t, s, cur)
	if got := read(t, cur); relay.StateOf(got) != relay.StateDone || relay.Holder(got) != s.Agent || p.count() != 1 {
		t.Fatalf("request %s held by %q after %d power-offs; want Done by %s after one", relay.StateOf(got), relay.Holder(got), p.count(), s.Agent)
	}
}

// Without Done there is no power-off: not when the manager gave up first, not when the apiserver
// refuses the write.
func TestShutdownWithoutDoneDoesNotPowerOff(t *testing.T) {
	ns := namespace(t)
	var p powerOffs
	var cur *infrav1.AgentRequest

	// The manager abandons the request just before the agent's Done write.
	gaveUp := interceptor.NewClient(env.Client, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if r, ok := obj.(*infrav1.AgentRequest); ok && r.Status.State == relay.StateDone {
				fresh := read(t, r)
				if err := relay.Abandon(ctx, env.Client, fresh, "the manager gave up"); err != nil {
					return err
				}
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	cur = requestShutdown(t, ns, "m1", "node-s4", 1, time.Now().Add(time.Minute))
	reconcileShutdown(t, p.shutdowner(gaveUp, "node-s4", func() *infrav1.AgentRequest { return cur }), cur)
	if got := read(t, cur); relay.StateOf(got) != relay.StateAbandoned || p.count() != 0 {
		t.Fatalf("request %s after %d power-offs; want Abandoned and none", relay.StateOf(got), p.count())
	}

	refused := interceptor.NewClient(env.Client, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if r, ok := obj.(*infrav1.AgentRequest); ok && r.Status.State == relay.StateDone {
				return apierrors.NewServiceUnavailable("the apiserver is restarting")
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	cur = requestShutdown(t, ns, "m2", "node-s4", 1, time.Now().Add(time.Minute))
	s := p.shutdowner(refused, "node-s4", func() *infrav1.AgentRequest { return cur })
	if _, err := s.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(cur)}); err == nil ||
		!strings.Contains(err.Error(), "recording that node-s4/agent served the Shutdown request "+ns+"/"+cur.Name) {
		t.Fatalf("Reconcile: %v; want the failed Done write", err)
	}
	if got := read(t, cur); relay.StateOf(got) != relay.StateActing || p.count() != 0 {
		t.Fatalf("request %s after %d power-offs; want Acting and none", relay.StateOf(got), p.count())
	}
}

// A power-off that fails after Done is counted and not run again.
func TestShutdownFailedPowerOffIsNotRetried(t *testing.T) {
	ns := namespace(t)
	failed := agent.ShutdownsTotal.WithLabelValues("node-s5", "failed")
	before := testutil.ToFloat64(failed)
	p := powerOffs{fail: errors.New("logind said no")}
	var cur *infrav1.AgentRequest
	s := p.shutdowner(env.Client, "node-s5", func() *infrav1.AgentRequest { return cur })
	cur = requestShutdown(t, ns, "m1", "node-s5", 1, time.Now().Add(time.Minute))
	reconcileShutdown(t, s, cur)
	reconcileShutdown(t, s, cur)
	if got := read(t, cur); relay.StateOf(got) != relay.StateDone || p.count() != 1 {
		t.Fatalf("request %s after %d power-offs; want Done after one", relay.StateOf(got), p.count())
	}
	if d := testutil.ToFloat64(failed) - before; d != 1 {
		t.Fatalf("homelab_agent_shutdowns_total{node=node-s5,result=failed} rose by %v; want 1", d)
	}
}

// Two running agents, on node-a and node-b, each with its own poweroff command: a shutdown of
// node-a runs a's command once and b's never; one of node-c runs nothing.
func TestRunningAgentsShutDownTheirOwnNodeOnly(t *testing.T) {
	ns, dir := namespace(t), t.TempDir()
	offA, offB := poweroffScript(t, dir, "node-a"), poweroffScript(t, dir, "node-b")
	startedA := agent.ShutdownsTotal.WithLabelValues("node-a", "started")
	beforeA := testutil.ToFloat64(startedA)
	beforeB := testutil.ToFloat64(agent.ShutdownsTotal.WithLabelValues("node-b", "started"))
	startAgentWith(t, ns, agent.Options{NodeName: "node-a", PodName: "agent-a", Shutdown: agent.ShutdownCommand, ShutdownCommand: offA.script})
	startAgentWith(t, ns, agent.Options{Segment: "lan-2", NodeName: "node-b", PodName: "agent-b", Shutdown: agent.ShutdownCommand, ShutdownCommand: offB.script})

	// Recorded first, and node-a's agent serves its shutdowns one at a time in order: it has
	// looked at these before it serves the next.
	wrong := requestShutdown(t, ns, "m1", "node-c", 1, time.Now().Add(time.Minute))
	wrong.Labels[relay.LabelNode] = "node-a"
	update(t, wrong)
	nobody := requestShutdown(t, ns, "m2", "node-c", 1, time.Now().Add(time.Minute))
	r := requestShutdown(t, ns, "m3", "node-a", 1, time.Now().Add(time.Minute))
	done := waitState(t, r, relay.StateDone, 30*time.Second)
	if relay.Holder(done) != "node-a/agent-a" || done.Status.Detail != "shutting down node-a with command" {
		t.Fatalf("Done by %q with %q", relay.Holder(done), done.Status.Detail)
	}
	ranOnceEach(t, ns, "m3", offA, offB, wrong, nobody)
	if d := testutil.ToFloat64(startedA) - beforeA; d != 2 {
		t.Fatalf("homelab_agent_shutdowns_total{node=node-a,result=started} rose by %v; want 2", d)
	}
	if d := testutil.ToFloat64(agent.ShutdownsTotal.WithLabelValues("node-b", "started")) - beforeB; d != 0 {
		t.Fatalf("homelab_agent_shutdowns_total{node=node-b,result=started} rose by %v; want 0", d)
	}
}

// The logind power-off names a missing socket, or a socket that is no bus, clearly.
func TestLogindPowerOffErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "system_bus_socket")
	err := agent.LogindPowerOff(missing)(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the host's D-Bus system bus socket "+missing+" is not there (mount the host's /run/dbus/system_bus_socket into the pod)") {
		t.Fatalf("LogindPowerOff: %v", err)
	}

	// A socket whose server hangs up at once, and one that never answers.
	hangUp, silent := filepath.Join(dir, "hangup"), filepath.Join(dir, "silent")
	for _, path := range []string{hangUp, silent} {
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				if path == hangUp {
					_ = c.Close()
				} else {
					t.Cleanup(func() { _ = c.Close() })
				}
			}
		}()
	}
	err = agent.LogindPowerOff(hangUp)(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connecting to the host's D-Bus system bus at "+hangUp) {
		t.Fatalf("LogindPowerOff: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := agent.LogindPowerOff(silent)(ctx); err == nil {
		t.Fatal("LogindPowerOff returned no error from a bus that never answered")
	}
}

// login1 stands in for systemd-logind on a private bus: it records the PowerOff calls.
type login1 struct {
	mu    sync.Mutex
	calls []bool
}

// PowerOff is org.freedesktop.login1.Manager.PowerOff.
func (l *login1) PowerOff(interactive bool) *dbus.Error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, interactive)
	return nil
}

func (l *login1) got() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.calls...)
}

// startBus runs a private dbus-daemon listening on a socket in dir, with a stand-in logind on
// it, and returns the socket's path.
func startBus(t *testing.T, dir string) (string, *login1) {
	t.Helper()
	socket := filepath.Join(dir, "system_bus_socket")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=`+socket+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`), 0o600); err != nil {
		t.Fatal(err)
	}
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("the logind test needs dbus-daemon (Debian package dbus-daemon): %v", err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile") //nolint:gosec // a private bus of the test's own
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("dbus-daemon output:\n%s", out.String())
		}
	})
	var conn *dbus.Conn
	testenv.Eventually(t, 10*time.Second, "the private bus to answer", func() bool {
		conn, err = dbus.Connect("unix:path="+socket, dbus.WithAuth(dbus.AuthExternal(fmt.Sprint(os.Geteuid()))))
		return err == nil
	})
	t.Cleanup(func() { _ = conn.Close() })
	l := &login1{}
	if err := conn.Export(l, "/org/freedesktop/login1", "org.freedesktop.login1.Manager"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.login1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning org.freedesktop.login1: %v, %v", reply, err)
	}
	return socket, l
}

// An agent with --shutdown=logind asks logind, over the bus at --dbus-socket, to power off,
// without asking anyone for a password, once.
func TestLogindPowerOffCallsLogind(t *testing.T) {
	ns := namespace(t)
	socket, logind := startBus(t, t.TempDir())
	startAgentWith(t, ns, agent.Options{NodeName: "node-l", PodName: "agent-l", Shutdown: agent.ShutdownLogind, DBusSocket: socket})
	r := requestShutdown(t, ns, "m1", "node-l", 1, time.Now().Add(time.Minute))
	done := waitState(t, r, relay.StateDone, 30*time.Second)
	if done.Status.Detail != "shutting down node-l with logind" {
		t.Fatalf("detail %q", done.Status.Detail)
	}
	testenv.Eventually(t, 30*time.Second, "logind to be asked", func() bool { return len(logind.got()) > 0 })
	// A second call, straight to the bus, shows the first was the agent's only one.
	if err := agent.LogindPowerOff(socket)(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := logind.got(); len(got) != 2 || got[0] || got[1] {
		t.Fatalf("PowerOff calls (interactive) %v; want two non-interactive calls, one of them the agent's", got)
	}
}
