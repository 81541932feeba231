package power

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
)

// chassisBMC is fakeBMC, whose systems link to no chassis, with a Chassis collection and
// whatever chassis resources a test gives it: path -> handler. It counts the requests per path.
type chassisBMC struct {
	*fakeBMC
	resources map[string]http.HandlerFunc

	mu    sync.Mutex
	paths map[string]int
}

func newChassisBMC(resources map[string]http.HandlerFunc) *chassisBMC {
	return &chassisBMC{fakeBMC: newFakeBMC(system("1", "On")), resources: resources, paths: map[string]int{}}
}

func (b *chassisBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	b.mu.Lock()
	b.paths[r.Method+" "+p]++
	b.mu.Unlock()
	if h, ok := b.resources[p]; ok {
		if r.Header.Get("X-Auth-Token") == "" {
			redfishError(w, http.StatusUnauthorized, "NoValidSession", "There is no valid session established with the implementation.")
			return
		}
		h(w, r)
		return
	}
	b.fakeBMC.ServeHTTP(w, r)
}

func (b *chassisBMC) got() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	paths := b.paths
	b.paths = map[string]int{}
	return paths
}

// answer serves a fixed JSON value.
func answer(v any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, v) }
}

func chassisCollection(members ...string) http.HandlerFunc {
	var list []map[string]string
	for _, m := range members {
		list = append(list, map[string]string{"@odata.id": m})
	}
	return answer(map[string]any{"@odata.id": "/redfish/v1/Chassis", "Members@odata.count": len(list), "Members": list})
}

// chassisWith is a chassis resource at /redfish/v1/Chassis/1 with the given links.
func chassisWith(links map[string]string) http.HandlerFunc {
	c := map[string]any{"@odata.id": "/redfish/v1/Chassis/1", "Id": "1", "Name": "Chassis"}
	for k, v := range links {
		c[k] = map[string]string{"@odata.id": v}
	}
	return answer(c)
}

func readRedfish(t *testing.T, srv *httptest.Server) (Reading, error) {
	t.Helper()
	return Redfish{}.Read(context.Background(), request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
}

// A system without Links.Chassis: the chassis is the Chassis collection's only member. Null
// readings are skipped for the first that has one, and a reading may come as a string.
func TestRedfishReadFindsTheOnlyChassis(t *testing.T) {
	t.Parallel()
	bmc := newChassisBMC(map[string]http.HandlerFunc{
		"/redfish/v1/Chassis":   chassisCollection("/redfish/v1/Chassis/1"),
		"/redfish/v1/Chassis/1": chassisWith(map[string]string{"Power": "/redfish/v1/Chassis/1/Power"}),
		"/redfish/v1/Chassis/1/Power": answer(map[string]any{"PowerControl": []map[string]any{
			{"MemberId": "0", "PowerConsumedWatts": nil},
			{"MemberId": "1", "PowerConsumedWatts": "131.5"},
			{"MemberId": "2", "PowerConsumedWatts": 99},
		}}),
	})
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	r, err := readRedfish(t, srv)
	wantWatts(t, r, err, infrav1.PoweredOn, watts(131.5))
	paths := bmc.got()
	for _, p := range []string{"GET /redfish/v1/Chassis", "GET /redfish/v1/Chassis/1", "GET /redfish/v1/Chassis/1/Power"} {
		if paths[p] != 1 {
			t.Fatalf("want %s once: %v", p, paths)
		}
	}
	made, closed, _, _ := bmc.counts()
	if made != closed {
		t.Fatalf("sessions made %d, closed %d", made, closed)
	}
}

// Several chassis and no link from the system: which one is the machine's is unknown, so there
// is no reading, and no chassis is read to find out.
func TestRedfishReadDoesNotGuessTheChassis(t *testing.T) {
	t.Parallel()
	bmc := newChassisBMC(map[string]http.HandlerFunc{
		"/redfish/v1/Chassis":   chassisCollection("/redfish/v1/Chassis/1", "/redfish/v1/Chassis/2", "/redfish/v1/Chassis/3"),
		"/redfish/v1/Chassis/1": chassisWith(map[string]string{"Power": "/redfish/v1/Chassis/1/Power"}),
	})
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	r, err := readRedfish(t, srv)
	wantWatts(t, r, err, infrav1.PoweredOn, nil)
	for p := range bmc.got() {
		if strings.HasPrefix(p, "GET /redfish/v1/Chassis/") {
			t.Fatalf("a chassis was read: %s", p)
		}
	}
}

// Each way a chassis' readings can be missing, broken or hostile: no reading, the state stands,
// nothing the BMC points elsewhere is reached.
func TestRedfishReadWithoutUsableReading(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"PowerControl": []map[string]any{{"PowerConsumedWatts": 50}}})
	}))
	defer other.Close()
	power := func(h http.HandlerFunc) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{
			"/redfish/v1/Chassis":         chassisCollection("/redfish/v1/Chassis/1"),
			"/redfish/v1/Chassis/1":       chassisWith(map[string]string{"Power": "/redfish/v1/Chassis/1/Power"}),
			"/redfish/v1/Chassis/1/Power": h,
		}
	}
	huge := strings.Repeat(`{"MemberId":"x","PowerConsumedWatts":null},`, 80000)
	for _, tc := range []struct {
		name      string
		resources map[string]http.HandlerFunc
	}{
		{"no chassis at all", nil},
		{"a chassis without readings", map[string]http.HandlerFunc{
			"/redfish/v1/Chassis":   chassisCollection("/redfish/v1/Chassis/1"),
			"/redfish/v1/Chassis/1": chassisWith(nil),
		}},
		{"a null reading", power(answer(map[string]any{"PowerControl": []map[string]any{{"PowerConsumedWatts": nil}}}))},
		{"a negative reading", power(answer(map[string]any{"PowerControl": []map[string]any{{"PowerConsumedWatts": -40}}}))},
		{"a reading that is no number", power(answer(map[string]any{"PowerControl": []map[string]any{{"PowerConsumedWatts": "lots"}}}))},
		{"PowerControl that is no list", power(answer(map[string]any{"PowerControl": 5}))},
		{"an error", power(func(w http.ResponseWriter, _ *http.Request) {
			redfishError(w, http.StatusInternalServerError, "InternalError", "The sensor failed.")
		})},
		{"a redirect", power(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/redfish/v1/Chassis/1/Power", http.StatusFound)
		})},
		{"a body over the size limit", power(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"PowerControl":[` + huge + `{"PowerConsumedWatts":50}]}`))
		})},
		{"a link to another host", map[string]http.HandlerFunc{
			"/redfish/v1/Chassis":   chassisCollection("/redfish/v1/Chassis/1"),
			"/redfish/v1/Chassis/1": chassisWith(map[string]string{"Power": other.URL + "/redfish/v1/Chassis/1/Power"}),
		}},
		{"a chassis on another host", map[string]http.HandlerFunc{
			"/redfish/v1/Chassis": chassisCollection(other.URL + "/redfish/v1/Chassis/1"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(newChassisBMC(tc.resources))
			defer srv.Close()
			r, err := readRedfish(t, srv)
			wantWatts(t, r, err, infrav1.PoweredOn, nil)
		})
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("another host got %d requests", n)
	}
}

// A chassis whose Power resource has no reading but whose EnvironmentMetrics has one.
func TestRedfishReadFallsBackToEnvironmentMetrics(t *testing.T) {
	t.Parallel()
	bmc := newChassisBMC(map[string]http.HandlerFunc{
		"/redfish/v1/Chassis": chassisCollection("/redfish/v1/Chassis/1"),
		"/redfish/v1/Chassis/1": chassisWith(map[string]string{
			"Power": "/redfish/v1/Chassis/1/Power", "EnvironmentMetrics": "/redfish/v1/Chassis/1/EnvironmentMetrics",
		}),
		"/redfish/v1/Chassis/1/Power":              answer(map[string]any{"PowerControl": []map[string]any{}}),
		"/redfish/v1/Chassis/1/EnvironmentMetrics": answer(map[string]any{"PowerWatts": map[string]any{"Reading": 99.5, "DataSourceUri": "/redfish/v1/Chassis/1/Sensors/PowerWatts"}}),
	})
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	r, err := readRedfish(t, srv)
	wantWatts(t, r, err, infrav1.PoweredOn, watts(99.5))
	if paths := bmc.got(); paths["GET /redfish/v1/Chassis/1/Power"] != 1 || paths["GET /redfish/v1/Chassis/1/EnvironmentMetrics"] != 1 {
		t.Fatalf("want Power, then EnvironmentMetrics, read once each: %v", paths)
	}
}

// OpenIPMI's ipmi_sim has no DCMI: it answers Get Power Reading with "invalid command". A read
// is then the state without a draw, never an error, and the session stays good for the state.
func TestIPMIReadWithoutDCMI(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	secrets := ipmiSecrets(sim.Username, sim.Password)
	ctx := context.Background()
	slot := ipmiSlot(sim, 10*time.Second)

	r, err := IPMI{}.Read(ctx, request(ActionStatus, slot, secrets))
	wantWatts(t, r, err, infrav1.PoweredOff, nil)
	sim.SetPower(t, true)
	r, err = IPMI{}.Read(ctx, request(ActionStatus, slot, secrets))
	wantWatts(t, r, err, infrav1.PoweredOn, nil)
	if got := strings.Count(sim.ChassisLog(t), "get power"); got != 2 {
		t.Fatalf("the BMC read the chassis power %d times for two reads:\n%s", got, sim.ChassisLog(t))
	}
	if out, err := sim.IPMITool("dcmi", "power", "reading"); err == nil || !strings.Contains(out, "Invalid command") {
		t.Fatalf("ipmi_sim answers DCMI after all (the test no longer proves anything): %v\n%s", err, out)
	}
}
