package power

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const plugToken = "plug-T0ken-0123456789"

// smartPlug follows the API of a Shelly-style relay: GET /relay/0?turn=on|off switches it,
// GET /relay/0 reports {"ison": true|false}. It wants a bearer token, and records the requests.
type smartPlug struct {
	mu       sync.Mutex
	on       bool
	requests []recordedRequest
}

type recordedRequest struct {
	method, path, query, contentType, body string
	header                                 http.Header
}

func (p *smartPlug) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, recordedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(body), r.Header.Clone()})
	if r.Header.Get("Authorization") != "Bearer "+plugToken {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == "/relay/0" && r.URL.Query().Get("turn") == "on":
		p.on = true
	case r.URL.Path == "/relay/0" && r.URL.Query().Get("turn") == "off":
		p.on = false
	case r.URL.Path == "/relay/0":
	case r.URL.Path == "/api/services/switch/turn_on" && r.Method == http.MethodPost:
		var call struct {
			EntityID string `json:"entity_id"`
		}
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &call) != nil || call.EntityID == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		p.on = true
	case r.URL.Path == "/moved":
		http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"ison": %t, "has_timer": false}`, p.on)
}

func (p *smartPlug) isOn() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.on
}

func (p *smartPlug) last() recordedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[len(p.requests)-1]
}

func httpSecrets() fakeSecrets {
	return fakeSecrets{
		"plug-token": {"Authorization": []byte("Bearer " + plugToken + "\n"), "X-Client": []byte("homelab-autoscaler")},
		"ha-body":    {"body": []byte(`{"entity_id": "switch.worker_1"}`)},
	}
}

func httpSlot(url string) Slot {
	return Slot{Timeout: 5 * time.Second, HTTP: &infrav1.HTTPDriver{
		URL: url, Method: http.MethodGet, HeadersSecretRef: &infrav1.SecretReference{Name: "plug-token"},
	}}
}

func TestHTTPSmartPlugOnOffStatus(t *testing.T) {
	t.Parallel()
	plug := &smartPlug{}
	srv := httptest.NewServer(plug)
	defer srv.Close()
	ctx := context.Background()
	d := HTTP{}
	status := httpSlot(srv.URL + "/relay/0")
	status.HTTP.PoweredOnPattern = `"ison":\s*true`

	if st, err := d.Status(ctx, request(ActionStatus, status, httpSecrets())); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status: %v, %v", st, err)
	}
	out, err := d.Do(ctx, request(ActionOn, httpSlot(srv.URL+"/relay/0?turn=on"), httpSecrets()))
	if err != nil || !out.Done || !plug.isOn() {
		t.Fatalf("on: %+v, %v, plug on: %v", out, err, plug.isOn())
	}
	got := plug.last()
	if got.header.Get("Authorization") != "Bearer "+plugToken || got.header.Get("X-Client") != "homelab-autoscaler" {
		t.Fatalf("every key of the headers Secret must become a header; got %v", got.header)
	}
	if got.method != http.MethodGet || got.query != "turn=on" {
		t.Fatalf("request %s ?%s", got.method, got.query)
	}
	if st, err := d.Status(ctx, request(ActionStatus, status, httpSecrets())); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("status after on: %v, %v", st, err)
	}
	if _, err := d.Do(ctx, request(ActionOff, httpSlot(srv.URL+"/relay/0?turn=off"), httpSecrets())); err != nil || plug.isOn() {
		t.Fatalf("off: %v, plug on: %v", err, plug.isOn())
	}
}

func TestHTTPBodyFromSecretAndDefaultMethod(t *testing.T) {
	t.Parallel()
	plug := &smartPlug{}
	srv := httptest.NewServer(plug)
	defer srv.Close()
	slot := httpSlot(srv.URL + "/api/services/switch/turn_on")
	slot.HTTP.Method = ""
	slot.HTTP.BodySecretRef = &infrav1.SecretKeyReference{Name: "ha-body", Key: "body"}
	if _, err := (HTTP{}).Do(context.Background(), request(ActionOn, slot, httpSecrets())); err != nil {
		t.Fatal(err)
	}
	got := plug.last()
	if got.method != http.MethodPost || got.contentType != "application/json" || !strings.Contains(got.body, "switch.worker_1") || !plug.isOn() {
		t.Fatalf("want a JSON POST with the Secret's body; got %+v", got)
	}

	slot.HTTP.Body = `{"entity_id": "switch.other"}`
	_, err := HTTP{}.Do(context.Background(), request(ActionOn, slot, httpSecrets()))
	wantClass(t, err, ClassConfig, plugToken)
}

func TestHTTPFailuresAreClassified(t *testing.T) {
	t.Parallel()
	plug := &smartPlug{}
	srv := httptest.NewServer(plug)
	defer srv.Close()
	ctx := context.Background()

	t.Run("wrong token", func(t *testing.T) {
		secrets := fakeSecrets{"plug-token": {"Authorization": []byte("Bearer wrong-T0ken-secret")}}
		_, err := HTTP{}.Do(ctx, request(ActionOn, httpSlot(srv.URL+"/relay/0?turn=on"), secrets))
		wantClass(t, err, ClassAuthFailed, "wrong-T0ken-secret")
	})

	t.Run("missing headers Secret", func(t *testing.T) {
		_, err := HTTP{}.Do(ctx, request(ActionOn, httpSlot(srv.URL+"/relay/0?turn=on"), fakeSecrets{}))
		wantClass(t, err, ClassConfig)
	})

	t.Run("server error that echoes the request", func(t *testing.T) {
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = fmt.Fprintf(w, "internal error handling request with Authorization=%s token=%s",
				r.Header.Get("Authorization"), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		}))
		defer echo.Close()
		_, err := HTTP{}.Do(ctx, request(ActionOff, httpSlot(echo.URL+"/x?apikey=query-secret-123"), httpSecrets()))
		msg := wantClass(t, err, ClassBMCError, plugToken, "query-secret-123")
		if !strings.Contains(msg, "500") || !strings.Contains(msg, "internal error") {
			t.Fatalf("the message should say what the server answered: %v", msg)
		}
	})

	t.Run("success codes", func(t *testing.T) {
		slot := httpSlot(srv.URL + "/relay/0?turn=on")
		slot.HTTP.SuccessCodes = []int32{202}
		_, err := HTTP{}.Do(ctx, request(ActionOn, slot, httpSecrets()))
		wantClass(t, err, ClassBMCError, plugToken)
		slot.HTTP.SuccessCodes = []int32{200, 202}
		if _, err := (HTTP{}).Do(ctx, request(ActionOn, slot, httpSecrets())); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("redirect is not followed", func(t *testing.T) {
		_, err := HTTP{}.Do(ctx, request(ActionOn, httpSlot(srv.URL+"/moved"), httpSecrets()))
		msg := wantClass(t, err, ClassBMCError, plugToken)
		if !strings.Contains(msg, "not followed") {
			t.Fatalf("want the redirect named: %v", msg)
		}
	})

	t.Run("status without pattern", func(t *testing.T) {
		_, err := HTTP{}.Status(ctx, request(ActionStatus, httpSlot(srv.URL+"/relay/0"), httpSecrets()))
		wantClass(t, err, ClassUnsupported)
	})

	t.Run("closed port", func(t *testing.T) {
		_, err := HTTP{}.Do(ctx, request(ActionOn, httpSlot(fmt.Sprintf("http://127.0.0.1:%d/relay/0?turn=on", freeTCPPort(t))), httpSecrets()))
		wantClass(t, err, ClassUnreachable, plugToken)
	})

	t.Run("hang", func(t *testing.T) {
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer hang.Close()
		defer close(release)
		slot := httpSlot(hang.URL + "/relay/0?turn=on")
		slot.Timeout = 700 * time.Millisecond
		start := time.Now()
		_, err := HTTP{}.Do(ctx, request(ActionOn, slot, httpSecrets()))
		wantClass(t, err, ClassTimeout, plugToken)
		if took := time.Since(start); took > slot.Timeout+300*time.Millisecond {
			t.Fatalf("a hanging server held the call for %s, past the %s timeout", took, slot.Timeout)
		}
	})
}

func TestHTTPTLS(t *testing.T) {
	t.Parallel()
	plug := &smartPlug{}
	srv := httptest.NewTLSServer(plug)
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	ctx := context.Background()

	t.Run("unknown CA fails verification", func(t *testing.T) {
		_, err := HTTP{}.Do(ctx, request(ActionOn, httpSlot(srv.URL+"/relay/0?turn=on"), httpSecrets()))
		wantClass(t, err, ClassConfig, plugToken)
		if plug.isOn() {
			t.Fatal("the request reached a server whose certificate did not verify")
		}
	})

	t.Run("CA bundle from a ConfigMap", func(t *testing.T) {
		slot := httpSlot(srv.URL + "/relay/0?turn=on")
		slot.HTTP.CABundleRef = &infrav1.ConfigMapOrSecretKeyReference{ConfigMapName: "homelab-ca", Key: "ca.crt"}
		req := request(ActionOn, slot, httpSecrets())
		req.ConfigMaps = fakeConfigMaps{"homelab-ca": {"ca.crt": caPEM}}
		if _, err := (HTTP{}).Do(ctx, req); err != nil || !plug.isOn() {
			t.Fatalf("with the CA bundle: %v", err)
		}
	})

	t.Run("CA bundle from a Secret, default key", func(t *testing.T) {
		slot := httpSlot(srv.URL + "/relay/0?turn=off")
		slot.HTTP.CABundleRef = &infrav1.ConfigMapOrSecretKeyReference{SecretName: "homelab-ca"}
		secrets := httpSecrets()
		secrets["homelab-ca"] = map[string][]byte{"ca.crt": []byte(caPEM)}
		if _, err := (HTTP{}).Do(ctx, request(ActionOff, slot, secrets)); err != nil || plug.isOn() {
			t.Fatalf("with the CA bundle: %v", err)
		}
	})

	t.Run("a bundle that is no PEM", func(t *testing.T) {
		slot := httpSlot(srv.URL + "/relay/0?turn=on")
		slot.HTTP.CABundleRef = &infrav1.ConfigMapOrSecretKeyReference{ConfigMapName: "homelab-ca", Key: "ca.crt"}
		req := request(ActionOn, slot, httpSecrets())
		req.ConfigMaps = fakeConfigMaps{"homelab-ca": {"ca.crt": "not a certificate"}}
		_, err := HTTP{}.Do(ctx, req)
		wantClass(t, err, ClassConfig)
	})

	t.Run("insecureSkipVerify", func(t *testing.T) {
		slot := httpSlot(srv.URL + "/relay/0?turn=on")
		slot.HTTP.InsecureSkipVerify = true
		if _, err := (HTTP{}).Do(ctx, request(ActionOn, slot, httpSecrets())); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHTTPErrorBodyIsASanitisedSnippet(t *testing.T) {
	t.Parallel()
	// 64 KiB of what a broken device may send: terminal escapes, control bytes, UTF-8, and the
	// token right where a cut at the snippet's length would halve it.
	body := "\x1b[31mERROR\x1b[0m\x00\x07 ünïcödé\r\n\t" + strings.Repeat("x", 190) + plugToken + strings.Repeat("é\x01", 32<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	_, err := HTTP{}.Do(context.Background(), request(ActionOn, httpSlot(srv.URL+"/relay/0"), httpSecrets()))
	msg := wantClass(t, err, ClassBMCError, plugToken)
	for i := range len(plugToken) - 6 {
		noSecretIn(t, msg, plugToken[i:i+6])
	}
	for _, c := range []byte(msg) {
		if c < ' ' || c > '~' {
			t.Fatalf("the message holds byte %#x, which is not printable ASCII: %q", c, msg)
		}
	}
	_, answer, ok := strings.Cut(msg, "answered 502 Bad Gateway: ")
	if !ok || !strings.HasPrefix(answer, "[31mERROR [0m") || len(answer) > httpErrorSnippet+len("...") {
		t.Fatalf("want at most %d bytes of the body after the status: %q", httpErrorSnippet, msg)
	}
}

func TestHTTPErrorRepeatsNoReasonPhrase(t *testing.T) {
	t.Parallel()
	// A server whose status line carries text of its own: only the code is repeated.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				r, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = fmt.Fprintf(c, "HTTP/1.1 500 rejected %s\x1b[2J\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", r.Header.Get("Authorization"))
			}()
		}
	}()
	_, err = HTTP{}.Do(context.Background(), request(ActionOn, httpSlot("http://"+l.Addr().String()+"/relay/0"), httpSecrets()))
	msg := wantClass(t, err, ClassBMCError, plugToken, "rejected", "\x1b")
	if !strings.Contains(msg, "answered 500 Internal Server Error") {
		t.Fatalf("want the status code and its standard text: %v", msg)
	}
}

func TestHTTPErrorsCarryNoEncodedSecrets(t *testing.T) {
	t.Parallel()
	forms := []string{
		plugToken,
		base64.StdEncoding.EncodeToString([]byte(plugToken)),
		base64.StdEncoding.EncodeToString([]byte("Bearer " + plugToken)),
		hex.EncodeToString([]byte(plugToken)),
		url.QueryEscape("Bearer " + plugToken),
		`{\"auth\":\"Bearer ` + plugToken + `\"}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "rejected: "+strings.Join(forms[1:], " "))
	}))
	defer srv.Close()
	_, err := HTTP{}.Do(context.Background(), request(ActionOn, httpSlot(srv.URL+"/relay/0"), httpSecrets()))
	msg := wantClass(t, err, ClassBMCError, forms...)
	if !strings.Contains(msg, "rejected: [redacted]") {
		t.Fatalf("want the server's message with the secrets blanked: %v", msg)
	}
}

func TestHTTPEgressPolicy(t *testing.T) {
	t.Parallel()
	plug := &smartPlug{}
	srv := httptest.NewServer(plug)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	ctx := context.Background()
	policy := DefaultEgressPolicy()

	for _, host := range []string{"127.0.0.1", "localhost", "[::ffff:127.0.0.1]"} {
		_, err := HTTP{Egress: &policy}.Do(ctx, request(ActionOn, httpSlot("http://"+host+":"+port+"/relay/0?turn=on"), httpSecrets()))
		msg := wantClass(t, err, ClassConfig, plugToken)
		if !strings.Contains(msg, "refused by the manager's egress policy (deny=") {
			t.Fatalf("want the egress policy named: %v", msg)
		}
	}
	// The cloud metadata service is refused before any packet leaves.
	_, err := HTTP{Egress: &policy}.Status(ctx, request(ActionStatus, Slot{Timeout: 5 * time.Second, HTTP: &infrav1.HTTPDriver{
		URL: "http://169.254.169.254/latest/meta-data/", Method: http.MethodGet, PoweredOnPattern: "on",
	}}, httpSecrets()))
	msg := wantClass(t, err, ClassConfig)
	if !strings.Contains(msg, "connecting to 169.254.169.254 is refused by the manager's egress policy (deny=169.254.0.0/16)") {
		t.Fatalf("want the metadata address and the rule named: %v", msg)
	}
	plug.mu.Lock()
	seen := len(plug.requests)
	plug.mu.Unlock()
	if seen != 0 {
		t.Fatalf("the server got %d requests through a policy that denies it", seen)
	}

	allowed, err := ParseEgressPolicy("default,allow=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (HTTP{Egress: &allowed}).Do(ctx, request(ActionOn, httpSlot(srv.URL+"/relay/0?turn=on"), httpSecrets())); err != nil || !plug.isOn() {
		t.Fatalf("an address the policy allows: %v", err)
	}
}
