package power

import (
	"context"
	"flag"
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestEgressPolicyDecides(t *testing.T) {
	t.Parallel()
	policy, err := ParseEgressPolicy(" default , deny=10.0.0.0/8, allow=10.1.0.0/16, deny=10.1.2.3, allow=fe80::1/128,deny=192.168.7.0/24,allow=192.168.7.0/24")
	if err != nil {
		t.Fatal(err)
	}
	for addr, allowed := range map[string]bool{
		"169.254.169.254":        false,
		"169.254.1.1":            false,
		"127.0.0.1":              false,
		"127.255.255.254":        false,
		"0.0.0.0":                false,
		"::1":                    false,
		"::":                     false,
		"fe80::2":                false,
		"fe80::2%eth0":           false,
		"::ffff:169.254.169.254": false,
		"::ffff:127.0.0.1":       false,
		"fe80::1":                true, // the longer allow wins
		"10.9.9.9":               false,
		"10.1.9.9":               true,
		"10.1.2.3":               false,
		"192.168.7.1":            false, // deny wins a tie
		"192.168.1.20":           true,
		"2001:db8::1":            true,
		"8.8.8.8":                true,
	} {
		err := policy.Check(netip.MustParseAddr(addr))
		if (err == nil) != allowed {
			t.Errorf("%s: allowed %t, want %t (%v)", addr, err == nil, allowed, err)
		}
	}

	var zero EgressPolicy
	var none *EgressPolicy
	for _, addr := range []string{"169.254.169.254", "127.0.0.1", "::1"} {
		if zero.Check(netip.MustParseAddr(addr)) != nil || none.Check(netip.MustParseAddr(addr)) != nil {
			t.Errorf("the zero and the nil policy refuse %s", addr)
		}
	}
}

func TestEgressPolicyParsing(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"deny", "deny=", "block=10.0.0.0/8", "deny=10.0.0.0/33", "allow=example.com", "deny=fe80::1%eth0", "defaults"} {
		if _, err := ParseEgressPolicy(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		} else if !strings.Contains(err.Error(), "egress policy item") {
			t.Errorf("%q: the error does not name the item: %v", bad, err)
		}
	}
	p, err := ParseEgressPolicy("deny=10.1.2.3/8,allow=2001:db8::1")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "deny=10.0.0.0/8,allow=2001:db8::1/128" {
		t.Errorf("String() = %q", got)
	}

	// As a flag, it may repeat; every use adds to the policy.
	var flagged EgressPolicy
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&flagged, "driver-egress", "")
	if err := fs.Parse([]string{"--driver-egress=default", "--driver-egress=allow=127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if flagged.Check(netip.MustParseAddr("127.0.0.1")) != nil || flagged.Check(netip.MustParseAddr("127.0.0.2")) == nil {
		t.Errorf("policy from flags: %s", flagged.String())
	}
	if err := fs.Parse([]string{"--driver-egress=deny=nope"}); err == nil {
		t.Error("a bad flag value was accepted")
	}
	if !strings.Contains(DefaultEgressPolicy().String(), "deny=169.254.0.0/16") {
		t.Errorf("the default policy lets the metadata service through: %s", DefaultEgressPolicy().String())
	}
}

func TestRedfishEgressPolicy(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(system("1", "On"))
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	policy := DefaultEgressPolicy()
	localhost := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, endpoint := range []string{srv.URL, localhost} {
		_, err := Redfish{Egress: &policy}.Status(context.Background(), request(ActionStatus, redfishSlot(endpoint, 5*time.Second), redfishSecrets(redfishPassword)))
		msg := wantClass(t, err, ClassConfig, redfishPassword)
		if !strings.Contains(msg, "log in: ") || !strings.Contains(msg, "is refused by the manager's egress policy (deny=") {
			t.Fatalf("want the egress policy named: %v", msg)
		}
	}
	if requests, _ := bmc.seen(); len(requests) != 0 {
		t.Fatalf("the BMC got %v through a policy that denies it", requests)
	}

	// The drivers Builtin hands out carry the policy of BuiltinWith.
	registry := NewRegistry(BuiltinWith(Options{Egress: &policy})...)
	_, err := registry[DriverRedfish].Status(context.Background(), request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
	wantClass(t, err, ClassConfig, redfishPassword)
	if _, err := NewRegistry(Builtin()...)[DriverRedfish].Status(context.Background(), request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword))); err != nil {
		t.Fatalf("Builtin's drivers allow every address: %v", err)
	}
}
