// Package relay is how the manager and homelab-agent meet through the Kubernetes API, without a
// port or a network path between them: the manager records a request as a coordination.k8s.io
// Lease in the machine's namespace (one per power attempt), agents that serve the request's
// segment watch such Leases, and exactly one of them claims it, records that it is about to act,
// acts, and records that it did. Each step is a write with the Lease's resourceVersion as
// precondition, so two agents never both act on one request:
//
//	Requested --claim--> Claimed --(before acting)--> Acting --(after)--> Done
//	(any but Done) --(the manager gives up)--> Abandoned
//
// A claim whose agent stopped before recording Acting expires (the Lease's duration after its
// renew time) and another agent may claim it; a request in Acting is never taken over, since the
// agent may have acted: the manager reports it as failed instead of acting twice.
package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Labels and annotations of a request Lease.
const (
	// LabelKind says what the request asks for (KindWake).
	LabelKind = "relay.homelab-autoscaler.dev/kind"
	// LabelSegment names the network segment whose agents may serve it.
	LabelSegment = "relay.homelab-autoscaler.dev/segment"
	// LabelMachine names the Machine (the same key as the Machine's own label).
	LabelMachine = infrav1.LabelMachine

	AnnotationState   = "relay.homelab-autoscaler.dev/state"
	AnnotationMAC     = "relay.homelab-autoscaler.dev/mac"
	AnnotationTarget  = "relay.homelab-autoscaler.dev/target"
	AnnotationAttempt = "relay.homelab-autoscaler.dev/attempt"
	// AnnotationDeadline is when the manager gives up on the request (RFC 3339): no agent claims
	// it after that, so a late agent never acts on an attempt the manager has failed.
	AnnotationDeadline = "relay.homelab-autoscaler.dev/deadline"
	AnnotationDoneAt  = "relay.homelab-autoscaler.dev/done-at"
	AnnotationDetail  = "relay.homelab-autoscaler.dev/detail"
)

// KindWake asks for Wake-on-LAN magic packets.
const KindWake = "wake"

// State is where a request stands.
type State string

const (
	StateRequested State = "Requested"
	StateClaimed   State = "Claimed"
	StateActing    State = "Acting"
	StateDone      State = "Done"
	// StateAbandoned: the manager failed the attempt (nobody took it in time, or its agent
	// stopped while acting); no agent acts on it any more.
	StateAbandoned State = "Abandoned"
)

// ClaimDuration is how long a claim stands without the Acting record: an agent that stopped
// before acting leaves the request to another after it.
const ClaimDuration = 10 * time.Second

// Wake is a request for magic packets.
type Wake struct {
	Namespace, Machine string
	// MachineUID owns the Lease, so it goes with the Machine.
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

// Name is the Lease's name: unique per machine and attempt, at most 63 characters.
func (w Wake) Name() string {
	h := sha256.Sum256([]byte(w.Namespace + "/" + w.Machine + "/" + strconv.Itoa(int(w.Attempt)) + "/" + w.Started.UTC().Format(time.RFC3339Nano)))
	return "hla-wake-" + hex.EncodeToString(h[:])[:32]
}

// Request records w, once: a repeated call for the same attempt returns the existing Lease.
func Request(ctx context.Context, c client.Client, w Wake) (*coordinationv1.Lease, error) {
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: w.Namespace, Name: w.Name(),
			Labels: map[string]string{LabelKind: KindWake, LabelSegment: w.Segment, LabelMachine: w.Machine},
			Annotations: map[string]string{
				AnnotationState: string(StateRequested), AnnotationMAC: w.MAC, AnnotationTarget: w.Target,
				AnnotationAttempt: strconv.Itoa(int(w.Attempt)), AnnotationDeadline: w.Deadline.UTC().Format(time.RFC3339Nano),
			},
		},
	}
	if w.MachineUID != "" {
		// The Machine owns (and controls) its requests: they go with it, and the machine
		// controller is told of their changes.
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: infrav1.GroupVersion.String(), Kind: "Machine", Name: w.Machine,
			UID: types.UID(w.MachineUID), Controller: ptr.To(true)}}
	}
	err := c.Create(ctx, l)
	if apierrors.IsAlreadyExists(err) {
		err = c.Get(ctx, client.ObjectKeyFromObject(l), l)
	}
	if err != nil {
		return nil, fmt.Errorf("recording the wake request %s/%s: %w", w.Namespace, l.Name, err)
	}
	return l, nil
}

// StateOf is a request's state.
func StateOf(l *coordinationv1.Lease) State { return State(l.Annotations[AnnotationState]) }

// Holder is the agent that claimed the request ("" when none).
func Holder(l *coordinationv1.Lease) string { return ptr.Deref(l.Spec.HolderIdentity, "") }

// claimExpired reports whether a Claimed request's claim has run out at now.
func claimExpired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return !now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// deadline is the request's deadline (zero when unreadable, which makes it past).
func deadline(l *coordinationv1.Lease) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, l.Annotations[AnnotationDeadline])
	return t
}

// Claimable reports whether an agent may claim the request at now: it is new, or its claim ran
// out before the agent recorded Acting, and the manager has not given up on it.
func Claimable(l *coordinationv1.Lease, now time.Time) bool {
	if !now.Before(deadline(l)) {
		return false
	}
	switch StateOf(l) {
	case StateRequested:
		return true
	case StateClaimed:
		return claimExpired(l, now)
	}
	return false
}

// ErrLost means another agent claimed the request, or it changed since it was read.
var ErrLost = errors.New("another agent holds the request")

// Claim makes agent the request's holder, if it is claimable: a write with the read
// resourceVersion as precondition, so of several agents exactly one succeeds; the others get
// ErrLost.
func Claim(ctx context.Context, c client.Client, l *coordinationv1.Lease, agent string, now time.Time) error {
	if !Claimable(l, now) {
		return ErrLost
	}
	t := metav1.NewMicroTime(now)
	l.Spec.HolderIdentity = &agent
	l.Spec.LeaseDurationSeconds = ptr.To(int32(ClaimDuration / time.Second))
	l.Spec.AcquireTime, l.Spec.RenewTime = &t, &t
	l.Annotations[AnnotationState] = string(StateClaimed)
	return update(ctx, c, l)
}

// Acting records, before the agent acts, that it is about to: from here on no other agent takes
// the request over.
func Acting(ctx context.Context, c client.Client, l *coordinationv1.Lease, agent string, now time.Time) error {
	if Holder(l) != agent || StateOf(l) != StateClaimed || claimExpired(l, now) {
		return ErrLost
	}
	t := metav1.NewMicroTime(now)
	l.Spec.RenewTime = &t
	l.Annotations[AnnotationState] = string(StateActing)
	return update(ctx, c, l)
}

// Done records that the agent acted, with a short detail for the manager's Events.
func Done(ctx context.Context, c client.Client, l *coordinationv1.Lease, agent, detail string, now time.Time) error {
	if Holder(l) != agent || StateOf(l) != StateActing {
		return ErrLost
	}
	t := metav1.NewMicroTime(now)
	l.Spec.RenewTime = &t
	l.Annotations[AnnotationState] = string(StateDone)
	l.Annotations[AnnotationDoneAt] = now.UTC().Format(time.RFC3339Nano)
	l.Annotations[AnnotationDetail] = detail
	return update(ctx, c, l)
}

// Abandon records the manager's verdict that a request failed (StateAbandoned), with the read
// resourceVersion as precondition: an agent's Acting write made after the manager read the
// request conflicts, so no agent acts on an attempt the manager has given up on. ErrLost means
// the request changed: read it again and decide again.
func Abandon(ctx context.Context, c client.Client, l *coordinationv1.Lease, why string) error {
	if StateOf(l) == StateAbandoned {
		return nil
	}
	l.Annotations[AnnotationState] = string(StateAbandoned)
	l.Annotations[AnnotationDetail] = why
	return update(ctx, c, l)
}

func update(ctx context.Context, c client.Client, l *coordinationv1.Lease) error {
	err := c.Update(ctx, l)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ErrLost
	}
	return err
}

// Verdict is how the manager reads a request at now.
type Verdict struct {
	// Done: an agent sent it; Detail says which and what.
	Done   bool
	Detail string
	// Failed explains a request that will not be served: nobody claimed it within ackTimeout, or
	// its agent stopped after it may have acted.
	Failed string
	// RecheckAfter is when the verdict may change by the clock alone (a claim or an
	// acknowledgement running out); zero when only a change of the Lease can change it.
	RecheckAfter time.Duration
}

// Read gives the manager's verdict on a request at now.
func Read(l *coordinationv1.Lease, now time.Time) Verdict {
	segment := l.Labels[LabelSegment]
	switch StateOf(l) {
	case StateAbandoned:
		return Verdict{Failed: l.Annotations[AnnotationDetail]}
	case StateDone:
		return Verdict{Done: true, Detail: fmt.Sprintf("%s (homelab-agent %s)", l.Annotations[AnnotationDetail], Holder(l))}
	case StateActing:
		if claimExpired(l, now) {
			return Verdict{Failed: fmt.Sprintf("homelab-agent %s of segment %s stopped after it took the request and may have acted; "+
				"not sent again, so that it is never sent twice", Holder(l), segment)}
		}
		return Verdict{RecheckAfter: l.Spec.RenewTime.Add(ClaimDuration).Sub(now)}
	}
	end := deadline(l)
	if !now.Before(end) {
		if StateOf(l) == StateClaimed {
			return Verdict{Failed: fmt.Sprintf("homelab-agent %s of segment %s claimed the request but did not act in time", Holder(l), segment)}
		}
		return Verdict{Failed: fmt.Sprintf("no homelab-agent serves segment %s: nobody took the request in time", segment)}
	}
	return Verdict{RecheckAfter: end.Sub(now)}
}
