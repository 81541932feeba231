package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const (
	// ipmiPollInterval spaces the chassis status reads while a soft shutdown runs.
	ipmiPollInterval = time.Second
	// ipmiCloseGrace bounds closing a session that never opened: the BMC may not answer at all.
	ipmiCloseGrace = 200 * time.Millisecond
)

// ipmiFallbackSuites are tried, in this order, after the configured cipher suite when a BMC
// refuses it. All of them authenticate, protect integrity and encrypt with AES.
var ipmiFallbackSuites = []types.CipherSuiteID{3, 17, 8, 12}

// ipmiInsecureFallbackSuites are tried after ipmiFallbackSuites only when the Machine sets
// allowInsecureCipherSuites: they protect integrity but do not encrypt. Suites without integrity
// (0, 1, 6, 15) are never tried unless configured explicitly.
var ipmiInsecureFallbackSuites = []types.CipherSuiteID{16, 2, 7, 11}

// ipmiSuiteWeakness says what a cipher suite lacks: "" for a suite that authenticates, protects
// integrity and encrypts with AES-CBC-128 (3, 8, 12, 17).
func ipmiSuiteWeakness(id types.CipherSuiteID) string {
	auth, integrity, crypt, _ := types.GetCipherSuiteAlgorithms(id)
	switch {
	case auth == types.AuthAlg_None:
		return "no authentication"
	case integrity == types.IntegrityAlg_None:
		return "no integrity protection and no encryption"
	case crypt == types.CryptAlg_None:
		return "no encryption"
	case crypt != types.CryptAlg_AES_CBC_128:
		return "only RC4 encryption, which is broken"
	}
	return ""
}

// IPMI powers machines on and off and reads their power state through a BMC over IPMI v2.0
// (RMCP+, "lanplus").
type IPMI struct {
	// Egress limits the addresses the driver sends to; nil allows every address.
	Egress *EgressPolicy
}

// Name implements Driver.
func (IPMI) Name() string { return DriverIPMI }

// Do powers the chassis on (ActionOn) or off (ActionOff). Power off is immediate ("chassis power
// off") unless gracefulShutdownTimeout is set; then the operating system is asked first
// ("chassis power soft") and the power is forced off only if it is still on when that runs out.
// A machine already in the requested state is left alone.
func (d IPMI) Do(ctx context.Context, req Request) (Outcome, error) {
	req, g := guard(DriverIPMI, req)
	out, err := d.do(ctx, req)
	return g.outcome(out), g.err(err)
}

func (d IPMI) do(ctx context.Context, req Request) (Outcome, error) {
	if req.Action != ActionOn && req.Action != ActionOff {
		return Outcome{}, Errorf(DriverIPMI, req.Action, ClassUnsupported, "Do handles on and off, not %q", req.Action)
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	s, err := d.open(ctx, req)
	if err != nil {
		return Outcome{}, err
	}
	defer s.close(ctx)

	on, err := s.powerIsOn(ctx)
	if err != nil {
		return Outcome{}, err
	}
	if req.Action == ActionOn {
		if on {
			return Outcome{Done: true, Detail: "chassis power is already on"}, nil
		}
		if err := s.control(ctx, chassis.ChassisControlPowerUp); err != nil {
			return Outcome{}, err
		}
		return Outcome{Done: true, Detail: fmt.Sprintf("chassis power on sent (cipher suite %d)", s.suite)}, nil
	}

	if !on {
		return Outcome{Done: true, Detail: "chassis power is already off"}, nil
	}
	if cfg := req.Slot.IPMI; cfg.GracefulShutdownTimeout != nil && cfg.GracefulShutdownTimeout.Duration > 0 {
		window := gracefulWindow(ctx, cfg.GracefulShutdownTimeout.Duration)
		if err := s.control(ctx, chassis.ChassisControlSoftShutdown); err != nil {
			return Outcome{}, err
		}
		off, err := s.waitOff(ctx, window)
		if err != nil {
			return Outcome{}, err
		}
		if off {
			return Outcome{Done: true, Detail: "the operating system shut down (chassis power soft)"}, nil
		}
	}
	if err := s.control(ctx, chassis.ChassisControlPowerDown); err != nil {
		return Outcome{}, err
	}
	return Outcome{Done: true, Detail: fmt.Sprintf("chassis power off sent (cipher suite %d)", s.suite)}, nil
}

// Status reads the chassis power state.
func (d IPMI) Status(ctx context.Context, req Request) (infrav1.PowerState, error) {
	req.Action = ActionStatus
	req, g := guard(DriverIPMI, req)
	r, err := d.read(ctx, req, false)
	return r.State, g.err(err)
}

// Read reads the chassis power state and, in the same session, the DCMI power reading: one
// command more than Status. A BMC without DCMI (it answers "invalid command"), one that says its
// power measurement is inactive, or one that does not answer the reading in time gives Watts nil.
func (d IPMI) Read(ctx context.Context, req Request) (Reading, error) {
	req.Action = ActionStatus
	req, g := guard(DriverIPMI, req)
	r, err := d.read(ctx, req, true)
	return r, g.err(err)
}

func (d IPMI) read(ctx context.Context, req Request, metered bool) (Reading, error) {
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	s, err := d.open(ctx, req)
	if err != nil {
		return Reading{State: infrav1.PowerUnknown}, err
	}
	defer s.close(ctx)
	on, err := s.powerIsOn(ctx)
	if err != nil {
		return Reading{State: infrav1.PowerUnknown}, err
	}
	r := Reading{State: infrav1.PoweredOff}
	if on {
		r.State = infrav1.PoweredOn
	}
	if metered {
		r.Watts = s.watts(ctx)
	}
	return r, nil
}

// ipmiSession is one authenticated RMCP+ session for one driver call.
type ipmiSession struct {
	c      *client.Client
	action Action
	bmc    string
	suite  types.CipherSuiteID
}

// open reads the credentials and opens a session, trying the configured cipher suite first and
// the fallback suites after it, but only while the BMC says it does not support a suite: a
// refused password ends the attempt at once, because BMCs lock accounts after a few failures.
// Suites that do not encrypt are used only when the Machine sets allowInsecureCipherSuites.
func (d IPMI) open(ctx context.Context, req Request) (*ipmiSession, error) {
	cfg := req.Slot.IPMI
	if cfg == nil {
		return nil, Errorf(DriverIPMI, req.Action, ClassConfig, "the slot has no ipmi configuration")
	}
	if cfg.Address == "" || cfg.CredentialsSecretRef == nil {
		return nil, Errorf(DriverIPMI, req.Action, ClassConfig, "ipmi needs address and credentialsSecretRef, set on the machine or in its Group's machineDefaults.bmc")
	}
	user, pass, err := credentials(ctx, DriverIPMI, req, cfg.CredentialsSecretRef.Name)
	if err != nil {
		return nil, err
	}
	port := int(cfg.Port)
	if port == 0 {
		port = int(infrav1.DefaultIPMIPort)
	}
	bmc := net.JoinHostPort(cfg.Address, strconv.Itoa(port))
	first := types.CipherSuiteID(infrav1.DefaultIPMICipherSuite)
	if cs := cfg.CipherSuite; cs != nil {
		if *cs < 0 || *cs > int32(types.CipherSuiteID19) {
			return nil, Errorf(DriverIPMI, req.Action, ClassConfig, "cipherSuite %d is not an RMCP+ cipher suite (0-19)", *cs)
		}
		first = types.CipherSuiteID(uint8(*cs)) //nolint:gosec // range checked above
	}
	if weakness := ipmiSuiteWeakness(first); weakness != "" && !cfg.AllowInsecureCipherSuites {
		return nil, Errorf(DriverIPMI, req.Action, ClassConfig,
			"cipherSuite %d has %s, so anyone on the BMC network can read or forge the session: use 3 or 17, or set allowInsecureCipherSuites to use it anyway", first, weakness)
	}
	fallback := ipmiFallbackSuites
	if cfg.AllowInsecureCipherSuites {
		fallback = append(slices.Clone(fallback), ipmiInsecureFallbackSuites...)
	}
	suites := []types.CipherSuiteID{first}
	for _, s := range fallback {
		if s != first {
			suites = append(suites, s)
		}
	}
	host := cfg.Address
	if d.Egress.active() {
		// go-ipmi resolves the name by itself: it is given the address that was checked instead.
		host, err = d.resolve(ctx, cfg.Address)
		if err != nil {
			return nil, attribute(ctx, DriverIPMI, req.Action, fmt.Errorf("BMC %s: %w", bmc, err))
		}
	}

	// Each exchange waits a fraction of the call's timeout, so that a lost datagram is resent and
	// a BMC that does not answer one suite leaves time for the next.
	exchange := min(max(req.Slot.Timeout/8, 500*time.Millisecond), 2*time.Second)
	var refused []string
	silent := false
	for _, suite := range suites {
		c, err := client.NewClient(host, port, user, pass)
		if err != nil {
			return nil, Errorf(DriverIPMI, req.Action, ClassConfig, "BMC %s: the username is longer than IPMI allows", bmc)
		}
		c.WithTimeout(exchange).WithRetry(2).WithCipherSuiteID(suite)
		err = c.Connect(ctx)
		if err == nil {
			return &ipmiSession{c: c, action: req.Action, bmc: bmc, suite: suite}, nil
		}
		closeCtx, cancel := context.WithTimeout(ctx, ipmiCloseGrace)
		_ = c.Close(closeCtx)
		cancel()

		class, reason := classifyIPMIConnect(ctx, err)
		switch class {
		case ipmiSuiteSilent:
			silent = true
			fallthrough
		case ipmiSuiteRefused:
			refused = append(refused, fmt.Sprintf("%d (%s)", suite, reason))
			continue
		}
		msg := fmt.Sprintf("BMC %s, cipher suite %d: %s", bmc, suite, reason)
		if len(refused) > 0 {
			msg += "; refused cipher suites: " + strings.Join(refused, ", ")
		}
		return nil, &Error{Driver: DriverIPMI, Action: req.Action, Class: class, Err: errors.New(msg)}
	}
	hint := ""
	if !cfg.AllowInsecureCipherSuites {
		hint = fmt.Sprintf("; suites without encryption (%s) were not tried: set allowInsecureCipherSuites to let the driver use them", suiteList(ipmiInsecureFallbackSuites))
	}
	if silent {
		// Some suites got no answer at all: that may be a BMC too busy to answer, not a refusal.
		return nil, Errorf(DriverIPMI, req.Action, ClassUnreachable, "BMC %s opened no session with any cipher suite tried: %s%s", bmc, strings.Join(refused, ", "), hint)
	}
	return nil, Errorf(DriverIPMI, req.Action, ClassUnsupported, "BMC %s refused every cipher suite tried: %s%s", bmc, strings.Join(refused, ", "), hint)
}

func suiteList(suites []types.CipherSuiteID) string {
	names := make([]string, len(suites))
	for i, s := range suites {
		names[i] = strconv.Itoa(int(s))
	}
	return strings.Join(names, ", ")
}

// resolve turns the BMC's address into an IP address the egress policy allows, so that go-ipmi
// sends to exactly the address that was checked.
func (d IPMI) resolve(ctx context.Context, address string) (string, error) {
	if ip, err := netip.ParseAddr(address); err == nil {
		return ip.String(), d.Egress.Check(ip)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", address)
	if err != nil {
		return "", fmt.Errorf("resolve the BMC address %s: %w", address, err)
	}
	var refusal error
	for _, ip := range ips {
		if refusal = d.Egress.Check(ip); refusal == nil {
			return ip.Unmap().String(), nil
		}
	}
	return "", refusal
}

// Internal classes of a failed session setup that send the driver on to the next cipher suite.
const (
	// ipmiSuiteRefused: the BMC answered that it does not support the suite.
	ipmiSuiteRefused Class = "suiteRefused"
	// ipmiSuiteSilent: the BMC answered the capabilities request but not the Open Session with
	// this suite, which is how some BMCs decline a suite.
	ipmiSuiteSilent Class = "suiteSilent"
)

// RMCP+ status codes (IPMI v2.0 §13.24) by what they mean for the caller.
var (
	ipmiSuiteRefusedCodes = []types.RmcpStatusCode{
		types.RmcpStatusCodeInvalidAuthAlg,
		types.RmcpStatusCodeInvalidIntegrityAlg,
		types.RmcpStatusCodeNoMatchingAuthPayload,
		types.RmcpStatusCodeNoMatchingIntegrityPayload,
		types.RmcpStatusCodeInvalidConfidentAlg,
		types.RmcpStatusCodeNoCipherSuiteMatch,
	}
	ipmiAuthRefusedCodes = []types.RmcpStatusCode{
		types.RmcpStatusCodeInvalidRole,
		types.RmcpStatusCodeUnauthorizedRoleOfPriLevel,
		types.RmcpStatusCodeUnauthorizedName,
		types.RmcpStatusCodeInvalidIntegrityCheckValue,
	}
)

// classifyIPMIConnect sorts a failed session setup. go-ipmi v0.9.1 flattens the per-suite errors
// of Connect into text, so the RMCP+ status codes and the RAKP mismatch are recognised by the
// messages that version prints; ipmi_test.go pins each case against a real BMC.
func classifyIPMIConnect(ctx context.Context, err error) (Class, string) {
	if ctx.Err() != nil {
		return ClassTimeout, "no session within the timeout"
	}
	text := err.Error()
	if errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(text, client.ErrRAKPAuthentication.Error()) {
		return ClassAuthFailed, "the BMC refused the username or password"
	}
	for _, code := range ipmiAuthRefusedCodes {
		if strings.Contains(text, code.String()) {
			return ClassAuthFailed, "the BMC refused the username or password (" + code.String() + ")"
		}
	}
	if strings.Contains(text, "Open Session failed") {
		for _, code := range ipmiSuiteRefusedCodes {
			if strings.Contains(text, code.String()) {
				return ipmiSuiteRefused, code.String()
			}
		}
		// ipmi_sim, like many BMCs, answers an unsupported suite with a bare status (two
		// bytes) that go-ipmi cannot unpack. An answer that is too short is still a refusal.
		if strings.Contains(text, types.ErrUnpackedDataTooShort.Error()) {
			return ipmiSuiteRefused, "refused by the BMC"
		}
		if strings.Contains(text, "i/o timeout") || strings.Contains(text, "no datagram matched") {
			return ipmiSuiteSilent, "no answer"
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(text, "connection refused") {
		return ClassUnreachable, "nothing answers IPMI there (connection refused)"
	}
	if strings.Contains(text, "Get Channel Authentication Capabilities failed") {
		return ClassUnreachable, "no IPMI answer"
	}
	if strings.Contains(text, "i/o timeout") || strings.Contains(text, "no datagram matched") {
		return ClassUnreachable, "the BMC stopped answering during session setup"
	}
	return classify(ctx, err), oneLine(text)
}

// oneLine flattens a multi-line library error for a message.
func oneLine(s string) string {
	return truncate(strings.Join(strings.Fields(s), " "), 300)
}

// close logs the session out while the call has time left. With the time gone, go-ipmi skips the
// logout at once (the session then expires on the BMC) and still closes the socket.
func (s *ipmiSession) close(ctx context.Context) {
	_ = s.c.Close(ctx)
}

func (s *ipmiSession) powerIsOn(ctx context.Context) (bool, error) {
	st, err := s.c.GetChassisStatus(ctx)
	if err != nil {
		return false, s.commandError(ctx, "get chassis status", err)
	}
	return st.PowerIsOn, nil
}

// watts sends DCMI "Get Power Reading" (DCMI v1.5 §6.6.1) and returns the current draw. It has
// half of the call's remaining time, so that a BMC that drops the command leaves time to close
// the session.
func (s *ipmiSession) watts(ctx context.Context) *float64 {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/2)
		defer cancel()
	}
	r, err := s.c.GetDCMIPowerReading(ctx)
	if err != nil || !r.PowerMeasurementActive {
		return nil
	}
	return usableWatts(float64(r.CurrentPower))
}

func (s *ipmiSession) control(ctx context.Context, c chassis.ChassisControl) error {
	if _, err := s.c.ChassisControl(ctx, c); err != nil {
		return s.commandError(ctx, "chassis control "+ipmiControlName(c), err)
	}
	return nil
}

// waitOff reads the chassis status until the power is off or window ends. A failed read while
// the machine shuts down is not an error yet: some BMCs are busy then.
func (s *ipmiSession) waitOff(ctx context.Context, window time.Duration) (bool, error) {
	waitCtx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	for {
		if err := sleepCtx(waitCtx, ipmiPollInterval); err != nil {
			if ctx.Err() != nil {
				return false, Errorf(DriverIPMI, s.action, ClassTimeout, "BMC %s: the machine was still shutting down when the timeout ran out", s.bmc)
			}
			return false, nil
		}
		on, err := s.powerIsOn(waitCtx)
		if err == nil && !on {
			return true, nil
		}
	}
}

func (s *ipmiSession) commandError(ctx context.Context, what string, err error) *Error {
	class := classify(ctx, err)
	var respErr *types.ResponseError
	switch {
	case class == ClassTimeout:
		return Errorf(DriverIPMI, s.action, ClassTimeout, "BMC %s: %s: no answer within the timeout", s.bmc, what)
	case errors.As(err, &respErr):
		if respErr.CompletionCode() == types.CodeInvalidCommand || respErr.CompletionCode() == types.CodeRequestDataFieldInvalid {
			class = ClassUnsupported
		} else {
			class = ClassBMCError
		}
		return Errorf(DriverIPMI, s.action, class, "BMC %s: %s: completion code %#02x", s.bmc, what, uint8(respErr.CompletionCode()))
	case strings.Contains(err.Error(), "i/o timeout") || strings.Contains(err.Error(), "no datagram matched"):
		return Errorf(DriverIPMI, s.action, ClassUnreachable, "BMC %s: %s: the BMC stopped answering", s.bmc, what)
	}
	return Errorf(DriverIPMI, s.action, ClassBMCError, "BMC %s: %s: %s", s.bmc, what, oneLine(err.Error()))
}

func ipmiControlName(c chassis.ChassisControl) string {
	switch c {
	case chassis.ChassisControlPowerUp:
		return "power on"
	case chassis.ChassisControlPowerDown:
		return "power off"
	case chassis.ChassisControlSoftShutdown:
		return "power soft"
	}
	return fmt.Sprintf("%d", c)
}
