package sim

import "time"

// RecheckNotReady looks at the Node the machine holds NotReady now, as the machine does by itself
// when a stage kwok scheduled before it let go of the Node could have come.
func (m *Machine) RecheckNotReady() {
	m.reg.mu.Lock()
	uid := m.reg.uid
	m.reg.mu.Unlock()
	m.recheckNotReady(uid)
}

// SetClock makes now the clock of the machines' draw history, which starts over at now(). Call
// it before Start.
func (s *Sim) SetClock(now func() time.Time) {
	s.now = now
	for _, m := range s.machines {
		m.mu.Lock()
		m.draws = nil
		m.noteDraw()
		m.mu.Unlock()
	}
}

// DrawChanges is how many changes of its draw the machine keeps.
func (m *Machine) DrawChanges() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.draws)
}
