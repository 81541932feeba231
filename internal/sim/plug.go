package sim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Shelly Gen2 RPC methods the plug serves, as GET /rpc/<method>?<params> or POST /rpc/<method>
// with the params as a JSON object.
const (
	plugGetStatus = "/rpc/Switch.GetStatus"
	plugSet       = "/rpc/Switch.Set"
)

// plugVoltage is the mains voltage the plug reports.
const plugVoltage = 230.0

// plug serves Shelly's Gen2 RPC for a smart plug with one switch (id 0) that powers one machine.
// Every request needs the header "Authorization: Bearer <password>" (a real Shelly asks for
// digest authentication, which the project's HTTP driver does not speak; a token header is what
// an authenticating proxy in front of a plug asks for).
type plug struct{ m *Machine }

// servePlug starts m's smart plug on an ephemeral port of addr.
func servePlug(m *Machine, addr string) (server, string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{
		Handler:           plug{m: m},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(l) }()
	return httpServer{srv}, "http://" + l.Addr().String(), nil
}

// PlugAuthorization is the header value the machine's plug wants in Authorization.
func (m *Machine) PlugAuthorization() string { return "Bearer " + m.Password }

func (p plug) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.m.countRequest()
	if p.m.faulty() {
		plugError(w, http.StatusInternalServerError, -114, "Device is busy")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(p.m.PlugAuthorization())) != 1 {
		plugError(w, http.StatusUnauthorized, 401, "Unauthorized")
		return
	}
	params, err := rpcParams(w, r)
	if err != nil {
		plugError(w, http.StatusBadRequest, -103, err.Error())
		return
	}
	if id, ok := params["id"]; !ok || string(id) != "0" {
		plugError(w, http.StatusBadRequest, -105, "Argument 'id' must be 0: the plug has one switch")
		return
	}
	switch r.URL.Path {
	case plugGetStatus:
		writeJSON(w, http.StatusOK, p.status())
	case plugSet:
		var on bool
		if err := json.Unmarshal(params["on"], &on); err != nil {
			plugError(w, http.StatusBadRequest, -103, "Argument 'on' must be true or false")
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"was_on": p.m.switchPlug(on)})
	default:
		plugError(w, http.StatusNotFound, 404, "No handler for "+strings.TrimPrefix(r.URL.Path, "/rpc/"))
	}
}

// rpcParams reads the call's parameters, as JSON values: the query's (a value that is not JSON
// is taken as a string), or the JSON object a POST carries.
func rpcParams(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, error) {
	params := map[string]json.RawMessage{}
	switch r.Method {
	case http.MethodGet:
		for k, vs := range r.URL.Query() {
			v := vs[len(vs)-1]
			if json.Valid([]byte(v)) {
				params[k] = json.RawMessage(v)
			} else {
				params[k], _ = json.Marshal(v)
			}
		}
	case http.MethodPost:
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(&params); err != nil {
			return nil, fmt.Errorf("the body is not a JSON object of parameters")
		}
	default:
		return nil, fmt.Errorf("method %s is not GET or POST", r.Method)
	}
	return params, nil
}

// status is Switch.GetStatus: the relay and what flows through it, rounded as a Shelly rounds.
func (p plug) status() map[string]any {
	m := p.m
	m.mu.Lock()
	on, watts := m.relay, m.drawNow()
	m.mu.Unlock()
	apower := PlugWatts(watts)
	var current float64
	if on {
		current = math.Round(apower/plugVoltage*1000) / 1000
	}
	return map[string]any{
		"id": 0, "source": "HTTP", "output": on, "apower": apower,
		"voltage": plugVoltage, "freq": 50.0, "current": current,
		"aenergy": map[string]any{
			"total":     math.Round(m.EnergyBetween(m.EnergySince(), m.sim.now())/3.6) / 1000,
			"minute_ts": m.sim.now().Unix(),
		},
		"temperature": map[string]float64{"tC": 35.0, "tF": 95.0},
	}
}

// PlugWatts is a draw as the plug reports it: in tenths of a watt.
func PlugWatts(watts float64) float64 { return math.Round(watts*10) / 10 }

// switchPlug is Switch.Set: the relay goes on or off and the machine with it. It returns whether
// the relay was on. Switching on counts as CommandOn and switching off as CommandForceOff,
// whatever the relay was (a repeated command is counted, as with a BMC); only a change of the
// relay changes the machine: power returning boots it, power going cuts it off at once.
func (m *Machine) switchPlug(on bool) (wasOn bool) {
	m.mu.Lock()
	wasOn = m.relay
	cmd := CommandForceOff
	if on {
		cmd = CommandOn
	}
	m.record(cmd)
	changed := false
	switch {
	case on && !wasOn:
		m.relay = true
		if m.phase == phaseOff {
			m.enter(phaseBooting, m.bootTime())
			changed = true
		}
		m.noteDraw()
	case !on && wasOn:
		m.relay = false
		if m.phase != phaseOff {
			m.enter(phaseOff, 0)
			changed = true
		}
		m.noteDraw()
	}
	m.mu.Unlock()
	m.sim.log.Info("plug switched", "machine", m.Name, "on", on, "wasOn", wasOn, "changed", changed)
	if changed {
		go m.syncNode()
	}
	return wasOn
}

// PlugOn reports whether the machine's plug is on; a machine with a BMC has no plug and is always
// powered.
func (m *Machine) PlugOn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.relay
}

// plugError answers as a Shelly does: an RPC error code and message.
func plugError(w http.ResponseWriter, code, rpcCode int, msg string) {
	writeJSON(w, code, map[string]any{"code": rpcCode, "message": msg})
}

// plugQuery is the query of a Switch.Set call.
func plugQuery(on bool) string { return "id=0&on=" + strconv.FormatBool(on) }
