package sim

import (
	"sync"
	"time"
)

// phase is where a machine is in its power cycle.
type phase int

const (
	phaseOff phase = iota
	// phaseBooting: the power is on, the operating system boots, no Node yet.
	phaseBooting
	// phaseRunning: booted; the Node is registered (unless the machine never boots).
	phaseRunning
	// phaseShuttingDown: the operating system shuts down; the power is still on. The Node
	// stays until the power is off if the machine had booted.
	phaseShuttingDown
)

func (p phase) String() string {
	return [...]string{"Off", "Booting", "Running", "ShuttingDown"}[p]
}

// Command is a power command as a BMC received it, named like Redfish's ResetType.
type Command string

const (
	// CommandOn powers the machine on (Redfish On, IPMI chassis power on).
	CommandOn Command = "On"
	// CommandGracefulShutdown asks the operating system to shut down (Redfish GracefulShutdown,
	// IPMI chassis power soft).
	CommandGracefulShutdown Command = "GracefulShutdown"
	// CommandForceOff cuts the power (Redfish ForceOff, IPMI chassis power off).
	CommandForceOff Command = "ForceOff"
)

// historySize bounds the commands each machine remembers with their times.
const historySize = 64

// Received is one command a BMC received.
type Received struct {
	At      time.Time `json:"at"`
	Command Command   `json:"command"`
	// Phase is the machine's phase when the command arrived.
	Phase string `json:"phase"`
}

// Counters are what a machine's BMC received and what the machine did, since the start.
type Counters struct {
	// PowerOn counts commands that power on (CommandOn), whatever the machine's state: a second
	// one while the machine is on is counted too, which is the point.
	PowerOn int `json:"powerOn"`
	// PowerOff counts commands that power off (CommandGracefulShutdown and CommandForceOff).
	PowerOff int `json:"powerOff"`
	// MagicPackets counts the Wake-on-LAN magic packets the machine's network card saw (a sender
	// sends a few copies of each wake).
	MagicPackets int `json:"magicPackets"`
	// Commands counts each command by name.
	Commands map[Command]int `json:"commands"`
	// Requests counts everything the BMC received, answered or not: Redfish HTTP requests
	// (session logins and logouts, GETs, actions), IPMI messages (each RMCP+ session
	// handshake step, command and session close) and a smart plug's RPC requests.
	Requests int `json:"requests"`
	// FaultAnswers counts requests an injected fault spoiled (answered with an error or garbage,
	// held, or answered with a lie); Faults counts them by kind.
	FaultAnswers int               `json:"faultAnswers"`
	Faults       map[FaultKind]int `json:"faults,omitempty"`
	// Registrations counts the Nodes the machine created; Deregistrations the ones it
	// deleted.
	Registrations   int `json:"registrations"`
	Deregistrations int `json:"deregistrations"`
	// Flaps counts the Ready condition changes of a flapping machine's Node.
	Flaps int `json:"flaps,omitempty"`
	// PowerCuts counts the power cuts that found the machine on (CutPower, CutPowerAll,
	// --power-cut); no BMC command is involved, so PowerOff and History do not show them.
	PowerCuts int `json:"powerCuts"`
	// ButtonPresses counts the outside power-ons (PressPowerButton, --power-button) that booted
	// the machine; PowerOn and History do not show them.
	ButtonPresses int `json:"buttonPresses"`
	// KubeletHangs counts the kubelet hangs injected (HangKubelet, --kubelet-hang).
	KubeletHangs int `json:"kubeletHangs"`
	// History lists the last commands, oldest first.
	History []Received `json:"history"`
}

// Machine is one simulated machine and its BMC's view of it. It is safe for concurrent use:
// BMC requests, timers and the debug endpoint all reach it at once.
type Machine struct {
	// Index numbers the machine from 0.
	Index int
	// Name is the name of both its Machine and its Node.
	Name string
	// ProviderID is the Node's spec.providerID.
	ProviderID string
	// Username and Password are the BMC's credentials.
	Username, Password string

	sim       *Sim
	neverBoot bool

	mu    sync.Mutex
	phase phase
	timer *time.Timer // the boot or shutdown in progress
	epoch uint64      // bumped by every transition, so that a stale timer does nothing
	// booted is set when a boot completes and cleared when the power goes off: the machine's
	// kubelet runs and its Node exists while it is set.
	booted bool
	// nodeLeft: a power cut left the Node of the machine, now off or booting again,
	// NotReady. The next completed boot makes it Ready again; a power-off through the BMC
	// deletes it.
	nodeLeft bool
	// hung: the kubelet hangs; hangSticky keeps it hung across power cycles.
	hung, hangSticky bool
	// cutAfter lists when, after the machine first reaches Running, its power is cut;
	// cutsArmed says the timers were started.
	cutAfter  []time.Duration
	cutsArmed bool
	// faultTimers are the pending power cuts and button presses, stopped by Close.
	faultTimers []*time.Timer
	// faultEnds says until when the BMC misbehaves, by kind.
	faultEnds map[FaultKind]time.Time
	// flapFor is how long the Node flaps after each registration.
	flapFor time.Duration
	// lateBy delays every boot's registration beyond the boot delay.
	lateBy   time.Duration
	counters Counters
	endpoint string

	// profile is what the machine draws off, idle and at full load; load is its load (0 to 1).
	profile drawProfile
	load    float64
	// relay is the power reaching the machine: always on, but for a machine behind a smart plug
	// whose relay is off. Off, the machine is off too.
	relay bool
	// draws is the history of its draw, oldest first; never empty.
	draws []drawChange

	reg registration
}

// PoweredOn reports whether the machine's power is on (booting and shutting down included).
func (m *Machine) PoweredOn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.phase != phaseOff
}

// Phase is the machine's phase: Off, Booting, Running or ShuttingDown.
func (m *Machine) Phase() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.phase.String()
}

// Endpoint is how the BMC is reached: http://IP:PORT for Redfish and for a smart plug, IP:PORT
// for IPMI.
func (m *Machine) Endpoint() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endpoint
}

// Counters returns a copy of the machine's counters.
func (m *Machine) Counters() Counters {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters
	c.Commands = make(map[Command]int, len(m.counters.Commands))
	for k, v := range m.counters.Commands {
		c.Commands[k] = v
	}
	c.History = append([]Received(nil), m.counters.History...)
	if m.counters.Faults != nil {
		c.Faults = make(map[FaultKind]int, len(m.counters.Faults))
		for k, v := range m.counters.Faults {
			c.Faults[k] = v
		}
	}
	return c
}

// FailBMCFor makes the BMC answer every request with an error for d from now.
func (m *Machine) FailBMCFor(d time.Duration) {
	_ = m.InjectFault(FaultError, d)
}

// faulty reports whether the BMC must answer this request with an error, and counts it.
func (m *Machine) faulty() bool { return m.faultNow(FaultError) }

// Do carries out a power command as the machine's hardware would. It returns at once: booting
// and shutting down take their time on timers.
func (m *Machine) Do(cmd Command) {
	m.mu.Lock()
	m.record(cmd)
	changed := false
	switch cmd {
	case CommandOn, CommandMagicPacket:
		if m.phase == phaseOff {
			m.enter(phaseBooting, m.bootTime())
			changed = true
		}
	case CommandGracefulShutdown:
		// The operating system is asked to shut down; a machine still booting is treated the same
		// (its firmware honours the power button).
		if m.phase == phaseBooting || m.phase == phaseRunning {
			m.enter(phaseShuttingDown, jittered(m.sim.cfg.ShutdownDelay, m.sim.cfg.ShutdownJitter))
			changed = true
		}
	case CommandForceOff:
		if m.phase != phaseOff {
			m.enter(phaseOff, 0)
			changed = true
		}
	}
	m.mu.Unlock()
	m.sim.log.Info("power command", "machine", m.Name, "command", cmd, "changed", changed)
	if changed {
		// The BMC answers without waiting for the API: a ForceOff's Node delete happens
		// beside the answer, as the power cut and the kubelet's disappearance would.
		go m.syncNode()
	}
}

// record counts cmd; m.mu is held.
func (m *Machine) record(cmd Command) {
	c := &m.counters
	switch cmd {
	case CommandOn:
		c.PowerOn++
	case CommandMagicPacket:
		c.MagicPackets++
	case CommandGracefulShutdown, CommandForceOff:
		c.PowerOff++
	}
	if c.Commands == nil {
		c.Commands = map[Command]int{}
	}
	c.Commands[cmd]++
	if len(c.History) == historySize {
		c.History = append(c.History[:0], c.History[1:]...)
	}
	c.History = append(c.History, Received{At: time.Now(), Command: cmd, Phase: m.phase.String()})
}

// bootTime is how long this boot takes until the Node registers.
func (m *Machine) bootTime() time.Duration {
	return jittered(m.sim.cfg.BootDelay, m.sim.cfg.BootJitter) + m.lateBy
}

// enter moves the machine to p and, for a phase that ends by itself, arms the timer that ends it
// after d. m.mu is held.
func (m *Machine) enter(p phase, d time.Duration) {
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.epoch++
	m.phase = p
	m.noteDraw()
	switch p {
	case phaseOff:
		// The kubelet is gone with the power, and a hang of this boot with it.
		m.booted, m.nodeLeft = false, false
		if !m.hangSticky {
			m.hung = false
		}
	case phaseRunning:
		// The kubelet registers the Node again, whatever a power cut left of it.
		m.booted, m.nodeLeft = true, false
		m.armPowerCuts()
	}
	var next phase
	switch p {
	case phaseBooting:
		next = phaseRunning
	case phaseShuttingDown:
		next = phaseOff
	default:
		return
	}
	epoch := m.epoch
	m.timer = time.AfterFunc(d, func() { m.finish(epoch, next) })
}

// finish ends a boot or a shutdown, unless another command changed the machine meanwhile.
func (m *Machine) finish(epoch uint64, next phase) {
	m.mu.Lock()
	if epoch != m.epoch || m.sim.stopped() {
		m.mu.Unlock()
		return
	}
	m.timer = nil
	m.enter(next, 0)
	m.mu.Unlock()
	m.sim.log.Debug("machine changed phase", "machine", m.Name, "phase", next.String())
	m.syncNode()
}

// stop cancels the boot or shutdown in progress and the pending faults, for the simulator's end.
func (m *Machine) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	for _, t := range m.faultTimers {
		t.Stop()
	}
	m.faultTimers = nil
	m.epoch++
}

// nodeWanted is what the machine's Node should be now.
func (m *Machine) nodeWanted() nodeState {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.booted && !m.neverBoot && m.hung:
		return nodeNotReady
	case m.booted && !m.neverBoot:
		return nodeReady
	case m.nodeLeft:
		return nodeNotReady
	}
	return nodeAbsent
}
