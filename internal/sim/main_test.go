package sim_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/simtest"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
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

var seq atomic.Int64

// config is a small fast homelab in a namespace of its own, with a group name no other test
// uses (Nodes are cluster-wide).
func config(t *testing.T) sim.Config {
	t.Helper()
	n := seq.Add(1)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sim-%d-%d", time.Now().Unix()%100000, n)}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Namespace = ns.Name
	cfg.Group = fmt.Sprintf("g%d", n)
	cfg.Machines = 2
	cfg.BootDelay = 700 * time.Millisecond
	cfg.ShutdownDelay = 500 * time.Millisecond
	return cfg
}

// start runs a simulator until the test ends and applies its objects.
func start(t *testing.T, cfg sim.Config) (*sim.Sim, sim.Objects) {
	t.Helper()
	s := run(t, cfg)
	objs := s.Objects()
	if err := sim.Apply(context.Background(), env.Client, writer, objs); err != nil {
		t.Fatal(err)
	}
	return s, objs
}

// run runs a simulator until the test ends.
func run(t *testing.T, cfg sim.Config) *sim.Sim {
	t.Helper()
	return simtest.Run(t, env.Client, cfg)
}

// request is a driver call for machine i, with credentials read from the cluster as the
// manager reads them.
func request(objs sim.Objects, i int, action power.Action) power.Request {
	m := machines.Effective(objs.Machines[i], objs.Group)
	slot, _ := power.SlotFor(m, action)
	return power.Request{Machine: m, Action: action, Slot: slot, Attempt: 1, Secrets: power.ClientSecrets{Reader: env.Client}}
}

func wantClass(t *testing.T, err error, class power.Class, mention string) {
	t.Helper()
	if err == nil || power.ClassOf(err) != class {
		t.Fatalf("want a %s error, got %v", class, err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("want %q in the error: %v", mention, err)
	}
}

func getMachine(t *testing.T, m *infrav1.Machine) *infrav1.Machine {
	t.Helper()
	got := &infrav1.Machine{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(m), got); err != nil {
		t.Fatal(err)
	}
	return got
}
