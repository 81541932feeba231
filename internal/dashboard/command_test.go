package dashboard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/types"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
)

func TestHostMustNameTheAddressServed(t *testing.T) {
	for _, c := range []struct {
		local, host string
		ok          bool
	}{
		{"127.0.0.1:8089", "127.0.0.1:8089", true},
		{"127.0.0.1:8089", "localhost:8089", true},
		{"127.0.0.1:8089", "LOCALHOST:8089", true},
		{"[::1]:8089", "[::1]:8089", true},
		{"[::1]:8089", "localhost:8089", true},
		{"127.0.0.1:80", "127.0.0.1", true},
		{"192.168.1.5:8089", "192.168.1.5:8089", true},
		// A rebound name, another port, another address, localhost on a remote address.
		{"127.0.0.1:8089", "attacker.example:8089", false},
		{"127.0.0.1:8089", "127.0.0.1:9999", false},
		{"127.0.0.1:8089", "127.0.0.2:8089", false},
		{"192.168.1.5:8089", "localhost:8089", false},
		{"127.0.0.1:8089", "", false},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.local)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequestWithContext(context.WithValue(context.Background(), http.LocalAddrContextKey, addr), http.MethodGet, "/", nil)
		r.Host = c.host
		if got := hostAllowed(r); got != c.ok {
			t.Errorf("Host %q on %s: allowed %t, want %t", c.host, c.local, got, c.ok)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if hostAllowed(r) {
		t.Error("a request without a local address is allowed")
	}
}

func TestListenAddressIsLoopbackUnlessAllowed(t *testing.T) {
	for _, c := range []struct {
		address     string
		allowRemote bool
		remote      bool
		err         string
	}{
		{"127.0.0.1:8089", false, false, ""},
		{"localhost:0", false, false, ""},
		{"[::1]:8089", false, false, ""},
		{"0.0.0.0:8089", false, true, "not a loopback address"},
		{"192.168.1.5:8089", false, true, "--allow-remote"},
		{"192.168.1.5:8089", true, true, ""},
		{"dashboard.lan:8089", true, false, "a host name could resolve anywhere"},
		{"127.0.0.1", false, false, "IP:PORT"},
	} {
		remote, err := checkAddress(c.address, c.allowRemote)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.address, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, cli.ErrUsage)):
			t.Errorf("%s: error %v, want a usage error saying %q", c.address, err, c.err)
		case remote != c.remote:
			t.Errorf("%s: remote %t, want %t", c.address, remote, c.remote)
		}
	}
}

func TestCAStatusConfigMapName(t *testing.T) {
	if n, err := parseConfigMapName("kube-system/cluster-autoscaler-status"); err != nil || n.Namespace != "kube-system" || n.Name != "cluster-autoscaler-status" {
		t.Errorf("kube-system/cluster-autoscaler-status: %v, %v", n, err)
	}
	if n, err := parseConfigMapName(""); err != nil || n.Name != "" {
		t.Errorf("empty: %v, %v", n, err)
	}
	for _, bad := range []string{"cluster-autoscaler-status", "/name", "ns/", "a/b/c"} {
		if _, err := parseConfigMapName(bad); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
	if _, err := New(Options{Client: env.Client, CAStatus: types.NamespacedName{Namespace: "Kube_System", Name: "x"}}); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("a bad namespace: %v", err)
	}
	if _, err := New(Options{Client: env.Client, CAStatus: types.NamespacedName{Namespace: "kube-system"}}); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("no name: %v", err)
	}
}

// The gRPC flags keep cli.GRPC's meaning under the grpc- prefix, and only given ones make the
// dashboard ask the server.
func TestGRPCFlagsArePrefixed(t *testing.T) {
	var g cli.GRPC
	fs := pflag.NewFlagSet("dashboard", pflag.ContinueOnError)
	fs.String("address", DefaultAddress, "")
	addGRPCFlags(&g, fs)
	for _, name := range []string{"grpc-address", "grpc-cert", "grpc-key", "grpc-cacert", "grpc-insecure", "grpc-timeout"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no --%s", name)
		}
	}
	if err := fs.Parse([]string{"--address", "127.0.0.1:9000"}); err != nil {
		t.Fatal(err)
	}
	if grpcAsked(fs) {
		t.Error("--address alone asks the gRPC server")
	}
	if err := fs.Parse([]string{"--grpc-insecure", "--grpc-timeout", "2s"}); err != nil {
		t.Fatal(err)
	}
	if !grpcAsked(fs) || g.Timeout().String() != "2s" {
		t.Errorf("asked %t, timeout %s", grpcAsked(fs), g.Timeout())
	}
}
