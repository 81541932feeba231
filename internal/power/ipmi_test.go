package power

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/protocol"
	"github.com/bougou/go-ipmi/pkg/types"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
)

// ipmiSlot is a slot that reaches sim as its BMC, with the credentials in Secret "bmc".
func ipmiSlot(sim *testpeers.IPMISim, timeout time.Duration) Slot {
	return Slot{Timeout: timeout, IPMI: &infrav1.IPMIDriver{
		Address:              sim.Address,
		Port:                 int32(sim.Port),
		CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		CipherSuite:          ptr.To[int32](3),
	}}
}

// ipmiSecrets holds the credentials Secret "bmc".
func ipmiSecrets(username, password string) fakeSecrets {
	return fakeSecrets{"bmc": {"username": []byte(username), "password": []byte(password)}}
}

// somePassword is the password of the tests that reach no BMC: it must not leak either.
const somePassword = "ipmi-Pa55-word"

func TestIPMIPowerOnOffAndStatus(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	d := IPMI{}
	secrets := ipmiSecrets(sim.Username, sim.Password)
	ctx := context.Background()
	slot := ipmiSlot(sim, 10*time.Second)

	st, err := d.Status(ctx, request(ActionStatus, slot, secrets))
	if err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status of a fresh simulator: %v, %v; want off", st, err)
	}

	out, err := d.Do(ctx, request(ActionOn, slot, secrets))
	if err != nil || !out.Done {
		t.Fatalf("power on: %+v, %v", out, err)
	}
	if got := sim.Power(t); got != infrav1.PoweredOn {
		t.Fatalf("ipmitool sees %s after power on", got)
	}
	if st, err := d.Status(ctx, request(ActionStatus, slot, secrets)); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("status after power on: %v, %v", st, err)
	}

	// Powering on a machine that is on sends nothing: some BMCs answer that with an error.
	before := strings.Count(sim.ChassisLog(t), "set power")
	out, err = d.Do(ctx, request(ActionOn, slot, secrets))
	if err != nil || !out.Done || !strings.Contains(out.Detail, "already on") {
		t.Fatalf("second power on: %+v, %v", out, err)
	}
	if after := strings.Count(sim.ChassisLog(t), "set power"); after != before {
		t.Fatalf("a second power on sent another chassis control")
	}

	out, err = d.Do(ctx, request(ActionOff, slot, secrets))
	if err != nil || !out.Done {
		t.Fatalf("power off: %+v, %v", out, err)
	}
	if got := sim.Power(t); got != infrav1.PoweredOff {
		t.Fatalf("ipmitool sees %s after power off", got)
	}
	if !strings.Contains(sim.ChassisLog(t), "set power 0") {
		t.Fatalf("power off without gracefulShutdownTimeout must be a hard power off; chassis log:\n%s", sim.ChassisLog(t))
	}
	if st, err := d.Status(ctx, request(ActionStatus, slot, secrets)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status after power off: %v, %v", st, err)
	}
}

func TestIPMIGracefulShutdown(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	d := IPMI{}
	secrets := ipmiSecrets(sim.Username, sim.Password)
	ctx := context.Background()

	t.Run("operating system shuts down", func(t *testing.T) {
		sim.SetPower(t, true)
		sim.HonorSoftShutdown(t, true)
		defer sim.HonorSoftShutdown(t, false)
		sim.ResetChassisLog(t)
		slot := ipmiSlot(sim, 20*time.Second)
		slot.IPMI.GracefulShutdownTimeout = duration(10 * time.Second)

		out, err := d.Do(ctx, request(ActionOff, slot, secrets))
		if err != nil || !out.Done || !strings.Contains(out.Detail, "soft") {
			t.Fatalf("graceful power off: %+v, %v", out, err)
		}
		log := sim.ChassisLog(t)
		if !strings.Contains(log, "set shutdown 1") || strings.Contains(log, "set power 0") {
			t.Fatalf("want a soft shutdown and no forced power off; chassis log:\n%s", log)
		}
		if got := sim.Power(t); got != infrav1.PoweredOff {
			t.Fatalf("ipmitool sees %s", got)
		}
	})

	t.Run("operating system ignores it", func(t *testing.T) {
		sim.SetPower(t, true)
		sim.ResetChassisLog(t)
		slot := ipmiSlot(sim, 20*time.Second)
		slot.IPMI.GracefulShutdownTimeout = duration(1500 * time.Millisecond)

		start := time.Now()
		out, err := d.Do(ctx, request(ActionOff, slot, secrets))
		if err != nil || !out.Done {
			t.Fatalf("power off: %+v, %v", out, err)
		}
		if took := time.Since(start); took < 1500*time.Millisecond {
			t.Fatalf("forced the power off after %s, before the graceful window ended", took)
		}
		log := sim.ChassisLog(t)
		if !strings.Contains(log, "set shutdown 1") || !strings.Contains(log, "set power 0") {
			t.Fatalf("want a soft shutdown, then a forced power off; chassis log:\n%s", log)
		}
		if got := sim.Power(t); got != infrav1.PoweredOff {
			t.Fatalf("ipmitool sees %s", got)
		}
	})
}

func TestIPMICipherSuiteFallback(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	// ipmi_sim refuses suite 17 ("invalid authentication algorithm"); the driver goes on to 3.
	slot := ipmiSlot(sim, 10*time.Second)
	slot.IPMI.CipherSuite = ptr.To[int32](17)
	start := time.Now()
	st, err := IPMI{}.Status(context.Background(), request(ActionStatus, slot, ipmiSecrets(sim.Username, sim.Password)))
	if err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status with suite 17 configured: %v, %v", st, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("falling back from a refused suite took %s; a refusal is an answer, not a timeout", took)
	}
}

func TestIPMIWrongPasswordIsAuthFailed(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	const wrong = "not-the-Pa55word"
	start := time.Now()
	_, err := IPMI{}.Do(context.Background(), request(ActionOn, ipmiSlot(sim, 10*time.Second), ipmiSecrets(sim.Username, wrong)))
	wantClass(t, err, ClassAuthFailed, wrong, sim.Password)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a refused password took %s to report", took)
	}
	if got := sim.Power(t); got != infrav1.PoweredOff {
		t.Fatalf("the machine is %s after a refused power on", got)
	}
	if _, err := (IPMI{}).Status(context.Background(), request(ActionStatus, ipmiSlot(sim, 10*time.Second), ipmiSecrets(sim.Username, wrong))); err == nil {
		t.Fatal("status with a wrong password succeeded")
	} else {
		wantClass(t, err, ClassAuthFailed, wrong)
	}
}

func TestIPMINothingListening(t *testing.T) {
	t.Parallel()
	t.Run("closed port", func(t *testing.T) {
		slot := Slot{Timeout: 3 * time.Second, IPMI: &infrav1.IPMIDriver{
			Address: "127.0.0.1", Port: int32(freeUDPPort(t)), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		}}
		start := time.Now()
		_, err := IPMI{}.Do(context.Background(), request(ActionOn, slot, ipmiSecrets("admin", somePassword)))
		msg := wantClassIn(t, err, []Class{ClassUnreachable, ClassTimeout}, somePassword)
		if took := time.Since(start); took > slot.Timeout+500*time.Millisecond {
			t.Fatalf("took %s, past the %s timeout (%v)", took, slot.Timeout, msg)
		}
	})

	t.Run("silent BMC", func(t *testing.T) {
		// A socket that takes the datagrams and never answers, like a BMC that hangs.
		silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = silent.Close() }()
		slot := Slot{Timeout: 2 * time.Second, IPMI: &infrav1.IPMIDriver{
			Address: "127.0.0.1", Port: int32(silent.LocalAddr().(*net.UDPAddr).Port), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		}}
		start := time.Now()
		_, err = IPMI{}.Status(context.Background(), request(ActionStatus, slot, ipmiSecrets("admin", somePassword)))
		wantClassIn(t, err, []Class{ClassUnreachable, ClassTimeout}, somePassword)
		if took := time.Since(start); took > slot.Timeout+500*time.Millisecond {
			t.Fatalf("a silent BMC held the call for %s, past the %s timeout", took, slot.Timeout)
		}
	})
}

func TestIPMIMissingCredentialsIsConfigError(t *testing.T) {
	t.Parallel()
	slot := Slot{Timeout: time.Second, IPMI: &infrav1.IPMIDriver{Address: "127.0.0.1", Port: int32(freeUDPPort(t)), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}}}
	_, err := IPMI{}.Do(context.Background(), request(ActionOn, slot, fakeSecrets{}))
	wantClass(t, err, ClassConfig)
	_, err = IPMI{}.Do(context.Background(), request(ActionOn, slot, fakeSecrets{"bmc": {"username": []byte("admin")}}))
	wantClass(t, err, ClassConfig)
}

// wantClassIn is wantClass for a result that may fairly be any of several classes.
func wantClassIn(t *testing.T, err error, classes []Class, secrets ...string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error of class %v, got none", classes)
	}
	got := ClassOf(err)
	for _, c := range classes {
		if got == c {
			return wantClass(t, err, c, secrets...)
		}
	}
	t.Fatalf("want class %v, got %s: %v", classes, got, err)
	return ""
}

// suiteRefusingRelay stands between the driver and ipmi_sim like a BMC with some cipher suites
// turned off: it answers every RMCP+ Open Session Request whose confidentiality algorithm
// refuses says so with status "no cipher suite match" (IPMI v2.0 §13.18), and relays every
// other datagram both ways.
type suiteRefusingRelay struct {
	conn     *net.UDPConn
	upstream *net.UDPAddr
	refuses  func(types.CryptAlg) bool
	mu       sync.Mutex
	peers    map[string]*net.UDPConn
	// proposed lists the confidentiality algorithm of every Open Session Request.
	proposed []byte
}

func startSuiteRefusingRelay(t *testing.T, sim *testpeers.IPMISim, refuses func(types.CryptAlg) bool) *suiteRefusingRelay {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &suiteRefusingRelay{
		conn: conn, upstream: &net.UDPAddr{IP: net.ParseIP(sim.Address), Port: sim.Port},
		refuses: refuses, peers: map[string]*net.UDPConn{},
	}
	t.Cleanup(func() {
		_ = conn.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.peers {
			_ = p.Close()
		}
	})
	go r.serve()
	return r
}

// Offsets in an RMCP+ datagram: the RMCP header (4 bytes), the session header (auth type,
// payload type, session ID, sequence, length: 12 bytes), then the payload.
const (
	rmcpPayloadType = 5
	rmcpPayload     = 16
	// In an Open Session Request payload: the message tag, the remote console session ID, and
	// the algorithm of the confidentiality payload record.
	openSessionTag       = 0
	openSessionConsoleID = 4
	openSessionCryptAlg  = 28
)

func (r *suiteRefusingRelay) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		pkt := slices.Clone(buf[:n])
		if len(pkt) >= rmcpPayload+32 && pkt[4] == 0x06 && pkt[rmcpPayloadType]&0x3f == 0x10 {
			payload := pkt[rmcpPayload:]
			alg := payload[openSessionCryptAlg] & 0x3f
			r.mu.Lock()
			r.proposed = append(r.proposed, alg)
			r.mu.Unlock()
			if r.refuses(types.CryptAlg(alg)) {
				refusal := []byte{payload[openSessionTag], byte(types.RmcpStatusCodeNoCipherSuiteMatch), 0, 0}
				refusal = append(refusal, payload[openSessionConsoleID:openSessionConsoleID+4]...)
				_, _ = r.conn.WriteToUDP(protocol.BuildRMCPPlusPacket(0x11, 0, 0, 0, refusal), from)
				continue
			}
		}
		up, err := r.peer(from)
		if err != nil {
			return
		}
		_, _ = up.Write(pkt)
	}
}

// peer returns the socket that relays from's datagrams to the simulator, and its answers back.
func (r *suiteRefusingRelay) peer(from *net.UDPAddr) (*net.UDPConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.peers[from.String()]; ok {
		return p, nil
	}
	p, err := net.DialUDP("udp4", nil, r.upstream)
	if err != nil {
		return nil, err
	}
	r.peers[from.String()] = p
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := p.Read(buf)
			if err != nil {
				return
			}
			_, _ = r.conn.WriteToUDP(buf[:n], from)
		}
	}()
	return p, nil
}

func (r *suiteRefusingRelay) proposals() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.proposed)
}

// silentBMC is a UDP socket where a BMC would be. After a call that must not have sent
// anything, nothingSent sends a probe of the test's own: the first datagram the socket got must
// be that probe.
func silentBMC(t *testing.T) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func nothingSent(t *testing.T, conn *net.UDPConn) {
	t.Helper()
	probe, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = probe.Close() }()
	if _, err := probe.Write([]byte("probe")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from.String() != probe.LocalAddr().String() || string(buf[:n]) != "probe" {
		t.Fatalf("the first datagram came from %s (% x), not from the test's probe: the driver sent something", from, buf[:n])
	}
}

func TestIPMIInsecureCipherSuites(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	secrets := ipmiSecrets(sim.Username, sim.Password)
	ctx := context.Background()

	t.Run("configured suite without encryption", func(t *testing.T) {
		bmc := silentBMC(t)
		for _, suite := range []int32{0, 1, 2, 6, 7, 11, 15, 16, 4, 19} {
			slot := Slot{Timeout: 2 * time.Second, IPMI: &infrav1.IPMIDriver{
				Address: "127.0.0.1", Port: int32(bmc.LocalAddr().(*net.UDPAddr).Port),
				CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}, CipherSuite: ptr.To(suite),
			}}
			_, err := IPMI{}.Status(ctx, request(ActionStatus, slot, secrets))
			msg := wantClass(t, err, ClassConfig, sim.Password)
			if !strings.Contains(msg, fmt.Sprintf("cipherSuite %d has ", suite)) || !strings.Contains(msg, "set allowInsecureCipherSuites") {
				t.Fatalf("want the suite and the field named: %v", msg)
			}
		}
		nothingSent(t, bmc)
	})

	// go-ipmi v0.9.1 holds no session with ipmi_sim on a suite without encryption (ipmi_sim
	// drops or, on suite 2, crashes on its first authenticated command), so a relay refuses
	// every suite: what is asserted is which suites the driver proposes.
	refuseAll := func(types.CryptAlg) bool { return true }
	unencrypted := func(algs []byte) int {
		n := 0
		for _, a := range algs {
			if types.CryptAlg(a) != types.CryptAlg_AES_CBC_128 {
				n++
			}
		}
		return n
	}

	t.Run("configured suite without encryption, allowed", func(t *testing.T) {
		relay := startSuiteRefusingRelay(t, sim, refuseAll)
		slot := ipmiSlot(sim, 10*time.Second)
		slot.IPMI.Port = int32(relay.conn.LocalAddr().(*net.UDPAddr).Port)
		slot.IPMI.CipherSuite = ptr.To[int32](2)
		slot.IPMI.AllowInsecureCipherSuites = true
		_, err := IPMI{}.Status(ctx, request(ActionStatus, slot, secrets))
		msg := wantClass(t, err, ClassUnsupported, sim.Password)
		if !strings.Contains(msg, "refused every cipher suite tried: 2 (") || strings.Contains(msg, "set allowInsecureCipherSuites") {
			t.Fatalf("want suite 2 tried first and no advice to set the field that is set: %v", msg)
		}
		if got := relay.proposals(); len(got) == 0 || types.CryptAlg(got[0]) != types.CryptAlg_None {
			t.Fatalf("confidentiality algorithms proposed: %v; want suite 2 (none) first", got)
		}
	})

	t.Run("BMC without AES", func(t *testing.T) {
		relay := startSuiteRefusingRelay(t, sim, func(a types.CryptAlg) bool { return a == types.CryptAlg_AES_CBC_128 })
		slot := ipmiSlot(sim, 10*time.Second)
		slot.IPMI.Port = int32(relay.conn.LocalAddr().(*net.UDPAddr).Port)
		_, err := IPMI{}.Status(ctx, request(ActionStatus, slot, secrets))
		msg := wantClass(t, err, ClassUnsupported, sim.Password)
		if !strings.Contains(msg, "refused every cipher suite tried: 3 (") || !strings.Contains(msg, "set allowInsecureCipherSuites") {
			t.Fatalf("want the refused suites and the field named: %v", msg)
		}
		if got := relay.proposals(); len(got) != len(ipmiFallbackSuites) || unencrypted(got) != 0 {
			t.Fatalf("confidentiality algorithms proposed: %v; want AES (1) for each of %v and nothing else", got, ipmiFallbackSuites)
		}
	})

	t.Run("BMC without AES, insecure suites allowed", func(t *testing.T) {
		relay := startSuiteRefusingRelay(t, sim, refuseAll)
		slot := ipmiSlot(sim, 10*time.Second)
		slot.IPMI.Port = int32(relay.conn.LocalAddr().(*net.UDPAddr).Port)
		slot.IPMI.AllowInsecureCipherSuites = true
		_, err := IPMI{}.Status(ctx, request(ActionStatus, slot, secrets))
		msg := wantClass(t, err, ClassUnsupported, sim.Password)
		if !strings.Contains(msg, "11 (") {
			t.Fatalf("want the suites without encryption tried last: %v", msg)
		}
		if got := relay.proposals(); unencrypted(got) != len(ipmiInsecureFallbackSuites) || unencrypted(got[:len(ipmiFallbackSuites)]) != 0 {
			t.Fatalf("confidentiality algorithms proposed: %v; want the AES suites first, then %v", got, ipmiInsecureFallbackSuites)
		}
	})
}

func TestIPMIEgressPolicy(t *testing.T) {
	t.Parallel()
	bmc := silentBMC(t)
	policy := DefaultEgressPolicy()
	for _, address := range []string{"127.0.0.1", "localhost"} {
		slot := Slot{Timeout: 2 * time.Second, IPMI: &infrav1.IPMIDriver{
			Address: address, Port: int32(bmc.LocalAddr().(*net.UDPAddr).Port), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		}}
		_, err := IPMI{Egress: &policy}.Status(context.Background(), request(ActionStatus, slot, ipmiSecrets("admin", somePassword)))
		msg := wantClass(t, err, ClassConfig, somePassword)
		if !strings.Contains(msg, "refused by the manager's egress policy") {
			t.Fatalf("want the egress policy named: %v", msg)
		}
	}
	nothingSent(t, bmc)
}
