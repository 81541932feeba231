package sim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Redfish resource paths. The BMC manages one ComputerSystem, "1", as most single-host BMCs do.
const (
	redfishRoot     = "/redfish/v1"
	sessionService  = redfishRoot + "/SessionService"
	sessionsPath    = sessionService + "/Sessions"
	systemsPath     = redfishRoot + "/Systems"
	systemID        = "1"
	systemPath      = systemsPath + "/" + systemID
	resetActionPath = systemPath + "/Actions/ComputerSystem.Reset"
	chassisesPath   = redfishRoot + "/Chassis"
	chassisPath     = chassisesPath + "/1"
	powerPath       = chassisPath + "/Power"
	environmentPath = chassisPath + "/EnvironmentMetrics"
)

// powerInterval is the window of the minimum, maximum and average draw a BMC reports.
const powerInterval = time.Minute

const (
	// sessionIdleTimeout ends a session nobody used for this long, as SessionService says.
	sessionIdleTimeout = 30 * time.Minute
	// maxSessions bounds the open sessions per BMC; a new one evicts the least recently used,
	// so clients that never log out cannot grow the simulator's memory.
	maxSessions = 32
	// maxRequestBody bounds what a request may send.
	maxRequestBody = 64 << 10
)

// allowedResets are the ResetType values the system offers, so that the driver's graceful path
// (GracefulShutdown, then ForceOff) is exercised.
var allowedResets = []Command{CommandOn, CommandForceOff, CommandGracefulShutdown}

// redfishBMC serves the DMTF Redfish API of one machine: the service root, the session service
// (login with X-Auth-Token and Location, logout), the Systems collection, the ComputerSystem with
// its PowerState, the ComputerSystem.Reset action, and the Chassis collection with the machine's
// chassis and, as Config.PowerReadings says, its Power resource (PowerControl) and its
// EnvironmentMetrics (PowerWatts), which report the machine's draw. Everything but the service
// root and the login needs a session token or basic auth.
type redfishBMC struct {
	m *Machine

	mu       sync.Mutex
	sessions map[string]*redfishSession // by token
	seq      int
}

type redfishSession struct {
	id       string
	lastUsed time.Time
}

type httpServer struct{ srv *http.Server }

func (h httpServer) close(ctx context.Context) error {
	if err := h.srv.Shutdown(ctx); err != nil {
		return h.srv.Close()
	}
	return nil
}

// serveRedfish starts m's Redfish BMC on an ephemeral port of addr.
func serveRedfish(m *Machine, addr string) (server, string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{
		Handler:           &redfishBMC{m: m, sessions: map[string]*redfishSession{}},
		ReadHeaderTimeout: 10 * time.Second,
		// Clients that keep connections open (the driver reuses them within a call) release
		// them soon after; a thousand idle BMCs then hold no connections.
		IdleTimeout: 30 * time.Second,
		ErrorLog:    log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(l) }()
	return httpServer{srv}, "http://" + l.Addr().String(), nil
}

func (b *redfishBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.m.countRequest()
	if !b.m.hang(r.Context()) {
		return // the client gave up; nothing is served, no command carried out
	}
	if b.m.faulty() {
		redfishError(w, http.StatusInternalServerError, "InternalError", "The request failed due to an internal service error.")
		return
	}
	if b.m.faultNow(FaultGarbage) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"@odata.id": "/redfish/v1/Systems/1", "PowerState": "O`)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == "/redfish":
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, map[string]string{"v1": redfishRoot + "/"}) })
		return
	case p == redfishRoot:
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, b.serviceRoot()) })
		return
	case p == sessionsPath && r.Method == http.MethodPost:
		b.login(w, r)
		return
	}
	if !b.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Redfish"`)
		redfishError(w, http.StatusUnauthorized, "InsufficientPrivilege",
			"There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.")
		return
	}
	switch {
	case p == sessionService:
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, b.sessionServiceResource()) })
	case p == sessionsPath:
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, b.sessionCollection()) })
	case strings.HasPrefix(p, sessionsPath+"/"):
		b.session(w, r, p)
	case p == systemsPath:
		b.only(w, r, http.MethodGet, func() {
			writeJSON(w, http.StatusOK, collection(systemsPath, "#ComputerSystemCollection.ComputerSystemCollection", "Computer System Collection", []string{systemPath}))
		})
	case p == systemPath:
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, b.system()) })
	case p == resetActionPath:
		b.only(w, r, http.MethodPost, func() { b.reset(w, r) })
	case p == chassisesPath:
		b.only(w, r, http.MethodGet, func() {
			writeJSON(w, http.StatusOK, collection(chassisesPath, "#ChassisCollection.ChassisCollection", "Chassis Collection", []string{chassisPath}))
		})
	case p == chassisPath:
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, b.chassis()) })
	case p == powerPath && b.readings().offersPower():
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, b.power()) })
	case p == environmentPath && b.readings().offersEnvironment():
		b.only(w, r, http.MethodGet, func() { writeJSON(w, http.StatusOK, b.environment()) })
	default:
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", fmt.Sprintf("The resource at the URI %s was not found.", r.URL.Path))
	}
}

// only runs serve for the one method the resource supports and answers 405 to the others.
func (b *redfishBMC) only(w http.ResponseWriter, r *http.Request, method string, serve func()) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		redfishError(w, http.StatusMethodNotAllowed, "OperationNotAllowed", "The HTTP method is not allowed on this resource.")
		return
	}
	serve()
}

func (b *redfishBMC) serviceRoot() map[string]any {
	return map[string]any{
		"@odata.id": redfishRoot + "/", "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
		"Id": "RootService", "Name": "homelab-sim Redfish service", "RedfishVersion": "1.11.0",
		"Vendor":         "homelab-sim",
		"Systems":        odataID(systemsPath),
		"Chassis":        odataID(chassisesPath),
		"SessionService": odataID(sessionService),
		"Links":          map[string]any{"Sessions": odataID(sessionsPath)},
	}
}

func (b *redfishBMC) system() map[string]any {
	m := b.m
	on := m.PoweredOn()
	if m.faultNow(FaultLie) {
		on = !on
	}
	power := "Off"
	if on {
		power = "On"
	}
	return map[string]any{
		"@odata.id": systemPath, "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id": systemID, "Name": m.Name, "HostName": m.Name, "SystemType": "Physical",
		"Manufacturer": "homelab-sim", "Model": "virtual machine", "SerialNumber": fmt.Sprintf("SIM%06d", m.Index),
		"PowerState": power,
		"Status":     map[string]string{"State": "Enabled", "Health": "OK"},
		"Links":      map[string]any{"Chassis": []map[string]string{odataID(chassisPath)}},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            resetActionPath,
			"ResetType@Redfish.AllowableValues": allowedResets,
		}},
	}
}

func (b *redfishBMC) readings() PowerReadings { return b.m.sim.cfg.PowerReadings }

// chassis is the machine's chassis, linked to the power readings the BMC offers.
func (b *redfishBMC) chassis() map[string]any {
	c := map[string]any{
		"@odata.id": chassisPath, "@odata.type": "#Chassis.v1_21_0.Chassis",
		"Id": "1", "Name": b.m.Name + " chassis", "ChassisType": "RackMount",
		"Manufacturer": "homelab-sim", "SerialNumber": fmt.Sprintf("SIM%06d", b.m.Index),
		"Status": map[string]string{"State": "Enabled", "Health": "OK"},
		"Links":  map[string]any{"ComputerSystems": []map[string]string{odataID(systemPath)}},
	}
	if b.readings().offersPower() {
		c["Power"] = odataID(powerPath)
	}
	if b.readings().offersEnvironment() {
		c["EnvironmentMetrics"] = odataID(environmentPath)
	}
	return c
}

// power is the chassis' Power resource (deprecated in Redfish 2020.4, still served by most
// BMCs): the machine's draw in PowerControl[0], with its minimum, maximum and average over the
// last minute.
func (b *redfishBMC) power() map[string]any {
	m := b.m
	m.mu.Lock()
	watts := m.drawNow()
	least, most, average := m.drawStats(powerInterval)
	m.mu.Unlock()
	return map[string]any{
		"@odata.id": powerPath, "@odata.type": "#Power.v1_7_1.Power", "Id": "Power", "Name": "Power",
		"PowerControl": []map[string]any{{
			"@odata.id": powerPath + "#/PowerControl/0", "MemberId": "0", "Name": "System Power Control",
			"PowerConsumedWatts": watts,
			"PowerMetrics": map[string]any{
				"IntervalInMin": int(powerInterval / time.Minute), "MinConsumedWatts": least, "MaxConsumedWatts": most, "AverageConsumedWatts": average,
			},
			"RelatedItem": []map[string]string{odataID(chassisPath), odataID(systemPath)},
		}},
	}
}

// environment is the chassis' EnvironmentMetrics: the machine's draw and the energy it drew since
// the simulator started.
func (b *redfishBMC) environment() map[string]any {
	m := b.m
	return map[string]any{
		"@odata.id": environmentPath, "@odata.type": "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics",
		"Id": "EnvironmentMetrics", "Name": b.m.Name + " chassis environment metrics",
		"PowerWatts": map[string]any{"Reading": m.Watts()},
		"EnergykWh":  map[string]any{"Reading": m.EnergyBetween(m.EnergySince(), m.sim.now()) / 3.6e6},
	}
}

// reset carries out ComputerSystem.Reset. The BMC accepts it at once (204); the machine boots or
// shuts down afterwards, as real hardware does.
func (b *redfishBMC) reset(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ResetType *Command `json:"ResetType"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "The request body submitted was malformed JSON and could not be parsed by the receiving service.")
		return
	}
	switch {
	case body.ResetType == nil:
		redfishError(w, http.StatusBadRequest, "ActionParameterMissing", "The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.")
	case !slices.Contains(allowedResets, *body.ResetType):
		redfishError(w, http.StatusBadRequest, "ActionParameterValueNotInList",
			fmt.Sprintf("The value %q for the parameter ResetType is not in the list of acceptable values.", *body.ResetType))
	default:
		b.m.Do(*body.ResetType)
		w.WriteHeader(http.StatusNoContent)
	}
}

// login creates a session: the token in X-Auth-Token, its URI in Location.
func (b *redfishBMC) login(w http.ResponseWriter, r *http.Request) {
	var login struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&login); err != nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "The request body submitted was malformed JSON and could not be parsed by the receiving service.")
		return
	}
	if !b.validLogin(login.UserName, login.Password) {
		redfishError(w, http.StatusUnauthorized, "NoValidSession", "There is no valid session established with the implementation.")
		return
	}
	token, err := randomToken()
	if err != nil {
		redfishError(w, http.StatusInternalServerError, "InternalError", "The request failed due to an internal service error.")
		return
	}
	b.mu.Lock()
	b.evictSessions(time.Now())
	b.seq++
	id := fmt.Sprint(b.seq)
	b.sessions[token] = &redfishSession{id: id, lastUsed: time.Now()}
	b.mu.Unlock()
	uri := sessionsPath + "/" + id
	w.Header().Set("X-Auth-Token", token)
	w.Header().Set("Location", uri)
	writeJSON(w, http.StatusCreated, map[string]any{
		"@odata.id": uri, "@odata.type": "#Session.v1_3_0.Session", "Id": id, "Name": "User Session", "UserName": login.UserName,
	})
}

// evictSessions drops idle sessions and, when the table is full, the least recently used one.
// b.mu is held.
func (b *redfishBMC) evictSessions(now time.Time) {
	var oldest string
	for token, s := range b.sessions {
		if now.Sub(s.lastUsed) > sessionIdleTimeout {
			delete(b.sessions, token)
			continue
		}
		if oldest == "" || s.lastUsed.Before(b.sessions[oldest].lastUsed) {
			oldest = token
		}
	}
	if len(b.sessions) >= maxSessions {
		delete(b.sessions, oldest)
	}
}

// session serves GET and DELETE (logout) of one session.
func (b *redfishBMC) session(w http.ResponseWriter, r *http.Request, p string) {
	id := strings.TrimPrefix(p, sessionsPath+"/")
	b.mu.Lock()
	token := ""
	for t, s := range b.sessions {
		if s.id == id {
			token = t
		}
	}
	if token != "" && r.Method == http.MethodDelete {
		delete(b.sessions, token)
	}
	b.mu.Unlock()
	switch {
	case token == "":
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", fmt.Sprintf("The resource at the URI %s was not found.", r.URL.Path))
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id": p, "@odata.type": "#Session.v1_3_0.Session", "Id": id, "Name": "User Session", "UserName": b.m.Username,
		})
	default:
		w.Header().Set("Allow", "GET, DELETE")
		redfishError(w, http.StatusMethodNotAllowed, "OperationNotAllowed", "The HTTP method is not allowed on this resource.")
	}
}

func (b *redfishBMC) sessionServiceResource() map[string]any {
	return map[string]any{
		"@odata.id": sessionService, "@odata.type": "#SessionService.v1_1_8.SessionService",
		"Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true,
		"SessionTimeout": int(sessionIdleTimeout / time.Second),
		"Sessions":       odataID(sessionsPath),
	}
}

func (b *redfishBMC) sessionCollection() map[string]any {
	b.mu.Lock()
	var uris []string
	for _, s := range b.sessions {
		uris = append(uris, sessionsPath+"/"+s.id)
	}
	b.mu.Unlock()
	slices.Sort(uris)
	return collection(sessionsPath, "#SessionCollection.SessionCollection", "Session Collection", uris)
}

// authorized accepts a live session token or basic auth with the machine's credentials.
func (b *redfishBMC) authorized(r *http.Request) bool {
	if token := r.Header.Get("X-Auth-Token"); token != "" {
		b.mu.Lock()
		defer b.mu.Unlock()
		s, ok := b.sessions[token]
		if !ok || time.Since(s.lastUsed) > sessionIdleTimeout {
			return false
		}
		s.lastUsed = time.Now()
		return true
	}
	user, pass, ok := r.BasicAuth()
	return ok && b.validLogin(user, pass)
}

func (b *redfishBMC) validLogin(user, pass string) bool {
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(b.m.Username))
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(b.m.Password))
	return userOK&passOK == 1
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", errors.New("no randomness for a session token")
	}
	return hex.EncodeToString(b), nil
}

func odataID(uri string) map[string]string { return map[string]string{"@odata.id": uri} }

func collection(uri, odataType, name string, members []string) map[string]any {
	list := make([]map[string]string, 0, len(members))
	for _, m := range members {
		list = append(list, odataID(m))
	}
	return map[string]any{
		"@odata.id": uri, "@odata.type": odataType, "Name": name,
		"Members@odata.count": len(list), "Members": list,
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// redfishError answers with a Redfish error body, which the driver quotes in its messages.
func redfishError(w http.ResponseWriter, code int, msgID, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code": "Base.1.8." + msgID, "message": msg,
		"@Message.ExtendedInfo": []map[string]any{{"MessageId": "Base.1.8." + msgID, "Message": msg, "Severity": "Critical"}},
	}})
}
