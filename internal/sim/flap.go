package sim

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FlapPeriod is how long a flapping machine's Node stays Ready, then NotReady, in turn.
const FlapPeriod = 500 * time.Millisecond

// startFlapping makes the Node just registered (uid) alternate between Ready and NotReady
// until the machine's flapping time is over, then sets it Ready and hands it to kwok, which
// keeps it so. The
// simulator writes the Ready condition itself meanwhile, as a kubelet whose network comes and
// goes would; kwok does not manage the Node until then. m.reg.mu is held.
func (m *Machine) startFlapping(uid types.UID) {
	end := time.Now().Add(m.flapFor)
	var tick func(ready bool)
	tick = func(ready bool) {
		r := &m.reg
		r.mu.Lock()
		defer r.mu.Unlock()
		r.flap = nil
		if m.sim.stopped() || !r.registered || r.uid != uid {
			return
		}
		ctx, cancel := context.WithTimeout(m.sim.ctx, apiCallTimeout)
		defer cancel()
		if !time.Now().Before(end) {
			// It ends Ready, whatever kwok makes of a Node annotated late.
			err := m.setReady(ctx, true)
			if err == nil {
				err = m.handToKwok(ctx)
			}
			if err != nil {
				m.sim.log.Error("handing the Node to kwok failed; retrying", "machine", m.Name, "err", err)
				r.flap = time.AfterFunc(FlapPeriod, func() { tick(ready) })
			}
			return
		}
		if err := m.setReady(ctx, ready); err != nil {
			m.sim.log.Error("flapping the Node failed", "machine", m.Name, "err", err)
		} else {
			m.mu.Lock()
			m.counters.Flaps++
			m.mu.Unlock()
			m.sim.log.Debug("Node flapped", "machine", m.Name, "ready", ready)
		}
		r.flap = time.AfterFunc(FlapPeriod, func() { tick(!ready) })
	}
	m.reg.flap = time.AfterFunc(0, func() { tick(true) })
}

// setReady writes the Node's Ready condition.
func (m *Machine) setReady(ctx context.Context, ready bool) error {
	core := &corev1.Node{}
	if err := m.sim.client.Get(ctx, client.ObjectKey{Name: m.Name}, core); err != nil {
		return err
	}
	status, reason := corev1.ConditionFalse, "KubeletNotReady"
	if ready {
		status, reason = corev1.ConditionTrue, "KubeletReady"
	}
	now := metav1.Now()
	cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: status, Reason: reason,
		Message: "homelab-sim: this machine's Node flaps", LastHeartbeatTime: now, LastTransitionTime: now}
	replaced := false
	for i, c := range core.Status.Conditions {
		if c.Type == corev1.NodeReady {
			core.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		core.Status.Conditions = append(core.Status.Conditions, cond)
	}
	return m.sim.client.Status().Update(ctx, core)
}

// handToKwok annotates the Node for kwok, which sets it Ready and keeps it so.
func (m *Machine) handToKwok(ctx context.Context) error {
	core := &corev1.Node{}
	if err := m.sim.client.Get(ctx, client.ObjectKey{Name: m.Name}, core); err != nil {
		return err
	}
	if core.Annotations == nil {
		core.Annotations = map[string]string{}
	}
	core.Annotations[KwokNodeAnnotation] = "fake"
	return m.sim.client.Update(ctx, core)
}
