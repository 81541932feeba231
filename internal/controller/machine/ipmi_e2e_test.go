package machine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
)

// A machine powered through a real BMC, end to end: the reconciler runs the real IPMI driver
// against OpenIPMI's ipmi_sim for power.start, power.stop and (with no power.status) the
// confirmation of the power-off. The test plays only the machine's kubelet, which follows the
// chassis power that ipmitool, an independent client, reads from the same BMC.
func TestIPMIMachineFullCycleAgainstIPMISim(t *testing.T) {
	sim := testpeers.StartIPMISim(t)
	ns := newNamespace(t)
	ctx := context.Background()

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bmc", Labels: map[string]string{infrav1.LabelCredentials: "true"}},
		Data:       map[string][]byte{"username": []byte(sim.Username), "password": []byte(sim.Password)},
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	metrics := power.NewMetrics()
	startManager(t, ns, power.NewRegistry(power.Instrument(power.IPMI{}, metrics)))
	createGroup(t, ns, "workers")
	bmc := func() *infrav1.PowerDriver {
		return &infrav1.PowerDriver{IPMI: &infrav1.IPMIDriver{
			Address: sim.Address, Port: int32(sim.Port), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		}}
	}
	n := createMachine(t, ns, "m1", "workers", false, func(n *infrav1.Machine) {
		n.Spec.Power = &infrav1.PowerSpec{Start: bmc(), Stop: bmc()}
	})
	coreName := n.Spec.KubernetesNodeName
	kubelet := playKubelet(t, sim, n.Namespace, coreName)

	// Off, as desired: adopted without a single power command.
	got := waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionTrue, "PoweredOff")
	if got.Status.PowerState != infrav1.PoweredOff {
		t.Fatalf("status of a machine adopted off: %+v", got.Status)
	}
	if c := sim.ChassisControls(t); len(c) != 0 {
		t.Fatalf("a machine that is off and should be off got chassis commands %q", c)
	}
	if got := sim.Power(t); got != infrav1.PoweredOff {
		t.Fatalf("ipmitool sees the chassis %s before anything happened", got)
	}

	// On: one chassis power-on, the kubelet registers, the machine is Ready.
	setDesired(t, n, true)
	got = waitProgress(t, n, infrav1.ProgressReady, 30*time.Second)
	st := got.Status
	if st.PowerState != infrav1.PoweredOn || st.KubernetesNode != coreName || st.Attempts != 1 ||
		st.ProviderID != "homelab://"+ns+"/m1" || st.LastStartupTime == nil || st.LastError != "" ||
		st.ObservedGeneration != got.Generation || st.Operation == nil || st.Operation.Action != infrav1.PowerActionOn ||
		st.Operation.Driver != power.DriverIPMI || st.Operation.Attempt != 1 {
		t.Fatalf("status after power-on: %+v (operation %+v)", st, st.Operation)
	}
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionTrue, "Running")
	expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionFalse, "Idle")
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionFalse, "AsExpected")
	if got := sim.Power(t); got != infrav1.PoweredOn {
		t.Fatalf("the machine is Ready but ipmitool sees the chassis %s", got)
	}
	if c := sim.ChassisControls(t); !slices.Equal(c, []string{"set power 1"}) {
		t.Fatalf("want exactly one chassis power-on, the BMC got %q", c)
	}
	wantOps(t, metrics, power.ActionOn, map[string]float64{power.ResultSuccess: 1})
	waitEvent(t, n, "PowerOn")
	waitEvent(t, n, "PoweredOn")
	statusBefore := opsByResult(t, metrics, power.ActionStatus)

	// Off: drained (nothing to evict), one forced chassis power-off, confirmed off by the
	// chassis status the IPMI driver reads, the core Node deleted (policy Delete).
	setDesired(t, n, false)
	got = waitProgress(t, n, infrav1.ProgressOff, 30*time.Second)
	st = got.Status
	if st.PowerState != infrav1.PoweredOff || st.KubernetesNode != "" || st.LastShutdownTime == nil ||
		st.LastError != "" || st.Attempts != 1 || st.ObservedGeneration != got.Generation ||
		st.Operation == nil || st.Operation.Action != infrav1.PowerActionOff || st.Operation.Driver != power.DriverIPMI ||
		st.Operation.Attempt != 1 || st.Operation.AttemptStartedAt == nil || !st.Operation.Drain {
		t.Fatalf("status after power-off: %+v (operation %+v)", st, st.Operation)
	}
	expectCondition(t, got, infrav1.ConditionReady, metav1.ConditionTrue, "PoweredOff")
	expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionFalse, "Idle")
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionFalse, "AsExpected")
	if got := sim.Power(t); got != infrav1.PoweredOff {
		t.Fatalf("the machine is Off but ipmitool sees the chassis %s", got)
	}
	if c := sim.ChassisControls(t); !slices.Equal(c, []string{"set power 1", "set power 0"}) {
		t.Fatalf("want one chassis power-on, then one forced power-off; the BMC got %q", c)
	}
	wantOps(t, metrics, power.ActionOff, map[string]float64{power.ResultSuccess: 1})
	// The confirmation: with no power.status the reconciler asks the stop driver's Status, and
	// falls back to the core Node only when that call fails. Every status call succeeded, so
	// the machine was confirmed off by the chassis status the BMC reported.
	statusAfter := opsByResult(t, metrics, power.ActionStatus)
	if statusAfter[power.ResultSuccess] <= statusBefore[power.ResultSuccess] || len(statusAfter) != 1 {
		t.Fatalf("the power-off was not confirmed through a successful IPMI status read: status calls before %v, after %v",
			statusBefore, statusAfter)
	}
	if log := sim.ChassisLog(t); !strings.Contains(log, "get power") {
		t.Fatalf("the BMC was never asked for the chassis power; chassis log:\n%s", log)
	}
	testenv.Eventually(t, 10*time.Second, "the core Node to be deleted (policy Delete)", func() bool { return env.Node(t, coreName) == nil })
	waitEvent(t, n, "PoweredOff")

	// Settled: nothing more is sent to the BMC while the machine stays off.
	time.Sleep(time.Second)
	if c := sim.ChassisControls(t); len(c) != 2 {
		t.Fatalf("chassis commands after the machine settled off: %q", c)
	}
	wantOps(t, metrics, power.ActionOn, map[string]float64{power.ResultSuccess: 1})
	wantOps(t, metrics, power.ActionOff, map[string]float64{power.ResultSuccess: 1})
	if seen := kubelet.stop(); !slices.Equal(seen, []infrav1.PowerState{infrav1.PoweredOn, infrav1.PoweredOff}) {
		t.Fatalf("the kubelet saw the chassis power go %v, want on then off", seen)
	}
}

// kubelet plays a machine's kubelet by following its chassis power through ipmitool: when the
// power comes on the machine boots and registers its core Node Ready; when it goes off the core
// Node turns NotReady (the node lifecycle controller would say so after a while).
type kubelet struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   []infrav1.PowerState
}

func playKubelet(t *testing.T, sim *testpeers.IPMISim, ns, coreName string) *kubelet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &kubelet{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		last := infrav1.PoweredOff // ipmi_sim starts with the chassis off
		failures := 0
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			state, err := sim.ReadPower()
			if err != nil {
				// A lost datagram or a busy BMC: read again on the next tick.
				if failures++; failures%10 == 1 {
					t.Logf("kubelet: %v", err)
				}
				continue
			}
			if state == last {
				continue
			}
			switch state {
			case infrav1.PoweredOn:
				err = registerCoreNode(ctx, ns, coreName, true)
			case infrav1.PoweredOff:
				err = setCoreNodeReady(ctx, coreName, false)
			}
			if err != nil {
				if ctx.Err() == nil {
					t.Logf("kubelet: core Node %s: %v (trying again)", coreName, err)
				}
				continue
			}
			k.mu.Lock()
			k.seen = append(k.seen, state)
			k.mu.Unlock()
			last = state
		}
	}()
	t.Cleanup(func() { k.stop() })
	return k
}

// stop ends the kubelet and returns the power states it acted on, in order.
func (k *kubelet) stop() []infrav1.PowerState {
	k.cancel()
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.seen)
}

// opsByResult is homelab_autoscaler_power_operations_total{driver="ipmi",action} by result.
func opsByResult(t *testing.T, m *power.Metrics, action power.Action) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Operations)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["driver"] == power.DriverIPMI && labels["action"] == string(action) {
				out[labels["result"]] += metric.GetCounter().GetValue()
			}
		}
	}
	return out
}

// wantOps fails unless the IPMI driver's calls for action are exactly want, by result.
func wantOps(t *testing.T, m *power.Metrics, action power.Action, want map[string]float64) {
	t.Helper()
	got := opsByResult(t, m, action)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("homelab_autoscaler_power_operations_total{driver=%q,action=%q} by result: %v, want %v", power.DriverIPMI, action, got, want)
	}
}
