package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/app"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/protocol"
	"github.com/bougou/go-ipmi/pkg/rmcpplus"
	"github.com/bougou/go-ipmi/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const secureOnError = "a SecureOn password must be 6 bytes written like a MAC address (aa:bb:cc:dd:ee:ff)"

// FuzzMagicPacket builds the packet for any MAC the driver accepts and parses it back with the
// independent parser of the tests: the MAC and the SecureOn password must come back unchanged.
// SecureOn passwords read from a Secret are six bytes, or an error that does not repeat them.
func FuzzMagicPacket(f *testing.F) {
	for _, s := range []struct{ mac, secureOn string }{
		{"52:54:00:12:34:56", ""},
		{"AA-BB-CC-DD-EE-FF", "01:02:03:04:05:06"},
		{"aabb.ccdd.eeff", "secret"},
		{"aa:bb:cc:dd:ee", "01-02-03-04-05-06\n"},
		{"00:00:5e:10:00:00:00:01", "0102030405"},
		{"aa:bb:cc-dd:ee:ff", "x"},
	} {
		f.Add(s.mac, []byte(s.secureOn))
	}
	f.Fuzz(func(t *testing.T, mac string, secret []byte) {
		password, err := parseSecureOn(secret)
		switch {
		case err != nil && err.Error() != secureOnError:
			// One fixed text for every bad value cannot carry any part of it.
			t.Fatalf("the SecureOn error depends on the secret: %v", err)
		case err == nil && len(password) != 6:
			t.Fatalf("SecureOn password of %d bytes accepted", len(password))
		}
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return // the driver refuses it with a ClassConfig error
		}
		got, gotPassword := parseMagicPacket(t, MagicPacket(hw, password))
		if !bytes.Equal(got, hw) || !bytes.Equal(gotPassword, password) {
			t.Fatalf("packet for %s / % x parsed back as %s / % x", hw, password, got, gotPassword)
		}
	})
}

// FuzzIPMIMessages feeds arbitrary bytes to every decoder a BMC's answer passes through in an
// IPMI call: the RMCP+ header, the session wrappers, the session setup answers (channel
// authentication capabilities, Open Session, RAKP 2 and 4), the IPMI message and the chassis
// status the driver reads. None may panic; a chassis status that decodes must encode back to
// bytes that decode to the same state.
func FuzzIPMIMessages(f *testing.F) {
	status := (&chassis.GetChassisStatusResponse{PowerIsOn: true, PowerRestorePolicy: chassis.PowerRestorePolicyAlwaysOn}).Pack()
	for _, s := range [][]byte{
		status,
		{0x01, 0x00, 0x00},
		{},
		{0x06, 0x00, 0xff, 0x07, 0x06, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
		protocol.BuildRMCPPlusPacket(0x11, 0, 0, 0, []byte{0x00, 0x00, 0x04, 0x00, 0x01, 0x02, 0x03, 0x04}),
		append([]byte{0x06, 0x00, 0xff, 0x07, 0x00}, make([]byte, 30)...),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _, _, _, _, _ = protocol.ParseRMCPPlusHeader(msg)
		_ = (&types.Session15{}).Unpack(msg)
		_ = (&types.Session20{}).Unpack(msg)
		_ = (&types.IPMIResponse{}).Unpack(msg)
		if r := (&app.GetChannelAuthenticationCapabilitiesResponse{}); r.Unpack(msg) == nil {
			_ = r.Format()
		}
		if r := (&rmcpplus.OpenSessionResponse{}); r.Unpack(msg) == nil {
			_ = r.Format()
		}
		if r := (&rmcpplus.RAKPMessage2{}); r.Unpack(msg) == nil {
			_ = r.Format()
		}
		if r := (&rmcpplus.RAKPMessage4{}); r.Unpack(msg) == nil {
			_ = r.Format()
		}
		st := &chassis.GetChassisStatusResponse{}
		if st.Unpack(msg) != nil {
			return
		}
		_ = st.Format()
		again := &chassis.GetChassisStatusResponse{}
		if err := again.Unpack(st.Pack()); err != nil || again.PowerIsOn != st.PowerIsOn {
			t.Fatalf("chassis status % x: power on %t, re-encoded: %t (%v)", msg, st.PowerIsOn, again.PowerIsOn, err)
		}
	})
}

// FuzzIPMIConnectErrors classifies arbitrary library error texts: the answer is always a class
// and a reason of one line, short enough for a Machine's status.
func FuzzIPMIConnectErrors(f *testing.F) {
	for _, s := range []string{
		"Get Channel Authentication Capabilities failed: read udp 127.0.0.1:1->127.0.0.1:623: i/o timeout",
		"Open Session failed: " + types.RmcpStatusCodeNoCipherSuiteMatch.String(),
		"Open Session failed: " + types.ErrUnpackedDataTooShort.Error(),
		"rakp2 failed: " + types.RmcpStatusCodeUnauthorizedName.String(),
		"read udp: connection refused",
		"something\nspanning\n\tlines",
		strings.Repeat("x", 1000),
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		class, reason := classifyIPMIConnect(context.Background(), errors.New(text))
		if class == "" {
			t.Fatalf("no class for %q", text)
		}
		if strings.ContainsAny(reason, "\n\r") || len(reason) > 400 {
			t.Fatalf("reason for %q is not one short line: %q", text, reason)
		}
	})
}

// redfishServer is a BMC without a session service whose Systems collection and system answer
// with the given bodies and status codes; the service root and every reset are accepted.
func redfishServer(t *testing.T, listCode int, list []byte, systemCode int, system []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch p := strings.TrimSuffix(r.URL.Path, "/"); {
		case p == "/redfish/v1":
			_, _ = fmt.Fprint(w, `{"@odata.id":"/redfish/v1/","Id":"RootService","Systems":{"@odata.id":"/redfish/v1/Systems"}}`)
		case p == "/redfish/v1/Systems":
			w.WriteHeader(listCode)
			_, _ = w.Write(list)
		case strings.HasSuffix(p, "Actions/ComputerSystem.Reset"):
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(systemCode)
			_, _ = w.Write(system)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// FuzzRedfishResponses serves arbitrary Systems collections and ComputerSystem resources (body
// and status code) to the driver's Status and power-on calls. Every answer must be a power
// state or a classified *Error that does not leak the password; nothing may panic.
func FuzzRedfishResponses(f *testing.F) {
	list := `{"@odata.id":"/redfish/v1/Systems","Members":[{"@odata.id":"/redfish/v1/Systems/1"}],"Members@odata.count":1}`
	sys := `{"@odata.id":"/redfish/v1/Systems/1","Id":"1","PowerState":"%s","Actions":{"#ComputerSystem.Reset":` +
		`{"target":"/redfish/v1/Systems/1/Actions/ComputerSystem.Reset","ResetType@Redfish.AllowableValues":["On","ForceOff"]}}}`
	for _, s := range []struct {
		listCode   uint16
		list       string
		systemCode uint16
		system     string
	}{
		{200, list, 200, fmt.Sprintf(sys, "On")},
		{200, list, 200, fmt.Sprintf(sys, "Off")},
		{200, list, 200, fmt.Sprintf(sys, "PoweringOn")},
		{200, list, 200, fmt.Sprintf(sys, "Standby")},
		{200, list, 200, `{"@odata.id":"/redfish/v1/Systems/1","Id":"1","PowerState":5}`},
		{200, list, 200, `{}`},
		{200, list, 200, `null`},
		{200, list, 500, `{"error":{"code":"Base.1.0.GeneralError","message":"calvin-Pa55-redfish"}}`},
		{200, list, 401, ``},
		{200, `{"Members":[]}`, 200, ``},
		{200, `{"Members":[{"@odata.id":"/redfish/v1/Systems/1"},{"@odata.id":"/redfish/v1/Systems/2"}]}`, 200, fmt.Sprintf(sys, "On")},
		{200, `{"Members":[{}]}`, 200, `{}`},
		{200, `{"Members":null}`, 200, `{}`},
		{200, `[`, 200, `{}`},
		{404, `<html>`, 200, `{}`},
	} {
		f.Add(s.listCode, []byte(s.list), s.systemCode, []byte(s.system))
	}
	f.Fuzz(func(t *testing.T, listCode uint16, list []byte, systemCode uint16, system []byte) {
		// net/http writes only codes 100-999, and answers below 200 are not final.
		code := func(c uint16) int { return 200 + int(c)%400 }
		srv := redfishServer(t, code(listCode), list, code(systemCode), system)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := request(ActionStatus, redfishSlot(srv.URL, 2*time.Second), redfishSecrets(redfishPassword))
		state, err := Redfish{}.Status(ctx, req)
		checkDriverAnswer(t, err, redfishPassword)
		if err == nil && state != infrav1.PoweredOn && state != infrav1.PoweredOff {
			t.Fatalf("Status answered %q without an error", state)
		}
		req.Action = ActionOn
		out, err := Redfish{}.Do(ctx, req)
		checkDriverAnswer(t, err, redfishPassword)
		if err == nil && (!out.Done || out.Detail == "") {
			t.Fatalf("power on succeeded without saying what it did: %+v", out)
		}
	})
}

// checkDriverAnswer fails unless err is nil or a classified *Error whose message holds none of
// the secrets.
func checkDriverAnswer(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Class == "" {
		t.Fatalf("unclassified error %T: %v", err, err)
	}
	noSecretIn(t, err.Error(), secrets...)
}
