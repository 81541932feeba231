package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
)

const testNamespace = "homelab"

// fakeSecrets is a SecretReader over a map of Secret name -> data. Missing Secrets and keys give
// the same ClassConfig errors the real reader gives.
type fakeSecrets map[string]map[string][]byte

func (f fakeSecrets) SecretData(_ context.Context, namespace, name string) (map[string][]byte, error) {
	data, ok := f[name]
	if !ok || namespace != testNamespace {
		return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s not found", namespace, name)}
	}
	return data, nil
}

func (f fakeSecrets) SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error) {
	data, err := f.SecretData(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	v, ok := data[key]
	if !ok {
		return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s has no key %q", namespace, name, key)}
	}
	return v, nil
}

// fakeConfigMaps is a ConfigMapReader over a map of ConfigMap name -> data.
type fakeConfigMaps map[string]map[string]string

func (f fakeConfigMaps) ConfigMapValue(_ context.Context, namespace, name, key string) ([]byte, error) {
	data, ok := f[name]
	if !ok || namespace != testNamespace {
		return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("configmap %s/%s not found", namespace, name)}
	}
	v, ok := data[key]
	if !ok {
		return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("configmap %s/%s has no key %q", namespace, name, key)}
	}
	return []byte(v), nil
}

func testMachine() *infrav1.Machine {
	return &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "worker-1"}}
}

func request(action Action, slot Slot, secrets fakeSecrets) Request {
	return Request{Machine: testMachine(), Action: action, Slot: slot, Attempt: 1, Secrets: secrets}
}

// requireBinary finds a peer program or fails the test: a CI machine without it must go red,
// not skip.
func requireBinary(t *testing.T, name string) string {
	t.Helper()
	return testpeers.RequireBinary(t, name)
}

// wantClass fails unless err is an *Error of class want whose message holds none of secrets. It
// returns the message.
func wantClass(t *testing.T, err error, want Class, secrets ...string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got none", want)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("want an *Error of class %s, got %T: %v", want, err, err)
	}
	if pe.Class != want {
		t.Fatalf("want class %s, got %s: %v", want, pe.Class, err)
	}
	noSecretIn(t, err.Error(), secrets...)
	t.Logf("got the expected %s error: %v", want, err)
	return pe.Error()
}

func noSecretIn(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Fatalf("a credential leaked into the error message: %q", text)
		}
	}
}

// freeTCPPort returns a loopback port nothing listens on (closed again before returning).
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// freeUDPPort returns a loopback UDP port nothing listens on (closed again before returning).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	return testpeers.FreeUDPPort(t)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// recordingListener is a TCP listener on loopback that a test checks a refused driver never
// connected to (expectNoConnection).
func recordingListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// expectNoConnection fails unless the first connection l accepts is the test's own probe: a
// driver refused before it dialled left none waiting.
func expectNoConnection(t *testing.T, l net.Listener) {
	t.Helper()
	probe, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = probe.Close() }()
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Close() }()
	if first.RemoteAddr().String() != probe.LocalAddr().String() {
		t.Fatalf("the listener's first connection came from %s, not from the test's probe: the driver connected", first.RemoteAddr())
	}
}
