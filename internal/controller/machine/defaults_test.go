package machine_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
)

// createBareMachine creates a Machine that says only which Group it belongs to (and, so that
// tests do not share core Nodes, the name its Node registers as).
func createBareMachine(t *testing.T, ns, name, grp string, online bool) *infrav1.Machine {
	t.Helper()
	m := &infrav1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       infrav1.MachineSpec{Group: grp, Online: online, KubernetesNodeName: ns + "-" + name},
	}
	if err := env.Client.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A Machine with nothing but spec.group is powered on and off through its Group's
// machineDefaults.bmc: the address (from the {name} pattern), the port and the credentials
// Secret all reach the real IPMI driver, which ipmi_sim answers.
func TestGroupMachineDefaultsReachTheDriver(t *testing.T) {
	sim := testpeers.StartIPMISim(t)
	ns := newNamespace(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bmc-credentials", Labels: map[string]string{infrav1.LabelCredentials: "true"}},
		Type:       corev1.SecretTypeBasicAuth,
		Data:       map[string][]byte{"username": []byte(sim.Username), "password": []byte(sim.Password)},
	}
	if err := env.Client.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	metrics := power.NewMetrics()
	startManager(t, ns, power.NewRegistry(power.Instrument(power.IPMI{}, metrics)))
	createGroup(t, ns, "workers", func(g *infrav1.Group) {
		g.Spec.MachineDefaults = &infrav1.MachineDefaults{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{
			// The simulator listens on loopback, and "localhost" is the one name that resolves
			// there: the machine below is named so, and {name} must become it.
			Address:              "{name}",
			Port:                 int32(sim.Port),
			CredentialsSecretRef: &infrav1.SecretReference{Name: secret.Name},
		}}}
	})
	n := createBareMachine(t, ns, "localhost", "workers", true)
	kubelet := playKubelet(t, sim, n.Namespace, n.Spec.KubernetesNodeName)

	got := waitProgress(t, n, infrav1.ProgressReady, 30*time.Second)
	if got.Spec.BMC != nil || got.Spec.Power != nil {
		t.Fatalf("the machine's own spec was filled in: %+v", got.Spec)
	}
	if op := got.Status.Operation; op == nil || op.Driver != power.DriverIPMI || op.Attempt != 1 || got.Status.LastError != "" {
		t.Fatalf("status after power-on: %+v (operation %+v)", got.Status, op)
	}
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionTrue, "Running")
	if c := sim.ChassisControls(t); !slices.Equal(c, []string{"set power 1"}) {
		t.Fatalf("want exactly one chassis power-on, the BMC got %q", c)
	}
	wantOps(t, metrics, power.ActionOn, map[string]float64{power.ResultSuccess: 1})

	// Off through the same defaults; the power state is read from the Group's BMC too.
	setDesired(t, n, false)
	got = waitProgress(t, n, infrav1.ProgressOff, 30*time.Second)
	if got.Status.PowerState != infrav1.PoweredOff || got.Status.LastError != "" {
		t.Fatalf("status after power-off: %+v", got.Status)
	}
	if c := sim.ChassisControls(t); !slices.Equal(c, []string{"set power 1", "set power 0"}) {
		t.Fatalf("want one chassis power-on, then one power-off; the BMC got %q", c)
	}
	wantOps(t, metrics, power.ActionOff, map[string]float64{power.ResultSuccess: 1})
	if st := opsByResult(t, metrics, power.ActionStatus); st[power.ResultSuccess] == 0 {
		t.Fatalf("the power state was never read through the Group's BMC: %v", st)
	}
	if seen := kubelet.stop(); !slices.Equal(seen, []infrav1.PowerState{infrav1.PoweredOn, infrav1.PoweredOff}) {
		t.Fatalf("the kubelet saw the chassis power go %v, want on then off", seen)
	}
}

// A Machine whose Group lacks what its BMC needs is refused before any driver runs: Failed with
// reason IncompleteConfig, Stalled, and a message naming the missing field and where to set it.
// Completing the Group's machineDefaults powers it on without anyone touching the Machine.
func TestGroupMachineDefaultsMissingAFieldIsIncompleteConfig(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "incomplete", func(g *infrav1.Group) {
		g.Spec.MachineDefaults = &infrav1.MachineDefaults{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: "{name}-bmc.lan"}}}
	})
	createGroup(t, ns, "bare")
	for _, c := range []struct {
		machine, group, want string
	}{
		{"m1", "incomplete", "bmc.ipmi.credentialsSecretRef is set neither on the machine nor in Group incomplete's machineDefaults.bmc"},
		{"m2", "bare", "nothing powers it on: set spec.bmc or spec.power.start, or machineDefaults in Group bare"},
	} {
		n := createBareMachine(t, ns, c.machine, c.group, true)
		got := waitProgress(t, n, infrav1.ProgressFailed, 10*time.Second)
		st := got.Status
		if st.LastErrorReason != string(power.ClassIncompleteConfig) || !strings.Contains(st.LastError, c.want) || st.Attempts != 1 {
			t.Fatalf("%s: status %q %q after %d attempts; want IncompleteConfig naming %q", c.machine, st.LastErrorReason, st.LastError, st.Attempts, c.want)
		}
		expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, "IncompleteConfig")
		if msg := condition(got, infrav1.ConditionStalled).Message; msg != st.LastError {
			t.Fatalf("%s: Stalled says %q, lastError %q", c.machine, msg, st.LastError)
		}
		expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionFalse, "Failed")
		expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionFalse, "Idle")
		waitEvent(t, n, "Failed")
		if calls := drv.total(c.machine, power.ActionOn); calls != 0 {
			t.Fatalf("%s: the driver was called %d times for a machine that cannot be powered", c.machine, calls)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the groups to count their failed members", func() bool {
		for _, g := range []string{"incomplete", "bare"} {
			if getGroup(t, ns, g).Status.Failed != 1 {
				return false
			}
		}
		return true
	})

	// The Group's defaults are completed; the Machine itself is not touched.
	g := getGroup(t, ns, "incomplete")
	g.Spec.MachineDefaults.BMC.IPMI.CredentialsSecretRef = &infrav1.SecretReference{Name: "bmc"}
	if err := env.Client.Update(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "m1 to be powered on once its Group completes it", func() bool {
		return drv.total("m1", power.ActionOn) > 0
	})
	if calls := drv.total("m2", power.ActionOn); calls != 0 {
		t.Fatalf("m2, still incomplete, was powered %d times", calls)
	}
}
