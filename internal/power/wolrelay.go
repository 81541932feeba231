package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// relayWake asks a homelab-agent of the slot's segment (wakeOnLAN.via) to send the magic packets,
// through a request recorded in the API (internal/relay): the manager needs no host network and
// the agent no listening port. The request is named after the attempt, so a repeated call looks at
// the same request; the agent's acknowledgement (or its absence by the slot's timeout after the
// attempt started) decides the outcome. Until then the outcome is not Done and says when to look
// again; the request's changes wake the caller too (it watches them).
func (w WakeOnLAN) relayWake(ctx context.Context, req Request) (Outcome, error) {
	cfg := req.Slot.WakeOnLAN
	if w.Relay == nil {
		return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassConfig, "wakeOnLAN.via %q needs the manager's relay, which this build was started without", cfg.Via)
	}
	m := req.Machine
	started := w.now()
	if op := m.Status.Operation; op != nil && op.AttemptStartedAt != nil {
		started = op.AttemptStartedAt.Time
	}
	timeout := req.Slot.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	port := cfg.Port
	if port == 0 {
		port = 9
	}
	wake := relay.Wake{
		Namespace: m.Namespace, Machine: m.Name, MachineUID: string(m.UID), Segment: cfg.Via, MAC: cfg.MAC,
		Target: net.JoinHostPort(cfg.BroadcastAddress, strconv.Itoa(int(port))), Attempt: req.Attempt,
		Started: started, Deadline: started.Add(timeout),
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	for range 3 {
		l, err := relay.Request(ctx, w.Relay, wake)
		if err != nil {
			return Outcome{}, attribute(ctx, DriverWakeOnLAN, req.Action, err)
		}
		v := relay.Read(l, w.now())
		switch {
		case v.Done:
			return Outcome{Done: true, Detail: v.Detail}, nil
		case v.Failed != "":
			// Recorded on the request first, so that an agent still on its way cannot act on it.
			err := relay.Abandon(ctx, w.Relay, l, v.Failed)
			if errors.Is(err, relay.ErrLost) {
				continue
			}
			if err != nil {
				return Outcome{}, attribute(ctx, DriverWakeOnLAN, req.Action, err)
			}
			return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassUnreachable, "%s", v.Failed)
		}
		return Outcome{RecheckAfter: v.RecheckAfter,
			Detail: fmt.Sprintf("waiting for a homelab-agent of segment %s (request %s, %s)", cfg.Via, l.Name, relay.StateOf(l))}, nil
	}
	return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassTimeout, "the wake request for segment %s kept changing while it was read", cfg.Via)
}

func (w WakeOnLAN) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// relayClient is what the relay needs of a client.
type relayClient = client.Client
