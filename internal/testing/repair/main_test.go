package repair_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/simtest"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

var (
	env    *testenv.Env
	writer *optimistic.Writer
)

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) {
		env = e
		w, err := optimistic.New(e.Client, e.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
		if err != nil {
			panic(err)
		}
		writer = w
	})
}

// startKwok runs kwok, which keeps the simulated machines' Nodes Ready as their kubelets would,
// until t ends. kwok manages every annotated Node of the cluster: one runs at a time, so the
// tests are subtests of one test that starts it.
func startKwok(t *testing.T) {
	t.Helper()
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.StartKwok(t, kubeconfig)
}

var seq atomic.Int64

// homelab is a simulated group in a namespace of its own, with a group name no other test uses
// (Nodes are cluster-wide).
func homelab(t *testing.T, protocol sim.Protocol, n int, mutate func(*sim.Config)) sim.Config {
	t.Helper()
	i := seq.Add(1)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("repair-%d-%d", time.Now().Unix()%100000, i)}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Namespace = ns.Name
	cfg.Group = fmt.Sprintf("r%d", i)
	cfg.Protocol = protocol
	cfg.Machines = n
	cfg.BootDelay = 700 * time.Millisecond
	cfg.ShutdownDelay = 300 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg
}

// start runs the simulator until the test ends and creates its objects, the Group's spec
// changed by group first.
func start(t *testing.T, cfg sim.Config, group func(*infrav1.Group)) (*sim.Sim, sim.Objects) {
	t.Helper()
	s := simtest.Run(t, env.Client, cfg)
	objs := s.Objects()
	if group != nil {
		group(objs.Group)
	}
	if err := sim.Apply(context.Background(), env.Client, writer, objs); err != nil {
		t.Fatal(err)
	}
	return s, objs
}

// manager runs the manager (app.New) on the namespace with short retries and rechecks; o
// changes its options first. It returns the gRPC server's address.
func manager(t *testing.T, ns string, o func(*app.Options)) string {
	t.Helper()
	opts := testmanager.Options(ns)
	opts.WriteMetrics = optimistic.NewMetrics()
	opts.PowerRetryBase, opts.PowerRetryCap, opts.PowerConfirmInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	opts.RecheckInterval = time.Second
	if o != nil {
		o(&opts)
	}
	_, addr, _ := testmanager.Start(t, env.Config, opts)
	return addr
}

func key(ns, name string) *infrav1.Machine {
	m := &infrav1.Machine{}
	m.Namespace, m.Name = ns, name
	return m
}

func get(t *testing.T, m *infrav1.Machine) *infrav1.Machine {
	t.Helper()
	got := &infrav1.Machine{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(m), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// setOnline plays a human editing spec.online (homelabctl power on|off).
func setOnline(t *testing.T, m *infrav1.Machine, online bool) {
	t.Helper()
	if _, err := optimistic.Update(context.Background(), writer, key(m.Namespace, m.Name), func(m *infrav1.Machine) error {
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
		got = get(t, m)
		return got.Status.Progress == p
	})
	return got
}

// waitEvent waits for an Event with reason about the machine.
func waitEvent(t *testing.T, m *infrav1.Machine, reason string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "a "+reason+" Event about "+m.Name, func() bool {
		return hasEvent(t, m.Namespace, m.Name, reason)
	})
}

// hasEvent reports whether an Event with reason is about the named object of the namespace.
func hasEvent(t *testing.T, ns, name, reason string) bool {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			return true
		}
	}
	return false
}

// allReady sets every machine of objs online and waits until all are Ready.
func allReady(t *testing.T, objs sim.Objects, timeout time.Duration) {
	t.Helper()
	for _, m := range objs.Machines {
		setOnline(t, m, true)
	}
	for _, m := range objs.Machines {
		waitProgress(t, m, infrav1.ProgressReady, timeout)
	}
}

func nodeReady(t *testing.T, name string) bool {
	t.Helper()
	n := env.Node(t, name)
	if n == nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
