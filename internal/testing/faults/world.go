package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Options shape one world.
type Options struct {
	// Machines in the group.
	Machines int
	// BootDelay, BootJitter and ShutdownDelay are the simulated machines'.
	BootDelay, BootJitter, ShutdownDelay time.Duration
	// BootTimeout (the Group's machineDefaults) and ShutdownTimeout (every Machine's spec)
	// bound a power operation: a killed attempt whose command never went out is retried after
	// them.
	BootTimeout, ShutdownTimeout time.Duration
	// DriverTimeout bounds every power-on and status call to a BMC; a power-off keeps the
	// simulator's longer timeout, which covers its graceful shutdown window.
	DriverTimeout time.Duration
	// Replicas is the number of manager processes; with more than one they elect a leader.
	Replicas int
	// Lease is the leader election lease duration (renew deadline 2/3 of it, retry 1/6).
	Lease time.Duration
	// Sim adjusts the simulator's configuration (faults) before it starts.
	Sim func(*sim.Config)
	// Repair is the Group's spec.repair. Its observeInterval defaults to the CRD's minimum,
	// 10s, so that the periodic observation happens within a scenario.
	Repair *infrav1.RepairPolicy
	// AgentShutdown powers the machines off through the homelab-agent on their own Node
	// (power.stop.agent) instead of their BMC; the scenario runs the agents.
	AgentShutdown bool
}

func (o *Options) defaults() {
	if o.Machines == 0 {
		o.Machines = 4
	}
	if o.BootDelay == 0 {
		o.BootDelay = 600 * time.Millisecond
	}
	if o.ShutdownDelay == 0 {
		o.ShutdownDelay = 400 * time.Millisecond
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 6 * time.Second
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 8 * time.Second
	}
	if o.DriverTimeout == 0 {
		o.DriverTimeout = 3 * time.Second
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Lease == 0 {
		o.Lease = 3 * time.Second
	}
	// A copy: the defaults must not change the caller's policy.
	o.Repair = o.Repair.DeepCopy()
	if o.Repair == nil {
		o.Repair = &infrav1.RepairPolicy{}
	}
	if o.Repair.ObserveInterval == nil {
		o.Repair.ObserveInterval = &metav1.Duration{Duration: 10 * time.Second}
	}
}

// recheckInterval is the managers' --power-recheck-interval: how soon a machine whose Node went
// NotReady is read again at first. Short, so that a read that failed or raced the Node's change
// is soon repeated.
const recheckInterval = time.Second

// retryCap is the managers' --power-retry-cap: the longest wait before the next attempt.
const retryCap = time.Second

// HumanEdit is one write a human made to a machine's spec.online (Desired on for true, off
// for false).
type HumanEdit struct {
	Machine    string
	Desired    infrav1.PowerAction
	Generation int64
}

// World is one test's homelab: a namespace, a simulator, manager replicas (processes) with a
// cluster-autoscaler-like gRPC client each, a recorder, and what was done to it.
type World struct {
	// IdleWatts is what a simulated machine draws on (the harness puts no load on them).
	IdleWatts float64
	T         testing.TB
	Env       *testenv.Env
	Opts      Options
	Stats     *Stats
	Sim       *sim.Sim
	Managers  []*Manager
	Recorder  *Recorder

	Namespace, Group, GroupID string

	// Repair is the Group's repair policy with its defaults applied.
	Repair machines.Repair

	ctx    context.Context
	ca     []pb.CloudProviderClient
	writer *optimistic.Writer
	// recoveries are the checks of machines that lost power, running until each machine is
	// Ready again or its bound passed.
	recoveries sync.WaitGroup

	// mu guards the random source, the edits and the records of faults: concurrent writers
	// share them.
	mu    sync.Mutex
	rand  *rand.Rand
	edits []HumanEdit
	// outages are the times a manager was not there to act (killed, exited, the apiserver
	// away), in the order they began.
	outages []*outage
	// apiserverAway sums, over the kube-apiserver's restarts, how long it was away plus the
	// managers' reconnection: the time they could write no status.
	apiserverAway time.Duration
	// bmcFaults are the windows in which each machine's BMC misbehaved.
	bmcFaults map[string][]bmcWindow
}

// IntN returns a random number in [0, n) from the run's seed.
func (w *World) IntN(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rand.IntN(n)
}

// Int64N returns a random number in [0, n) from the run's seed.
func (w *World) Int64N(n int64) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rand.Int64N(n)
}

var worlds atomic.Int64

// NewWorld starts a world: the namespace, the simulator with its objects applied, the recorder
// and every manager replica, and waits until each replica serves the group. kwok must run
// against env (the caller starts one per test). rng drives every random choice of the run.
func NewWorld(t testing.TB, env *testenv.Env, managerBin, kubeconfig string, rng *rand.Rand, opts Options) *World {
	t.Helper()
	opts.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := worlds.Add(1)
	stamp := time.Now().Unix() % 100000
	w := &World{
		T: t, Env: env, Opts: opts, rand: rng, Stats: NewStats(),
		Namespace: fmt.Sprintf("faults-%d-%d", stamp, n), Group: fmt.Sprintf("f%d-%d", stamp, n),
		ctx: ctx, bmcFaults: map[string][]bmcWindow{},
	}
	// The recovery checks end with the world's context; none outlives the test.
	t.Cleanup(func() { cancel(); w.recoveries.Wait() })
	w.GroupID = cloudprovider.GroupID(w.Namespace, w.Group)
	// The replicas' Lease lives in a namespace of its own, as a manager runs apart from the
	// machines it powers: the drivers refuse the Secrets of the manager's own namespace.
	for _, ns := range []string{w.Namespace, w.managerNamespace()} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	writer, err := optimistic.New(env.Client, env.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
	if err != nil {
		t.Fatal(err)
	}
	w.writer = writer

	cfg := sim.DefaultConfig()
	cfg.Namespace, cfg.Group, cfg.Machines = w.Namespace, w.Group, opts.Machines
	cfg.BootDelay, cfg.BootJitter, cfg.ShutdownDelay = opts.BootDelay, opts.BootJitter, opts.ShutdownDelay
	cfg.NodeBootTimeout = opts.BootTimeout
	if opts.Sim != nil {
		opts.Sim(&cfg)
	}
	s, err := sim.New(cfg, env.Client, testenv.TestLogger(t, "simulator "+w.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.Sim = s
	started := time.Now()
	for _, f := range cfg.BMCFaults {
		w.recordBMCFault(s.Machines()[f.Index].Name, f.Kind, started, started.Add(f.For))
	}
	for _, f := range cfg.BMCErrors {
		w.recordBMCFault(s.Machines()[f.Index].Name, sim.FaultError, started, started.Add(f.For))
	}
	t.Cleanup(func() {
		_ = s.Close()
		for _, m := range s.Machines() {
			_ = env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: m.Name}})
		}
	})
	objs := s.Objects()
	objs.Group.Spec.Repair = opts.Repair.DeepCopy()
	// The draws an operator would configure for these machines: they count a machine's first
	// boot, before any reading of it on (a measurement wins from then on).
	if objs.Group.Spec.MachineDefaults == nil {
		objs.Group.Spec.MachineDefaults = &infrav1.MachineDefaults{}
	}
	w.IdleWatts = cfg.IdleWatts
	objs.Group.Spec.MachineDefaults.PowerDraw = &infrav1.PowerDraw{
		OnWatts: energy.QuantityPtr(cfg.IdleWatts), OffWatts: energy.QuantityPtr(cfg.StandbyWatts),
	}
	w.Repair = machines.RepairOf(objs.Group)
	for _, m := range objs.Machines {
		m.Spec.ShutdownTimeout = &metav1.Duration{Duration: opts.ShutdownTimeout}
		// The power-off goes through a stop slot with the simulator's BMC settings (a timeout
		// that covers the graceful shutdown window); spec.bmc keeps power-on and status, bounded
		// by the driver timeout, and needs no graceful window of its own.
		stop := m.Spec.BMC.DeepCopy()
		var start *infrav1.PowerDriver
		if m.Spec.Power != nil {
			start = m.Spec.Power.Start // a wake relayed through homelab-agent (sim.Config.WakeVia)
		}
		m.Spec.Power = &infrav1.PowerSpec{Start: start, Stop: &infrav1.PowerDriver{Timeout: stop.Timeout, IPMI: stop.IPMI, Redfish: stop.Redfish}}
		if opts.AgentShutdown {
			m.Spec.Power.Stop = &infrav1.PowerDriver{Timeout: stop.Timeout, Agent: &infrav1.AgentDriver{}}
		}
		bmc := m.Spec.BMC
		bmc.Timeout = &metav1.Duration{Duration: opts.DriverTimeout}
		if bmc.IPMI != nil {
			bmc.IPMI.GracefulShutdownTimeout = nil
		}
		if bmc.Redfish != nil {
			bmc.Redfish.GracefulShutdownTimeout = nil
		}
	}
	if err := sim.Apply(ctx, env.Client, writer, objs); err != nil {
		t.Fatal(err)
	}
	if w.Recorder, err = NewRecorder(ctx, env.Client, w.Namespace); err != nil {
		t.Fatal(err)
	}

	for i := range opts.Replicas {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{
			"--kubeconfig=" + kubeconfig, "--namespace=" + w.Namespace,
			"--grpc-bind-address=" + addr, "--grpc-insecure", "--driver-egress=allow=127.0.0.1/32",
			"--metrics-bind-address=0", "--health-probe-bind-address=0",
			"--power-retry-base=200ms", "--power-retry-cap=" + retryCap.String(), "--power-confirm-interval=200ms",
			"--power-recheck-interval=" + recheckInterval.String(),
			"--zap-log-level=info",
		}
		if opts.Replicas > 1 {
			args = append(args, "--leader-elect", "--leader-election-namespace="+w.managerNamespace(),
				"--leader-election-id=homelab-autoscaler-"+w.Group,
				"--leader-elect-lease-duration="+opts.Lease.String(),
				"--leader-elect-renew-deadline="+(opts.Lease*2/3).String(),
				"--leader-elect-retry-period="+(opts.Lease/6).String())
		}
		m := NewManager(fmt.Sprintf("replica-%d", i), managerBin, addr, args)
		w.Managers = append(w.Managers, m)
		t.Cleanup(func() {
			_ = m.Kill()
			if t.Failed() {
				// The whole log goes to a file: the story of one machine spans many restarts.
				path := filepath.Join(os.TempDir(), w.Namespace+"-"+m.Name+".log")
				if err := os.WriteFile(path, []byte(m.Output()), 0o600); err == nil {
					t.Logf("%s %s output: %s", w.Namespace, m.Name, path)
				} else {
					t.Logf("%s %s output (last 6000 bytes):\n%s", w.Namespace, m.Name, tail(m.Output(), 6000))
				}
			}
		})
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		w.ca = append(w.ca, pb.NewCloudProviderClient(conn))
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range w.Managers {
		w.WaitServing(i)
	}
	return w
}

// managerNamespace is where the replicas run: their leader election Lease is there.
func (w *World) managerNamespace() string { return w.Namespace + "-manager" }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// callTimeout bounds every gRPC call, as cluster-autoscaler's grpc_timeout does.
const callTimeout = 5 * time.Second

// WaitServing waits until replica i answers NodeGroups with the whole group in its cache.
func (w *World) WaitServing(i int) {
	w.T.Helper()
	testenv.Eventually(w.T, 60*time.Second, w.Managers[i].Name+" to serve the group", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		resp, err := w.ca[i].NodeGroups(ctx, &pb.NodeGroupsRequest{})
		if err != nil {
			return false
		}
		for _, g := range resp.GetNodeGroups() {
			if g.GetId() == w.GroupID && int(g.GetMaxSize()) == w.Opts.Machines {
				return true
			}
		}
		return false
	})
}

// CA is replica i's cloud-provider client.
func (w *World) CA(i int) pb.CloudProviderClient { return w.ca[i] }

// TargetSize asks replica i for the group's target size.
func (w *World) TargetSize(ctx context.Context, i int) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := w.ca[i].NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: w.GroupID})
	return resp.GetTargetSize(), err
}

// ScaleUp asks replica i for 1 to (free machines) more machines, as cluster-autoscaler's
// IncreaseSize. It returns how many were granted (0 when the group is full).
func (w *World) ScaleUp(ctx context.Context, i int) (int, error) {
	target, err := w.TargetSize(ctx, i)
	if err != nil {
		return 0, err
	}
	free := w.Opts.Machines - int(target)
	if free <= 0 {
		return 0, nil
	}
	delta := 1 + w.IntN(min(free, 2))
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	//nolint:gosec // delta is 1 or 2
	_, err = w.ca[i].NodeGroupIncreaseSize(cctx, &pb.NodeGroupIncreaseSizeRequest{Id: w.GroupID, Delta: int32(delta)})
	if status.Code(err) == codes.ResourceExhausted || status.Code(err) == codes.FailedPrecondition {
		return 0, nil // a concurrent writer took the room: CA sees that too
	}
	if err != nil {
		return 0, err
	}
	w.Stats.Op("scale-up", delta)
	return delta, nil
}

// ScaleDown deletes one random instance through replica i, as cluster-autoscaler's
// DeleteNodes after its drain. It returns the machine's instance id, or "" when none runs.
func (w *World) ScaleDown(ctx context.Context, i int) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := w.ca[i].NodeGroupNodes(cctx, &pb.NodeGroupNodesRequest{Id: w.GroupID})
	if err != nil {
		return "", err
	}
	in := resp.GetInstances()
	if len(in) == 0 {
		return "", nil
	}
	id := in[w.IntN(len(in))].GetId()
	_, err = w.ca[i].NodeGroupDeleteNodes(cctx, &pb.NodeGroupDeleteNodesRequest{
		Id: w.GroupID, Nodes: []*pb.ExternalGrpcNode{{Name: id, ProviderID: id}},
	})
	if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.NotFound || status.Code(err) == codes.InvalidArgument {
		return "", nil // the machine left the group's view meanwhile (a human turned it off)
	}
	if err != nil {
		return "", err
	}
	w.Stats.Op("scale-down", 1)
	return id, nil
}

// HumanEdit flips one random machine's spec.online, as `homelabctl power on|off` does
// (through the optimistic write path), and records the edit.
func (w *World) HumanEdit(ctx context.Context) (HumanEdit, error) {
	m := w.Sim.Machines()[w.IntN(len(w.Sim.Machines()))]
	return w.HumanSet(ctx, m.Name, "")
}

// HumanSet sets machine's spec.online as want says (empty: the other state than now) as a
// human does, and records the edit.
func (w *World) HumanSet(ctx context.Context, machine string, want infrav1.PowerAction) (HumanEdit, error) {
	key := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: machine}}
	var wrote infrav1.PowerAction
	_, err := optimistic.Update(ctx, w.writer, key, func(n *infrav1.Machine) error {
		wrote = want
		if wrote == "" {
			wrote = infrav1.PowerActionOn
			if n.Spec.Online {
				wrote = infrav1.PowerActionOff
			}
		}
		n.Spec.Online = wrote == infrav1.PowerActionOn
		return nil
	})
	if err != nil {
		return HumanEdit{}, err
	}
	e := HumanEdit{Machine: machine, Desired: wrote, Generation: key.Generation}
	w.mu.Lock()
	w.edits = append(w.edits, e)
	w.mu.Unlock()
	w.Stats.Op("human-edit", 1)
	return e, nil
}

// Retry runs op until it succeeds or ctx ends, as cluster-autoscaler calls again after an
// error (a replica being restarted answers Unavailable).
func Retry[T any](ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	for {
		v, err := op(ctx)
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
