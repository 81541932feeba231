package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) { env = e })
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), &cli.Env{Out: &out, Err: &errOut}, args)
	return out.String(), errOut.String(), err
}

func machine(name string) *infrav1.Machine {
	return &infrav1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: infrav1.MachineSpec{Group: "workers", Power: &infrav1.PowerSpec{
			Start: &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: "aa:bb:cc:dd:ee:01"}},
			Stop:  &infrav1.PowerDriver{IPMI: &infrav1.IPMIDriver{Address: "127.0.0.1", CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}}},
		}},
	}
}

func TestStatusAndPower(t *testing.T) {
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "workers"}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"w1", "w2"} {
		if err := env.Client.Create(ctx, machine(n)); err != nil {
			t.Fatal(err)
		}
	}
	w1 := machine("w1")
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(w1), w1); err != nil {
		t.Fatal(err)
	}
	w1.Status.Progress = infrav1.ProgressFailed
	w1.Status.PowerState = infrav1.PoweredOff
	w1.Status.LastError = "power on failed after 3 attempts: BootTimeout"
	if err := env.Client.Status().Update(ctx, w1); err != nil {
		t.Fatal(err)
	}

	out, _, err := run(t, "power", "on", "w2", "--kubeconfig", kubeconfig, "-n", "default")
	if err != nil || !strings.Contains(out, "Machine default/w2: online set to true") {
		t.Fatalf("power on: %q %v", out, err)
	}
	out, _, err = run(t, "power", "on", "w2", "--kubeconfig", kubeconfig, "-n", "default")
	if err != nil || !strings.Contains(out, "online is already true") {
		t.Fatalf("power on again: %q %v", out, err)
	}
	got := machine("w2")
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(got), got); err != nil || !got.Spec.Online {
		t.Fatalf("w2 online %t (%v)", got.Spec.Online, err)
	}

	out, _, err = run(t, "status", "--kubeconfig", kubeconfig, "-n", "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GROUP", "workers", "MACHINE", "ONLINE", "POWER", "PROGRESS", "LAST ERROR", "w1", "PoweredOff", "Failed", "BootTimeout", "w2", "true"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status table lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "status", "--kubeconfig", kubeconfig, "-n", "default", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st cli.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if len(st.Machines) != 2 || !st.Machines[1].Online || st.Machines[0].Online || st.Machines[0].Power != "PoweredOff" || st.Machines[0].Progress != "Failed" {
		t.Fatalf("status json: %+v", st)
	}

	if _, _, err := run(t, "power", "standby", "w1", "--kubeconfig", kubeconfig); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("a bad power state: %v", err)
	}
	if _, _, err := run(t, "power", "on", "missing", "--kubeconfig", kubeconfig, "-n", "default"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("powering a missing machine: %v", err)
	}
	if _, _, err := run(t, "frobnicate"); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("unknown command: %v", err)
	}
}
