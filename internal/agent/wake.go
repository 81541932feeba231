// Package agent is homelab-agent: it runs on the host network of the nodes of a LAN segment and
// sends the Wake-on-LAN magic packets the manager, which has no host network, asks for through
// request Leases (internal/relay). Every agent of a segment watches the requests; the Lease's
// resourceVersion decides which one sends, so no leader election is needed.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// SendFunc sends the magic packets for mac to host:port and describes what it sent.
type SendFunc func(ctx context.Context, mac, host string, port int32) (detail string, err error)

// Waker serves the wake requests of its segments.
type Waker struct {
	// Client reads the request Leases (from the cache) and writes them.
	Client client.Client
	// Agent is this agent's identity, recorded as the holder of the requests it claims; unique
	// per process ("<node>/<pod>"), so that two agents never take one claim for their own.
	Agent string
	// Segments are the network segments this agent reaches with a broadcast.
	Segments []string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Send sends the packets; nil sends them with the manager's Wake-on-LAN driver.
	Send SendFunc
}

const (
	// concurrency is how many requests one agent serves at once: a send takes a few hundred
	// milliseconds, and after a power cut every machine of a segment may be woken together.
	concurrency = 8
	// sendTimeout bounds resolving the target and sending, well within the claim duration, so
	// that Done is recorded before the manager takes a silent agent for a stopped one.
	sendTimeout = relay.ClaimDuration / 2
	// lookAgain is how soon a request is read again when recording Acting failed without a
	// newer version of the Lease to come as an event (the claim ran out first).
	lookAgain = time.Second
	// doneTries bounds the attempts to record Done after a send; the waits double from doneWait.
	doneTries = 5
	doneWait  = 200 * time.Millisecond
)

// wake is what a request asks for, read before claiming it: a request this agent cannot read is
// left alone rather than claimed and failed.
type wake struct {
	mac, host string
	port      int32
}

// Reconcile serves one request Lease: it claims it when it may, records Acting, sends, and
// records Done. Another agent's claim is looked at again when it runs out, so a request whose
// agent stopped before acting is taken over without polling.
func (w *Waker) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	l := &coordinationv1.Lease{}
	if err := w.Client.Get(ctx, req.NamespacedName, l); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading the wake request %s: %w", req.NamespacedName, err)
	}
	if !w.serves(l) {
		return ctrl.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("agent", w.Agent))
	now := w.now()
	mine := relay.Holder(l) == w.Agent
	switch state := relay.StateOf(l); {
	case relay.Claimable(l, now):
		wk, err := wakeOf(l)
		if err != nil {
			log.FromContext(ctx).Error(err, "not taking the wake request")
			return ctrl.Result{}, nil
		}
		if err := relay.Claim(ctx, w.Client, l, w.Agent, now); err != nil {
			// A conflict means the Lease changed (another agent claimed it): the new version
			// comes as an event.
			return ctrl.Result{}, quiet(ctx, err, "claiming")
		}
		return w.act(ctx, l, wk)
	case state == relay.StateClaimed && mine:
		// This agent claimed it and stopped before Acting (its container restarted, or the
		// Acting write failed): nothing was sent, since Acting is recorded first.
		wk, err := wakeOf(l)
		if err != nil {
			log.FromContext(ctx).Error(err, "not acting on the wake request")
			return ctrl.Result{}, nil
		}
		return w.act(ctx, l, wk)
	case state == relay.StateClaimed:
		if left := claimEnd(l).Sub(now); left > 0 {
			return ctrl.Result{RequeueAfter: left}, nil
		}
	}
	return ctrl.Result{}, nil
}

// act records Acting on the claimed request l, sends, and records Done.
//
// A send that fails after Acting is not recorded as Done (the manager reads Done as sent) and is
// not tried again: some packets may have gone, and a request is never served twice. The request
// stays Acting, and once its claim runs out the manager reports that the agent stopped after it
// took the request, and makes a new attempt if it has attempts left.
func (w *Waker) act(ctx context.Context, l *coordinationv1.Lease, wk wake) (ctrl.Result, error) {
	if err := relay.Acting(ctx, w.Client, l, w.Agent, w.now()); err != nil {
		if errors.Is(err, relay.ErrLost) {
			// Either another write won, whose version comes as an event, or the claim ran out
			// before Acting could be recorded, and no event will come: look again.
			log.FromContext(ctx).V(1).Info("wake request lost before acting")
			return ctrl.Result{RequeueAfter: lookAgain}, nil
		}
		return ctrl.Result{}, fmt.Errorf("recording that %s acts on the wake request %s/%s: %w", w.Agent, l.Namespace, l.Name, err)
	}
	// From here on, finishing is the best outcome even when the agent is stopping: a send cut
	// short, or a send not recorded, is reported as failed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), relay.ClaimDuration)
	defer cancel()
	detail, err := w.send(ctx, l, wk)
	if err != nil {
		log.FromContext(ctx).Error(err, "sending the magic packets failed; the request stays Acting and is not sent again",
			"mac", wk.mac, "target", l.Annotations[relay.AnnotationTarget])
		return ctrl.Result{}, nil
	}
	log.FromContext(ctx).Info("sent the magic packets", "detail", detail)
	if err := w.recordDone(ctx, l, detail); err != nil {
		if errors.Is(err, relay.ErrLost) {
			log.FromContext(ctx).Info("the wake request changed before Done was recorded (the manager gave up on it)")
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// recordDone records Done on the Acting request l, retrying failures other than a lost
// request within this call: the packets went, and only this call knows it, so a later
// reconcile could not tell a sent request from one whose agent stopped mid-send.
func (w *Waker) recordDone(ctx context.Context, l *coordinationv1.Lease, detail string) error {
	wait := doneWait
	for try := 1; ; try++ {
		// Done changes the Lease it is given, so each try starts from the Acting version.
		err := relay.Done(ctx, w.Client, l.DeepCopy(), w.Agent, detail, w.now())
		if err == nil || errors.Is(err, relay.ErrLost) {
			return err
		}
		if try == doneTries {
			return fmt.Errorf("recording that %s sent the wake request %s/%s: %w", w.Agent, l.Namespace, l.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("recording that %s sent the wake request %s/%s: %w", w.Agent, l.Namespace, l.Name, err)
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// quiet turns ErrLost, the normal end of a request another agent serves, into no error.
func quiet(ctx context.Context, err error, step string) error {
	if errors.Is(err, relay.ErrLost) {
		log.FromContext(ctx).V(1).Info("wake request lost while " + step + " it")
		return nil
	}
	return err
}

func (w *Waker) send(ctx context.Context, l *coordinationv1.Lease, wk wake) (string, error) {
	if w.Send != nil {
		return w.Send(ctx, wk.mac, wk.host, wk.port)
	}
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Labels[relay.LabelMachine]}}
	out, err := power.WakeOnLAN{}.Do(ctx, power.Request{
		Machine: m, Action: power.ActionOn,
		Slot: power.Slot{Timeout: sendTimeout, WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: wk.mac, BroadcastAddress: wk.host, Port: wk.port}},
	})
	if err != nil {
		return "", err
	}
	return out.Detail, nil
}

// serves reports whether o is a wake request of one of the agent's segments.
func (w *Waker) serves(o client.Object) bool {
	labels := o.GetLabels()
	return labels[relay.LabelKind] == relay.KindWake && slices.Contains(w.Segments, labels[relay.LabelSegment])
}

func (w *Waker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// claimEnd is when the claim on l runs out (zero when it has none).
func claimEnd(l *coordinationv1.Lease) time.Time {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
}

// wakeOf reads the MAC and the host:port target of a request.
func wakeOf(l *coordinationv1.Lease) (wake, error) {
	mac, target := l.Annotations[relay.AnnotationMAC], l.Annotations[relay.AnnotationTarget]
	if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 {
		return wake{}, fmt.Errorf("wake request %s/%s: mac %q is not a 6-byte MAC address", l.Namespace, l.Name, mac)
	}
	host, p, err := net.SplitHostPort(target)
	if err != nil {
		return wake{}, fmt.Errorf("wake request %s/%s: target %q is not host:port: %w", l.Namespace, l.Name, target, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || host == "" {
		return wake{}, fmt.Errorf("wake request %s/%s: target %q needs a host and a port from 1 to 65535", l.Namespace, l.Name, target)
	}
	return wake{mac: mac, host: host, port: int32(port)}, nil
}

// SetupWithManager watches the wake request Leases of the agent's segments.
func (w *Waker) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("wake").
		For(&coordinationv1.Lease{}, builder.WithPredicates(predicate.NewPredicateFuncs(w.serves))).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(w)
}
