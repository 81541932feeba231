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
)

// KwokNodeAnnotation marks a Node that kwok manages: a running kwok sets it Ready and keeps
// its lease, as the kubelet of a real machine would.
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

const (
	// apiCallTimeout bounds one create or delete of a Node.
	apiCallTimeout = 15 * time.Second
	// retryFirst and retryCap space the retries of a failed Node create or delete.
	retryFirst = 500 * time.Millisecond
	retryCap   = 30 * time.Second
)

// registration is the machine's Node as the simulator last made it.
type registration struct {
	// mu serializes the machine's API calls, so that a delete never overtakes the create it
	// follows.
	mu         sync.Mutex
	registered bool
	uid        types.UID
	retry      *time.Timer
	retryDelay time.Duration
	// flap is the next Ready/NotReady change of a flapping machine's Node.
	flap *time.Timer
}

// syncNode makes the Node exist or not, as the machine's phase says. It reads the phase
// after taking the registration lock, so whichever call runs last acts on the latest phase.
// A failed call is retried on a timer with a doubling delay.
func (m *Machine) syncNode() {
	r := &m.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.sim.stopped() {
		return
	}
	want := m.wantsNode()
	if want == r.registered {
		return
	}
	ctx, cancel := context.WithTimeout(m.sim.ctx, apiCallTimeout)
	defer cancel()
	var err error
	if want {
		err = m.register(ctx)
	} else {
		err = m.deregister(ctx)
	}
	if err != nil {
		if r.retryDelay == 0 {
			r.retryDelay = retryFirst
		}
		m.sim.log.Error("Node change failed; retrying", "machine", m.Name, "register", want, "in", r.retryDelay.String(), "err", err)
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
	r.registered, r.retryDelay = want, 0
	m.mu.Lock()
	if want {
		m.counters.Registrations++
	} else {
		m.counters.Deregistrations++
	}
	m.mu.Unlock()
	verb := "registered"
	if !want {
		verb = "deregistered"
	}
	m.sim.log.Info("Node "+verb, "machine", m.Name)
}

// stopSync waits for an API call in flight (the simulator's context is cancelled by then, so
// it ends at once) and cancels a pending retry.
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
}

// register creates the Node. One left over with this machine's provider ID (from an earlier
// run) is taken over; one that belongs to something else is an error.
func (m *Machine) register(ctx context.Context) error {
	core := m.sim.coreNode(m)
	err := m.sim.client.Create(ctx, core)
	if apierrors.IsAlreadyExists(err) {
		if err = m.sim.client.Get(ctx, client.ObjectKey{Name: m.Name}, core); err == nil && core.Spec.ProviderID != m.ProviderID {
			err = fmt.Errorf("existing Node %s has providerID %q, not %q", m.Name, core.Spec.ProviderID, m.ProviderID)
		}
	}
	if err != nil {
		return fmt.Errorf("creating Node %s: %w", m.Name, err)
	}
	m.reg.uid = core.UID
	if m.flapFor > 0 {
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

// coreNode is what machine m's kubelet would register: its name, provider ID, labels and
// capacity. kwok fills in the conditions, addresses and node info.
func (s *Sim) coreNode(m *Machine) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:   m.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
	}
	for k, v := range s.cfg.Labels {
		labels[k] = v
	}
	annotations := map[string]string{KwokNodeAnnotation: "fake"}
	if m.flapFor > 0 {
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
		},
	}
}
