package power

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// EgressPolicy limits the addresses the drivers connect to. A Machine's spec names a BMC, a plug
// or a machine by any address its author likes; without a policy that includes the cloud
// metadata service (169.254.169.254), the manager's own loopback, and anything else the manager's
// network reaches, which lets whoever may write Machines probe it with the manager's identity.
//
// Every prefix that contains an address is a match; the longest match decides, and deny wins
// between an allow and a deny of the same length. An address that no prefix matches is allowed.
// So "deny 0.0.0.0/0, allow 10.0.0.0/8" allows only 10.0.0.0/8, and "deny 127.0.0.0/8, allow
// 127.0.0.1/32" denies the loopback network except one address. The zero value allows every
// address.
//
// The policy is checked on the address a connection is about to be made to, after name
// resolution (a net.Dialer's Control function): a name that resolves to an allowed address when
// the spec is written and to a denied one later (DNS rebinding) is still refused. With a policy
// that has any prefix, the HTTP-based drivers connect directly and ignore HTTP_PROXY and
// HTTPS_PROXY: a proxy would connect on their behalf, out of the policy's sight.
type EgressPolicy struct {
	// Allow lists the prefixes connections may go to.
	Allow []netip.Prefix
	// Deny lists the prefixes connections must not go to.
	Deny []netip.Prefix
}

// DefaultEgressPolicy denies the addresses a driver has no business reaching: link-local
// (169.254.0.0/16, which holds the cloud metadata service 169.254.169.254, and fe80::/10),
// loopback (127.0.0.0/8, ::1) and the unspecified addresses (0.0.0.0/8, ::), which reach the
// local host too.
func DefaultEgressPolicy() EgressPolicy {
	return EgressPolicy{Deny: defaultEgressDeny()}
}

func defaultEgressDeny() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("::/128"),
	}
}

// ParseEgressPolicy reads a policy written as a comma-separated list of items:
// "deny=<prefix>", "allow=<prefix>", or "default" for the denials of DefaultEgressPolicy. A prefix
// is in CIDR notation ("169.254.0.0/16", "fd00::/8"); a bare address stands for itself alone.
// "default,allow=127.0.0.1/32" is the default policy with one loopback address let through. The
// empty string is the zero policy, which allows everything.
func ParseEgressPolicy(s string) (EgressPolicy, error) {
	var p EgressPolicy
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item == "default" {
			p.Deny = append(p.Deny, defaultEgressDeny()...)
			continue
		}
		kind, value, ok := strings.Cut(item, "=")
		kind, value = strings.TrimSpace(kind), strings.TrimSpace(value)
		if !ok || kind != "allow" && kind != "deny" {
			return EgressPolicy{}, fmt.Errorf("egress policy item %q: want allow=<prefix>, deny=<prefix> or default", item)
		}
		prefix, err := parsePrefixOrAddr(value)
		if err != nil {
			return EgressPolicy{}, fmt.Errorf("egress policy item %q: %q is not a CIDR prefix (169.254.0.0/16) or an IP address", item, value)
		}
		if kind == "allow" {
			p.Allow = append(p.Allow, prefix)
		} else {
			p.Deny = append(p.Deny, prefix)
		}
	}
	return p, nil
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errors.New("not an address")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// String writes the policy the way ParseEgressPolicy reads it.
func (p EgressPolicy) String() string {
	items := make([]string, 0, len(p.Deny)+len(p.Allow))
	for _, d := range p.Deny {
		items = append(items, "deny="+d.String())
	}
	for _, a := range p.Allow {
		items = append(items, "allow="+a.String())
	}
	return strings.Join(items, ",")
}

// Set adds the items of s to p, so that a policy can be a command-line flag (flag.Value) that
// may repeat.
func (p *EgressPolicy) Set(s string) error {
	parsed, err := ParseEgressPolicy(s)
	if err != nil {
		return err
	}
	p.Allow = append(p.Allow, parsed.Allow...)
	p.Deny = append(p.Deny, parsed.Deny...)
	return nil
}

// EgressDeniedError is the refusal of a connection by an EgressPolicy.
type EgressDeniedError struct {
	// Addr is the address the connection was to go to.
	Addr netip.Addr
	// Rule is the deny prefix that matched.
	Rule netip.Prefix
}

func (e *EgressDeniedError) Error() string {
	return fmt.Sprintf("connecting to %s is refused by the manager's egress policy (deny=%s)", e.Addr, e.Rule)
}

// active reports whether the policy can refuse anything; a nil policy cannot.
func (p *EgressPolicy) active() bool {
	return p != nil && len(p.Deny) > 0
}

// Check returns an *EgressDeniedError when the policy refuses addr. A nil policy allows every
// address.
func (p *EgressPolicy) Check(addr netip.Addr) error {
	if !p.active() {
		return nil
	}
	// A zone would make every prefix miss (netip ignores zoned addresses), and an IPv4 address
	// written as IPv6 must meet the IPv4 prefixes.
	addr = addr.WithZone("").Unmap()
	best, denied := -1, netip.Prefix{}
	for _, d := range p.Deny {
		if d.Contains(addr) && d.Bits() > best {
			best, denied = d.Bits(), d
		}
	}
	if best < 0 {
		return nil
	}
	for _, a := range p.Allow {
		if a.Contains(addr) && a.Bits() > best {
			return nil
		}
	}
	return &EgressDeniedError{Addr: addr, Rule: denied}
}

// control is a net.Dialer Control function: it runs after name resolution, on the address the
// socket is about to connect to.
func (p *EgressPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress policy: cannot read the address %q", address)
	}
	return p.Check(ap.Addr())
}

// dialer returns a net.Dialer that checks the policy on every connection it makes.
func (p *EgressPolicy) dialer() *net.Dialer {
	d := &net.Dialer{}
	if p.active() {
		d.Control = p.control
	}
	return d
}

// egressRefusal returns the policy's refusal inside err, if it is one.
func egressRefusal(err error) (*EgressDeniedError, bool) {
	var denied *EgressDeniedError
	ok := errors.As(err, &denied)
	return denied, ok
}
