package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// PowerOffFunc powers the host off, or starts to: it may return before the host is down.
type PowerOffFunc func(ctx context.Context) error

// Shutdowner serves the shutdown requests of its own node, and of no other.
//
// It acknowledges a request (Done) before it powers the node off, because once the node goes
// down it can record nothing. The price: a power-off that fails after Done, or that never runs
// because the agent stopped between the Done write and the power-off, is not run again, even by
// this agent restarted, since a Done request is never served twice. The manager, which reads
// Done as "going down", then waits in vain for the node to stop; its confirmation times out and
// it retries with a new attempt, which is a new request.
type Shutdowner struct {
	// Client reads the requests (from the cache) and writes their status.
	Client client.Client
	// Agent is this agent's identity, "<node>/<pod>", recorded as the requests' holder.
	Agent string
	// Node is the Node the agent runs on: the only one whose requests it serves.
	Node string
	// Method names the power-off in the Done record ("logind", "command").
	Method string
	// PowerOff powers the node off, after Done.
	PowerOff PowerOffFunc
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// powerOffTimeout bounds a power-off: logind and a poweroff command return once the shutdown
// has started, long before the host is down.
const powerOffTimeout = time.Minute

// Reconcile serves one shutdown request of the agent's node: it claims it, records Acting and
// Done, and then powers the node off.
func (s *Shutdowner) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r := &infrav1.AgentRequest{}
	if err := s.Client.Get(ctx, req.NamespacedName, r); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading the shutdown request %s: %w", req.NamespacedName, err)
	}
	// The cache selects by label; the spec is what the manager asks. A request whose spec names
	// another node is never served here, whatever its labels say: it would power off the wrong
	// machine.
	if !s.serves(r) || r.Spec.Kind != infrav1.AgentShutdown || r.Spec.Node != s.Node {
		return ctrl.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("agent", s.Agent))
	now := s.now()
	switch state := relay.StateOf(r); {
	case relay.Claimable(r, now):
		if err := relay.Claim(ctx, s.Client, r, s.Agent, now); err != nil {
			return ctrl.Result{}, quiet(ctx, err, "claiming")
		}
		return s.act(ctx, r)
	case state == relay.StateClaimed && relay.Holder(r) == s.Agent:
		// Claimed and stopped before Acting: nothing ran.
		return s.act(ctx, r)
	case state == relay.StateClaimed:
		// Another agent of this node (a pod being replaced) claimed it.
		if left := relay.ClaimEnd(r).Sub(now); left > 0 {
			return ctrl.Result{RequeueAfter: left}, nil
		}
	}
	// Acting (whose agent stopped before Done: the manager reports it), Done (never run twice)
	// and Abandoned are left as they are.
	return ctrl.Result{}, nil
}

// act records Acting and Done on the claimed request r, then powers the node off.
func (s *Shutdowner) act(ctx context.Context, r *infrav1.AgentRequest) (ctrl.Result, error) {
	if err := relay.Acting(ctx, s.Client, r, s.Agent, s.now()); err != nil {
		if errors.Is(err, relay.ErrLost) {
			log.FromContext(ctx).V(1).Info("shutdown request lost before acting")
			return ctrl.Result{RequeueAfter: lookAgain}, nil
		}
		return ctrl.Result{}, fmt.Errorf("recording that %s acts on the shutdown request %s/%s: %w", s.Agent, r.Namespace, r.Name, err)
	}
	// Finish even when the agent is stopping: the pods' termination may well be the start of
	// this very shutdown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), powerOffTimeout)
	defer cancel()
	detail := fmt.Sprintf("shutting down %s with %s", s.Node, s.Method)
	if err := recordDone(ctx, s.Client, r, s.Agent, detail, s.now); err != nil {
		if errors.Is(err, relay.ErrLost) {
			log.FromContext(ctx).Info("the shutdown request changed before Done was recorded (the manager gave up on it); not shutting down")
			return ctrl.Result{}, nil
		}
		// Not acknowledged, so not run: the request stays Acting, which the manager reports.
		return ctrl.Result{}, err
	}
	log.FromContext(ctx).Info("powering the node off", "node", s.Node, "method", s.Method)
	if err := s.PowerOff(ctx); err != nil {
		shutdownsTotal.WithLabelValues(s.Node, resultFailed).Inc()
		log.FromContext(ctx).Error(err, "powering the node off failed after the request was acknowledged; it is not run again",
			"node", s.Node, "method", s.Method)
		return ctrl.Result{}, nil
	}
	shutdownsTotal.WithLabelValues(s.Node, resultStarted).Inc()
	return ctrl.Result{}, nil
}

// serves reports whether o is labelled a shutdown request of the agent's node.
func (s *Shutdowner) serves(o client.Object) bool {
	labels := o.GetLabels()
	return labels[relay.LabelKind] == string(infrav1.AgentShutdown) && labels[relay.LabelNode] == s.Node
}

func (s *Shutdowner) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// SetupWithManager watches the shutdown requests of the agent's node in requests, a cache of its
// own (see ShutdownCacheOptions): the manager's cache holds the wake requests, and one label
// selector cannot hold both. One request at a time: a node is shut down once.
func (s *Shutdowner) SetupWithManager(mgr ctrl.Manager, requests cache.Cache) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("shutdown").
		WatchesRawSource(source.Kind(requests, &infrav1.AgentRequest{}, &handler.TypedEnqueueRequestForObject[*infrav1.AgentRequest]{},
			predicate.NewTypedPredicateFuncs(func(r *infrav1.AgentRequest) bool { return s.serves(r) }))).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(s)
}

// CommandPowerOff runs the executable at path, with no arguments, to power the host off.
func CommandPowerOff(path string) PowerOffFunc {
	return func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, path) //nolint:gosec // the operator's own command, from a flag
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("running the shutdown command %s: %w", path, err)
		}
		return nil
	}
}

// LogindPowerOff asks the host's systemd-logind to power the host off, as `systemctl poweroff`
// does, over the host's D-Bus system bus at socket (mounted into the pod). The bus knows the
// caller by its uid, and logind (through polkit) lets root power the host off.
func LogindPowerOff(socket string) PowerOffFunc {
	return func(ctx context.Context) error {
		if err := checkSocket(socket); err != nil {
			return err
		}
		// The context closes the connection, so a bus that does not answer cannot hold the
		// agent.
		conn, err := dbus.Connect("unix:path="+dbus.EscapeBusAddressValue(socket),
			dbus.WithAuth(dbus.AuthExternal(strconv.Itoa(os.Geteuid()))), dbus.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("connecting to the host's D-Bus system bus at %s: %w", socket, err)
		}
		defer func() { _ = conn.Close() }()
		const interactive = false // no one to ask for a password
		call := conn.Object("org.freedesktop.login1", "/org/freedesktop/login1").
			CallWithContext(ctx, "org.freedesktop.login1.Manager.PowerOff", 0, interactive)
		if call.Err != nil {
			return fmt.Errorf("asking logind to power off through %s: %w", socket, call.Err)
		}
		return nil
	}
}

// checkSocket reports, clearly, a D-Bus socket path that is not a socket.
func checkSocket(socket string) error {
	fi, err := os.Stat(socket)
	if err != nil {
		return fmt.Errorf("the host's D-Bus system bus socket %s is not there (mount the host's /run/dbus/system_bus_socket into the pod): %w", socket, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("the host's D-Bus system bus socket %s is not a socket (mount the host's /run/dbus/system_bus_socket into the pod)", socket)
	}
	return nil
}
