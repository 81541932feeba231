package agent_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/agent"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

const (
	mac1 = "aa:bb:cc:dd:ee:01"
	mac2 = "aa:bb:cc:dd:ee:02"
	mac3 = "aa:bb:cc:dd:ee:03"
)

func reconcile(t *testing.T, w *agent.Waker, r *infrav1.AgentRequest) ctrl.Result {
	t.Helper()
	res, err := w.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(r)})
	if err != nil {
		t.Fatalf("%s reconciling %s: %v", w.Agent, r.Name, err)
	}
	return res
}

// Two agents of the segment, each in its own manager, race for every request: one sends three
// packets, exactly once; a request of another segment is left alone.
func TestTwoAgentsSendOnce(t *testing.T) {
	ns, n := namespace(t), listen(t)
	startAgent(t, ns, "node-a/agent-a", "lan-2")
	startAgent(t, ns, "node-b/agent-b", "lan-2")
	other := request(t, ns, "m3", "lan-3", mac3, n, time.Now().Add(time.Minute))
	first := request(t, ns, "m1", "lan-2", mac1, n, time.Now().Add(time.Minute))

	done := waitState(t, first, relay.StateDone, 20*time.Second)
	if h := relay.Holder(done); h != "node-a/agent-a" && h != "node-b/agent-b" {
		t.Fatalf("request held by %q", h)
	}
	v := relay.Read(done, time.Now())
	if !v.Done || !strings.Contains(v.Detail, "sent 3 magic packets") || !strings.Contains(v.Detail, relay.Holder(done)) {
		t.Fatalf("verdict %+v", v)
	}
	// A second request, served after the first, shows the agents still serve (and that the
	// request of lan-3 had its chance to be, wrongly, served).
	second := request(t, ns, "m2", "lan-2", mac2, n, time.Now().Add(time.Minute))
	waitState(t, second, relay.StateDone, 20*time.Second)
	n.flush(t)
	n.expectOnly(t, map[string]int{string(magic(t, mac1)): 3, string(magic(t, mac2)): 3})
	expectUntouched(t, other)
}

// Two agents reconcile each of several requests from concurrent goroutines, repeatedly, reading
// the apiserver directly (no cache to lag): each request is sent by exactly one of them, once.
func TestConcurrentReconcilesSendOnce(t *testing.T) {
	ns, n := namespace(t), listen(t)
	agents := []*agent.Waker{
		{Client: env.Client, Agent: "node-a/agent-a", Segments: []string{"lan-1", "lan-2"}},
		{Client: env.Client, Agent: "node-b/agent-b", Segments: []string{"lan-2"}},
	}
	macs := []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04", "52:54:00:00:00:05", "52:54:00:00:00:06"}
	var requests []*infrav1.AgentRequest
	for i, mac := range macs {
		requests = append(requests, request(t, ns, "m"+string(rune('a'+i)), "lan-2", mac, n, time.Now().Add(time.Minute)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(requests)*len(agents)*3)
	for _, l := range requests {
		for _, w := range agents {
			wg.Go(func() {
				for range 3 {
					if _, err := w.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(l)}); err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := map[string]int{}
	for i, l := range requests {
		got := read(t, l)
		if relay.StateOf(got) != relay.StateDone || (relay.Holder(got) != agents[0].Agent && relay.Holder(got) != agents[1].Agent) {
			t.Errorf("request %s is %s held by %q; want Done by one of the agents", l.Name, relay.StateOf(got), relay.Holder(got))
		}
		want[string(magic(t, macs[i]))] = 3
	}
	n.flush(t)
	n.expectOnly(t, want)
}

// A claim whose agent stopped before Acting is taken over once it runs out, not before: the
// agent asks to look again exactly then.
func TestTakesOverAClaimThatRanOut(t *testing.T) {
	ns, n, clk := namespace(t), listen(t), newClock()
	t0 := clk.Now()
	l := request(t, ns, "m1", "lan-2", mac1, n, t0.Add(time.Minute))
	if err := relay.Claim(context.Background(), env.Client, l, "node-x/dead", t0); err != nil {
		t.Fatal(err)
	}
	live := &agent.Waker{Client: env.Client, Agent: "node-a/agent-a", Segments: []string{"lan-2"}, Now: clk.Now}

	clk.SetTime(t0.Add(4 * time.Second))
	if res := reconcile(t, live, l); res.RequeueAfter != relay.ClaimDuration-4*time.Second {
		t.Fatalf("result %+v; want a look again in %s, when the claim runs out", res, relay.ClaimDuration-4*time.Second)
	}
	if got := read(t, l); relay.StateOf(got) != relay.StateClaimed || relay.Holder(got) != "node-x/dead" {
		t.Fatalf("a standing claim was taken over: %s held by %q", relay.StateOf(got), relay.Holder(got))
	}

	clk.SetTime(t0.Add(relay.ClaimDuration))
	reconcile(t, live, l)
	reconcile(t, live, l)
	if got := read(t, l); relay.StateOf(got) != relay.StateDone || relay.Holder(got) != live.Agent {
		t.Fatalf("request %s held by %q; want Done by %s", relay.StateOf(got), relay.Holder(got), live.Agent)
	}
	n.flush(t)
	n.expectOnly(t, map[string]int{string(magic(t, mac1)): 3})
}

// In a running agent, the look again at the end of another agent's claim comes by itself: no
// change of the request announces it.
func TestRunningAgentTakesOverAClaimThatRanOut(t *testing.T) {
	ns, n := namespace(t), listen(t)
	l := request(t, ns, "m1", "lan-2", mac1, n, time.Now().Add(time.Minute))
	// The claim was made 9 s ago: it runs out in a second.
	if err := relay.Claim(context.Background(), env.Client, l, "node-x/dead", time.Now().Add(-relay.ClaimDuration+time.Second)); err != nil {
		t.Fatal(err)
	}
	startAgent(t, ns, "node-a/agent-a", "lan-2")
	done := waitState(t, l, relay.StateDone, 20*time.Second)
	if relay.Holder(done) != "node-a/agent-a" {
		t.Fatalf("Done by %q", relay.Holder(done))
	}
	n.flush(t)
	n.expectOnly(t, map[string]int{string(magic(t, mac1)): 3})
}

// An agent resumes its own claim (its container restarted between Claim and Acting): nothing
// was sent, since Acting comes first. The send is counted.
func TestResumesItsOwnClaim(t *testing.T) {
	ns, n := namespace(t), listen(t)
	sent := agent.WakesTotal.WithLabelValues("lan-5", "sent")
	before := testutil.ToFloat64(sent)
	w := &agent.Waker{Client: env.Client, Agent: "node-a/agent-a", Segments: []string{"lan-5"}}
	l := request(t, ns, "m1", "lan-5", mac1, n, time.Now().Add(time.Minute))
	if err := relay.Claim(context.Background(), env.Client, l, w.Agent, time.Now()); err != nil {
		t.Fatal(err)
	}
	reconcile(t, w, l)
	if got := read(t, l); relay.StateOf(got) != relay.StateDone || relay.Holder(got) != w.Agent {
		t.Fatalf("request %s held by %q", relay.StateOf(got), relay.Holder(got))
	}
	n.flush(t)
	n.expectOnly(t, map[string]int{string(magic(t, mac1)): 3})
	if got := testutil.ToFloat64(sent) - before; got != 1 {
		t.Fatalf("homelab_agent_wakes_total{segment=lan-5,result=sent} rose by %v; want 1", got)
	}
}

// A request left Acting by an agent that stopped is never sent by another, even long after its
// claim ran out; the manager reads it as failed.
func TestActingIsNeverTakenOver(t *testing.T) {
	ns, n, clk := namespace(t), listen(t), newClock()
	t0 := clk.Now()
	l := request(t, ns, "m1", "lan-2", mac1, n, t0.Add(time.Minute))
	if err := relay.Claim(context.Background(), env.Client, l, "node-x/dead", t0); err != nil {
		t.Fatal(err)
	}
	if err := relay.Acting(context.Background(), env.Client, l, "node-x/dead", t0); err != nil {
		t.Fatal(err)
	}
	live := &agent.Waker{Client: env.Client, Agent: "node-a/agent-a", Segments: []string{"lan-2"}, Now: clk.Now}
	for _, after := range []time.Duration{time.Second, relay.ClaimDuration, 30 * time.Second} {
		clk.SetTime(t0.Add(after))
		if res := reconcile(t, live, l); res != (ctrl.Result{}) {
			t.Fatalf("%s after Acting: result %+v; nothing should be left to look at", after, res)
		}
	}
	got := read(t, l)
	if relay.StateOf(got) != relay.StateActing || relay.Holder(got) != "node-x/dead" {
		t.Fatalf("request %s held by %q; want Acting by the stopped agent", relay.StateOf(got), relay.Holder(got))
	}
	if v := relay.Read(got, clk.Now()); !strings.Contains(v.Failed, "stopped after it took the request") {
		t.Fatalf("verdict %+v", v)
	}
	n.flush(t)
	n.expectOnly(t, nil)
}

// A request past its deadline is never claimed, whether new or claimed by an agent that stopped.
func TestPastDeadlineNeverClaimed(t *testing.T) {
	ns, n, clk := namespace(t), listen(t), newClock()
	t0 := clk.Now()
	fresh := request(t, ns, "m1", "lan-2", mac1, n, t0.Add(5*time.Second))
	claimed := request(t, ns, "m2", "lan-2", mac2, n, t0.Add(5*time.Second))
	if err := relay.Claim(context.Background(), env.Client, claimed, "node-x/dead", t0); err != nil {
		t.Fatal(err)
	}
	w := &agent.Waker{Client: env.Client, Agent: "node-a/agent-a", Segments: []string{"lan-2"}, Now: clk.Now}
	clk.SetTime(t0.Add(relay.ClaimDuration))
	reconcile(t, w, fresh)
	reconcile(t, w, claimed)
	expectUntouched(t, fresh)
	if v := relay.Read(read(t, fresh), clk.Now()); v.Failed != "no homelab-agent serves segment lan-2: nobody took the request by its deadline" {
		t.Fatalf("verdict %+v", v)
	}
	if got := read(t, claimed); relay.StateOf(got) != relay.StateClaimed || relay.Holder(got) != "node-x/dead" {
		t.Fatalf("request %s held by %q; want still Claimed by the stopped agent", relay.StateOf(got), relay.Holder(got))
	}
	n.flush(t)
	n.expectOnly(t, nil)
}

// Requests of segments the agent does not serve, of another kind, whose spec and labels
// disagree, or that it cannot read are left alone.
func TestLeavesOtherRequestsAlone(t *testing.T) {
	ns, n := namespace(t), listen(t)
	w := &agent.Waker{Client: env.Client, Agent: "node-a/agent-a", Segments: []string{"lan-2"}}
	deadline := time.Now().Add(time.Minute)
	otherSegment := request(t, ns, "m1", "lan-3", mac1, n, deadline)
	otherKind := request(t, ns, "m2", "lan-2", mac2, n, deadline)
	otherKind.Labels[relay.LabelKind] = string(infrav1.AgentShutdown)
	otherKind.Spec.Kind = infrav1.AgentShutdown
	update(t, otherKind)
	// Labelled lan-2, but the manager asked lan-3 to send.
	otherSpec := request(t, ns, "m3", "lan-2", mac3, n, deadline)
	otherSpec.Spec.Segment = "lan-3"
	update(t, otherSpec)
	badTarget := request(t, ns, "m4", "lan-2", "aa:bb:cc:dd:ee:04", n, deadline)
	badTarget.Spec.Target = "127.0.0.1"
	update(t, badTarget)
	badMAC := request(t, ns, "m5", "lan-2", "aa:bb:cc:dd:ee:05", n, deadline)
	badMAC.Spec.MAC = "aa:bb:cc:dd:ee"
	update(t, badMAC)
	for _, r := range []*infrav1.AgentRequest{otherSegment, otherKind, otherSpec, badTarget, badMAC} {
		reconcile(t, w, r)
		expectUntouched(t, r)
	}
	n.flush(t)
	n.expectOnly(t, nil)
}

// update writes r's metadata and spec.
func update(t *testing.T, r *infrav1.AgentRequest) {
	t.Helper()
	if err := env.Client.Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// A send that fails after Acting is neither recorded as Done nor tried again: some packets may
// have gone. The failure is counted.
func TestFailedSendIsNotRetried(t *testing.T) {
	ns, n, clk := namespace(t), listen(t), newClock()
	t0 := clk.Now()
	failed := agent.WakesTotal.WithLabelValues("lan-6", "failed")
	before := testutil.ToFloat64(failed)
	var sends atomic.Int32
	w := &agent.Waker{Client: env.Client, Agent: "node-a/agent-a", Segments: []string{"lan-6"}, Now: clk.Now,
		Send: func(context.Context, string, string, int32) (string, error) {
			sends.Add(1)
			return "", errors.New("network is unreachable")
		}}
	l := request(t, ns, "m1", "lan-6", mac1, n, t0.Add(time.Minute))
	for _, after := range []time.Duration{0, time.Second, relay.ClaimDuration, 30 * time.Second} {
		clk.SetTime(t0.Add(after))
		reconcile(t, w, l)
	}
	if k := sends.Load(); k != 1 {
		t.Fatalf("sent %d times; want once", k)
	}
	got := read(t, l)
	if relay.StateOf(got) != relay.StateActing || relay.Holder(got) != w.Agent {
		t.Fatalf("request %s held by %q; want Acting by %s", relay.StateOf(got), relay.Holder(got), w.Agent)
	}
	if v := relay.Read(got, clk.Now()); !strings.Contains(v.Failed, "stopped after it took the request") {
		t.Fatalf("verdict %+v", v)
	}
	if got := testutil.ToFloat64(failed) - before; got != 1 {
		t.Fatalf("homelab_agent_wakes_total{segment=lan-6,result=failed} rose by %v; want 1", got)
	}
}

// Done that fails to be recorded once (the apiserver is briefly unavailable) is recorded on a
// later try, without a second send.
func TestDoneIsRecordedAfterAFailedWrite(t *testing.T) {
	ns, n := namespace(t), listen(t)
	var failed atomic.Bool
	c := interceptor.NewClient(env.Client, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if r, ok := obj.(*infrav1.AgentRequest); ok && r.Status.State == relay.StateDone && failed.CompareAndSwap(false, true) {
				return apierrors.NewServiceUnavailable("the apiserver is restarting")
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	w := &agent.Waker{Client: c, Agent: "node-a/agent-a", Segments: []string{"lan-2"}}
	l := request(t, ns, "m1", "lan-2", mac1, n, time.Now().Add(time.Minute))
	reconcile(t, w, l)
	if !failed.Load() {
		t.Fatal("the Done write was not refused once")
	}
	if got := read(t, l); relay.StateOf(got) != relay.StateDone || relay.Holder(got) != w.Agent {
		t.Fatalf("request %s held by %q; want Done by %s", relay.StateOf(got), relay.Holder(got), w.Agent)
	}
	reconcile(t, w, l)
	n.flush(t)
	n.expectOnly(t, map[string]int{string(magic(t, mac1)): 3})
}

func TestOptionsRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, dir, "poweroff", "exit 0")
	notExecutable := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "bus")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	good := agent.Options{Segment: "lan-2,lan-3", NodeName: "n1", PodName: "p1"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	if got := good.Identity(); got != "n1/p1" {
		t.Fatalf("identity %q", got)
	}
	for _, o := range []agent.Options{
		{NodeName: "n1", PodName: "p1", Shutdown: agent.ShutdownCommand, ShutdownCommand: script},
		{NodeName: "n1", PodName: "p1", Shutdown: agent.ShutdownLogind, DBusSocket: socket},
		{Segment: "lan-2", NodeName: "n1", PodName: "p1", Shutdown: agent.ShutdownOff},
	} {
		if err := o.Validate(); err != nil {
			t.Errorf("valid options %+v refused: %v", o, err)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*agent.Options)
		want string
	}{
		{"no segment", func(o *agent.Options) { o.Segment = "" }, "--segment is required"},
		{"no segment, shutdown off", func(o *agent.Options) { o.Segment, o.Shutdown = "", agent.ShutdownOff }, "--segment is required"},
		{"empty segment", func(o *agent.Options) { o.Segment = "lan-2," }, "empty name"},
		{"bad segment", func(o *agent.Options) { o.Segment = "LAN_2" }, `"LAN_2" is not a valid name`},
		{"repeated segment", func(o *agent.Options) { o.Segment = "lan-2,lan-2" }, `names "lan-2" twice`},
		{"bad namespace", func(o *agent.Options) { o.Namespace = "a,b c" }, `"b c" is not a valid name`},
		{"no node", func(o *agent.Options) { o.NodeName = "" }, "--node-name (or $NODE_NAME) is required"},
		{"no pod", func(o *agent.Options) { o.PodName = "" }, "--pod-name (or $POD_NAME) is required"},
		{"slash", func(o *agent.Options) { o.PodName = "a/b" }, "must not contain '/'"},
		{"bad shutdown", func(o *agent.Options) { o.Shutdown = "reboot" }, `--shutdown="reboot": want off, logind or command`},
		{"command without path", func(o *agent.Options) { o.Shutdown = agent.ShutdownCommand }, "--shutdown=command needs --shutdown-command"},
		{"relative command", func(o *agent.Options) { o.Shutdown, o.ShutdownCommand = agent.ShutdownCommand, "poweroff" },
			"--shutdown=command needs --shutdown-command, the absolute path"},
		{"missing command", func(o *agent.Options) {
			o.Shutdown, o.ShutdownCommand = agent.ShutdownCommand, filepath.Join(dir, "none")
		},
			"--shutdown-command: stat " + filepath.Join(dir, "none") + ": no such file or directory"},
		{"command not executable", func(o *agent.Options) { o.Shutdown, o.ShutdownCommand = agent.ShutdownCommand, notExecutable },
			"--shutdown-command " + notExecutable + " is not an executable file"},
		{"command unused", func(o *agent.Options) { o.ShutdownCommand = script }, "--shutdown-command is only used with --shutdown=command"},
		{"no D-Bus socket", func(o *agent.Options) { o.Shutdown, o.DBusSocket = agent.ShutdownLogind, filepath.Join(dir, "none") },
			"the host's D-Bus system bus socket " + filepath.Join(dir, "none") + " is not there (mount the host's /run/dbus/system_bus_socket into the pod)"},
		{"D-Bus socket not a socket", func(o *agent.Options) { o.Shutdown, o.DBusSocket = agent.ShutdownLogind, script },
			"the host's D-Bus system bus socket " + script + " is not a socket"},
		{"relative D-Bus socket", func(o *agent.Options) { o.Shutdown, o.DBusSocket = agent.ShutdownLogind, "bus" }, `--dbus-socket "bus" must be an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}
