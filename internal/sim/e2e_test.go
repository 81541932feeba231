package sim_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// The whole chain with nothing faked but the machines: the manager's reconcilers with the real
// power drivers, kwok keeping Nodes Ready, and three simulated machines whose manifests are
// created as a user would. Two machines are powered on and reach Ready, one is powered off again
// and reaches Off with its Node gone, and every BMC received exactly the commands asked for.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	started := time.Now()
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.StartKwok(t, kubeconfig)
	cfg := config(t)
	startManager(t, cfg.Namespace)

	cfg.Machines = 3
	cfg.BootDelay = time.Second
	cfg.ShutdownDelay = time.Second
	s := run(t, cfg)
	createManifests(t, s)

	ms := make([]*infrav1.Machine, 3)
	for i, m := range s.Machines() {
		ms[i] = &infrav1.Machine{}
		ms[i].Namespace, ms[i].Name = cfg.Namespace, m.Name
		waitProgress(t, ms[i], infrav1.ProgressOff, 20*time.Second)
	}
	setOnline(t, ms[0], true)
	setOnline(t, ms[1], true)
	for _, m := range ms[:2] {
		got := waitProgress(t, m, infrav1.ProgressReady, 30*time.Second)
		if got.Status.PowerState != infrav1.PoweredOn || got.Status.KubernetesNode != m.Name || got.Status.Attempts != 1 {
			t.Fatalf("%s status: %+v", m.Name, got.Status)
		}
		// The Node sync labels the Node beside the lifecycle, not before it.
		testenv.Eventually(t, 10*time.Second, m.Name+"'s Node labelled with its group", func() bool {
			core := env.Node(t, m.Name)
			return core != nil && core.Labels[infrav1.LabelGroup] == cfg.Group
		})
	}
	t.Logf("two machines Ready after %s", time.Since(started).Round(time.Millisecond))

	setOnline(t, ms[1], false)
	got := waitProgress(t, ms[1], infrav1.ProgressOff, 30*time.Second)
	if got.Status.PowerState != infrav1.PoweredOff || env.Node(t, ms[1].Name) != nil {
		t.Fatalf("%s after power-off: status %+v, Node still there: %v", ms[1].Name, got.Status, env.Node(t, ms[1].Name) != nil)
	}
	if s.Machines()[1].PoweredOn() {
		t.Fatal("the machine powered off through the manager is still on")
	}
	// The energy accounts count the draw the BMCs report: the standby draw of a machine off.
	for i, m := range []*infrav1.Machine{got, getMachine(t, ms[2])} {
		acc, want := m.Status.Energy, s.Machines()[[]int{1, 2}[i]].Watts()
		if acc == nil || acc.Drawing != infrav1.PoweredOff || acc.WattsSource != infrav1.DrawMeasured || math.Abs(acc.Watts.AsApproximateFloat64()-want) > 0.001 {
			t.Errorf("%s's energy account = %+v, want off at the measured %v W", m.Name, acc, want)
		}
	}
	t.Logf("one machine Off after %s", time.Since(started).Round(time.Millisecond))

	for i, want := range []struct{ on, off int }{{1, 0}, {1, 1}, {0, 0}} {
		c := s.Machines()[i].Counters()
		if c.PowerOn != want.on || c.PowerOff != want.off {
			t.Errorf("machine %d received %d power-on and %d power-off commands, want %d and %d: %+v", i, c.PowerOn, c.PowerOff, want.on, want.off, c.History)
		}
	}
	if c := s.Machines()[1].Counters(); c.Commands[sim.CommandForceOff] != 0 {
		t.Errorf("the graceful shutdown was forced: %+v", c.History)
	}
	if ready := getMachine(t, ms[0]); ready.Status.Progress != infrav1.ProgressReady {
		t.Errorf("machine 0 left Ready: %+v", ready.Status)
	}
}

// createManifests creates the simulator's manifests, as `kubectl create -f` would.
func createManifests(t *testing.T, s *sim.Sim) {
	t.Helper()
	var out bytes.Buffer
	if err := sim.WriteManifests(&out, s.Objects().All()); err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(out.String(), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(context.Background(), u, client.FieldValidation("Strict")); err != nil {
			t.Fatal(err)
		}
	}
}

// startManager runs the manager as cmd/homelab-autoscaler does (app.New, through testmanager:
// the cache, the reconcilers with the built-in power drivers, the gRPC server) with short retry
// and confirmation intervals, watching one namespace.
func startManager(t *testing.T, namespace string) {
	t.Helper()
	o := testmanager.Options(namespace)
	o.WriteMetrics = optimistic.NewMetrics()
	o.PowerRetryBase, o.PowerRetryCap, o.PowerConfirmInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	testmanager.Start(t, env.Config, o)
}

// setOnline plays a human editing spec.online.
func setOnline(t *testing.T, m *infrav1.Machine, online bool) {
	t.Helper()
	key := &infrav1.Machine{}
	key.Namespace, key.Name = m.Namespace, m.Name
	if _, err := optimistic.Update(context.Background(), writer, key, func(m *infrav1.Machine) error {
		m.Spec.Online = online
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func waitProgress(t *testing.T, m *infrav1.Machine, p infrav1.Progress, timeout time.Duration) *infrav1.Machine {
	t.Helper()
	var got *infrav1.Machine
	testenv.Eventually(t, timeout, m.Name+" to be "+string(p), func() bool {
		got = getMachine(t, m)
		return got.Status.Progress == p
	})
	return got
}
