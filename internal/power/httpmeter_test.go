package power

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// meteredPlug answers each path with a fixed JSON or text body, wants the plug token on every
// request, and records each request with the connection it came on.
type meteredPlug struct {
	bodies map[string]string

	mu       sync.Mutex
	requests []meteredRequest
}

type meteredRequest struct {
	path, remote, authorization string
}

func (p *meteredPlug) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests = append(p.requests, meteredRequest{r.URL.Path, r.RemoteAddr, r.Header.Get("Authorization")})
	p.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+plugToken {
		http.Error(w, `{"message":"401: Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	body, ok := p.bodies[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = fmt.Fprint(w, body)
}

func (p *meteredPlug) seen() []meteredRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]meteredRequest(nil), p.requests...)
}

func (p *meteredPlug) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = nil
}

// statusSlot reads url with the plug token, on when pattern matches, the draw where w says.
func statusSlot(url, pattern string, w *infrav1.HTTPWatts) Slot {
	s := httpSlot(url)
	s.HTTP.PoweredOnPattern = pattern
	s.HTTP.Watts = w
	return s
}

func wantWatts(t *testing.T, r Reading, err error, state infrav1.PowerState, want *float64) {
	t.Helper()
	if err != nil || r.State != state {
		t.Fatalf("read: %+v, %v; want %s", r, err, state)
	}
	switch {
	case want == nil && r.Watts != nil:
		t.Fatalf("read %v W, want no reading", *r.Watts)
	case want != nil && (r.Watts == nil || *r.Watts != *want):
		got := "none"
		if r.Watts != nil {
			got = fmt.Sprint(*r.Watts)
		}
		t.Fatalf("read %s W, want %v", got, *want)
	}
}

func watts(w float64) *float64 { return &w }

// Each way of finding the draw in a plug's answer, each in the one request that also reads the
// state: the presets for Tasmota (Status 0) and Shelly Gen2 (Switch.GetStatus), a JSON path into
// a Shelly Gen1 /status, a pattern over a text page.
func TestHTTPReadsDrawFromStatusResponse(t *testing.T) {
	t.Parallel()
	plug := &meteredPlug{bodies: map[string]string{
		"/tasmota": `{"Status":{"Module":0,"DeviceName":"rack-plug","Power":"1"},"StatusSTS":{"POWER":"ON"},` +
			`"StatusSNS":{"Time":"2025-03-01T12:00:00","ENERGY":{"Total":12.345,"Yesterday":0.5,"Today":0.25,"Power":63.7,"ApparentPower":70,"Voltage":231,"Current":0.303}}}`,
		"/shelly2": `{"id":0,"source":"HTTP","output":true,"apower":45.3,"voltage":230.1,"current":0.197,"aenergy":{"total":1234.5}}`,
		"/shelly1": `{"relays":[{"ison":false}],"meters":[{"power":1.25,"is_valid":true},{"power":9}]}`,
		"/text":    "relay: on\npower: 17.25 W\nuptime: 3d\n",
	}}
	srv := httptest.NewServer(plug)
	defer srv.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name, path, pattern string
		w                   *infrav1.HTTPWatts
		state               infrav1.PowerState
		want                *float64
	}{
		{"Tasmota preset", "/tasmota", `"POWER":"ON"`, &infrav1.HTTPWatts{Preset: infrav1.WattsTasmota}, infrav1.PoweredOn, watts(63.7)},
		{"ShellyGen2 preset", "/shelly2", `"output":\s*true`, &infrav1.HTTPWatts{Preset: infrav1.WattsShellyGen2}, infrav1.PoweredOn, watts(45.3)},
		{"JSON path with an index", "/shelly1", `"ison":\s*true`, &infrav1.HTTPWatts{JSONPath: "meters.0.power"}, infrav1.PoweredOff, watts(1.25)},
		{"JSON path to the second meter", "/shelly1", `"ison":\s*true`, &infrav1.HTTPWatts{JSONPath: "meters.1.power"}, infrav1.PoweredOff, watts(9)},
		{"pattern", "/text", `relay: on`, &infrav1.HTTPWatts{Pattern: `power: ([0-9.]+) W`}, infrav1.PoweredOn, watts(17.25)},
		{"no watts configured", "/shelly2", `"output":\s*true`, nil, infrav1.PoweredOn, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plug.reset()
			slot := statusSlot(srv.URL+tc.path, tc.pattern, tc.w)
			r, err := HTTP{}.Read(ctx, request(ActionStatus, slot, httpSecrets()))
			wantWatts(t, r, err, tc.state, tc.want)
			if n := len(plug.seen()); n != 1 {
				t.Fatalf("a read sent %d requests, want 1", n)
			}
			if st, err := (HTTP{}).Status(ctx, request(ActionStatus, slot, httpSecrets())); err != nil || st != tc.state {
				t.Fatalf("status: %v, %v", st, err)
			}
		})
	}
}

// Home Assistant keeps the switch and its power sensor apart: the draw is a second GET of
// watts.url, with the same token, on the same connection, and its state is a string.
func TestHTTPReadsDrawFromItsOwnURL(t *testing.T) {
	t.Parallel()
	plug := &meteredPlug{bodies: map[string]string{
		"/api/states/switch.rack":        `{"entity_id":"switch.rack","state":"on","attributes":{"friendly_name":"Rack"}}`,
		"/api/states/sensor.rack_power":  `{"entity_id":"sensor.rack_power","state":"87.3","attributes":{"unit_of_measurement":"W","device_class":"power"}}`,
		"/api/states/sensor.gone":        `{"entity_id":"sensor.gone","state":"unavailable","attributes":{}}`,
		"/api/states/sensor.negative":    `{"entity_id":"sensor.negative","state":"-3.5"}`,
		"/api/states/sensor.not-a-state": `{"entity_id":"sensor.not-a-state"}`,
	}}
	srv := httptest.NewServer(plug)
	defer srv.Close()
	ctx := context.Background()
	read := func(sensor string) (Reading, error) {
		slot := statusSlot(srv.URL+"/api/states/switch.rack", `"state":\s*"on"`,
			&infrav1.HTTPWatts{Preset: infrav1.WattsHomeAssistant, URL: srv.URL + "/api/states/" + sensor})
		return HTTP{}.Read(ctx, request(ActionStatus, slot, httpSecrets()))
	}

	r, err := read("sensor.rack_power")
	wantWatts(t, r, err, infrav1.PoweredOn, watts(87.3))
	seen := plug.seen()
	if len(seen) != 2 || seen[0].path != "/api/states/switch.rack" || seen[1].path != "/api/states/sensor.rack_power" {
		t.Fatalf("requests: %+v; want the switch, then the sensor", seen)
	}
	if seen[1].authorization != "Bearer "+plugToken {
		t.Fatal("the draw's request went without the headers Secret")
	}
	if seen[0].remote != seen[1].remote {
		t.Fatalf("the draw's request came on another connection (%s, then %s)", seen[0].remote, seen[1].remote)
	}

	// A sensor that is unavailable, negative, missing or unknown is no reading, and no error.
	for _, sensor := range []string{"sensor.gone", "sensor.negative", "sensor.not-a-state", "sensor.unknown"} {
		r, err := read(sensor)
		wantWatts(t, r, err, infrav1.PoweredOn, nil)
	}
}

// A watts.url the driver must not or cannot follow is no reading: the state stands, nothing is
// followed or reached, and nothing secret is said anywhere.
func TestHTTPDrawURLFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var reached []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached = append(reached, r.URL.Path)
		mu.Unlock()
		_, _ = fmt.Fprint(w, `{"state":"50"}`)
	}))
	defer elsewhere.Close()
	plug := &meteredPlug{bodies: map[string]string{"/status": `{"output":true}`}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, elsewhere.URL+"/stolen?token="+r.Header.Get("Authorization"), http.StatusFound)
			return
		}
		plug.ServeHTTP(w, r)
	}))
	defer srv.Close()

	// A second loopback address stands for a part of the network the policy denies.
	denied, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	deniedSrv := &httptest.Server{Listener: denied, Config: &http.Server{Handler: elsewhere.Config.Handler, ReadHeaderTimeout: time.Second}}
	deniedSrv.Start()
	defer deniedSrv.Close()
	policy, err := ParseEgressPolicy("deny=127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	for _, tc := range []struct{ name, url string }{
		{"redirect", srv.URL + "/moved"},
		{"not found", srv.URL + "/nothing"},
		{"refused by the egress policy", deniedSrv.URL + "/sensor"},
		{"nothing listening", fmt.Sprintf("http://127.0.0.1:%d/sensor", freeTCPPort(t))},
		{"not a URL", "ftp://plug/sensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slot := statusSlot(srv.URL+"/status", `"output":true`, &infrav1.HTTPWatts{Preset: infrav1.WattsHomeAssistant, URL: tc.url})
			r, err := HTTP{Egress: &policy}.Read(ctx, request(ActionStatus, slot, httpSecrets()))
			wantWatts(t, r, err, infrav1.PoweredOn, nil)
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reached) != 0 {
		t.Fatalf("a redirect or a denied address was reached: %v", reached)
	}
}

// What a response may hold where the draw should be: only a finite number from 0 up is one.
func TestWattsInResponse(t *testing.T) {
	t.Parallel()
	path := func(p string) *infrav1.HTTPWatts { return &infrav1.HTTPWatts{JSONPath: p} }
	pattern := func(p string) *infrav1.HTTPWatts { return &infrav1.HTTPWatts{Pattern: p} }
	for _, tc := range []struct {
		w    *infrav1.HTTPWatts
		body string
		want *float64
	}{
		{path("p"), `{"p": 12}`, watts(12)},
		{path("p"), `{"p": " 12.5 "}`, watts(12.5)},
		{path("p"), `{"p": 0}`, watts(0)},
		{path("p"), `{"p": "-0"}`, watts(0)},
		{path("p"), `{"p": 1e3}`, watts(1000)},
		{path("a.b.2.c"), `{"a": {"b": [0, 1, {"c": 7}]}}`, watts(7)},
		{path("a.0"), `{"a": {"0": 3}}`, watts(3)},
		{path("p"), `{"p": -1}`, nil},
		{path("p"), `{"p": "NaN"}`, nil},
		{path("p"), `{"p": "Infinity"}`, nil},
		{path("p"), `{"p": "-Inf"}`, nil},
		{path("p"), `{"p": 1e400}`, nil},
		{path("p"), `{"p": 250000}`, nil},
		{path("p"), `{"p": "12 W"}`, nil},
		{path("p"), `{"p": true}`, nil},
		{path("p"), `{"p": null}`, nil},
		{path("p"), `{"p": {"value": 5}}`, nil},
		{path("q"), `{"p": 5}`, nil},
		{path("a.3"), `{"a": [1, 2]}`, nil},
		{path("a.-1"), `{"a": [1, 2]}`, nil},
		{path("a.x"), `{"a": [1, 2]}`, nil},
		{path("p.q"), `{"p": 5}`, nil},
		{path("p"), `not json`, nil},
		{path("p"), ``, nil},
		{pattern(`W=(\d+)`), `V=230 W=42`, watts(42)},
		{pattern(`W=(\d+)`), `V=230`, nil},
		{pattern(`W=\d+`), `W=42`, nil},
		{pattern(`W=(\d+`), `W=42`, nil},
		{pattern(`W=(-?\d+)`), `W=-42`, nil},
		{&infrav1.HTTPWatts{Preset: "Sonoff"}, `{"power": 5}`, nil},
		{&infrav1.HTTPWatts{Preset: infrav1.WattsTasmota}, `{"StatusSNS":{"ENERGY":{"Power":[12,34]}}}`, nil},
		{&infrav1.HTTPWatts{Preset: infrav1.WattsHomeAssistant}, `{"state":"unknown"}`, nil},
		{nil, `{"apower": 5}`, nil},
	} {
		got := wattsIn(tc.w, []byte(tc.body))
		switch {
		case (got == nil) != (tc.want == nil):
			t.Errorf("%+v in %q: got %v, want %v", tc.w, tc.body, got, tc.want)
		case got != nil && (*got != *tc.want || math.Signbit(*got)):
			t.Errorf("%+v in %q: got %v, want %v", tc.w, tc.body, *got, *tc.want)
		}
	}
}
