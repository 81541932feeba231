package sim

// RecheckNotReady looks at the Node the machine holds NotReady now, as the machine does by itself
// when a stage kwok scheduled before it let go of the Node could have come.
func (m *Machine) RecheckNotReady() {
	m.reg.mu.Lock()
	uid := m.reg.uid
	m.reg.mu.Unlock()
	m.recheckNotReady(uid)
}
