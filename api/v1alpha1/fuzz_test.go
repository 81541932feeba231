package v1alpha1_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// machineObject is a Machine as a user's file may have it: any string in the fields a human
// types, and online as the boolean it must be, or as a string someone typed ("on", "yes").
func machineObject(mac, address, bootTimeout, hostKey, online string, onlineBool uint8) *unstructured.Unstructured {
	var on any = online
	switch onlineBool % 4 {
	case 1:
		on = true
	case 2:
		on = false
	}
	spec := map[string]any{
		"group":  "workers",
		"online": on,
		"power": map[string]any{
			"start": map[string]any{"wakeOnLAN": map[string]any{"mac": mac}},
			"stop": map[string]any{"ssh": map[string]any{
				"address": address, "user": "root", "hostKey": hostKey,
				"keySecretRef": map[string]any{"name": "machine-ssh"},
			}},
			"status": map[string]any{"ipmi": map[string]any{
				"address": address, "credentialsSecretRef": map[string]any{"name": "bmc"},
				"gracefulShutdownTimeout": bootTimeout,
			}},
		},
		"bootTimeout": bootTimeout,
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": infrav1.GroupVersion.String(), "kind": "Machine", "spec": spec,
	}}
	u.SetNamespace("default")
	u.SetName("fuzz-machine")
	return u
}

func groupObject(minSize, maxSize int64, unneeded, threshold string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": infrav1.GroupVersion.String(), "kind": "Group",
		"spec": map[string]any{
			"minSize": minSize, "maxSize": maxSize,
			"autoscalingOptions": map[string]any{"scaleDownUnneededTime": unneeded, "scaleDownUtilizationThreshold": threshold},
		},
	}}
	u.SetNamespace("default")
	u.SetName("fuzz-group")
	return u
}

// checkDryRun submits u with a dry-run create. The apiserver must accept it, or reject it as
// Invalid (422) with a cause that names a spec field: never a server error. An accepted object
// must decode into the Go type the controllers read (its durations and quantities parse), and
// defaulting must be idempotent: the defaulted object, submitted again, comes back unchanged.
// It reports whether the object was accepted.
func checkDryRun(t *testing.T, u *unstructured.Unstructured, typed client.Object) bool {
	t.Helper()
	ctx := context.Background()
	err := env.Client.Create(ctx, u, client.DryRunAll)
	if err != nil {
		var status apierrors.APIStatus
		if !errors.As(err, &status) || !apierrors.IsInvalid(err) {
			t.Fatalf("rejected without an Invalid status: %v", err)
		}
		// The apiserver adds causes of its own without a field ("some validation rules were
		// not checked ..."); at least one cause must point at the spec field to fix.
		named := false
		for _, c := range status.Status().Details.Causes {
			named = named || strings.HasPrefix(c.Field, "spec") || strings.Contains(c.Message, "spec.")
		}
		if !named {
			t.Fatalf("rejection names no spec field: %v", err)
		}
		return false
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, typed); err != nil {
		t.Fatalf("accepted object does not decode into %T: %v\n%s", typed, err, data)
	}
	again := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(u.Object)}
	again.SetResourceVersion("")
	again.SetUID("")
	again.SetCreationTimestamp(metav1.Time{})
	again.SetManagedFields(nil)
	if err := env.Client.Create(ctx, again, client.DryRunAll); err != nil {
		t.Fatalf("the defaulted object is rejected when submitted again: %v", err)
	}
	if !reflect.DeepEqual(again.Object["spec"], u.Object["spec"]) {
		t.Fatalf("defaulting is not idempotent:\nfirst  %v\nsecond %v", u.Object["spec"], again.Object["spec"])
	}
	return true
}

// valid keeps inputs the JSON encoding can carry: a user's YAML file cannot hold other bytes.
func valid(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// FuzzMachineValidation submits Machines with arbitrary MACs, addresses, durations, host keys and
// online values to the real apiserver's validation and defaulting (dry run).
func FuzzMachineValidation(f *testing.F) {
	for _, s := range []struct {
		mac, addr, dur, hostKey, online string
		onlineBool                      uint8
	}{
		{"aa:bb:cc:dd:ee:01", "192.0.2.10", "90s", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTestsOnly", "off", 0},
		{"AA-BB-CC-DD-EE-FF", "machine.lan", "10m", "ssh-ed25519 AAAA", "on", 0},
		{"aa:bb:cc:dd:ee", "192.0.2.10", "90s", "k", "on", 0},
		{"aa:bb:cc:dd:ee:ff\n", "192.0.2.10", "90s", "k", "on", 0},
		{"aa:bb:cc:dd:ee:01", "", "90s", "k", "off", 1},
		{"aa:bb:cc:dd:ee:01", "h", "90s", "k", "off", 2},
		{"aa:bb:cc:dd:ee:01", "h", "0s", "k", "standby", 0},
		{"aa:bb:cc:dd:ee:01", "h", "-5m", "k", "", 0},
		{"aa:bb:cc:dd:ee:01", "h", "1d", "k", "off", 0},
		{"aa:bb:cc:dd:ee:01", "h", "1h1h", "k", "off", 0},
		{"aa:bb:cc:dd:ee:01", "h", "9999999999h", "k", "off", 0},
		{"aa:bb:cc:dd:ee:01", "h", ".5s", "", "off", 0},
		{"aa:bb:cc:dd:ee:01", strings.Repeat("a", 254), "1µs", "k", "off", 0},
	} {
		f.Add(s.mac, s.addr, s.dur, s.hostKey, s.online, s.onlineBool)
	}
	f.Fuzz(func(t *testing.T, mac, address, duration, hostKey, online string, onlineBool uint8) {
		if !valid(mac, address, duration, hostKey, online) {
			return
		}
		if checkDryRun(t, machineObject(mac, address, duration, hostKey, online, onlineBool), &infrav1.Machine{}) {
			// The Wake-on-LAN driver parses the MAC with net.ParseMAC: an accepted MAC that
			// it refuses would only fail at the first power-on.
			if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 {
				t.Fatalf("MAC %q accepted by the API, refused by the Wake-on-LAN driver: %v", mac, err)
			}
		}
	})
}

// FuzzGroupValidation submits Groups with arbitrary sizes (beyond int32 too) and autoscaling
// options.
func FuzzGroupValidation(f *testing.F) {
	f.Add(int64(0), int64(4), "5m", "0.5")
	f.Add(int64(3), int64(2), "5m", "0.5")
	f.Add(int64(-1), int64(0), "-5m", "1.5")
	f.Add(int64(0), int64(1)<<31, "0s", "")
	f.Add(int64(-1)<<31, int64(1)<<40, "1d", "0.")
	f.Add(int64(2), int64(2), "1h30m", "1")
	f.Fuzz(func(t *testing.T, minSize, maxSize int64, unneeded, threshold string) {
		if !valid(unneeded, threshold) {
			return
		}
		checkDryRun(t, groupObject(minSize, maxSize, unneeded, threshold), &infrav1.Group{})
	})
}
