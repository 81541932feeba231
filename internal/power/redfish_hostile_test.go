package power

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The tests of this file serve the driver BMCs that misbehave on purpose: they redirect, answer
// without end, list thousands of systems, or echo the credentials in their errors.

func TestRedfishRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"@odata.id": "/redfish/v1/Systems/1", "Id": "1", "PowerState": "On"})
	}))
	defer elsewhere.Close()

	for _, tc := range []struct {
		name, method, path string
		code               int
	}{
		{"login", http.MethodPost, "/redfish/v1/SessionService/Sessions", http.StatusTemporaryRedirect},
		{"service root", http.MethodGet, "/redfish/v1", http.StatusFound},
		{"systems", http.MethodGet, "/redfish/v1/Systems", http.StatusMovedPermanently},
		{"system", http.MethodGet, "/redfish/v1/Systems/1", http.StatusPermanentRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc := newFakeBMC(system("1", "On"))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == tc.method && strings.TrimSuffix(r.URL.Path, "/") == tc.path {
					http.Redirect(w, r, elsewhere.URL+tc.path+"?session=stolen", tc.code)
					return
				}
				bmc.ServeHTTP(w, r)
			}))
			defer srv.Close()
			_, err := Redfish{}.Status(context.Background(), request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
			msg := wantClass(t, err, ClassConfig, redfishPassword)
			if !strings.Contains(msg, strconv.Itoa(tc.code)) || !strings.Contains(msg, "redirect") {
				t.Fatalf("want the redirect and its status code named: %v", msg)
			}
			if strings.Contains(msg, strings.TrimPrefix(elsewhere.URL, "http://")) || strings.Contains(msg, "stolen") {
				t.Fatalf("the message names where the redirect pointed: %v", msg)
			}
		})
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the host a redirect pointed to got %d requests", n)
	}
}

// hugeBodyBMC is a BMC whose Systems collection never ends: it streams members until the
// client hangs up, and counts the bytes it managed to send.
func hugeBodyBMC(t *testing.T, contentLength bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	bmc := newFakeBMC(system("1", "On"))
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSuffix(r.URL.Path, "/") != "/redfish/v1/Systems" {
			bmc.ServeHTTP(w, r)
			return
		}
		const total = 256 << 20
		if contentLength {
			w.Header().Set("Content-Length", strconv.Itoa(total))
		}
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat(`{"@odata.id":"/redfish/v1/Systems/1"},`, 1000))
		n, _ := w.Write([]byte(`{"Members":[`))
		sent.Add(int64(n))
		for sent.Load() < total-int64(len(chunk)) {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &sent
}

// allocatedDuring returns the bytes allocated on the heap while f ran. The tests that use it do
// not run in parallel with others, so the count is theirs.
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestRedfishOversizedBodyIsRefused(t *testing.T) {
	for _, contentLength := range []bool{false, true} {
		t.Run(fmt.Sprintf("Content-Length %t", contentLength), func(t *testing.T) {
			srv, sent := hugeBodyBMC(t, contentLength)
			var err error
			allocated := allocatedDuring(func() {
				_, err = Redfish{}.Status(context.Background(), request(ActionStatus, redfishSlot(srv.URL, 20*time.Second), redfishSecrets(redfishPassword)))
			})
			msg := wantClass(t, err, ClassBMCError, redfishPassword)
			if !strings.Contains(msg, "/redfish/v1/Systems answered more than") {
				t.Fatalf("want the oversized answer named: %v", msg)
			}
			// The BMC offered 256 MiB. The driver reads 2 MiB of it; what the kernel's socket
			// buffers took on top is the rest of what the BMC could send.
			if allocated > 64<<20 {
				t.Fatalf("the call allocated %d MiB for a body that is refused past %d MiB", allocated>>20, redfishMaxBody>>20)
			}
			if got := sent.Load(); got > 128<<20 {
				t.Fatalf("the BMC sent %d MiB before the driver hung up", got>>20)
			}
		})
	}
}

// manySystemsBMC is fakeBMC with n systems that counts the requests for each path.
type manySystemsBMC struct {
	*fakeBMC
	mu    sync.Mutex
	paths map[string]int
}

func newManySystemsBMC(n int) *manySystemsBMC {
	systems := make([]*fakeSystem, n)
	for i := range systems {
		systems[i] = system(strconv.Itoa(i+1), "Off")
	}
	return &manySystemsBMC{fakeBMC: newFakeBMC(systems...), paths: map[string]int{}}
}

func (b *manySystemsBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.paths[r.Method+" "+strings.TrimSuffix(r.URL.Path, "/")]++
	b.mu.Unlock()
	b.fakeBMC.ServeHTTP(w, r)
}

// got returns the requests per "METHOD /path" and their total, and clears them.
func (b *manySystemsBMC) got() (map[string]int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	paths, total := b.paths, 0
	for _, n := range paths {
		total += n
	}
	b.paths = map[string]int{}
	return paths, total
}

// systemReads counts the GETs of single systems.
func systemReads(paths map[string]int) int {
	n := 0
	for p, c := range paths {
		if strings.HasPrefix(p, "GET /redfish/v1/Systems/") {
			n += c
		}
	}
	return n
}

func TestRedfishTwentyThousandSystems(t *testing.T) {
	bmc := newManySystemsBMC(20000)
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	ctx := context.Background()

	t.Run("no systemID", func(t *testing.T) {
		var err error
		allocated := allocatedDuring(func() {
			_, err = Redfish{}.Status(ctx, request(ActionStatus, redfishSlot(srv.URL, 20*time.Second), redfishSecrets(redfishPassword)))
		})
		msg := wantClass(t, err, ClassConfig, redfishPassword)
		if !strings.Contains(msg, "manages 20000 systems") || !strings.Contains(msg, "set systemID") {
			t.Fatalf("want the count and systemID named: %v", msg)
		}
		paths, total := bmc.got()
		// Service root, login, the collection, logout.
		if reads := systemReads(paths); reads != 0 || total != 4 {
			t.Fatalf("the BMC got %d requests, %d of them for single systems: %v", total, reads, paths)
		}
		// The fake BMC builds the collection (20,000 members, 1 MB of JSON) for the answer, and
		// the driver reads it once.
		if allocated > 64<<20 {
			t.Fatalf("the call allocated %d MiB", allocated>>20)
		}
	})

	t.Run("systemID", func(t *testing.T) {
		slot := redfishSlot(srv.URL, 20*time.Second)
		slot.Redfish.SystemID = "17"
		out, err := Redfish{}.Do(ctx, request(ActionOn, slot, redfishSecrets(redfishPassword)))
		if err != nil || !out.Done {
			t.Fatalf("power on: %+v, %v", out, err)
		}
		paths, _ := bmc.got()
		if paths["GET /redfish/v1/Systems"] != 0 || systemReads(paths) != paths["GET /redfish/v1/Systems/17"] || paths["GET /redfish/v1/Systems/17"] == 0 {
			t.Fatalf("want system 17 read directly and nothing else listed or read: %v", paths)
		}
		if got := bmc.resets("17"); len(got) == 0 {
			t.Fatal("system 17 got no reset")
		}
	})

	t.Run("systemID the BMC does not have", func(t *testing.T) {
		slot := redfishSlot(srv.URL, 20*time.Second)
		slot.Redfish.SystemID = "blade-9"
		_, err := Redfish{}.Status(ctx, request(ActionStatus, slot, redfishSecrets(redfishPassword)))
		msg := wantClass(t, err, ClassConfig, redfishPassword)
		if !strings.Contains(msg, `no system "blade-9"`) || !strings.Contains(msg, "it has 20000") {
			t.Fatalf("want the missing system and the count named: %v", msg)
		}
		if paths, _ := bmc.got(); systemReads(paths) != 1 {
			t.Fatalf("want one read of the named system and no other: %v", paths)
		}
	})
}

func TestRedfishErrorsCarryNoEncodedCredentials(t *testing.T) {
	t.Parallel()
	pair := base64.StdEncoding.EncodeToString([]byte(redfishUser + ":" + redfishPassword))
	bmc := newFakeBMC(system("1", "On"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSuffix(r.URL.Path, "/") == "/redfish/v1/Systems" {
			// A BMC whose error repeats what it was sent, in every encoding it knows.
			redfishError(w, http.StatusInternalServerError, "InternalError", fmt.Sprintf(
				"failed for Authorization: Basic %s, password %s (hex %x), token %s",
				pair, base64.StdEncoding.EncodeToString([]byte(redfishPassword)), redfishPassword, r.Header.Get("X-Auth-Token")))
			return
		}
		bmc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, err := Redfish{}.Status(context.Background(), request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
	msg := wantClass(t, err, ClassBMCError, redfishPassword, pair, base64.StdEncoding.EncodeToString([]byte(redfishPassword)),
		fmt.Sprintf("%x", redfishPassword), "0123456789abcdef")
	if !strings.Contains(msg, "failed for Authorization") {
		t.Fatalf("want the BMC's message, blanked: %v", msg)
	}
}

func TestRedfishSystemsCollectionCounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body  string
		total int
	}{
		{`{"Members":[{"@odata.id":"/redfish/v1/Systems/1"}]}`, 1},
		{`{"Members":[{"@odata.id":"/redfish/v1/Systems/1"}],"Members@odata.count":3}`, 3},
		{`{"Members":[{"@odata.id":"/redfish/v1/Systems/1"}],"Members@odata.nextLink":"/redfish/v1/Systems?$skip=1"}`, 2},
		{`{"Members":[]}`, 0},
		{`{"Members":null}`, 0},
	} {
		members, total, err := parseSystemsCollection([]byte(tc.body))
		if err != nil || total != tc.total || total < len(members) {
			t.Errorf("%s: %d members, total %d, %v; want total %d", tc.body, len(members), total, err, tc.total)
		}
	}
	if _, _, err := parseSystemsCollection([]byte(`{"Members":{}}`)); err == nil {
		t.Error("a collection whose Members is no list was read")
	}
}

// A BMC that lists one system: the collection and that system are read once each.
func TestRedfishOnlySystemIsReadOnce(t *testing.T) {
	t.Parallel()
	bmc := newManySystemsBMC(1)
	srv := httptest.NewServer(bmc)
	defer srv.Close()
	st, err := Redfish{}.Status(context.Background(), request(ActionStatus, redfishSlot(srv.URL, 5*time.Second), redfishSecrets(redfishPassword)))
	if err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status: %v, %v", st, err)
	}
	if paths, _ := bmc.got(); paths["GET /redfish/v1/Systems"] != 1 || systemReads(paths) != 1 {
		t.Fatalf("want the collection and its one system read once each: %v", paths)
	}
}
