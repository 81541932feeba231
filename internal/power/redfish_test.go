package power

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

const (
	redfishUser     = "root"
	redfishPassword = "calvin-Pa55-redfish"
)

// fakeBMC serves the parts of the DMTF Redfish API the driver uses: the service root (public),
// SessionService/Sessions (POST answers X-Auth-Token and Location, DELETE logs out), the Systems
// collection, ComputerSystem with PowerState, and Actions/ComputerSystem.Reset with
// ResetType@Redfish.AllowableValues. Like real hardware, a reset is accepted at once and the
// PowerState changes later (landAfter).
type fakeBMC struct {
	mu sync.Mutex
	// configuration, set before serving
	systems        []*fakeSystem
	noSessions     bool          // service root without SessionService, like sushy-tools
	landAfter      time.Duration // delay until a reset changes PowerState
	obeysShutdown  bool          // the operating system honours GracefulShutdown
	failEverything bool          // answer 500 to everything
	brokenSessions bool          // the session service answers every login with 500
	// state
	requests       []string          // "METHOD /path" of every request
	withAuth       int               // requests that carried an Authorization header
	sessions       map[string]string // token -> session URI
	sessionsMade   int
	sessionsClosed int
	basicAuthUsed  int
	tokenAuthUsed  int
}

type fakeSystem struct {
	id        string
	state     string // On or Off
	allowed   []string
	pending   string
	pendingAt time.Time
	resets    []string
}

func newFakeBMC(systems ...*fakeSystem) *fakeBMC {
	return &fakeBMC{systems: systems, landAfter: 1500 * time.Millisecond, sessions: map[string]string{}}
}

func system(id, state string, allowed ...string) *fakeSystem {
	if len(allowed) == 0 {
		allowed = []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart", "PushPowerButton"}
	}
	return &fakeSystem{id: id, state: state, allowed: allowed}
}

// powerState applies a pending change whose time has come.
func (s *fakeSystem) powerState() string {
	if s.pending != "" && !time.Now().Before(s.pendingAt) {
		s.state, s.pending = s.pending, ""
	}
	return s.state
}

func (b *fakeBMC) resets(id string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.systems {
		if s.id == id {
			return slices.Clone(s.resets)
		}
	}
	return nil
}

func (b *fakeBMC) state(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.systems {
		if s.id == id {
			return s.powerState()
		}
	}
	return ""
}

func redfishError(w http.ResponseWriter, code int, msgID, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": "Base.1.8." + msgID, "message": msg,
		"@Message.ExtendedInfo": []map[string]any{{"MessageId": "Base.1.8." + msgID, "Message": msg, "Severity": "Critical"}},
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (b *fakeBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests = append(b.requests, r.Method+" "+strings.TrimSuffix(r.URL.Path, "/"))
	if r.Header.Get("Authorization") != "" {
		b.withAuth++
	}
	if b.failEverything {
		redfishError(w, http.StatusInternalServerError, "InternalError", "The request failed due to an internal service error.")
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == "/redfish/v1" && r.Method == http.MethodGet:
		root := map[string]any{
			"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
			"Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.11.0",
			"Systems": map[string]string{"@odata.id": "/redfish/v1/Systems"},
		}
		if !b.noSessions {
			root["SessionService"] = map[string]string{"@odata.id": "/redfish/v1/SessionService"}
			root["Links"] = map[string]any{"Sessions": map[string]string{"@odata.id": "/redfish/v1/SessionService/Sessions"}}
		}
		writeJSON(w, http.StatusOK, root)
		return
	case p == "/redfish/v1/SessionService/Sessions" && r.Method == http.MethodPost && b.brokenSessions:
		redfishError(w, http.StatusInternalServerError, "InternalError", "The session service is not available.")
		return
	case p == "/redfish/v1/SessionService/Sessions" && r.Method == http.MethodPost && !b.noSessions:
		var login struct{ UserName, Password string }
		if err := json.NewDecoder(r.Body).Decode(&login); err != nil {
			redfishError(w, http.StatusBadRequest, "MalformedJSON", "The request body submitted was malformed JSON.")
			return
		}
		if !validLogin(login.UserName, login.Password) {
			redfishError(w, http.StatusUnauthorized, "NoValidSession", "There is no valid session established with the implementation.")
			return
		}
		b.sessionsMade++
		token := fmt.Sprintf("token-%d-0123456789abcdef", b.sessionsMade)
		uri := fmt.Sprintf("/redfish/v1/SessionService/Sessions/%d", b.sessionsMade)
		b.sessions[token] = uri
		w.Header().Set("X-Auth-Token", token)
		w.Header().Set("Location", uri)
		writeJSON(w, http.StatusCreated, map[string]any{"@odata.id": uri, "@odata.type": "#Session.v1_3_0.Session", "Id": fmt.Sprint(b.sessionsMade), "Name": "User Session", "UserName": login.UserName})
		return
	}

	if !b.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Redfish"`)
		redfishError(w, http.StatusUnauthorized, "InsufficientPrivilege", "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.")
		return
	}
	switch {
	case strings.HasPrefix(p, "/redfish/v1/SessionService/Sessions/") && r.Method == http.MethodDelete:
		for token, uri := range b.sessions {
			if uri == p {
				delete(b.sessions, token)
				b.sessionsClosed++
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "The resource at the URI was not found.")
	case p == "/redfish/v1/Systems" && r.Method == http.MethodGet:
		var members []map[string]string
		for _, s := range b.systems {
			members = append(members, map[string]string{"@odata.id": "/redfish/v1/Systems/" + s.id})
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id": "/redfish/v1/Systems", "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
			"Name": "Computer System Collection", "Members@odata.count": len(members), "Members": members,
		})
	case strings.HasPrefix(p, "/redfish/v1/Systems/"):
		rest := strings.TrimPrefix(p, "/redfish/v1/Systems/")
		id, action, _ := strings.Cut(rest, "/")
		var sys *fakeSystem
		for _, s := range b.systems {
			if s.id == id {
				sys = s
			}
		}
		switch {
		case sys == nil:
			redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "The resource at the URI was not found.")
		case action == "" && r.Method == http.MethodGet:
			uri := "/redfish/v1/Systems/" + sys.id
			writeJSON(w, http.StatusOK, map[string]any{
				"@odata.id": uri, "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
				"Id": sys.id, "Name": "System " + sys.id, "SystemType": "Physical", "PowerState": sys.powerState(),
				"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
					"target":                            uri + "/Actions/ComputerSystem.Reset",
					"ResetType@Redfish.AllowableValues": sys.allowed,
				}},
			})
		case action == "Actions/ComputerSystem.Reset" && r.Method == http.MethodPost:
			var body struct{ ResetType string }
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !slices.Contains(sys.allowed, body.ResetType) {
				redfishError(w, http.StatusBadRequest, "ActionParameterValueNotInList", "The value for the parameter ResetType is not in the list of acceptable values.")
				return
			}
			sys.resets = append(sys.resets, body.ResetType)
			sys.powerState()
			switch body.ResetType {
			case "On", "ForceOn":
				sys.pending, sys.pendingAt = "On", time.Now().Add(b.landAfter)
			case "ForceOff":
				sys.pending, sys.pendingAt = "Off", time.Now().Add(b.landAfter/4)
			case "GracefulShutdown":
				if b.obeysShutdown {
					sys.pending, sys.pendingAt = "Off", time.Now().Add(b.landAfter)
				}
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			redfishError(w, http.StatusMethodNotAllowed, "OperationNotAllowed", "The operation is not allowed.")
		}
	default:
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "The resource at the URI was not found.")
	}
}

func validLogin(user, pass string) bool {
	return subtle.ConstantTimeCompare([]byte(user), []byte(redfishUser)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(redfishPassword)) == 1
}

func (b *fakeBMC) authorized(r *http.Request) bool {
	if token := r.Header.Get("X-Auth-Token"); token != "" {
		_, ok := b.sessions[token]
		if ok {
			b.tokenAuthUsed++
		}
		return ok
	}
	if user, pass, ok := r.BasicAuth(); ok && validLogin(user, pass) {
		b.basicAuthUsed++
		return true
	}
	return false
}

// seen returns the requests the BMC got and how many carried an Authorization header.
func (b *fakeBMC) seen() (requests []string, withAuth int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests), b.withAuth
}

func (b *fakeBMC) counts() (made, closed, basic, token int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessionsMade, b.sessionsClosed, b.basicAuthUsed, b.tokenAuthUsed
}

func redfishSecrets(password string) fakeSecrets {
	return fakeSecrets{"bmc": {"username": []byte(redfishUser), "password": []byte(password)}}
}

// redfishSlot reaches a test BMC, which serves plain http on loopback unless it is a TLS server.
func redfishSlot(endpoint string, timeout time.Duration) Slot {
	return Slot{Timeout: timeout, Redfish: &infrav1.RedfishDriver{
		Endpoint: endpoint, CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}, AllowPlainHTTP: true,
	}}
}

func TestRedfishPowerOnLandsSecondsLater(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(system("1", "Off"))
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	ctx := context.Background()
	slot := redfishSlot(srv.URL, 10*time.Second)
	secrets := redfishSecrets(redfishPassword)

	start := time.Now()
	out, err := Redfish{}.Do(ctx, request(ActionOn, slot, secrets))
	if err != nil || !out.Done {
		t.Fatalf("power on: %+v, %v", out, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("power on waited %s; it is done once the BMC accepts it", took)
	}
	if got := bmc.resets("1"); !slices.Equal(got, []string{"On"}) {
		t.Fatalf("resets sent: %v; want [On]", got)
	}
	// The BMC accepted the request; the machine comes on a little later, as real ones do.
	if st, err := (Redfish{}).Status(ctx, request(ActionStatus, slot, secrets)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status right after the request: %v, %v; want off (the change has not landed)", st, err)
	}
	testenv.Eventually(t, 5*time.Second, "the power change to land", func() bool {
		st, err := Redfish{}.Status(ctx, request(ActionStatus, slot, secrets))
		return err == nil && st == infrav1.PoweredOn
	})
	if took := time.Since(start); took < time.Second {
		t.Fatalf("status reported on after %s, before the change landed", took)
	}

	// On again: nothing is sent.
	if out, err := (Redfish{}).Do(ctx, request(ActionOn, slot, secrets)); err != nil || !strings.Contains(out.Detail, "already") {
		t.Fatalf("second power on: %+v, %v", out, err)
	}
	if got := bmc.resets("1"); len(got) != 1 {
		t.Fatalf("a second power on sent a reset: %v", got)
	}

	made, closed, basic, token := bmc.counts()
	if made == 0 || made != closed || basic != 0 || token == 0 {
		t.Fatalf("sessions made %d, closed %d, basic-auth requests %d, token requests %d: want session auth, every session logged out", made, closed, basic, token)
	}
}

func TestRedfishGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("operating system shuts down", func(t *testing.T) {
		bmc := newFakeBMC(system("1", "On"))
		bmc.obeysShutdown = true
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		slot := redfishSlot(srv.URL, 20*time.Second)
		slot.Redfish.GracefulShutdownTimeout = duration(10 * time.Second)
		start := time.Now()
		out, err := Redfish{}.Do(ctx, request(ActionOff, slot, redfishSecrets(redfishPassword)))
		if err != nil || !out.Done || !strings.Contains(out.Detail, "gracefully") {
			t.Fatalf("power off: %+v, %v", out, err)
		}
		if took := time.Since(start); took < bmc.landAfter {
			t.Fatalf("reported off after %s, before the shutdown landed", took)
		}
		if got := bmc.resets("1"); !slices.Equal(got, []string{"GracefulShutdown"}) {
			t.Fatalf("resets sent: %v; want only GracefulShutdown", got)
		}
		if bmc.state("1") != "Off" {
			t.Fatalf("system is %s", bmc.state("1"))
		}
	})

	t.Run("operating system ignores it", func(t *testing.T) {
		bmc := newFakeBMC(system("1", "On"))
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		slot := redfishSlot(srv.URL, 20*time.Second)
		slot.Redfish.GracefulShutdownTimeout = duration(1500 * time.Millisecond)
		start := time.Now()
		out, err := Redfish{}.Do(ctx, request(ActionOff, slot, redfishSecrets(redfishPassword)))
		if err != nil || !out.Done || !strings.Contains(out.Detail, "ForceOff") {
			t.Fatalf("power off: %+v, %v", out, err)
		}
		if took := time.Since(start); took < 1500*time.Millisecond || took > 5*time.Second {
			t.Fatalf("forced off after %s; want just after the 1.5s graceful window", took)
		}
		if got := bmc.resets("1"); !slices.Equal(got, []string{"GracefulShutdown", "ForceOff"}) {
			t.Fatalf("resets sent: %v; want GracefulShutdown, then ForceOff", got)
		}
		testenv.Eventually(t, 3*time.Second, "the forced power-off to land", func() bool { return bmc.state("1") == "Off" })
	})

	t.Run("default window is half the timeout", func(t *testing.T) {
		bmc := newFakeBMC(system("1", "On"))
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		start := time.Now()
		if _, err := (Redfish{}).Do(ctx, request(ActionOff, redfishSlot(srv.URL, 3*time.Second), redfishSecrets(redfishPassword))); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 1400*time.Millisecond || took > 3*time.Second {
			t.Fatalf("forced off after %s; want about 1.5s, half the 3s timeout", took)
		}
	})

	t.Run("BMC without GracefulShutdown", func(t *testing.T) {
		bmc := newFakeBMC(system("1", "On", "On", "ForceOff", "ForceRestart"))
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		start := time.Now()
		out, err := Redfish{}.Do(ctx, request(ActionOff, redfishSlot(srv.URL, 10*time.Second), redfishSecrets(redfishPassword)))
		if err != nil || !out.Done {
			t.Fatalf("power off: %+v, %v", out, err)
		}
		if got := bmc.resets("1"); !slices.Equal(got, []string{"ForceOff"}) || time.Since(start) > time.Second {
			t.Fatalf("resets sent: %v after %s; want ForceOff at once", got, time.Since(start))
		}
	})
}

func TestRedfishBasicAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BMC without sessions", func(t *testing.T) {
		// Like sushy-tools: no SessionService in the service root.
		bmc := newFakeBMC(system("1", "On"))
		bmc.noSessions = true
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		slot := redfishSlot(srv.URL, 5*time.Second)

		_, err := Redfish{}.Status(ctx, request(ActionStatus, slot, redfishSecrets(redfishPassword)))
		msg := wantClass(t, err, ClassConfig, redfishPassword)
		if !strings.Contains(msg, "set allowBasicAuth") {
			t.Fatalf("want the field to set named: %v", msg)
		}
		if requests, withAuth := bmc.seen(); withAuth != 0 || len(requests) != 1 {
			t.Fatalf("without allowBasicAuth the BMC got %v, %d of them with credentials; want the service root alone", requests, withAuth)
		}

		slot.Redfish.AllowBasicAuth = true
		st, err := Redfish{}.Status(ctx, request(ActionStatus, slot, redfishSecrets(redfishPassword)))
		if err != nil || st != infrav1.PoweredOn {
			t.Fatalf("status with allowBasicAuth: %v, %v", st, err)
		}
		if _, _, basic, _ := bmc.counts(); basic == 0 {
			t.Fatal("basic auth was not used")
		}
		_, err = Redfish{}.Status(ctx, request(ActionStatus, slot, redfishSecrets("wrong-Pa55-basic")))
		wantClass(t, err, ClassAuthFailed, "wrong-Pa55-basic", redfishPassword)
	})

	t.Run("session service failing", func(t *testing.T) {
		bmc := newFakeBMC(system("1", "On"))
		bmc.brokenSessions = true
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		slot := redfishSlot(srv.URL, 5*time.Second)

		_, err := Redfish{}.Status(ctx, request(ActionStatus, slot, redfishSecrets(redfishPassword)))
		msg := wantClass(t, err, ClassBMCError, redfishPassword)
		if !strings.Contains(msg, "500") || !strings.Contains(msg, "allowBasicAuth") {
			t.Fatalf("want the login failure and the field named: %v", msg)
		}
		if _, withAuth := bmc.seen(); withAuth != 0 {
			t.Fatal("basic auth was used without allowBasicAuth")
		}

		slot.Redfish.AllowBasicAuth = true
		if st, err := (Redfish{}).Status(ctx, request(ActionStatus, slot, redfishSecrets(redfishPassword))); err != nil || st != infrav1.PoweredOn {
			t.Fatalf("status with allowBasicAuth: %v, %v", st, err)
		}
	})
}

func TestRedfishPlainHTTPNeedsAllowPlainHTTP(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(system("1", "On"))
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	slot := redfishSlot(srv.URL, 5*time.Second)
	slot.Redfish.AllowPlainHTTP = false
	_, err := Redfish{}.Status(context.Background(), request(ActionStatus, slot, redfishSecrets(redfishPassword)))
	msg := wantClass(t, err, ClassConfig, redfishPassword)
	if !strings.Contains(msg, "plain http") || !strings.Contains(msg, "set allowPlainHTTP") {
		t.Fatalf("want the plain http endpoint and the field named: %v", msg)
	}
	if requests, _ := bmc.seen(); len(requests) != 0 {
		t.Fatalf("the BMC got %v: nothing may be sent to a plain http endpoint without allowPlainHTTP", requests)
	}
}

func TestRedfishFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("wrong password", func(t *testing.T) {
		bmc := newFakeBMC(system("1", "Off"))
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		_, err := Redfish{}.Do(ctx, request(ActionOn, redfishSlot(srv.URL, 5*time.Second), redfishSecrets("wrong-Pa55-session")))
		wantClass(t, err, ClassAuthFailed, "wrong-Pa55-session", redfishPassword)
		if _, _, basic, _ := bmc.counts(); basic != 0 {
			t.Fatal("a refused session login was retried with basic auth: two failed logins count towards a lockout")
		}
		if len(bmc.resets("1")) != 0 {
			t.Fatal("a reset was sent without valid credentials")
		}
	})

	t.Run("BMC answers 500", func(t *testing.T) {
		bmc := newFakeBMC(system("1", "Off"))
		bmc.failEverything = true
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		_, err := Redfish{}.Do(ctx, request(ActionOn, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
		msg := wantClass(t, err, ClassBMCError, redfishPassword)
		if !strings.Contains(msg, "500") {
			t.Fatalf("want the status code in the message: %v", msg)
		}
		_, err = Redfish{}.Status(ctx, request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
		wantClass(t, err, ClassBMCError, redfishPassword)
	})

	t.Run("several systems", func(t *testing.T) {
		bmc := newFakeBMC(system("Blade1", "Off"), system("Blade2", "Off"))
		srv := httptest.NewServer(bmc)
		defer srv.Close()
		slot := redfishSlot(srv.URL, 5*time.Second)
		_, err := Redfish{}.Do(ctx, request(ActionOn, slot, redfishSecrets(redfishPassword)))
		msg := wantClass(t, err, ClassConfig, redfishPassword)
		if !strings.Contains(msg, "Blade1, Blade2") {
			t.Fatalf("want the systems named: %v", msg)
		}
		slot.Redfish.SystemID = "Blade2"
		if _, err := (Redfish{}).Do(ctx, request(ActionOn, slot, redfishSecrets(redfishPassword))); err != nil {
			t.Fatal(err)
		}
		if len(bmc.resets("Blade1")) != 0 || !slices.Equal(bmc.resets("Blade2"), []string{"On"}) {
			t.Fatalf("resets: Blade1 %v, Blade2 %v", bmc.resets("Blade1"), bmc.resets("Blade2"))
		}
		slot.Redfish.SystemID = "Blade9"
		_, err = Redfish{}.Do(ctx, request(ActionOn, slot, redfishSecrets(redfishPassword)))
		wantClass(t, err, ClassConfig)
	})

	t.Run("closed port", func(t *testing.T) {
		_, err := Redfish{}.Do(ctx, request(ActionOn, redfishSlot(fmt.Sprintf("http://127.0.0.1:%d", freeTCPPort(t)), 5*time.Second), redfishSecrets(redfishPassword)))
		wantClass(t, err, ClassUnreachable, redfishPassword)
	})

	t.Run("hanging BMC", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		defer close(release)
		slot := redfishSlot(srv.URL, 800*time.Millisecond)
		start := time.Now()
		_, err := Redfish{}.Status(ctx, request(ActionStatus, slot, redfishSecrets(redfishPassword)))
		wantClass(t, err, ClassTimeout, redfishPassword)
		if took := time.Since(start); took > slot.Timeout+300*time.Millisecond {
			t.Fatalf("a hanging BMC held the call for %s, past the %s timeout", took, slot.Timeout)
		}
	})

	t.Run("missing credentials", func(t *testing.T) {
		_, err := Redfish{}.Do(ctx, request(ActionOn, redfishSlot("http://127.0.0.1:1", time.Second), fakeSecrets{}))
		wantClass(t, err, ClassConfig)
	})
}

func TestRedfishTLS(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(system("1", "On"))
	srv := httptest.NewTLSServer(bmc)
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	ctx := context.Background()

	t.Run("verification is on by default", func(t *testing.T) {
		_, err := Redfish{}.Status(ctx, request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
		wantClass(t, err, ClassConfig, redfishPassword)
		if made, _, basic, _ := bmc.counts(); made != 0 || basic != 0 {
			t.Fatal("credentials were sent to a BMC whose certificate did not verify")
		}
	})

	t.Run("CA bundle from a ConfigMap", func(t *testing.T) {
		slot := redfishSlot(srv.URL, 5*time.Second)
		slot.Redfish.CABundleRef = &infrav1.ConfigMapOrSecretKeyReference{ConfigMapName: "bmc-ca", Key: "ca.crt"}
		req := request(ActionStatus, slot, redfishSecrets(redfishPassword))
		req.ConfigMaps = fakeConfigMaps{"bmc-ca": {"ca.crt": caPEM}}
		if st, err := (Redfish{}).Status(ctx, req); err != nil || st != infrav1.PoweredOn {
			t.Fatalf("status with the CA bundle: %v, %v", st, err)
		}
	})

	t.Run("CA bundle ConfigMap missing", func(t *testing.T) {
		slot := redfishSlot(srv.URL, 5*time.Second)
		slot.Redfish.CABundleRef = &infrav1.ConfigMapOrSecretKeyReference{ConfigMapName: "bmc-ca", Key: "ca.crt"}
		req := request(ActionStatus, slot, redfishSecrets(redfishPassword))
		req.ConfigMaps = fakeConfigMaps{}
		_, err := Redfish{}.Status(ctx, req)
		wantClass(t, err, ClassConfig)
	})

	t.Run("insecureSkipVerify", func(t *testing.T) {
		slot := redfishSlot(srv.URL, 5*time.Second)
		slot.Redfish.InsecureSkipVerify = true
		if st, err := (Redfish{}).Status(ctx, request(ActionStatus, slot, redfishSecrets(redfishPassword))); err != nil || st != infrav1.PoweredOn {
			t.Fatalf("status: %v, %v", st, err)
		}
	})
}
