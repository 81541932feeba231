// Package relay is how the manager and homelab-agent meet through the Kubernetes API, without a
// port or a network path between them: the manager records a request as an AgentRequest in the
// machine's namespace (one per power attempt; only the manager may create them), agents that
// serve the request watch AgentRequests, and exactly one of them claims it, records that it is
// about to act, acts, and records that it did. Each step is a status write with the object's
// resourceVersion as precondition, so two agents never both act on one request:
//
//	(new) --claim--> Claimed --(before acting)--> Acting --(after)--> Done
//	(any but Done) --(the manager gives up)--> Abandoned
//
// A claim whose agent stopped before recording Acting runs out (ClaimDuration after its renewal)
// and another agent may claim it; a request in Acting is never taken over, since the agent may
// have acted: the manager reports it failed instead of acting twice. The manager gives up on a
// request nobody claimed by its deadline, and records so first: an agent's claim written after
// the manager read the request conflicts, so no agent acts on an attempt the manager has failed.
//
// Times in a request come from the clocks of the manager and of the agents: they are compared
// with a margin (ClaimDuration) where a clock difference could otherwise fail a request that is
// being served, and the writes' preconditions, not the clocks, keep a request from being served
// twice.
package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Labels of a request, for the agents' caches to select theirs.
const (
	// LabelKind is the request's kind (spec.kind).
	LabelKind = "relay.homelab-autoscaler.dev/kind"
	// LabelSegment is the network segment whose agents may serve a Wake.
	LabelSegment = "relay.homelab-autoscaler.dev/segment"
	// LabelNode is the Node whose agent alone may serve a Shutdown.
	LabelNode = "relay.homelab-autoscaler.dev/node"
	// LabelMachine names the Machine (the same key as the Machine's own label).
	LabelMachine = infrav1.LabelMachine
)

// State is where a request stands; StateRequested (empty) until an agent claims it.
type State = infrav1.AgentRequestState

// The states.
const (
	StateRequested State = ""
	StateClaimed         = infrav1.AgentRequestClaimed
	StateActing          = infrav1.AgentRequestActing
	StateDone            = infrav1.AgentRequestDone
	StateAbandoned       = infrav1.AgentRequestAbandoned
)

// ClaimDuration is how long a claim stands without the Acting record: an agent that stopped
// before acting leaves the request to another after it.
const ClaimDuration = 10 * time.Second

// Wake is a request for magic packets.
type Wake struct {
	Namespace, Machine string
	// MachineUID owns the request, so it goes with the Machine.
	MachineUID string
	Segment    string
	MAC        string
	// Target is host:port, as the agent's network resolves it.
	Target string
	// Attempt and Started identify the power attempt (status.operation).
	Attempt int32
	Started time.Time
	// Deadline is when the manager gives up unless an agent claimed the request.
	Deadline time.Time
}

// Name is the request's name: the same for every call about one attempt (the API keeps times to
// the second, so Started counts in whole seconds), at most 41 characters.
func (w Wake) Name() string { return name("hla-wake-", w.Namespace, w.Machine, w.Attempt, w.Started) }

func name(prefix, ns, machine string, attempt int32, started time.Time) string {
	h := sha256.Sum256([]byte(ns + "/" + machine + "/" + strconv.Itoa(int(attempt)) + "/" + strconv.FormatInt(started.Unix(), 10)))
	return prefix + hex.EncodeToString(h[:])[:32]
}

// Request records w, once: a repeated call for the same attempt returns the existing request.
func Request(ctx context.Context, c client.Client, w Wake) (*infrav1.AgentRequest, error) {
	return record(ctx, c, w.MachineUID, &infrav1.AgentRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: w.Namespace, Name: w.Name(),
			Labels: map[string]string{LabelKind: string(infrav1.AgentWake), LabelSegment: w.Segment, LabelMachine: w.Machine},
		},
		Spec: infrav1.AgentRequestSpec{
			Kind: infrav1.AgentWake, Machine: w.Machine, Attempt: w.Attempt, Segment: w.Segment, MAC: w.MAC, Target: w.Target,
			Deadline: metav1.NewTime(w.Deadline.Truncate(time.Second)),
		},
	})
}

// Shutdown is a request to the agent on a machine's own Node to shut the machine down.
type Shutdown struct {
	Namespace, Machine string
	MachineUID         string
	// Node is the machine's Node: only the agent running there may serve the request.
	Node     string
	Attempt  int32
	Started  time.Time
	Deadline time.Time
}

// Name is the request's name, as Wake's.
func (s Shutdown) Name() string {
	return name("hla-shutdown-", s.Namespace, s.Machine, s.Attempt, s.Started)
}

// RequestShutdown records s, once.
func RequestShutdown(ctx context.Context, c client.Client, s Shutdown) (*infrav1.AgentRequest, error) {
	return record(ctx, c, s.MachineUID, &infrav1.AgentRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace, Name: s.Name(),
			Labels: map[string]string{LabelKind: string(infrav1.AgentShutdown), LabelNode: s.Node, LabelMachine: s.Machine},
		},
		Spec: infrav1.AgentRequestSpec{
			Kind: infrav1.AgentShutdown, Machine: s.Machine, Attempt: s.Attempt, Node: s.Node,
			Deadline: metav1.NewTime(s.Deadline.Truncate(time.Second)),
		},
	})
}

func record(ctx context.Context, c client.Client, machineUID string, r *infrav1.AgentRequest) (*infrav1.AgentRequest, error) {
	if machineUID != "" {
		// The Machine owns (and controls) its requests: they go with it, and the machine
		// controller is told of their changes.
		r.OwnerReferences = []metav1.OwnerReference{{APIVersion: infrav1.GroupVersion.String(), Kind: "Machine", Name: r.Spec.Machine,
			UID: types.UID(machineUID), Controller: ptr.To(true)}}
	}
	// Read first: the request of an attempt is recorded once, and every later call (each
	// reconcile of a machine waiting for its agent) finds it, in the manager's cache.
	found := &infrav1.AgentRequest{}
	err := c.Get(ctx, client.ObjectKeyFromObject(r), found)
	switch {
	case err == nil:
		return found, nil
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading the %s request %s/%s: %w", r.Spec.Kind, r.Namespace, r.Name, err)
	}
	err = c.Create(ctx, r)
	if apierrors.IsAlreadyExists(err) {
		// Recorded, but not yet seen by c's cache: never taken for a failure (the attempt would
		// be failed while an agent serves its request, and the next attempt's request served too).
		return nil, fmt.Errorf("%w: %s request %s/%s", ErrNotSeen, r.Spec.Kind, r.Namespace, r.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("recording the %s request %s/%s: %w", r.Spec.Kind, r.Namespace, r.Name, err)
	}
	return r, nil
}

// ErrNotSeen means the request is recorded in the API but the caller's client (a cache) has not
// seen it yet: read it again once it has.
var ErrNotSeen = errors.New("recorded, but not seen yet by this client")

// StateOf is a request's state.
func StateOf(r *infrav1.AgentRequest) State { return r.Status.State }

// Holder is the agent that claimed the request ("" when none).
func Holder(r *infrav1.AgentRequest) string { return r.Status.Agent }

// ClaimEnd is when the request's claim runs out (zero when it has none).
func ClaimEnd(r *infrav1.AgentRequest) time.Time {
	if r.Status.RenewedAt == nil {
		return time.Time{}
	}
	return r.Status.RenewedAt.Add(time.Duration(r.Status.ClaimSeconds) * time.Second)
}

// Claimable reports whether an agent may claim the request at now: nobody took it, or its claim
// ran out before the agent recorded Acting, and its deadline has not passed.
func Claimable(r *infrav1.AgentRequest, now time.Time) bool {
	if !now.Before(r.Spec.Deadline.Time) {
		return false
	}
	switch StateOf(r) {
	case StateRequested:
		return true
	case StateClaimed:
		return !now.Before(ClaimEnd(r))
	}
	return false
}

// ErrLost means another agent claimed the request, the manager gave up on it, or it changed
// since it was read: read it again.
var ErrLost = errors.New("the request is another's or changed")

// Claim makes agent the request's holder, if it is claimable: of several agents exactly one
// succeeds; the others get ErrLost. r is updated only when the write succeeds.
func Claim(ctx context.Context, c client.Client, r *infrav1.AgentRequest, agent string, now time.Time) error {
	if !Claimable(r, now) {
		return ErrLost
	}
	return write(ctx, c, r, func(st *infrav1.AgentRequestStatus) {
		t := metav1.NewMicroTime(now)
		st.State, st.Agent, st.RenewedAt, st.ClaimSeconds = StateClaimed, agent, &t, int32(ClaimDuration/time.Second)
	})
}

// Acting records, before the agent acts, that it is about to: from here on no other agent takes
// the request over.
func Acting(ctx context.Context, c client.Client, r *infrav1.AgentRequest, agent string, now time.Time) error {
	if Holder(r) != agent || StateOf(r) != StateClaimed || !now.Before(ClaimEnd(r)) {
		return ErrLost
	}
	return write(ctx, c, r, func(st *infrav1.AgentRequestStatus) {
		t := metav1.NewMicroTime(now)
		st.State, st.RenewedAt = StateActing, &t
	})
}

// Done records that the agent acted, with a short detail for the manager's Events.
func Done(ctx context.Context, c client.Client, r *infrav1.AgentRequest, agent, detail string, now time.Time) error {
	if Holder(r) != agent || StateOf(r) != StateActing {
		return ErrLost
	}
	return write(ctx, c, r, func(st *infrav1.AgentRequestStatus) {
		t := metav1.NewMicroTime(now)
		st.State, st.RenewedAt, st.Detail = StateDone, &t, detail
	})
}

// Abandon records the manager's verdict that a request failed. A request an agent finished is
// left as it is (ErrLost: read it again).
func Abandon(ctx context.Context, c client.Client, r *infrav1.AgentRequest, why string) error {
	switch StateOf(r) {
	case StateAbandoned:
		return nil
	case StateDone:
		return ErrLost
	}
	return write(ctx, c, r, func(st *infrav1.AgentRequestStatus) { st.State, st.Detail = StateAbandoned, why })
}

// write changes a copy of r's status and writes it with r's resourceVersion as precondition; r
// takes the written object only when the write succeeds.
func write(ctx context.Context, c client.Client, r *infrav1.AgentRequest, change func(*infrav1.AgentRequestStatus)) error {
	next := r.DeepCopy()
	change(&next.Status)
	err := c.Status().Update(ctx, next)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("writing agent request %s/%s: %w", r.Namespace, r.Name, err)
	}
	*r = *next
	return nil
}

// Verdict is how the manager reads a request at now.
type Verdict struct {
	// Done: an agent acted; Detail says which and what.
	Done   bool
	Detail string
	// Failed explains a request that will not be served: nobody claimed it by its deadline, or
	// its agent stopped after it may have acted.
	Failed string
	// RecheckAfter is when the verdict may change by the clock alone; zero when only a change of
	// the request can change it.
	RecheckAfter time.Duration
}

// Read gives the manager's verdict on a request at now. An agent's claim or Acting record is
// given ClaimDuration more than it claims, for the clocks of the agent and the manager to
// differ by that much without failing a request that is being served.
func Read(r *infrav1.AgentRequest, now time.Time) Verdict {
	who := "segment " + r.Spec.Segment
	if r.Spec.Kind == infrav1.AgentShutdown {
		who = "node " + r.Spec.Node
	}
	switch StateOf(r) {
	case StateAbandoned:
		return Verdict{Failed: r.Status.Detail}
	case StateDone:
		return Verdict{Done: true, Detail: fmt.Sprintf("%s (homelab-agent %s)", r.Status.Detail, Holder(r))}
	case StateActing:
		if end := ClaimEnd(r).Add(ClaimDuration); !now.Before(end) {
			return Verdict{Failed: fmt.Sprintf("homelab-agent %s of %s stopped after it took the request and may have acted; "+
				"not asked again, so that it never acts twice", Holder(r), who)}
		} else {
			return Verdict{RecheckAfter: end.Sub(now)}
		}
	case StateClaimed:
		if end := later(ClaimEnd(r), r.Spec.Deadline.Time).Add(ClaimDuration); now.Before(end) {
			return Verdict{RecheckAfter: end.Sub(now)}
		}
		return Verdict{Failed: fmt.Sprintf("homelab-agent %s of %s claimed the request but did not act", Holder(r), who)}
	}
	if end := r.Spec.Deadline.Time; now.Before(end) {
		return Verdict{RecheckAfter: end.Sub(now)}
	}
	return Verdict{Failed: fmt.Sprintf("no homelab-agent serves %s: nobody took the request by its deadline", who)}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
