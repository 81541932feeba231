package power

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
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
		slot := redfishSlot(srv.URL, 2*time.Second)
		slot.Redfish.AllowBasicAuth = true
		req := request(ActionStatus, slot, redfishSecrets(redfishPassword))
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

// scrubForms lists the forms of v the Scrubber must catch, computed here without its code.
func scrubForms(v string) []string {
	b := []byte(v)
	forms := []string{
		v,
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
		hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)),
		url.QueryEscape(v),
		url.PathEscape(v),
	}
	if j, err := json.Marshal(v); err == nil {
		forms = append(forms, string(j[1:len(j)-1]))
	}
	return forms
}

// holdsForm reports whether text holds form by the Scrubber's rule: anywhere when it is
// MinScrubLength or longer, else as a whole word.
func holdsForm(text, form string) bool {
	if form == "" {
		return false
	}
	if len(form) >= MinScrubLength {
		return strings.Contains(text, form)
	}
	word := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	for i := 0; ; i++ {
		j := strings.Index(text[i:], form)
		if j < 0 {
			return false
		}
		i += j
		if (i == 0 || !word(text[i-1])) && (i+len(form) == len(text) || !word(text[i+len(form)])) {
			return true
		}
	}
}

// FuzzScrub hands the Scrubber a password and username and a text that holds the password, and
// the "user:pass" pair, in every form it must catch, between arbitrary text: no form may
// remain, whatever the secret and its neighbours are.
func FuzzScrub(f *testing.F) {
	for _, s := range []struct{ secret, user, prefix, suffix string }{
		{redfishPassword, redfishUser, "error: ", " (end)"},
		{"on", "admin", "power on ", ""},
		{"dacted", "u", "[re", "]"},
		{"ted]zz", "", "", "zz"},
		{"p\x00ss\nword", "", "\x00", "\n"},
		{"é", "ü", "", ""},
		{" ", "root", "( ", ")"},
		{"", "root", "root:", ""},
		{"red", "x", "withheld", "[redacted]"},
	} {
		f.Add(s.secret, s.user, s.prefix, s.suffix)
	}
	f.Fuzz(func(t *testing.T, secret, user, prefix, suffix string) {
		s := &Scrubber{}
		s.AddBasicAuth(user, secret)
		forms := scrubForms(secret)
		if secret != "" {
			forms = append(forms, scrubForms(user+":"+secret)...)
		}
		for _, text := range []string{prefix + strings.Join(forms, prefix) + suffix, prefix + suffix, secret} {
			out := s.String(text)
			for _, form := range forms {
				if holdsForm(out, form) {
					t.Fatalf("secret %q, user %q: %q became %q, which holds %q", secret, user, text, out, form)
				}
			}
		}
	})
}

var hostKeyRefusal = regexp.MustCompile(`^line [0-9]+ (is not a public key in authorized_keys or known_hosts format|` +
	`is a @cert-authority line: host certificates are not supported, pin the machine's host key itself|` +
	`starts with a marker other than @revoked or @cert-authority)$`)

// FuzzSSHHostKeys parses arbitrary text as pinned host keys. A refusal is one of the fixed
// messages, which repeat nothing of the text but a line number; an accepted text pins at least
// one key that is in it and is not marked @revoked.
func FuzzSSHHostKeys(f *testing.F) {
	_, _, key := newSSHKey(f)
	_, _, other := newSSHKey(f)
	for _, s := range []string{
		key,
		"[10.0.0.5]:22 " + key + "\n",
		"|1|c2FsdA==|aGFzaA== " + key,
		key + "\n@revoked * " + key,
		other + "\n@revoked\t" + key,
		"@revoked " + key,
		"@cert-authority *.lan " + key,
		"@hunter2",
		"hunter2-Pa55word",
		"# comment\n\n  \n" + other,
		"\x00\xff",
		"ssh-ed25519 AAAA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		pinned, revoked, err := parseHostKeys([]byte(text))
		if err != nil {
			if msg := err.Error(); !hostKeyRefusal.MatchString(msg) && !errors.Is(err, errNoHostKey) && !errors.Is(err, errAllKeysRevoked) {
				t.Fatalf("refusal %q is not one of the fixed messages", msg)
			}
			return
		}
		if len(pinned) == 0 {
			t.Fatalf("%q accepted with no key pinned", text)
		}
		for _, k := range pinned {
			if containsKey(revoked, k) {
				t.Fatalf("%q pins a key it marks @revoked", text)
			}
			if !strings.Contains(text, base64.StdEncoding.EncodeToString(k.Marshal())) {
				t.Fatalf("%q pins a key that is not in it", text)
			}
		}
	})
}

// FuzzHTTPResponses serves arbitrary status codes and bodies to the HTTP driver's Status with an
// arbitrary poweredOnPattern. A success code gives the state the pattern says; any other code a
// classified error whose message is printable ASCII, short, and free of the token in any form.
func FuzzHTTPResponses(f *testing.F) {
	for _, s := range []struct {
		code          uint16
		body, pattern string
	}{
		{200, `{"ison": true}`, `"ison":\s*true`},
		{200, `{"ison": false}`, `"ison":\s*true`},
		{500, "error handling Bearer " + plugToken, "on"},
		{401, "", "on"},
		{102, "\x1b[2J" + base64.StdEncoding.EncodeToString([]byte(plugToken)), "on"},
		{303, strings.Repeat("é", 500) + hex.EncodeToString([]byte(plugToken)), "on"},
		{204, "", ".*"},
		{200, "x", "("},
		{200, "x", ""},
	} {
		f.Add(s.code, []byte(s.body), s.pattern)
	}
	f.Fuzz(func(t *testing.T, code uint16, body []byte, pattern string) {
		status := 200 + int(code)%400
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}))
		defer srv.Close()
		slot := httpSlot(srv.URL + "/relay/0")
		slot.HTTP.PoweredOnPattern = pattern
		state, err := HTTP{}.Status(context.Background(), request(ActionStatus, slot, httpSecrets()))
		re, compileErr := regexp.Compile(pattern)
		switch {
		case pattern == "":
			wantClass(t, err, ClassUnsupported)
			return
		case compileErr != nil:
			wantClass(t, err, ClassConfig)
			return
		}
		checkDriverAnswer(t, err, scrubForms(plugToken)...)
		if status < 300 {
			if status == http.StatusNoContent || status == http.StatusResetContent {
				body = nil
			}
			want := infrav1.PoweredOff
			if re.Match(body) {
				want = infrav1.PoweredOn
			}
			if err != nil || state != want {
				t.Fatalf("%d %q with pattern %q: %v, %v; want %v", status, body, pattern, state, err, want)
			}
			return
		}
		if err == nil {
			t.Fatalf("status %d read as %v", status, state)
		}
		msg := err.Error()
		if len(msg) > 400 {
			t.Fatalf("a message of %d bytes: %q", len(msg), msg)
		}
		for _, c := range []byte(msg) {
			if c < ' ' || c > '~' {
				t.Fatalf("byte %#x in %q", c, msg)
			}
		}
	})
}

// FuzzRedfishBodies serves large and deep JSON, made of an arbitrary piece repeated and nested,
// as a BMC's Systems collection and its system, to the collection parser and to the driver.
// Nothing may panic, every answer is a power state or a classified error, and the number of
// requests does not grow with what the BMC lists.
func FuzzRedfishBodies(f *testing.F) {
	for _, s := range []struct {
		piece         string
		repeat, depth uint16
	}{
		{`{"@odata.id":"/redfish/v1/Systems/1"},`, 20000, 0},
		{`{"@odata.id":"/redfish/v1/Systems/1"}`, 1, 0},
		{`[`, 1, 600},
		{`{"a":`, 3000, 100},
		{`"` + strings.Repeat("x", 4096) + `",`, 1000, 1},
		{`1e999,`, 100, 0},
		{``, 0, 0},
	} {
		f.Add([]byte(s.piece), s.repeat, s.depth)
	}
	f.Fuzz(fuzzRedfishBodiesOnce)
}

func fuzzRedfishBodiesOnce(t *testing.T, piece []byte, repeat, depth uint16) {
	{
		// At most 4 MiB, twice what the driver reads of one answer.
		n := min(int(repeat), (4<<20)/max(len(piece), 1))
		members := bytes.TrimSuffix(bytes.Repeat(piece, n), []byte(","))
		nest := int(depth) % 12000
		var list bytes.Buffer
		list.WriteString(strings.Repeat(`{"x":`, nest))
		list.WriteString(`{"Members":[`)
		list.Write(members)
		list.WriteString(`],"Members@odata.count":1}`)
		list.WriteString(strings.Repeat(`}`, nest))
		body := list.Bytes()

		if got, total, err := parseSystemsCollection(body); err == nil && total < len(got) {
			t.Fatalf("a collection of %d members counted %d", len(got), total)
		}

		var requests atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			w.Header().Set("Content-Type", "application/json")
			switch strings.TrimSuffix(r.URL.Path, "/") {
			case "/redfish/v1":
				_, _ = fmt.Fprint(w, `{"@odata.id":"/redfish/v1/","Systems":{"@odata.id":"/redfish/v1/Systems"}}`)
			case "/redfish/v1/Systems":
				_, _ = w.Write(body)
			default:
				_, _ = w.Write(append(append([]byte(`{"@odata.id":"/redfish/v1/Systems/1","Id":"1","PowerState":"On","Oem":`), body...), '}'))
			}
		}))
		defer srv.Close()
		slot := redfishSlot(srv.URL, 5*time.Second)
		slot.Redfish.AllowBasicAuth = true
		state, err := Redfish{}.Status(context.Background(), request(ActionStatus, slot, redfishSecrets(redfishPassword)))
		checkDriverAnswer(t, err, redfishPassword)
		if err == nil && state != infrav1.PoweredOn {
			t.Fatalf("Status answered %q without an error", state)
		}
		// The service root (twice: this BMC has no sessions, and gofish reads the root again for
		// basic auth), the collection, the system.
		if got := requests.Load(); got > 4 {
			t.Fatalf("the BMC got %d requests", got)
		}
	}
}
