package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) { env = e })
}

var seq atomic.Int64

// newNamespace creates a namespace of the test's own.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-%d", prefix, time.Now().Unix()%100000, seq.Add(1))}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// served is a dashboard served on a free loopback port the way the command serves it (Serve),
// until the test ends.
type served struct {
	*Server
	url string
}

func serve(t *testing.T, opts Options) *served {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, s, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serving the dashboard: %v", err)
		}
	})
	return &served{Server: s, url: "http://" + ln.Addr().String()}
}

// snapshotNow waits for the dashboard's first snapshot and decodes the latest one.
func (d *served) snapshotNow(t *testing.T) Snapshot {
	t.Helper()
	var snap Snapshot
	testenv.Eventually(t, 30*time.Second, "the dashboard's first snapshot", func() bool {
		code, body := d.request(t, http.MethodGet, "/api/snapshot", nil, "")
		if code != http.StatusOK {
			return false
		}
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			t.Fatalf("decoding the snapshot: %v\n%s", err, body)
		}
		return true
	})
	return snap
}

// request sends a request to the dashboard with headers (Host among them, to play another
// site) and returns the status and body.
func (d *served) request(t *testing.T, method, path string, headers map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
