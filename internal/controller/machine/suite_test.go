package machine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

var env *testenv.Env

// testWriter plays other writers (humans, kubelets) through the optimistic path, uncached.
var testWriter *optimistic.Writer

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) {
		env = e
		w, err := optimistic.New(e.Client, e.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
		if err != nil {
			panic(err)
		}
		testWriter = w
	})
}

// manager is one running manager of a test.
type manager struct{ stop func() }

// startManager runs the manager as cmd/homelab-autoscaler does (app.New, through testmanager)
// with the test's drivers, only the Job driver when drivers is nil, and short retry intervals,
// watching ns. stop stops it, failing the test if it stopped with an error.
func startManager(t *testing.T, ns string, drivers power.Registry) *manager {
	t.Helper()
	if drivers == nil {
		drivers = power.Registry{}
	}
	o := testmanager.Options(ns)
	o.Drivers = drivers
	o.JobPolicy.Images = power.ImagePrefixes{"busybox:"} // the tests' power Jobs
	o.PowerRetryBase, o.PowerRetryCap, o.PowerConfirmInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	_, _, stop := testmanager.Start(t, env.Config, o)
	return &manager{stop: func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	}}
}

// machineDriver plays the machines' power buttons (it stands in for a BMC): powering a machine
// on registers its core Node as Ready, unless told the machine never boots; powering it off
// turns the core Node NotReady. It counts every command per machine, action and attempt.
type machineDriver struct {
	mu      sync.Mutex
	calls   map[string]int
	on      map[string]bool
	neverUp map[string]bool
	// stuckOn machines ignore power-off commands (they are counted, the machine stays on).
	stuckOn map[string]bool
	// liesOff machines' BMCs report Off whatever the machine does, and ignore power-off
	// commands as a BMC that believes the machine is already off does.
	liesOff  map[string]bool
	failWith map[string]error
	// readSecret, when set, makes every call read the machine's credentials Secret first.
	readSecret bool
	// kubeletLabels registers Nodes as a kubelet given the machine's group and machine labels
	// (--node-labels) and its providerID (--provider-id) does.
	kubeletLabels bool
}

func newMachineDriver() *machineDriver {
	return &machineDriver{calls: map[string]int{}, on: map[string]bool{}, neverUp: map[string]bool{}, stuckOn: map[string]bool{}, liesOff: map[string]bool{}, failWith: map[string]error{}}
}

func (d *machineDriver) Name() string { return power.DriverIPMI }

func callKey(n string, a power.Action, attempt int32) string {
	return fmt.Sprintf("%s/%s/%d", n, a, attempt)
}

func (d *machineDriver) count(n string, a power.Action, attempt int32) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[callKey(n, a, attempt)]
}

func (d *machineDriver) total(n string, a power.Action) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	sum := 0
	for i := int32(1); i <= 100; i++ {
		sum += d.calls[callKey(n, a, i)]
	}
	return sum
}

func (d *machineDriver) set(f func(d *machineDriver)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *machineDriver) Do(ctx context.Context, req power.Request) (power.Outcome, error) {
	n := req.Machine
	if d.readSecret {
		ref := req.Slot.IPMI.CredentialsSecretRef
		if _, err := req.Secrets.SecretValue(ctx, n.Namespace, ref.Name, "password"); err != nil {
			return power.Outcome{}, err
		}
	}
	d.mu.Lock()
	d.calls[callKey(n.Name, req.Action, req.Attempt)]++
	fail := d.failWith[n.Name]
	never := d.neverUp[n.Name]
	stuck := d.stuckOn[n.Name] || (req.Action == power.ActionOff && d.liesOff[n.Name])
	if !stuck {
		d.on[n.Name] = req.Action == power.ActionOn
	}
	d.mu.Unlock()
	if fail != nil {
		return power.Outcome{}, fail
	}
	if req.Action == power.ActionOn && !never {
		if d.kubeletLabels {
			return power.Outcome{Done: true}, registerLabelledCoreNode(ctx, n)
		}
		return power.Outcome{Done: true}, registerCoreNode(ctx, n.Namespace, n.KubernetesNodeNameOrDefault(), true)
	}
	if req.Action == power.ActionOff && !stuck {
		return power.Outcome{Done: true}, setCoreNodeReady(ctx, n.KubernetesNodeNameOrDefault(), false)
	}
	return power.Outcome{Done: true}, nil
}

func (d *machineDriver) Status(_ context.Context, req power.Request) (infrav1.PowerState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on[req.Machine.Name] && !d.liesOff[req.Machine.Name] {
		return infrav1.PoweredOn, nil
	}
	return infrav1.PoweredOff, nil
}

// registerCoreNode plays a kubelet registering (without a providerID, as kubeadm nodes do) with
// the label that opts the Node in to the machines of namespace ns.
func registerCoreNode(ctx context.Context, ns, name string, ready bool) error {
	core := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{infrav1.LabelNamespace: ns}}}
	if err := env.Client.Create(ctx, core); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return setCoreNodeReady(ctx, name, ready)
}

// registerLabelledCoreNode registers a machine's Node Ready with everything the manager would
// otherwise write onto it: its group and machine labels and its providerID.
func registerLabelledCoreNode(ctx context.Context, n *infrav1.Machine) error {
	core := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.KubernetesNodeNameOrDefault(), Labels: map[string]string{
			infrav1.LabelNamespace: n.Namespace, infrav1.LabelGroup: n.Spec.Group, infrav1.LabelMachine: n.Name,
		}},
		Spec: corev1.NodeSpec{ProviderID: n.ProviderIDOrDefault()},
	}
	if err := env.Client.Create(ctx, core); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return setCoreNodeReady(ctx, core.Name, true)
}

// setCoreNodeReady plays the kubelet's status update; like the kubelet it retries on conflict
// (the core Node sync labels the Node at the same time).
func setCoreNodeReady(ctx context.Context, name string, ready bool) error {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	key := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	_, err := optimistic.UpdateStatus(ctx, testWriter, key, func(core *corev1.Node) error {
		core.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: status, Reason: "Test", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}}
		core.Status.Capacity = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}
		return nil
	})
	return client.IgnoreNotFound(err)
}

var nsSeq atomic.Int64

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("lc-%d-%d", time.Now().Unix()%100000, nsSeq.Add(1))}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createGroup(t *testing.T, ns, name string, mutate ...func(*infrav1.Group)) *infrav1.Group {
	t.Helper()
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, m := range mutate {
		m(g)
	}
	if err := env.Client.Create(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	return g
}

func ipmiAction() *infrav1.PowerDriver {
	return &infrav1.PowerDriver{IPMI: &infrav1.IPMIDriver{Address: "127.0.0.1", CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}}}
}

func createMachine(t *testing.T, ns, name, grp string, online bool, mutate ...func(*infrav1.Machine)) *infrav1.Machine {
	t.Helper()
	n := &infrav1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: infrav1.MachineSpec{
			Group:              grp,
			Online:             online,
			KubernetesNodeName: ns + "-" + name,
			Power:              &infrav1.PowerSpec{Start: ipmiAction(), Stop: ipmiAction()},
		},
	}
	for _, m := range mutate {
		m(n)
	}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	return n
}

// setDesired plays a human editing spec.online.
func setDesired(t *testing.T, n *infrav1.Machine, online bool) {
	t.Helper()
	key := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: n.Namespace, Name: n.Name}}
	if _, err := optimistic.Update(context.Background(), testWriter, key, func(n *infrav1.Machine) error {
		n.Spec.Online = online
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// setDesiredOffByAutoscaler plays the cloud-provider path: the power-off recorded in the
// Group's scale ledger (cluster-autoscaler drained the node already), then desired off.
func setDesiredOffByAutoscaler(t *testing.T, n *infrav1.Machine) {
	t.Helper()
	key := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: n.Namespace, Name: n.Name}}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(key), key); err != nil {
		t.Fatal(err)
	}
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: n.Namespace, Name: key.Spec.Group}}
	if _, err := optimistic.UpdateStatus(context.Background(), testWriter, g, func(g *infrav1.Group) error {
		if g.Status.ScaleLedger == nil {
			g.Status.ScaleLedger = &infrav1.ScaleLedger{}
		}
		g.Status.ScaleLedger.PowerOffs = append(g.Status.ScaleLedger.PowerOffs,
			infrav1.DecidedPowerOff{Name: key.Name, Generation: key.Generation + 1})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := optimistic.Update(context.Background(), testWriter, key, func(n *infrav1.Machine) error {
		n.Spec.Online = false
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, n *infrav1.Machine) *infrav1.Machine {
	t.Helper()
	got := &infrav1.Machine{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(n), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func waitProgress(t *testing.T, n *infrav1.Machine, p infrav1.Progress, timeout time.Duration) *infrav1.Machine {
	t.Helper()
	var got *infrav1.Machine
	testenv.Eventually(t, timeout, fmt.Sprintf("%s to be %s", n.Name, p), func() bool {
		got = get(t, n)
		return got.Status.Progress == p
	})
	return got
}

func condition(n *infrav1.Machine, t string) *metav1.Condition {
	return meta.FindStatusCondition(n.Status.Conditions, t)
}

func expectCondition(t *testing.T, n *infrav1.Machine, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := condition(n, typ)
	if c == nil || c.Status != status || c.Reason != reason {
		t.Fatalf("%s condition %s = %+v, want %s/%s", n.Name, typ, c, status, reason)
	}
	if c.ObservedGeneration != n.Generation {
		t.Fatalf("%s condition %s observedGeneration %d, generation %d", n.Name, typ, c.ObservedGeneration, n.Generation)
	}
}

// eventReasons lists the reasons of the Events about a machine, oldest first.
func eventReasons(t *testing.T, n *infrav1.Machine) []string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(n.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == n.Name && e.Regarding.Kind == "Machine" {
			out = append(out, e.Reason)
		}
	}
	return out
}

func waitEvent(t *testing.T, n *infrav1.Machine, reason string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "event "+reason+" on "+n.Name, func() bool {
		for _, r := range eventReasons(t, n) {
			if r == reason {
				return true
			}
		}
		return false
	})
}
