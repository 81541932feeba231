package power

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Wake-on-LAN sends are fire and forget: nothing answers, and a switch or a busy NIC may drop one
// datagram. Sending a few copies, spaced so a short burst of loss does not take them all, is what
// every WoL tool does.
const (
	// WakeOnLANSends is how many copies of a magic packet one wake sends.
	WakeOnLANSends = 3
	wolSpacing     = 100 * time.Millisecond
)

// WakeOnLAN powers machines on with a magic packet. It cannot power off or read the power state.
type WakeOnLAN struct {
	// Egress limits the addresses the driver sends to; nil allows every address.
	Egress *EgressPolicy
	// Relay records the wake requests of slots with wakeOnLAN.via for a homelab-agent to send;
	// nil refuses such slots.
	Relay relayClient
	// Now returns the current time; nil is time.Now.
	Now func() time.Time
}

// Name implements Driver.
func (WakeOnLAN) Name() string { return DriverWakeOnLAN }

// Do sends the magic packet for ActionOn. The outcome is Done once the packets are sent: whether
// the machine wakes shows only when its Node registers.
func (w WakeOnLAN) Do(ctx context.Context, req Request) (Outcome, error) {
	req, g := guard(DriverWakeOnLAN, req)
	out, err := w.do(ctx, req)
	return g.outcome(out), g.err(err)
}

func (w WakeOnLAN) do(ctx context.Context, req Request) (Outcome, error) {
	if req.Action != ActionOn {
		return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassUnsupported, "Wake-on-LAN can only power a machine on")
	}
	cfg := req.Slot.WakeOnLAN
	if cfg == nil {
		return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassConfig, "the slot has no wakeOnLAN configuration")
	}
	if cfg.Via != "" {
		return w.relayWake(ctx, req)
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()

	mac, err := net.ParseMAC(cfg.MAC)
	if err != nil || len(mac) != 6 {
		return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassConfig, "mac %q is not a 6-byte MAC address", cfg.MAC)
	}
	var password []byte
	if ref := cfg.SecureOnSecretRef; ref != nil {
		raw, err := secretValue(ctx, DriverWakeOnLAN, req, ref.Name, ref.Key)
		if err != nil {
			return Outcome{}, err
		}
		password, err = parseSecureOn(raw)
		if err != nil {
			return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassConfig, "secret %s/%s key %q: %v", req.namespace(), ref.Name, ref.Key, err)
		}
	}
	packet := MagicPacket(mac, password)

	target, err := wolTarget(ctx, cfg)
	if err != nil {
		return Outcome{}, attribute(ctx, DriverWakeOnLAN, req.Action, err)
	}
	if err := w.Egress.Check(target.Addr()); err != nil {
		return Outcome{}, attribute(ctx, DriverWakeOnLAN, req.Action, fmt.Errorf("send magic packet to %s: %w", target, err))
	}
	// An unconnected socket: a connected one would report the ICMP "port unreachable" a machine
	// that is still off may cause, and that says nothing about whether the NIC saw the packet.
	network := "udp4"
	if target.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassUnreachable, "open UDP socket: %v", err)
	}
	defer func() { _ = conn.Close() }()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(deadline)
	}
	for i := range WakeOnLANSends {
		if i > 0 {
			if err := sleepCtx(ctx, wolSpacing); err != nil {
				return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, ClassTimeout, "sent %d of %d magic packets to %s before the timeout", i, WakeOnLANSends, target)
			}
		}
		if _, err := conn.WriteToUDPAddrPort(packet, target); err != nil {
			return Outcome{}, Errorf(DriverWakeOnLAN, req.Action, classify(ctx, err), "send magic packet to %s: %v", target, err)
		}
	}
	return Outcome{Done: true, Detail: fmt.Sprintf("sent %d magic packets for %s to %s", WakeOnLANSends, mac, target)}, nil
}

// Status implements Driver: Wake-on-LAN cannot read a power state.
func (WakeOnLAN) Status(context.Context, Request) (infrav1.PowerState, error) {
	return infrav1.PowerUnknown, Errorf(DriverWakeOnLAN, ActionStatus, ClassUnsupported, "Wake-on-LAN cannot read the power state")
}

// MagicPacket builds a Wake-on-LAN magic packet: six 0xFF bytes, sixteen copies of the MAC, then
// the SecureOn password if there is one (102 bytes, or 108 with a password).
func MagicPacket(mac net.HardwareAddr, secureOn []byte) []byte {
	var b bytes.Buffer
	b.Grow(6 + 16*len(mac) + len(secureOn))
	b.Write(bytes.Repeat([]byte{0xFF}, 6))
	for range 16 {
		b.Write(mac)
	}
	b.Write(secureOn)
	return b.Bytes()
}

// parseSecureOn reads a SecureOn password: six bytes written like a MAC address
// (aa:bb:cc:dd:ee:ff or aa-bb-...), or the six raw bytes. Errors never repeat the value.
func parseSecureOn(raw []byte) ([]byte, error) {
	if len(raw) == 6 {
		return raw, nil
	}
	s := string(bytes.TrimSpace(raw))
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("a SecureOn password must be 6 bytes written like a MAC address (aa:bb:cc:dd:ee:ff)")
	}
	return hw, nil
}

// wolTarget resolves broadcastAddress:port. Names resolve to IPv4 only: Wake-on-LAN is an IPv4
// broadcast affair.
func wolTarget(ctx context.Context, cfg *infrav1.WakeOnLANDriver) (netip.AddrPort, error) {
	host := cfg.BroadcastAddress
	if host == "" {
		host = infrav1.DefaultWakeOnLANBroadcast
	}
	port := int(cfg.Port)
	if port == 0 {
		port = int(infrav1.DefaultWakeOnLANPort)
	}
	if port < 1 || port > 65535 {
		return netip.AddrPort{}, &Error{Class: ClassConfig, Err: fmt.Errorf("port %d is out of range", port)}
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lookupErr := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if lookupErr != nil {
			return netip.AddrPort{}, fmt.Errorf("resolve broadcastAddress %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), lookupErr)
		}
		addr = addrs[0]
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
