package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
)

func TestEffective(t *testing.T) {
	ctx := context.Background()
	ns := "eff"
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	groups := []*infrav1.Group{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rack"}, Spec: infrav1.GroupSpec{MachineDefaults: &infrav1.MachineDefaults{
			BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{
				Address: "{name}-bmc.lan", Port: 1623, CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc-credentials"},
			}},
			BootTimeout: &metav1.Duration{Duration: 15 * time.Minute},
			MaxAttempts: ptr.To[int32](5),
		}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bare"}},
	}
	for _, g := range groups {
		if err := env.Client.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	machines := []*infrav1.Machine{
		// Takes the address pattern, the credentials and the boot timeout from the Group, and keeps
		// its own port and shutdown timeout.
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "r1"}, Spec: infrav1.MachineSpec{
			Group: "rack", BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Port: 6230}},
			ShutdownTimeout: &metav1.Duration{Duration: 2 * time.Minute},
		}},
		// Nothing powers it: its Group has no machineDefaults.
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b1"}, Spec: infrav1.MachineSpec{Group: "bare"}},
		// A BMC without address or credentials, here or in the Group.
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b2"}, Spec: infrav1.MachineSpec{
			Group: "bare", BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{}},
		}},
		// Its Group does not exist: the built-in defaults alone apply.
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "o1"}, Spec: infrav1.MachineSpec{
			Group: "missing", BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: "10.0.0.9", CredentialsSecretRef: &infrav1.SecretReference{Name: "o1-bmc"}}},
		}},
	}
	for _, m := range machines {
		if err := env.Client.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("merged", func(t *testing.T) {
		out, errOut, err := run(t, "effective", "r1", "-n", ns, "--kubeconfig", kubeconfig)
		if err != nil || errOut != "" {
			t.Fatalf("effective r1: %v\n%s", err, errOut)
		}
		var got cli.EffectiveMachine
		if err := yaml.UnmarshalStrict([]byte(out), &got); err != nil {
			t.Fatalf("not YAML of a Machine: %v\n%s", err, out)
		}
		if got.Kind != "Machine" || got.APIVersion != infrav1.GroupVersion.String() || got.Metadata.Name != "r1" || got.Metadata.Namespace != ns {
			t.Fatalf("header: %+v", got)
		}
		ipmi := got.Spec.BMC.IPMI
		if ipmi == nil || ipmi.Address != "r1-bmc.lan" || ipmi.Port != 6230 || ipmi.CredentialsSecretRef == nil || ipmi.CredentialsSecretRef.Name != "bmc-credentials" {
			t.Fatalf("bmc not merged over the Group's: %+v\n%s", ipmi, out)
		}
		s := got.Spec
		if s.BootTimeout.Duration != 15*time.Minute || s.ShutdownTimeout.Duration != 2*time.Minute || *s.MaxAttempts != 5 {
			t.Fatalf("timeouts and attempts: boot %v, shutdown %v, attempts %d", s.BootTimeout, s.ShutdownTimeout, *s.MaxAttempts)
		}
		for _, want := range []string{"address: r1-bmc.lan", "bootTimeout: 15m0s", "online: false"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "\nstatus:") || strings.Contains(out, "managedFields") || strings.Contains(out, "resourceVersion") {
			t.Fatalf("output carries more than the merged spec:\n%s", out)
		}

		// The name may come after the flags, and JSON says the same.
		out, _, err = run(t, "effective", "-n", ns, "--kubeconfig", kubeconfig, "-o", "json", "r1")
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON cli.EffectiveMachine
		if err := json.Unmarshal([]byte(out), &fromJSON); err != nil {
			t.Fatalf("-o json is not JSON: %v\n%s", err, out)
		}
		if fromJSON.Spec.BMC.IPMI.Address != "r1-bmc.lan" || fromJSON.Spec.BootTimeout.Duration != 15*time.Minute {
			t.Fatalf("-o json: %+v", fromJSON.Spec)
		}
	})

	t.Run("built-in defaults without a Group", func(t *testing.T) {
		out, errOut, err := run(t, "effective", "o1", "-n", ns, "--kubeconfig", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(errOut, "Group "+ns+"/missing does not exist") {
			t.Fatalf("no warning about the missing Group: %q", errOut)
		}
		var got cli.EffectiveMachine
		if err := yaml.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		s := got.Spec
		if s.BootTimeout.Duration != infrav1.DefaultBootTimeout || s.ShutdownTimeout.Duration != infrav1.DefaultShutdownTimeout || *s.MaxAttempts != infrav1.DefaultMaxAttempts {
			t.Fatalf("built-in defaults: boot %v, shutdown %v, attempts %d", s.BootTimeout, s.ShutdownTimeout, *s.MaxAttempts)
		}
	})

	t.Run("problems", func(t *testing.T) {
		for name, wants := range map[string][]string{
			"b1": {"nothing powers it on", "nothing powers it off", "machineDefaults in Group bare"},
			"b2": {"bmc.redfish.endpoint is set neither", "bmc.redfish.credentialsSecretRef is set neither"},
		} {
			out, _, err := run(t, "effective", name, "-n", ns, "--kubeconfig", kubeconfig)
			if err == nil || errors.Is(err, cli.ErrUsage) {
				t.Fatalf("%s: want a failure that is not a usage error, got %v", name, err)
			}
			for _, want := range append(wants, "Machine "+ns+"/"+name) {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("%s: error lacks %q: %v", name, want, err)
				}
			}
			// The spec is printed all the same, to show what is there.
			if !strings.Contains(out, "name: "+name) {
				t.Fatalf("%s: no effective spec printed:\n%s", name, out)
			}
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"effective"},
			{"effective", "r1", "r2", "-n", ns, "--kubeconfig", kubeconfig},
			{"effective", "r1", "-o", "table", "-n", ns, "--kubeconfig", kubeconfig},
		} {
			if _, _, err := run(t, args...); !errors.Is(err, cli.ErrUsage) {
				t.Fatalf("%v: want a usage error, got %v", args, err)
			}
		}
		if _, _, err := run(t, "effective", "nope", "-n", ns, "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("a missing Machine: %v", err)
		}
	})
}
