package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// KwokNodeAnnotation marks a Node that kwok manages: a running kwok sets it Ready and keeps
// its lease, as the kubelet of a real machine would.
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

const (
	// apiCallTimeout bounds one change of a Node (up to three API calls).
	apiCallTimeout = 15 * time.Second
	// retryFirst and retryCap space the retries of a failed Node change.
	retryFirst = 500 * time.Millisecond
	retryCap   = 30 * time.Second
)

// nodeState is what a machine's Node is, or should be.
type nodeState int

const (
	// nodeAbsent: there is no Node.
	nodeAbsent nodeState = iota
	// nodeReady: the Node is registered and kwok keeps it Ready (after the flapping, for a
	// flapping machine).
	nodeReady
	// nodeNotReady: the Node is registered but no kubelet posts for it: the simulator keeps it
	// from kwok, with its Ready condition Unknown.
	nodeNotReady
)

func (s nodeState) String() string {
	return [...]string{"absent", "Ready", "NotReady"}[s]
}

// notReadyRechecks are when the simulator looks again at a Node it took from kwok: kwok may
// still play a stage it scheduled before it let go, which sets the Node Ready. That is a stage
// already under way, or the next node heartbeat (every 600 to 610 s with kwok's default stages).
var notReadyRechecks = []time.Duration{2 * time.Second, 11 * time.Minute}

// registration is the machine's Node as the simulator last made it.
type registration struct {
	// mu serializes the machine's API calls, so that a delete never overtakes the create it
	// follows.
	mu         sync.Mutex
	state      nodeState
	uid        types.UID
	retry      *time.Timer
	retryDelay time.Duration
	// flap is the next Ready/NotReady change of a flapping machine's Node; flapGen tells the
	// current flapping from an earlier one.
	flap    *time.Timer
	flapGen uint64
	// rechecks are the pending looks at a Node taken from kwok.
	rechecks []*time.Timer
}

// stopRechecks cancels the pending looks at a Node taken from kwok; r.mu is held.
func (r *registration) stopRechecks() {
	for _, t := range r.rechecks {
		t.Stop()
	}
	r.rechecks = nil
}

// syncNode makes the Node absent, Ready or NotReady, as the machine's phase and faults say. It
// reads them after taking the registration lock, so whichever call runs last acts on the latest
// state. A failed change is retried on a timer with a doubling delay.
func (m *Machine) syncNode() {
	r := &m.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.sim.stopped() {
		return
	}
	want := m.nodeWanted()
	if want == r.state {
		return
	}
	ctx, cancel := context.WithTimeout(m.sim.ctx, apiCallTimeout)
	defer cancel()
	from := r.state
	if err := m.moveNode(ctx, want); err != nil {
		if r.retryDelay == 0 {
			r.retryDelay = retryFirst
		}
		m.sim.log.Error("Node change failed; retrying", "machine", m.Name, "want", want.String(), "in", r.retryDelay.String(), "err", err)
		if r.retry == nil {
			r.retry = time.AfterFunc(r.retryDelay, func() {
				r.mu.Lock()
				r.retry = nil
				r.mu.Unlock()
				m.syncNode()
			})
		}
		r.retryDelay = min(2*r.retryDelay, retryCap)
		return
	}
	r.retryDelay = 0
	switch {
	case want == nodeAbsent:
		m.sim.log.Info("Node deregistered", "machine", m.Name)
	case from == nodeAbsent:
		m.sim.log.Info("Node registered", "machine", m.Name, "ready", want == nodeReady)
	case want == nodeNotReady:
		m.sim.log.Info("Node NotReady: taken from kwok", "machine", m.Name)
	default:
		m.sim.log.Info("Node Ready again: handed back to kwok", "machine", m.Name)
	}
}

// moveNode changes the Node from r.state to want; m.reg.mu is held.
func (m *Machine) moveNode(ctx context.Context, want nodeState) error {
	r := &m.reg
	if want == nodeAbsent {
		if err := m.deregister(ctx); err != nil {
			return err
		}
		m.count(&m.counters.Deregistrations)
	} else {
		if r.state != nodeAbsent {
			err := m.reshape(ctx, want)
			if apierrors.IsNotFound(err) {
				// Someone deleted the Node meanwhile (the manager does once the machine is
				// confirmed off): the kubelet registers it again.
				r.state, r.uid, err = nodeAbsent, "", nil
			}
			if err != nil {
				return err
			}
		}
		if r.state == nodeAbsent {
			if err := m.register(ctx, want); err != nil {
				return err
			}
			m.count(&m.counters.Registrations)
		}
	}
	if want != nodeNotReady {
		r.stopRechecks()
	}
	r.state = want
	return nil
}

// count adds one to a counter of m's.
func (m *Machine) count(c *int) {
	m.mu.Lock()
	*c++
	m.mu.Unlock()
}

// stopSync waits for an API call in flight (the simulator's context is cancelled by then, so
// it ends at once) and cancels the pending retry, flapping and rechecks.
func (m *Machine) stopSync() {
	m.reg.mu.Lock()
	defer m.reg.mu.Unlock()
	if m.reg.retry != nil {
		m.reg.retry.Stop()
		m.reg.retry = nil
	}
	if m.reg.flap != nil {
		m.reg.flap.Stop()
		m.reg.flap = nil
	}
	m.reg.stopRechecks()
}

// register creates the Node, Ready (for kwok to keep so) or NotReady. One left over with this
// machine's provider ID (from an earlier run) is taken over and made as wanted; one that belongs
// to something else is an error.
func (m *Machine) register(ctx context.Context, want nodeState) error {
	core := m.sim.coreNode(m, want)
	err := m.sim.client.Create(ctx, core)
	if apierrors.IsAlreadyExists(err) {
		return m.reshape(ctx, want)
	}
	if err != nil {
		return fmt.Errorf("creating Node %s: %w", m.Name, err)
	}
	m.reg.uid = core.UID
	if want == nodeReady && m.flapFor > 0 {
		m.startFlapping(core.UID)
	}
	return nil
}

// deregister deletes the Node, but only the one this machine made (by UID): a Node of the
// same name registered by someone else meanwhile is left alone. One already gone is fine: the
// controller deletes it too once the machine is confirmed off.
func (m *Machine) deregister(ctx context.Context) error {
	core := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: m.Name}}
	var opts []client.DeleteOption
	if m.reg.uid != "" {
		opts = append(opts, client.Preconditions{UID: &m.reg.uid})
	}
	err := m.sim.client.Delete(ctx, core, opts...)
	switch {
	case err == nil, apierrors.IsNotFound(err):
	case apierrors.IsConflict(err):
		m.sim.log.Info("Node was replaced by another object; leaving it", "machine", m.Name)
	default:
		return fmt.Errorf("deleting Node %s: %w", m.Name, err)
	}
	m.reg.uid = ""
	return nil
}

// reshape makes the registered Node Ready or NotReady, as want says; m.reg.mu is held.
func (m *Machine) reshape(ctx context.Context, want nodeState) error {
	core, err := m.ownNode(ctx)
	if err != nil {
		return err
	}
	m.reg.uid = core.UID
	if want == nodeNotReady {
		return m.holdNotReady(ctx, core)
	}
	return m.release(ctx, core)
}

// holdNotReady takes the Node from kwok and marks it as the node lifecycle controller marks the
// Node of a kubelet that stopped posting. m.reg.mu is held.
func (m *Machine) holdNotReady(ctx context.Context, core *corev1.Node) error {
	fromKwok := kwokManaged(core)
	// kwok first: while it manages the Node, it sets a NotReady one Ready again at once.
	if err := m.setKwokManaged(ctx, core, false); err != nil {
		return err
	}
	if err := m.writeReady(ctx, core, notPostingCondition()); err != nil {
		return err
	}
	if fromKwok {
		r := &m.reg
		r.stopRechecks()
		uid := core.UID
		for _, d := range notReadyRechecks {
			r.rechecks = append(r.rechecks, time.AfterFunc(d, func() { m.recheckNotReady(uid) }))
		}
	}
	return nil
}

// release makes the Node Ready and hands it back to kwok, as a kubelet that posts again would
// (a flapping machine's Node flaps first). m.reg.mu is held.
func (m *Machine) release(ctx context.Context, core *corev1.Node) error {
	if m.flapFor > 0 {
		if err := m.setKwokManaged(ctx, core, false); err != nil {
			return err
		}
		m.startFlapping(core.UID)
		return nil
	}
	if err := m.writeReady(ctx, core, kubeletCondition(true, kubeletReadyMessage)); err != nil {
		return err
	}
	return m.setKwokManaged(ctx, core, true)
}

// recheckNotReady marks the Node NotReady again if something (a stage kwok had scheduled before
// it let go) set it Ready while the simulator holds it NotReady.
func (m *Machine) recheckNotReady(uid types.UID) {
	r := &m.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.sim.stopped() || r.state != nodeNotReady || r.uid != uid {
		return
	}
	ctx, cancel := context.WithTimeout(m.sim.ctx, apiCallTimeout)
	defer cancel()
	core, err := m.ownNode(ctx)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			m.sim.log.Error("rechecking a NotReady Node failed", "machine", m.Name, "err", err)
		}
		return
	}
	if readyStatus(core) == corev1.ConditionUnknown && !kwokManaged(core) {
		return
	}
	m.sim.log.Info("Node was set Ready while its kubelet hangs or its machine is off; NotReady again", "machine", m.Name)
	err = m.setKwokManaged(ctx, core, false)
	if err == nil {
		err = m.writeReady(ctx, core, notPostingCondition())
	}
	if err != nil {
		m.sim.log.Error("marking the Node NotReady again failed", "machine", m.Name, "err", err)
	}
}

// ownNode reads the machine's Node. One with another provider ID belongs to something else.
func (m *Machine) ownNode(ctx context.Context) (*corev1.Node, error) {
	core := &corev1.Node{}
	if err := m.sim.client.Get(ctx, client.ObjectKey{Name: m.Name}, core); err != nil {
		return nil, fmt.Errorf("reading Node %s: %w", m.Name, err)
	}
	if core.Spec.ProviderID != m.ProviderID {
		return nil, fmt.Errorf("existing Node %s has providerID %q, not %q", m.Name, core.Spec.ProviderID, m.ProviderID)
	}
	return core, nil
}

// kwokManaged reports whether kwok manages the Node.
func kwokManaged(core *corev1.Node) bool { return core.Annotations[KwokNodeAnnotation] == "fake" }

// setKwokManaged annotates the Node for kwok, which sets it Ready and keeps it so, or takes the
// annotation away, after which kwok leaves the Node alone. core is updated in place.
func (m *Machine) setKwokManaged(ctx context.Context, core *corev1.Node, managed bool) error {
	if kwokManaged(core) == managed {
		return nil
	}
	verb := "taking Node %s from kwok: %w"
	if managed {
		if core.Annotations == nil {
			core.Annotations = map[string]string{}
		}
		core.Annotations[KwokNodeAnnotation] = "fake"
		verb = "handing Node %s to kwok: %w"
	} else {
		delete(core.Annotations, KwokNodeAnnotation)
	}
	if err := m.sim.client.Update(ctx, core); err != nil {
		return fmt.Errorf(verb, m.Name, err)
	}
	return nil
}

// kubeletReadyMessage is the message of a kubelet's Ready condition.
const kubeletReadyMessage = "kubelet is posting ready status"

// kubeletCondition is the Ready condition a kubelet posts.
func kubeletCondition(ready bool, message string) corev1.NodeCondition {
	if ready {
		return corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: message}
	}
	return corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", Message: message}
}

// notPostingCondition is the Ready condition the node lifecycle controller gives the Node of a
// kubelet that stopped posting its status.
func notPostingCondition() corev1.NodeCondition {
	return corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
		Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}
}

// readyStatus is the status of the Node's Ready condition; empty when it has none.
func readyStatus(core *corev1.Node) corev1.ConditionStatus {
	for _, c := range core.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// writeReady sets the Node's Ready condition to cond, unless its status is cond's already. core
// is updated in place.
func (m *Machine) writeReady(ctx context.Context, core *corev1.Node, cond corev1.NodeCondition) error {
	if readyStatus(core) == cond.Status {
		return nil
	}
	now := metav1.Now()
	cond.LastHeartbeatTime, cond.LastTransitionTime = now, now
	replaced := false
	for i, c := range core.Status.Conditions {
		if c.Type == corev1.NodeReady {
			core.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		core.Status.Conditions = append(core.Status.Conditions, cond)
	}
	if err := m.sim.client.Status().Update(ctx, core); err != nil {
		return fmt.Errorf("writing the Ready condition of Node %s: %w", m.Name, err)
	}
	return nil
}

// coreNode is what machine m's kubelet would register: its name, provider ID, labels (among them
// the opt-in to the machines of the simulator's namespace) and capacity. kwok fills in the
// conditions, addresses and node info; a NotReady Node (a hung kubelet's) is not kwok's and gets
// its Ready condition here.
func (s *Sim) coreNode(m *Machine, want nodeState) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:   m.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
		infrav1.LabelNamespace: s.cfg.Namespace,
	}
	for k, v := range s.cfg.Labels {
		labels[k] = v
	}
	if s.cfg.MachineLabels {
		labels[infrav1.LabelGroup], labels[infrav1.LabelMachine] = s.cfg.Group, m.Name
	}
	annotations := map[string]string{KwokNodeAnnotation: "fake"}
	var conditions []corev1.NodeCondition
	switch {
	case want == nodeNotReady:
		cond := notPostingCondition()
		now := metav1.Now()
		cond.LastHeartbeatTime, cond.LastTransitionTime = now, now
		annotations, conditions = nil, []corev1.NodeCondition{cond}
	case m.flapFor > 0:
		// The simulator flaps the Ready condition first; kwok takes over afterwards.
		annotations = nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        m.Name,
			Labels:      labels,
			Annotations: annotations,
		},
		Spec: corev1.NodeSpec{ProviderID: m.ProviderID},
		// The apiserver keeps the status given at create for Nodes, as kubelets rely on.
		Status: corev1.NodeStatus{
			Capacity:    s.cfg.Capacity.DeepCopy(),
			Allocatable: s.cfg.Capacity.DeepCopy(),
			NodeInfo:    corev1.NodeSystemInfo{Architecture: "amd64", OperatingSystem: "linux"},
			Conditions:  conditions,
		},
	}
}
