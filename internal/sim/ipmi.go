package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/clock"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/handlers"
	ipmiserver "github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/types"
)

// ipmiUserID is the user slot of the machine's account (slot 1 is the anonymous user).
const ipmiUserID = 2

// lanChannel is the BMC's LAN channel.
const lanChannel = 1

// serveIPMI starts m's IPMI v2.0 BMC (RMCP+, "lanplus") on an ephemeral UDP port of addr. The
// protocol (sessions, RAKP authentication, integrity and confidentiality) is go-ipmi's reference
// BMC server; the machine is its hardware. Besides go-ipmi's standard commands it answers DCMI
// Get Power Reading, unless Config.PowerReadings is none.
func serveIPMI(m *Machine, addr string) (server, string, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(addr)})
	if err != nil {
		return nil, "", err
	}
	b := bmc.New(bmc.DeviceInfo{IPMIVersion: 0x20, DeviceID: 0x20, ManufacturerID: 0xBEEF}, guidOf(m), ipmiHAL{m: m},
		bmc.WithClock(quietClock{}))
	user, err := b.Users.Add(ipmiUserID, m.Username)
	if err != nil {
		_ = conn.Close()
		return nil, "", err
	}
	user.SetPassword([]byte(m.Password))
	user.Enabled = true
	// Add returns the stored user itself, which may be edited until the server serves.
	user.ChannelAccess[lanChannel] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
	reg := handlers.NewRegistry()
	handlers.RegisterAllHandlers(reg)
	if m.sim.cfg.PowerReadings != PowerReadingsNone {
		reg.RegisterFunc(types.CommandGetDCMIPowerReading, dcmiPowerReading(m))
	}
	srv := ipmiserver.NewServer(b, countingConn{packetConn{conn}, m}, ipmiserver.WithHandlerRegistry(reg))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = srv.Serve(ctx) }()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	return ipmiServer{srv: srv, cancel: cancel}, net.JoinHostPort(addr, strconv.Itoa(port)), nil
}

type ipmiServer struct {
	srv    *ipmiserver.Server
	cancel context.CancelFunc
}

func (s ipmiServer) close(context.Context) error {
	s.cancel()
	return s.srv.Close()
}

// packetConn reads without a deadline: go-ipmi's own UDP transport wakes every read timeout,
// which for a thousand idle BMCs is CPU spent on nothing.
type packetConn struct{ *net.UDPConn }

func (c packetConn) ReadFrom(buf []byte) (int, net.Addr, error) { return c.UDPConn.ReadFrom(buf) }

func (c packetConn) WriteTo(data []byte, addr net.Addr) (int, error) {
	return c.UDPConn.WriteTo(data, addr)
}

// quietClock is the real clock with a slower session sweep. go-ipmi's server sweeps expired
// sessions on a 3 s ticker; a thousand BMCs would then wake 333 times a second at rest. Sessions
// expire after 60 s of inactivity (checked on use too), so sweeping every 30 s only delays
// freeing their memory.
type quietClock struct{}

func (quietClock) Now() time.Time                       { return time.Now() }
func (quietClock) NewTimer(d time.Duration) clock.Timer { return clock.Real.NewTimer(d) }
func (quietClock) NewTicker(d time.Duration) clock.Ticker {
	if d == bmc.DefaultSessionEvictInterval {
		d = 30 * time.Second
	}
	return clock.Real.NewTicker(d)
}

// guidOf is a system GUID that stays the machine's across runs: derived from its provider ID.
func guidOf(m *Machine) [16]byte {
	sum := sha256.Sum256([]byte(m.ProviderID))
	return [16]byte(sum[:16])
}

// ipmiHAL is the machine as IPMI's hardware layer sees it: a chassis with a power switch and
// nothing else (no sensors, FRU, SOL).
type ipmiHAL struct{ m *Machine }

func (h ipmiHAL) Chassis() hal.ChassisHAL { return ipmiChassis(h) }
func (ipmiHAL) Sensors() hal.SensorHAL    { return nil }
func (ipmiHAL) Storage() hal.StorageHAL   { return nil }
func (ipmiHAL) Network() hal.NetworkHAL   { return nil }
func (ipmiHAL) GPIO() hal.GPIOHAL         { return nil }
func (ipmiHAL) I2C() hal.I2CHAL           { return nil }
func (ipmiHAL) Console() hal.ConsoleHAL   { return nil }
func (ipmiHAL) Close() error              { return nil }

// ipmiChassis maps chassis commands to power commands. An injected fault answers "node busy"
// (completion code C0h), which BMCs send while they cannot serve a command.
type ipmiChassis struct{ m *Machine }

func (c ipmiChassis) PowerState(context.Context) (bool, error) {
	if c.m.faulty() {
		return false, types.CodeNodeBusy
	}
	return c.m.PoweredOn(), nil
}

// SetPower is "chassis power on" and "chassis power off" (a hard power-off).
func (c ipmiChassis) SetPower(_ context.Context, on bool) error {
	if c.m.faulty() {
		return types.CodeNodeBusy
	}
	if on {
		c.m.Do(CommandOn)
	} else {
		c.m.Do(CommandForceOff)
	}
	return nil
}

// WarmReset is what go-ipmi calls for "chassis power soft" (an ACPI shutdown request).
func (c ipmiChassis) WarmReset(context.Context) error {
	if c.m.faulty() {
		return types.CodeNodeBusy
	}
	c.m.Do(CommandGracefulShutdown)
	return nil
}

func (ipmiChassis) PowerCycle(context.Context) error             { return hal.ErrNotSupported }
func (ipmiChassis) ColdReset(context.Context) error              { return hal.ErrNotSupported }
func (ipmiChassis) Identify(context.Context, uint8) error        { return nil }
func (ipmiChassis) IntrusionState(context.Context) (bool, error) { return false, hal.ErrNotSupported }
func (ipmiChassis) SetBootFlags(context.Context, *types.BootOptionParam_BootFlags) error {
	return hal.ErrNotSupported
}
func (ipmiChassis) GetBootFlags(context.Context) (*types.BootOptionParam_BootFlags, error) {
	return nil, hal.ErrNotSupported
}
func (ipmiChassis) SetBootInfoAcknowledge(context.Context, *types.BootOptionParam_BootInfoAcknowledge) error {
	return nil
}
func (ipmiChassis) GetBootInfoAcknowledge(context.Context) (*types.BootOptionParam_BootInfoAcknowledge, error) {
	return nil, hal.ErrNotSupported
}

// dcmiPowerReading answers DCMI Get Power Reading (DCMI v1.5 §6.6.1) in mode 01h, system power
// statistics: the machine's draw now and its minimum, maximum and average over the last minute,
// in whole watts. An injected fault answers "node busy".
func dcmiPowerReading(m *Machine) handlers.HandlerFunc {
	return func(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
		if len(req) < 2 || req[0] != types.GroupExtensionDCMI || req[1] != 0x01 {
			return nil, types.CodeRequestDataFieldInvalid, nil
		}
		if m.faulty() {
			return nil, types.CodeNodeBusy, nil
		}
		m.mu.Lock()
		watts := m.drawNow()
		least, most, average := m.drawStats(powerInterval)
		now := m.sim.now()
		m.mu.Unlock()
		resp := []byte{types.GroupExtensionDCMI}
		for _, w := range []float64{watts, least, most, average} {
			resp = binary.LittleEndian.AppendUint16(resp, DCMIWatts(w))
		}
		resp = binary.LittleEndian.AppendUint32(resp, uint32(now.Unix()))                     //nolint:gosec // an IPMI timestamp is 32 bits
		resp = binary.LittleEndian.AppendUint32(resp, uint32(powerInterval/time.Millisecond)) //nolint:gosec // one minute
		// Bit 6: the power measurement is active.
		return append(resp, 0x40), types.CodeOK, nil
	}
}

// DCMIWatts is a draw as DCMI reports it: whole watts, at most 65535.
func DCMIWatts(watts float64) uint16 {
	return uint16(min(math.Round(watts), math.MaxUint16))
}
