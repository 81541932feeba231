// Package agent is homelab-agent. It acts for the manager where the manager cannot: it sends the
// Wake-on-LAN magic packets of the LAN segments its node is on (from the host network, which the
// manager has not), and it shuts its own node down when asked. The manager asks through
// AgentRequests (internal/relay); every agent that may serve a request watches it, and the
// request's resourceVersion decides which one acts, so no leader election is needed.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
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
	// Client reads the requests (from the cache) and writes their status.
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
	// newer version of the request to come as an event (the claim ran out first).
	lookAgain = time.Second
	// doneTries bounds the attempts to record Done; the waits double from doneWait.
	doneTries = 5
	doneWait  = 200 * time.Millisecond
)

// wake is what a request asks for, read before claiming it: a request this agent cannot read is
// left alone rather than claimed and failed.
type wake struct {
	mac, host string
	port      int32
}

// Reconcile serves one wake request: it claims it when it may, records Acting, sends, and
// records Done. Another agent's claim is looked at again when it runs out, so a request whose
// agent stopped before acting is taken over without polling.
func (w *Waker) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r := &infrav1.AgentRequest{}
	if err := w.Client.Get(ctx, req.NamespacedName, r); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading the wake request %s: %w", req.NamespacedName, err)
	}
	// The cache selects by label; the spec is what the manager asks, and both must agree.
	if !w.serves(r) || r.Spec.Kind != infrav1.AgentWake || !slices.Contains(w.Segments, r.Spec.Segment) {
		return ctrl.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("agent", w.Agent))
	now := w.now()
	mine := relay.Holder(r) == w.Agent
	switch state := relay.StateOf(r); {
	case relay.Claimable(r, now):
		wk, err := wakeOf(r)
		if err != nil {
			log.FromContext(ctx).Error(err, "not taking the wake request")
			return ctrl.Result{}, nil
		}
		if err := relay.Claim(ctx, w.Client, r, w.Agent, now); err != nil {
			// A conflict means the request changed (another agent claimed it): the new
			// version comes as an event.
			return ctrl.Result{}, quiet(ctx, err, "claiming")
		}
		return w.act(ctx, r, wk)
	case state == relay.StateClaimed && mine:
		// This agent claimed it and stopped before Acting (its container restarted, or the
		// Acting write failed): nothing was sent, since Acting is recorded first.
		wk, err := wakeOf(r)
		if err != nil {
			log.FromContext(ctx).Error(err, "not acting on the wake request")
			return ctrl.Result{}, nil
		}
		return w.act(ctx, r, wk)
	case state == relay.StateClaimed:
		if left := relay.ClaimEnd(r).Sub(now); left > 0 {
			return ctrl.Result{RequeueAfter: left}, nil
		}
	}
	return ctrl.Result{}, nil
}

// act records Acting on the claimed request r, sends, and records Done.
//
// A send that fails after Acting is not recorded as Done (the manager reads Done as sent) and is
// not tried again: some packets may have gone, and a request is never served twice. The request
// stays Acting, and once its claim runs out the manager reports that the agent stopped after it
// took the request, and makes a new attempt if it has attempts left.
func (w *Waker) act(ctx context.Context, r *infrav1.AgentRequest, wk wake) (ctrl.Result, error) {
	if err := relay.Acting(ctx, w.Client, r, w.Agent, w.now()); err != nil {
		if errors.Is(err, relay.ErrLost) {
			// Either another write won, whose version comes as an event, or the claim ran out
			// before Acting could be recorded, and no event will come: look again.
			log.FromContext(ctx).V(1).Info("wake request lost before acting")
			return ctrl.Result{RequeueAfter: lookAgain}, nil
		}
		return ctrl.Result{}, fmt.Errorf("recording that %s acts on the wake request %s/%s: %w", w.Agent, r.Namespace, r.Name, err)
	}
	// From here on, finishing is the best outcome even when the agent is stopping: a send cut
	// short, or a send not recorded, is reported as failed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), relay.ClaimDuration)
	defer cancel()
	detail, err := w.send(ctx, r, wk)
	if err != nil {
		wakesTotal.WithLabelValues(r.Spec.Segment, resultFailed).Inc()
		log.FromContext(ctx).Error(err, "sending the magic packets failed; the request stays Acting and is not sent again",
			"mac", wk.mac, "target", r.Spec.Target)
		return ctrl.Result{}, nil
	}
	wakesTotal.WithLabelValues(r.Spec.Segment, resultSent).Inc()
	log.FromContext(ctx).Info("sent the magic packets", "detail", detail)
	if err := recordDone(ctx, w.Client, r, w.Agent, detail, w.now); err != nil {
		if errors.Is(err, relay.ErrLost) {
			log.FromContext(ctx).Info("the wake request changed before Done was recorded (the manager gave up on it)")
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// recordDone records Done on the Acting request r, retrying failures other than a lost
// request within this call: the agent acted, and only this call knows it, so a later reconcile
// could not tell a served request from one whose agent stopped mid-way.
func recordDone(ctx context.Context, c client.Client, r *infrav1.AgentRequest, agent, detail string, now func() time.Time) error {
	backoff := wait.Backoff{Duration: doneWait, Factor: 2, Steps: doneTries}
	err := retry.OnError(backoff, func(err error) bool { return !errors.Is(err, relay.ErrLost) && ctx.Err() == nil }, func() error {
		return relay.Done(ctx, c, r, agent, detail, now())
	})
	if err != nil && !errors.Is(err, relay.ErrLost) {
		return fmt.Errorf("recording that %s served the %s request %s/%s: %w", agent, r.Spec.Kind, r.Namespace, r.Name, err)
	}
	return err
}

// quiet turns ErrLost, the normal end of a request another agent serves, into no error.
func quiet(ctx context.Context, err error, step string) error {
	if errors.Is(err, relay.ErrLost) {
		log.FromContext(ctx).V(1).Info("request lost while " + step + " it")
		return nil
	}
	return err
}

func (w *Waker) send(ctx context.Context, r *infrav1.AgentRequest, wk wake) (string, error) {
	if w.Send != nil {
		return w.Send(ctx, wk.mac, wk.host, wk.port)
	}
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Spec.Machine}}
	out, err := power.WakeOnLAN{}.Do(ctx, power.Request{
		Machine: m, Action: power.ActionOn,
		Slot: power.Slot{Timeout: sendTimeout, WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: wk.mac, BroadcastAddress: wk.host, Port: wk.port}},
	})
	if err != nil {
		return "", err
	}
	return out.Detail, nil
}

// serves reports whether o is labelled a wake request of one of the agent's segments.
func (w *Waker) serves(o client.Object) bool {
	labels := o.GetLabels()
	return labels[relay.LabelKind] == string(infrav1.AgentWake) && slices.Contains(w.Segments, labels[relay.LabelSegment])
}

func (w *Waker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// wakeOf reads the MAC and the host:port target of a request.
func wakeOf(r *infrav1.AgentRequest) (wake, error) {
	mac, target := r.Spec.MAC, r.Spec.Target
	if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 {
		return wake{}, fmt.Errorf("wake request %s/%s: mac %q is not a 6-byte MAC address", r.Namespace, r.Name, mac)
	}
	host, p, err := net.SplitHostPort(target)
	if err != nil {
		return wake{}, fmt.Errorf("wake request %s/%s: target %q is not host:port: %w", r.Namespace, r.Name, target, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || host == "" {
		return wake{}, fmt.Errorf("wake request %s/%s: target %q needs a host and a port from 1 to 65535", r.Namespace, r.Name, target)
	}
	return wake{mac: mac, host: host, port: int32(port)}, nil
}

// SetupWithManager watches the wake requests of the agent's segments in mgr's cache, which
// CacheOptions restricts to them.
func (w *Waker) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("wake").
		For(&infrav1.AgentRequest{}, builder.WithPredicates(predicate.NewPredicateFuncs(w.serves))).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(w)
}
