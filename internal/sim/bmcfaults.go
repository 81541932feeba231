package sim

import (
	"context"
	"fmt"
	"time"
)

// FaultKind is how a faulty BMC misbehaves.
type FaultKind string

const (
	// FaultError answers every request with an error (Redfish and plugs: HTTP 500; IPMI: node
	// busy), as a BMC that is rebooting or overloaded does.
	FaultError FaultKind = "error"
	// FaultHang holds every request without an answer until the client gives up or the window
	// ends (then the request is served), as a BMC with a wedged web server does. Redfish only.
	FaultHang FaultKind = "hang"
	// FaultLie reports the opposite power state (On after a power-off, Off while on). Commands
	// still work. Redfish only.
	FaultLie FaultKind = "lie"
	// FaultGarbage answers every request with 200 and a body that is not JSON. Redfish only.
	FaultGarbage FaultKind = "garbage"
)

// FaultKinds lists every kind, in the order the documentation names them.
var FaultKinds = []FaultKind{FaultError, FaultHang, FaultLie, FaultGarbage}

func validFaultKind(k FaultKind) bool {
	for _, known := range FaultKinds {
		if k == known {
			return true
		}
	}
	return false
}

// InjectFault makes the BMC misbehave as kind says for d from now (0 ends a window early).
func (m *Machine) InjectFault(kind FaultKind, d time.Duration) error {
	if !validFaultKind(kind) {
		return fmt.Errorf("unknown BMC fault %q (want one of %v)", kind, FaultKinds)
	}
	if kind != FaultError && m.sim.cfg.Protocol != ProtocolRedfish {
		return fmt.Errorf("BMC fault %q is served by Redfish BMCs only", kind)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.faultEnds == nil {
		m.faultEnds = map[FaultKind]time.Time{}
	}
	m.faultEnds[kind] = time.Now().Add(d)
	return nil
}

// faultNow reports whether the BMC is inside a window of kind now and, if so, counts one
// answer spoiled by it.
func (m *Machine) faultNow(kind FaultKind) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !time.Now().Before(m.faultEnds[kind]) {
		return false
	}
	m.countFault(kind)
	return true
}

// countFault counts one answer spoiled by kind; m.mu is held.
func (m *Machine) countFault(kind FaultKind) {
	m.counters.FaultAnswers++
	if m.counters.Faults == nil {
		m.counters.Faults = map[FaultKind]int{}
	}
	m.counters.Faults[kind]++
}

// hang holds a request while the BMC's hang window lasts. It returns false when the client gave
// up first: that request is never served, so a command in it is never carried out.
func (m *Machine) hang(ctx context.Context) bool {
	m.mu.Lock()
	end := m.faultEnds[FaultHang]
	if !time.Now().Before(end) {
		m.mu.Unlock()
		return true
	}
	m.countFault(FaultHang)
	m.mu.Unlock()
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
