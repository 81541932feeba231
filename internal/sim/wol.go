package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// CommandMagicPacket is a Wake-on-LAN magic packet the machine's network card saw: it powers an
// off machine on, like CommandOn.
const CommandMagicPacket Command = "MagicPacket"

// MAC is the simulated network card's address of machine index i: locally administered, unique
// per index.
func MAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x68, 0x6c, byte(i >> 16 & 0xff), byte(i >> 8 & 0xff), byte(i & 0xff)} //nolint:gosec // masked to a byte
}

// wakeListener is the machines' shared LAN as far as Wake-on-LAN goes: one UDP socket that every
// simulated network card listens on; a magic packet wakes the machine whose MAC it carries.
type wakeListener struct {
	conn *net.UDPConn
	done chan struct{}
}

// serveWake listens on addr (port 0 picks one) and returns the listener and its port.
func (s *Sim) serveWake(addr string) (*wakeListener, int, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr)})
	if err != nil {
		return nil, 0, fmt.Errorf("listening for magic packets on %s: %w", addr, err)
	}
	byMAC := map[string]*Machine{}
	for _, m := range s.machines {
		byMAC[string(MAC(m.Index))] = m
	}
	l := &wakeListener{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.log.Error("reading magic packets", "error", err)
				}
				return
			}
			mac, ok := magicMAC(buf[:n])
			if !ok {
				s.log.Info("not a magic packet", "bytes", n)
				continue
			}
			if m := byMAC[string(mac)]; m != nil {
				m.Do(CommandMagicPacket)
			}
		}
	}()
	return l, conn.LocalAddr().(*net.UDPAddr).Port, nil
}

func (l *wakeListener) close(context.Context) error {
	err := l.conn.Close()
	<-l.done
	return err
}

// magicMAC returns the MAC of a magic packet: six 0xFF bytes and sixteen copies of the MAC, then
// optionally a SecureOn password of 4 or 6 bytes.
func magicMAC(p []byte) (net.HardwareAddr, bool) {
	if n := len(p); n != 102 && n != 106 && n != 108 {
		return nil, false
	}
	if !bytes.Equal(p[:6], bytes.Repeat([]byte{0xff}, 6)) {
		return nil, false
	}
	mac := p[6:12]
	for i := 1; i < 16; i++ {
		if !bytes.Equal(p[6+6*i:12+6*i], mac) {
			return nil, false
		}
	}
	return net.HardwareAddr(bytes.Clone(mac)), true
}

// wakeTarget is host:port of the machines' Wake-on-LAN listener.
func (s *Sim) wakeTarget() (string, string) {
	return s.cfg.BMCAddress, strconv.Itoa(s.wakePort)
}
