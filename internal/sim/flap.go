package sim

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
)

// FlapPeriod is how long a flapping machine's Node stays Ready, then NotReady, in turn.
const FlapPeriod = 500 * time.Millisecond

// flapMessage marks the Ready conditions the simulator writes for a flapping Node.
const flapMessage = "homelab-sim: this machine's Node flaps"

// startFlapping makes the Node just registered (uid) alternate between Ready and NotReady
// until the machine's flapping time is over, then sets it Ready and hands it to kwok, which
// keeps it so. The simulator writes the Ready condition itself meanwhile, as a kubelet whose
// network comes and goes would; kwok does not manage the Node until then. A later change of the
// Node (deleted, held NotReady, flapping again after a reboot) ends this flapping. m.reg.mu is
// held.
func (m *Machine) startFlapping(uid types.UID) {
	end := time.Now().Add(m.flapFor)
	r := &m.reg
	if r.flap != nil {
		r.flap.Stop()
	}
	r.flapGen++
	gen := r.flapGen
	var tick func(ready bool)
	tick = func(ready bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.flapGen != gen {
			return
		}
		r.flap = nil
		if m.sim.stopped() || r.state != nodeReady || r.uid != uid {
			return
		}
		ctx, cancel := context.WithTimeout(m.sim.ctx, apiCallTimeout)
		defer cancel()
		if !time.Now().Before(end) {
			// It ends Ready, whatever kwok makes of a Node annotated late.
			core, err := m.ownNode(ctx)
			if err == nil {
				err = m.writeReady(ctx, core, kubeletCondition(true, flapMessage))
			}
			if err == nil {
				err = m.setKwokManaged(ctx, core, true)
			}
			if apierrors.IsNotFound(err) {
				return // deleted by someone else: nothing to flap
			}
			if err != nil {
				m.sim.log.Error("handing the Node to kwok failed; retrying", "machine", m.Name, "err", err)
				r.flap = time.AfterFunc(FlapPeriod, func() { tick(ready) })
			}
			return
		}
		err := m.setReady(ctx, ready)
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil {
			m.sim.log.Error("flapping the Node failed", "machine", m.Name, "err", err)
		} else {
			m.count(&m.counters.Flaps)
			m.sim.log.Debug("Node flapped", "machine", m.Name, "ready", ready)
		}
		r.flap = time.AfterFunc(FlapPeriod, func() { tick(!ready) })
	}
	r.flap = time.AfterFunc(0, func() { tick(true) })
}

// setReady writes the flapping Node's Ready condition.
func (m *Machine) setReady(ctx context.Context, ready bool) error {
	core, err := m.ownNode(ctx)
	if err != nil {
		return err
	}
	return m.writeReady(ctx, core, kubeletCondition(ready, flapMessage))
}
