package sim

import (
	"fmt"
	"sync"
	"time"
)

// NodeAfterCut is what becomes of a machine's Node when its power is cut.
type NodeAfterCut string

const (
	// NodeNotReady keeps the Node, with its Ready condition Unknown (reason NodeStatusUnknown),
	// as the node lifecycle controller marks the Node of a kubelet that stopped posting. kwok no
	// longer manages it, so it stays NotReady until the machine boots again.
	NodeNotReady NodeAfterCut = "not-ready"
	// NodeGone deletes the Node at once.
	NodeGone NodeAfterCut = "gone"
)

// parseNodeAfterCut reads the debug endpoint's ?node= value; empty means NodeNotReady.
func parseNodeAfterCut(s string) (NodeAfterCut, error) {
	switch NodeAfterCut(s) {
	case "", NodeNotReady:
		return NodeNotReady, nil
	case NodeGone:
		return NodeGone, nil
	}
	return "", fmt.Errorf("node must be %s or %s, not %q", NodeNotReady, NodeGone, s)
}

// cutSyncParallelism bounds the Node changes a site-wide power cut makes at once.
const cutSyncParallelism = 32

// CutPower drops the machine's power at once, as a tripped breaker or a pulled plug does: the
// machine is Off (a boot or shutdown in progress is abandoned) and its BMC says so, but no BMC
// command was received, so PowerOn, PowerOff and History do not change; PowerCuts counts it.
// node says what becomes of the Node (any value but NodeGone keeps it NotReady). A machine that
// is off already is left as it is. CutPower returns once the Node changed, or once a retry of a
// failed API call is scheduled.
func (m *Machine) CutPower(node NodeAfterCut) {
	if from, ok := m.cut(node); ok {
		m.sim.log.Info("power cut", "machine", m.Name, "phase", from, "node", string(node))
		m.syncNode()
	}
}

// cut drops the power and reports the phase it found, and whether the machine was on.
func (m *Machine) cut(node NodeAfterCut) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase == phaseOff {
		return "", false
	}
	from := m.phase.String()
	// Only a Node the kubelet had registered (or an earlier cut had left) can outlive the power.
	left := node != NodeGone && (m.nodeLeft || (m.booted && !m.neverBoot))
	m.enter(phaseOff, 0)
	m.nodeLeft = left
	m.counters.PowerCuts++
	return from, true
}

// CutPowerAll cuts the power of every machine that is on, as a site-wide outage does, and returns
// how many it cut. Each is cut as CutPower does; it returns once every Node changed.
func (s *Sim) CutPowerAll(node NodeAfterCut) int {
	var cut []*Machine
	for _, m := range s.machines {
		if _, ok := m.cut(node); ok {
			cut = append(cut, m)
		}
	}
	s.log.Info("site-wide power cut", "machines", len(cut), "node", string(node))
	var wg sync.WaitGroup
	slots := make(chan struct{}, cutSyncParallelism)
	for _, m := range cut {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			m.syncNode()
		})
	}
	wg.Wait()
	return len(cut)
}

// PressPowerButton powers the machine on from outside its BMC: a person at the power button, or
// firmware set to restore power after an outage. An off machine boots exactly as after a BMC
// power-on, but PowerOn and History do not change; ButtonPresses counts it. A machine that is
// on is left as it is (a short press on a running machine, which real firmware passes to the
// operating system as a shutdown request, is not played), and so is one behind a smart plug
// whose relay is off: no power reaches it.
func (m *Machine) PressPowerButton() {
	m.mu.Lock()
	pressed := m.phase == phaseOff && m.relay
	if pressed {
		m.enter(phaseBooting, m.bootTime())
		m.counters.ButtonPresses++
	}
	m.mu.Unlock()
	m.sim.log.Info("power button pressed", "machine", m.Name, "changed", pressed)
	// Booting changes nothing about the Node: it registers when the boot completes.
}

// HangKubelet makes the machine's kubelet stop posting while the machine stays on (its BMC says
// On): its Node is taken from kwok and goes NotReady (Ready Unknown), and stays so. A machine
// that is off or booting gets a hung kubelet on its next boot: the Node registers NotReady. A
// hang ends when the power goes off (a shutdown, a forced power-off or a cut), unless it is
// sticky: then every boot registers the Node NotReady until ClearFaults. A second call replaces
// the first (sticky or not). KubeletHangs counts the calls.
func (m *Machine) HangKubelet(sticky bool) {
	m.mu.Lock()
	m.hung, m.hangSticky = true, sticky
	m.counters.KubeletHangs++
	m.mu.Unlock()
	m.sim.log.Info("kubelet hangs", "machine", m.Name, "sticky", sticky)
	m.syncNode()
}

// ClearFaults ends the machine's faults: a kubelet hang (the Node of a running machine is Ready
// again and handed back to kwok). BMC fault windows run their course, and a Node a power cut
// left NotReady stays until the machine boots.
func (m *Machine) ClearFaults() {
	m.mu.Lock()
	m.hung, m.hangSticky = false, false
	m.mu.Unlock()
	m.sim.log.Info("machine faults cleared", "machine", m.Name)
	m.syncNode()
}

// KubeletHang reports whether the machine's kubelet hangs (or will hang on the next boot), and
// whether the hang survives power cycles.
func (m *Machine) KubeletHang() (hung, sticky bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hung, m.hangSticky
}

// nodeLeftByCut reports whether a power cut left the Node of the machine NotReady.
func (m *Machine) nodeLeftByCut() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nodeLeft
}

// armPowerCuts starts the --power-cut timers the first time the machine reaches Running. m.mu
// is held.
func (m *Machine) armPowerCuts() {
	if m.cutsArmed {
		return
	}
	m.cutsArmed = true
	for _, d := range m.cutAfter {
		m.faultTimers = append(m.faultTimers, time.AfterFunc(d, func() {
			if !m.sim.stopped() {
				m.CutPower(NodeNotReady)
			}
		}))
	}
}

// armButtonPress presses the machine's power button d from now. m.mu is held.
func (m *Machine) armButtonPress(d time.Duration) {
	m.faultTimers = append(m.faultTimers, time.AfterFunc(d, func() {
		if !m.sim.stopped() {
			m.PressPowerButton()
		}
	}))
}
