package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Protocol is what the machines' BMCs speak.
type Protocol string

const (
	// ProtocolRedfish serves the DMTF Redfish API over HTTP.
	ProtocolRedfish Protocol = "redfish"
	// ProtocolIPMI serves IPMI v2.0 (RMCP+, "lanplus") over UDP.
	ProtocolIPMI Protocol = "ipmi"
	// ProtocolShelly puts each machine behind a smart plug that speaks Shelly's Gen2 RPC over
	// HTTP instead of a BMC: switching the plug off cuts the machine's power, switching it on
	// boots it (its firmware powers on when power returns).
	ProtocolShelly Protocol = "shelly"
)

// Protocols lists every protocol.
var Protocols = []Protocol{ProtocolRedfish, ProtocolIPMI, ProtocolShelly}

// PowerReadings is which power readings a BMC offers. An IPMI BMC answers DCMI Get Power
// Reading unless it is PowerReadingsNone.
type PowerReadings string

const (
	// PowerReadingsBoth: a Redfish BMC offers its chassis' Power resource and its
	// EnvironmentMetrics; an IPMI BMC answers DCMI Get Power Reading.
	PowerReadingsBoth PowerReadings = "both"
	// PowerReadingsPower: a Redfish BMC offers only the Power resource (PowerControl), as older
	// BMCs do.
	PowerReadingsPower PowerReadings = "power"
	// PowerReadingsEnvironment: a Redfish BMC offers only EnvironmentMetrics (PowerWatts), as
	// BMCs that dropped the deprecated Power resource do.
	PowerReadingsEnvironment PowerReadings = "environment"
	// PowerReadingsNone: no power reading; an IPMI BMC answers DCMI with "invalid command".
	PowerReadingsNone PowerReadings = "none"
)

// PowerReadingsChoices lists every PowerReadings value.
var PowerReadingsChoices = []PowerReadings{PowerReadingsBoth, PowerReadingsPower, PowerReadingsEnvironment, PowerReadingsNone}

// offersPower and offersEnvironment say which Redfish resources the BMC serves.
func (p PowerReadings) offersPower() bool { return p == PowerReadingsBoth || p == PowerReadingsPower }
func (p PowerReadings) offersEnvironment() bool {
	return p == PowerReadingsBoth || p == PowerReadingsEnvironment
}

// Fault makes one machine's BMC misbehave for a while after the simulator starts.
type Fault struct {
	// Index is the machine's index (0 is the first machine).
	Index int
	// For is how long the BMC misbehaves, from the simulator's start (in LateBoot: how much
	// later than the boot delay the machine registers; in PowerCut: how long after the machine
	// first reaches Running its power is cut; in PowerButton: how long after the start its
	// power button is pressed).
	For time.Duration
	// Kind is how it misbehaves; empty means FaultError.
	Kind FaultKind
}

func (f Fault) kind() FaultKind {
	if f.Kind == "" {
		return FaultError
	}
	return f.Kind
}

// Config describes the homelab to simulate.
type Config struct {
	// Namespace of the Group, Machines and Secrets.
	Namespace string
	// Group is the name of the Group; the machines are named <group>-<index>.
	Group string
	// Machines is how many machines there are.
	Machines int
	// Protocol the BMCs speak.
	Protocol Protocol
	// BMCAddress is the IP address the BMCs listen on, each on its own ephemeral port.
	BMCAddress string
	// Username is the BMC account; every machine gets its own random password.
	Username string

	// BootDelay is how long a machine takes from power-on until its Node registers, give or
	// take BootJitter (uniformly).
	BootDelay, BootJitter time.Duration
	// ShutdownDelay is how long a graceful shutdown takes until the power is off and the
	// Node is gone, give or take ShutdownJitter.
	ShutdownDelay, ShutdownJitter time.Duration

	// Capacity of each machine's Node (cpu, memory, pods, ...); allocatable is the same.
	Capacity corev1.ResourceList
	// Labels are added to each Node and to the Group's template, as kubelet's --node-labels.
	Labels map[string]string
	// MachineLabels registers each Node with its Group's and Machine's labels too, besides the
	// namespace opt-in, as a kubelet started with those --node-labels does (docs/machines.md):
	// the manager then has nothing to write to the Node. Without them it adds the two labels,
	// one write per registration.
	MachineLabels bool

	// WakeVia, when set, gives every machine a network card that wakes on a magic packet (its MAC
	// is MAC(index); all listen on one UDP port of BMCAddress) and Machines whose power.start is
	// wakeOnLAN through the homelab-agents of this segment; the BMC still powers off and reads the
	// state.
	WakeVia string

	// NeverBoot lists the indexes of machines that power on but never register a Node.
	NeverBoot []int
	// BMCErrors lists BMCs that answer errors for a while after the start (their Kind is
	// ignored: always FaultError).
	BMCErrors []Fault
	// BMCFaults lists BMCs that misbehave, each as its Kind says, for a while after the start.
	BMCFaults []Fault
	// LateBoot lists machines that register their Node For later than the boot delay, on
	// every boot: set it beyond the boot timeout to play a machine that shows up after
	// the manager gave up on the attempt.
	LateBoot []Fault
	// Flap lists machines whose Node alternates between Ready and NotReady (every
	// FlapPeriod) for For after each registration, then stays Ready.
	Flap []Fault
	// PowerCut lists machines whose power is cut For after they first reach Running, leaving
	// their Node NotReady (a breaker that trips under load, a pulled plug).
	PowerCut []Fault
	// PowerButton lists machines whose power button is pressed For after the start: an off
	// machine boots without a BMC command (a person at the machine, or firmware that restores
	// power after an outage).
	PowerButton []Fault
	// KubeletHang lists the indexes of machines whose kubelet hangs on every boot: the BMC says
	// On, the Node registers but never becomes Ready (Machine.ClearFaults ends it).
	KubeletHang []int

	// NodeBootTimeout, when set, is written into the Group's machineDefaults.bootTimeout: how long
	// the manager lets a power-on take until the machine's Node is Ready.
	NodeBootTimeout time.Duration

	// StandbyWatts is what a machine draws off (its BMC and network card); IdleWatts what it
	// draws on and idle; LoadedWatts what it draws on at full load (Machine.SetLoad).
	StandbyWatts, IdleWatts, LoadedWatts float64
	// WattsSpread varies the three draws per machine: each machine's are scaled by its own factor
	// within ±WattsSpread (0.1 is ±10 %), the same across runs.
	WattsSpread float64
	// PowerReadings is which power readings the BMCs offer (plugs always report their draw).
	PowerReadings PowerReadings
}

// DefaultConfig is the configuration the command line starts from.
func DefaultConfig() Config {
	return Config{
		Namespace:     "default",
		Group:         "sim",
		Machines:      3,
		Protocol:      ProtocolRedfish,
		BMCAddress:    "127.0.0.1",
		Username:      "admin",
		BootDelay:     5 * time.Second,
		ShutdownDelay: 3 * time.Second,
		MachineLabels: true,
		StandbyWatts:  2.5,
		IdleWatts:     45,
		LoadedWatts:   120,
		PowerReadings: PowerReadingsBoth,
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("4"),
			corev1.ResourceMemory: resource.MustParse("16Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		},
	}
}

// Validate checks the configuration before anything listens.
func (c *Config) Validate() error {
	var errs []error
	if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("namespace %q: %s", c.Namespace, strings.Join(msgs, "; ")))
	}
	if c.Machines < 1 {
		errs = append(errs, fmt.Errorf("machines must be at least 1, not %d", c.Machines))
	}
	// The longest name derived from the group is the Secret's, <group>-<index>-bmc; Node
	// names are also host names, hence the label rule.
	if c.Machines >= 1 {
		if msgs := validation.IsDNS1123Label(c.secretName(c.Machines - 1)); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("group %q makes machine names that are not valid host names: %s", c.Group, strings.Join(msgs, "; ")))
		}
	}
	if !slices.Contains(Protocols, c.Protocol) {
		errs = append(errs, fmt.Errorf("protocol must be redfish, ipmi or shelly, not %q", c.Protocol))
	}
	if !slices.Contains(PowerReadingsChoices, c.PowerReadings) {
		errs = append(errs, fmt.Errorf("power readings must be one of %v, not %q", PowerReadingsChoices, c.PowerReadings))
	}
	for name, w := range map[string]float64{"standby watts": c.StandbyWatts, "idle watts": c.IdleWatts, "loaded watts": c.LoadedWatts} {
		if math.IsNaN(w) || w < 0 || w > maxWatts {
			errs = append(errs, fmt.Errorf("%s must be between 0 and %d, not %v", name, maxWatts, w))
		}
	}
	if c.LoadedWatts < c.IdleWatts {
		errs = append(errs, fmt.Errorf("loaded watts (%v) must not be less than idle watts (%v)", c.LoadedWatts, c.IdleWatts))
	}
	if math.IsNaN(c.WattsSpread) || c.WattsSpread < 0 || c.WattsSpread >= 1 {
		errs = append(errs, fmt.Errorf("watts spread must be at least 0 and less than 1, not %v", c.WattsSpread))
	}
	if c.Username == "" || len(c.Username) > 16 {
		// IPMI user names are at most 16 bytes; one limit for both protocols keeps manifests portable.
		errs = append(errs, fmt.Errorf("username must be 1 to 16 characters"))
	}
	for name, d := range map[string]time.Duration{"boot delay": c.BootDelay, "boot jitter": c.BootJitter,
		"shutdown delay": c.ShutdownDelay, "shutdown jitter": c.ShutdownJitter, "node boot timeout": c.NodeBootTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
		if q, ok := c.Capacity[r]; !ok || q.Sign() <= 0 {
			errs = append(errs, fmt.Errorf("capacity %s must be positive", r))
		}
	}
	for k, v := range c.Labels {
		for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			errs = append(errs, fmt.Errorf("label %s=%s: %s", k, v, msg))
		}
	}
	for _, i := range c.NeverBoot {
		if i < 0 || i >= c.Machines {
			errs = append(errs, fmt.Errorf("never-boot machine index %d is out of range (0-%d)", i, c.Machines-1))
		}
	}
	for _, f := range c.BMCErrors {
		if f.Index < 0 || f.Index >= c.Machines {
			errs = append(errs, fmt.Errorf("bmc-errors machine index %d is out of range (0-%d)", f.Index, c.Machines-1))
		}
		if f.For <= 0 {
			errs = append(errs, fmt.Errorf("bmc-errors for machine %d needs a positive duration", f.Index))
		}
	}
	for _, f := range c.BMCFaults {
		if f.Index < 0 || f.Index >= c.Machines {
			errs = append(errs, fmt.Errorf("bmc fault machine index %d is out of range (0-%d)", f.Index, c.Machines-1))
		}
		if f.For <= 0 {
			errs = append(errs, fmt.Errorf("bmc fault %s for machine %d needs a positive duration", f.kind(), f.Index))
		}
		if !validFaultKind(f.kind()) {
			errs = append(errs, fmt.Errorf("bmc fault %q for machine %d is not one of %v", f.Kind, f.Index, FaultKinds))
		} else if f.kind() != FaultError && c.Protocol != ProtocolRedfish {
			errs = append(errs, fmt.Errorf("bmc fault %s is served by Redfish BMCs only", f.kind()))
		}
	}
	for name, list := range map[string][]Fault{"late-boot": c.LateBoot, "flap": c.Flap} {
		for _, f := range list {
			if f.Index < 0 || f.Index >= c.Machines {
				errs = append(errs, fmt.Errorf("%s machine index %d is out of range (0-%d)", name, f.Index, c.Machines-1))
			}
			if f.For <= 0 {
				errs = append(errs, fmt.Errorf("%s for machine %d needs a positive duration", name, f.Index))
			}
		}
	}
	for name, list := range map[string][]Fault{"power-cut": c.PowerCut, "power-button": c.PowerButton} {
		for _, f := range list {
			if f.Index < 0 || f.Index >= c.Machines {
				errs = append(errs, fmt.Errorf("%s machine index %d is out of range (0-%d)", name, f.Index, c.Machines-1))
			}
			if f.For < 0 {
				errs = append(errs, fmt.Errorf("%s for machine %d must not be negative", name, f.Index))
			}
		}
	}
	for _, i := range c.KubeletHang {
		if i < 0 || i >= c.Machines {
			errs = append(errs, fmt.Errorf("kubelet-hang machine index %d is out of range (0-%d)", i, c.Machines-1))
		}
	}
	return errors.Join(errs...)
}

// maxWatts bounds a configured draw: what the API allows a Machine's configured draw.
const maxWatts = 100_000

// bmcFaults is every fault window to open at the start: BMCErrors and BMCFaults.
func (c *Config) bmcFaults() []Fault {
	out := make([]Fault, 0, len(c.BMCErrors)+len(c.BMCFaults))
	for _, f := range c.BMCErrors {
		out = append(out, Fault{Index: f.Index, For: f.For, Kind: FaultError})
	}
	return append(out, c.BMCFaults...)
}

// MachineName is the name of machine i: the Group's name and the index, zero-padded so that
// names sort in index order.
func (c *Config) MachineName(i int) string {
	width := len(strconv.Itoa(max(c.Machines-1, 0)))
	return fmt.Sprintf("%s-%0*d", c.Group, width, i)
}

// secretName is the Secret holding machine i's BMC credentials, or its plug's token header (a
// Secret of another type, which cannot be changed into the other).
func (c *Config) secretName(i int) string {
	if c.Protocol == ProtocolShelly {
		return c.MachineName(i) + "-plug"
	}
	return c.MachineName(i) + "-bmc"
}

// providerID is machine i's provider ID, the default homelab-autoscaler derives for a Machine.
func (c *Config) providerID(i int) string {
	return "homelab://" + c.Namespace + "/" + c.MachineName(i)
}

// jittered returns d moved by a uniformly random amount within ±jitter, never below zero.
func jittered(d, jitter time.Duration) time.Duration {
	if jitter <= 0 {
		return d
	}
	//nolint:gosec // timing noise, not a secret
	return max(d-jitter+time.Duration(rand.Int64N(int64(2*jitter)+1)), 0)
}
