package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// relayClient is what the relay needs of a client.
type relayClient = client.Client

// relayWake asks a homelab-agent of the slot's segment (wakeOnLAN.via) to send the magic packets,
// through a request recorded in the API (internal/relay): the manager needs no host network and
// the agent no listening port.
func (w WakeOnLAN) relayWake(ctx context.Context, req Request) (Outcome, error) {
	cfg := req.Slot.WakeOnLAN
	if w.Relay == nil {
		return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassConfig, "wakeOnLAN.via %q needs the manager's relay, which this build was started without", cfg.Via)
	}
	port := cfg.Port
	if port == 0 {
		port = infrav1.DefaultWakeOnLANPort
	}
	return askAgent(ctx, w.Relay, DriverWakeOnLAN, req, nowOr(w.Now), func(m *infrav1.Machine, started, deadline time.Time) (*infrav1.AgentRequest, error) {
		return relay.Request(ctx, w.Relay, relay.Wake{
			Namespace: m.Namespace, Machine: m.Name, MachineUID: string(m.UID), Segment: cfg.Via, MAC: cfg.MAC,
			Target: net.JoinHostPort(cfg.BroadcastAddress, strconv.Itoa(int(port))), Attempt: req.Attempt,
			Started: started, Deadline: deadline,
		})
	}, "a homelab-agent of segment "+cfg.Via)
}

// askAgent records the request of the recorded attempt (once: a repeated call finds it) and reads
// the agent's answer. The request is named after the attempt; its deadline is the slot's timeout
// after the attempt started. Until an agent answers, the outcome is not Done and says when to look
// again; the request's changes wake the caller too (it watches them). A request nobody will serve
// is recorded as abandoned before the attempt fails, so that a late agent cannot act on it.
func askAgent(ctx context.Context, c client.Client, driver string, req Request, now time.Time,
	record func(m *infrav1.Machine, started, deadline time.Time) (*infrav1.AgentRequest, error), who string) (Outcome, error) {
	m := req.Machine
	// The attempt's start names the request; the lifecycle records it before it calls a driver.
	started := req.AttemptStarted
	if started.IsZero() {
		return Outcome{}, Errorf(driver, req.Action, ClassConfig, "no recorded attempt to ask an agent for")
	}
	timeout := req.Slot.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	// The caller's client may read from a cache behind the API. Whatever it has not seen yet, or
	// saw before a change, is waited for, never taken as a failure: failing the attempt would
	// start the next one while an agent may still serve this one's request (two wakes, or two
	// shutdowns). The request's changes wake the caller (it watches them); RecheckAfter is the
	// backstop.
	r, err := record(m, started, started.Add(timeout))
	switch {
	case errors.Is(err, relay.ErrNotSeen):
		return Outcome{RecheckAfter: relayRecheck, Detail: fmt.Sprintf("waiting for %s (%v)", who, err)}, nil
	case err != nil:
		return Outcome{}, attribute(ctx, driver, req.Action, err)
	}
	v := relay.Read(r, now)
	switch {
	case v.Done:
		return Outcome{Done: true, Detail: v.Detail}, nil
	case v.Failed != "":
		err := relay.Abandon(ctx, c, r, v.Failed)
		if errors.Is(err, relay.ErrLost) {
			// Changed since it was read (an agent's late claim, or its answer): the change decides.
			return Outcome{RecheckAfter: relayRecheck, Detail: fmt.Sprintf("waiting for %s (request %s changed while it was read)", who, r.Name)}, nil
		}
		if err != nil {
			return Outcome{}, attribute(ctx, driver, req.Action, err)
		}
		return Outcome{}, Errorf(driver, req.Action, ClassUnreachable, "%s", v.Failed)
	}
	state := relay.StateOf(r)
	if state == relay.StateRequested {
		state = "Requested"
	}
	return Outcome{RecheckAfter: v.RecheckAfter, Detail: fmt.Sprintf("waiting for %s (request %s, %s)", who, r.Name, state)}, nil
}

// relayRecheck is when a caller looks at a request again that its client had not seen as it is:
// the request's watch normally brings the change sooner.
const relayRecheck = time.Second

func nowOr(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}
