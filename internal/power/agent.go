package power

import (
	"context"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// Agent has the homelab-agent running on the machine itself shut it down (power.stop.agent): the
// manager records a Shutdown request for the machine's Node, and only the agent on that Node
// serves it (internal/relay). The agent acknowledges before it goes down; whether the machine is
// off shows in the confirmation that follows (its Node goes NotReady, or the status driver).
type Agent struct {
	// Relay records the requests; nil refuses the driver.
	Relay relayClient
	// Now returns the current time; nil is time.Now.
	Now func() time.Time
}

// Name implements Driver.
func (Agent) Name() string { return DriverAgent }

// Do asks for ActionOff.
func (a Agent) Do(ctx context.Context, req Request) (Outcome, error) {
	req, g := guard(DriverAgent, req)
	out, err := a.do(ctx, req)
	return g.outcome(out), g.err(err)
}

func (a Agent) do(ctx context.Context, req Request) (Outcome, error) {
	if req.Action != ActionOff {
		return Outcome{}, Errorf(DriverAgent, req.Action, ClassUnsupported, "the machine's agent can only shut it down")
	}
	if a.Relay == nil {
		return Outcome{}, Errorf(DriverAgent, req.Action, ClassConfig, "the agent driver needs the manager's relay, which this build was started without")
	}
	m := req.Machine
	// Only the Node the machine has claimed (status.kubernetesNode, set once the Node passed the
	// claim rules of docs/security.md) is asked: a name from the spec could be any Node's.
	node := m.Status.KubernetesNode
	if node == "" {
		return Outcome{}, Errorf(DriverAgent, req.Action, ClassConfig, "the machine has no claimed Node, so no agent of its own to ask")
	}
	return askAgent(ctx, a.Relay, DriverAgent, req, nowOr(a.Now), func(m *infrav1.Machine, started, deadline time.Time) (*infrav1.AgentRequest, error) {
		return relay.RequestShutdown(ctx, a.Relay, relay.Shutdown{
			Namespace: m.Namespace, Machine: m.Name, MachineUID: string(m.UID), Node: node, Attempt: req.Attempt,
			Started: started, Deadline: deadline,
		})
	}, "the homelab-agent of node "+node)
}

// Status implements Driver: the agent does not read power states.
func (Agent) Status(context.Context, Request) (infrav1.PowerState, error) {
	return infrav1.PowerUnknown, Errorf(DriverAgent, ActionStatus, ClassUnsupported, "the agent driver cannot read the power state")
}
