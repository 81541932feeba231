package sim

import "net"

// countRequest counts one request the machine's BMC received.
func (m *Machine) countRequest() { m.count(&m.counters.Requests) }

// countingConn counts the datagrams an IPMI BMC receives: each is one RMCP or RMCP+ message,
// which is what a BMC's network stack serves, whether or not it carries a command.
type countingConn struct {
	packetConn
	m *Machine
}

func (c countingConn) ReadFrom(buf []byte) (int, net.Addr, error) {
	n, addr, err := c.packetConn.ReadFrom(buf)
	if err == nil {
		c.m.countRequest()
	}
	return n, addr, err
}
