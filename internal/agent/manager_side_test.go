package agent_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// lagging is the manager's client as its cache may be: reads of AgentRequests answer what read
// says (nil: not seen yet), writes go to the apiserver.
func lagging(read func(key client.ObjectKey) *infrav1.AgentRequest) client.Client {
	return interceptor.NewClient(env.Client, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			r, ok := obj.(*infrav1.AgentRequest)
			if !ok {
				return c.Get(ctx, key, obj, opts...)
			}
			seen := read(key)
			if seen == nil {
				return apierrors.NewNotFound(infrav1.GroupVersion.WithResource("agentrequests").GroupResource(), key.Name)
			}
			seen.DeepCopyInto(r)
			return nil
		},
	})
}

// The manager's side of a relayed wake reads requests from a cache that may be behind the API.
// A request it recorded but has not seen yet, and a request it saw before an agent claimed it,
// are waited for: the attempt never fails on them (a failed attempt starts the next one, whose
// request an agent would serve too: two wakes for one power-on).
func TestManagerWaitsForWhatItsCacheHasNotSeen(t *testing.T) {
	ns, n := namespace(t), listen(t)
	clock := newClock()
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m1"}}
	started := clock.Now()
	req := power.Request{
		Machine: m, Action: power.ActionOn, Attempt: 1, AttemptStarted: started,
		Slot: power.Slot{Timeout: 5 * time.Second, WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: mac1, BroadcastAddress: "127.0.0.1", Port: int32(n.port), Via: "lan-2"}}, //nolint:gosec // a UDP port
	}
	call := func(c client.Client) (power.Outcome, error) {
		return power.WakeOnLAN{Relay: c, Now: clock.Now}.Do(context.Background(), req)
	}
	name := relay.Wake{Namespace: ns, Machine: m.Name, Attempt: 1, Started: started}.Name()

	// Recorded by the first call; the second reads a cache that has not seen it yet.
	out, err := call(lagging(func(client.ObjectKey) *infrav1.AgentRequest { return nil }))
	if err != nil || out.Done {
		t.Fatalf("first call: %+v, %v; want waiting for an agent", out, err)
	}
	requested := read(t, &infrav1.AgentRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	out, err = call(lagging(func(client.ObjectKey) *infrav1.AgentRequest { return nil }))
	if err != nil || out.Done || out.RecheckAfter <= 0 {
		t.Fatalf("a call whose cache has not seen the request: %+v, %v; want waiting, with a recheck", out, err)
	}

	// An agent claims the request; the manager's cache still shows it unclaimed when the deadline
	// passes. The verdict from that read ("nobody took it") is not recorded over the claim.
	startAgent(t, ns, "node-a/agent-a", "lan-2")
	claimed := waitState(t, requested, relay.StateDone, 20*time.Second)
	clock.Step(10 * time.Second)
	out, err = call(lagging(func(client.ObjectKey) *infrav1.AgentRequest { return requested.DeepCopy() }))
	if err != nil || out.Done {
		t.Fatalf("a call whose cache shows the request unclaimed past its deadline: %+v, %v; want waiting", out, err)
	}
	if got := read(t, claimed); relay.StateOf(got) != relay.StateDone {
		t.Fatalf("the request is %q after the stale verdict; want the agent's Done to stand", relay.StateOf(got))
	}

	// Once the cache catches up, the attempt is done: one agent, one wake.
	out, err = call(env.Client)
	if err != nil || !out.Done {
		t.Fatalf("a call that reads the request as it is: %+v, %v; want done", out, err)
	}
	n.flush(t)
	n.expectOnly(t, map[string]int{string(magic(t, mac1)): 3})
}
