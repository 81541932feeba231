package cloudprovider_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// replica is one manager running one gRPC server against the test apiserver, as a replica of
// the real deployment does.
type replica struct {
	cache   cache.Cache
	srv     *cloudprovider.Server
	metrics *cloudprovider.Metrics
	writes  *optimistic.Metrics
	halt    func() error
}

// startReplica runs the manager as cmd/homelab-autoscaler does (app.New, through testmanager),
// watching every namespace, with the gRPC server only (no controllers: the tests play their
// status writes), listening on a real loopback TCP port. mutate changes its options first.
func startReplica(t testing.TB, mutate ...func(*app.Options)) *replica {
	t.Helper()
	o := testmanager.Options("")
	o.GRPCOnly = true
	o.Logger = logr.Discard()
	o.WriteMetrics, o.GRPCMetrics = optimistic.NewMetrics(), cloudprovider.NewMetrics()
	for _, f := range mutate {
		f(&o)
	}
	m, _, stop := testmanager.Start(t, env.Config, o)
	return &replica{cache: m.GetCache(), srv: m.GRPC, metrics: o.GRPCMetrics, writes: o.WriteMetrics, halt: stop}
}

// sync waits until the replica's cache holds every Group and machine of the namespace as the
// apiserver has them now: the objects a test just created reach the cache asynchronously.
func (r *replica) sync(t testing.TB, ns string) {
	t.Helper()
	want := map[string]string{}
	groups, machines := &infrav1.GroupList{}, &infrav1.MachineList{}
	for _, l := range []client.ObjectList{groups, machines} {
		if err := env.Client.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range groups.Items {
		want["group/"+g.Name] = g.ResourceVersion
	}
	for _, m := range machines.Items {
		want["machine/"+m.Name] = m.ResourceVersion
	}
	cores := &corev1.NodeList{}
	if err := env.Client.List(context.Background(), cores); err != nil {
		t.Fatal(err)
	}
	for _, c := range cores.Items {
		if strings.HasPrefix(c.Name, ns+"-") {
			want["core/"+c.Name] = c.ResourceVersion
		}
	}
	waitFor(t, "the replica's cache to catch up", func() bool {
		gs, ms := &infrav1.GroupList{}, &infrav1.MachineList{}
		for _, l := range []client.ObjectList{gs, ms} {
			if err := r.cache.List(context.Background(), l, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]string{}
		for _, g := range gs.Items {
			got["group/"+g.Name] = g.ResourceVersion
		}
		for _, m := range ms.Items {
			got["machine/"+m.Name] = m.ResourceVersion
		}
		cs := &corev1.NodeList{}
		if err := r.cache.List(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs.Items {
			got["core/"+c.Name] = c.ResourceVersion
		}
		for k, rv := range want {
			if got[k] != rv {
				return false
			}
		}
		return true
	})
}

// stop stops the replica and waits until it has stopped, failing the test if it stopped with an
// error.
func (r *replica) stop(t testing.TB) {
	t.Helper()
	if err := r.halt(); err != nil {
		t.Errorf("manager: %v", err)
	}
}

// client dials the replica over loopback TCP, plaintext unless creds are given.
func (r *replica) client(t testing.TB, creds ...credentials.TransportCredentials) pb.CloudProviderClient {
	t.Helper()
	return dial(t, r.srv.Addr().String(), creds...)
}

func dial(t testing.TB, target string, creds ...credentials.TransportCredentials) pb.CloudProviderClient {
	t.Helper()
	return pb.NewCloudProviderClient(dialConn(t, target, creds...))
}

func dialConn(t testing.TB, target string, creds ...credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	c := insecure.NewCredentials()
	if len(creds) > 0 {
		c = creds[0]
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func tlsCreds(cfg *tls.Config) credentials.TransportCredentials { return credentials.NewTLS(cfg) }

// ctx5s is cluster-autoscaler's default per-call deadline.
func ctx5s(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var nsSeq atomic.Int64

// newNamespace names the namespace after the process too: fuzz workers share the control plane
// of the process that started them (testenv.RunShared).
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cp-%d-%d-%d", time.Now().Unix()%100000, os.Getpid(), nsSeq.Add(1))}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createGroup(t testing.TB, ns, name string, mutate ...func(*infrav1.Group)) *infrav1.Group {
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

func maxSize(n int32) func(*infrav1.Group) {
	return func(g *infrav1.Group) { g.Spec.MaxSize = &n }
}

func minSize(n int32) func(*infrav1.Group) {
	return func(g *infrav1.Group) { g.Spec.MinSize = n }
}

func bmc() *infrav1.BMC {
	return &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: "127.0.0.1", CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}}}
}

func machineName(i int) string { return fmt.Sprintf("m%04d", i) }

// createMachines creates n machines m0000... of a group, concurrently (a benchmark fleet has
// thousands), each with the initial status the lifecycle controller would give it (Off), then
// mutate's changes. mutate may change spec and status; status is written after creation.
func createMachines(t testing.TB, ns, group string, n int, mutate func(i int, m *infrav1.Machine)) []*infrav1.Machine {
	t.Helper()
	out := make([]*infrav1.Machine, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			m := &infrav1.Machine{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: machineName(i)},
				Spec: infrav1.MachineSpec{
					Group: group, Online: false, KubernetesNodeName: ns + "-" + machineName(i),
					BMC: bmc(),
				},
				Status: infrav1.MachineStatus{Progress: infrav1.ProgressOff, PowerState: infrav1.PoweredOff},
			}
			if mutate != nil {
				mutate(i, m)
			}
			want := m.Status
			if err := env.Client.Create(context.Background(), m); err != nil {
				errs <- err
				return
			}
			if _, err := optimistic.UpdateStatus(context.Background(), testWriter, m, func(m *infrav1.Machine) error {
				m.Status = want
				return nil
			}); err != nil {
				errs <- err
				return
			}
			out[i] = m
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// setStatus plays the lifecycle controller's status writes.
func setStatus(t testing.TB, m *infrav1.Machine, mutate func(*infrav1.MachineStatus)) {
	t.Helper()
	key := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name}}
	if _, err := optimistic.UpdateStatus(context.Background(), testWriter, key, func(n *infrav1.Machine) error {
		mutate(&n.Status)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// setDesired plays a human editing spec.online.
func setDesired(t testing.TB, m *infrav1.Machine, online bool) {
	t.Helper()
	key := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name}}
	if _, err := optimistic.Update(context.Background(), testWriter, key, func(n *infrav1.Machine) error {
		n.Spec.Online = online
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// registerCore plays a kubelet registering the machine's Node with its providerID and the label
// that opts it in to the machines of its namespace.
func registerCore(t testing.TB, m *infrav1.Machine, ready bool, mutate ...func(*corev1.Node)) *corev1.Node {
	t.Helper()
	core := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: m.KubernetesNodeNameOrDefault(), Labels: map[string]string{
			corev1.LabelHostname: m.KubernetesNodeNameOrDefault(), infrav1.LabelNamespace: m.Namespace,
			infrav1.LabelGroup: m.Spec.Group, infrav1.LabelMachine: m.Name,
		}},
		Spec: corev1.NodeSpec{ProviderID: m.ProviderIDOrDefault()},
	}
	status := corev1.NodeStatus{
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods: resource.MustParse("110"),
		},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "Test"}},
	}
	if ready {
		status.Conditions[0].Status = corev1.ConditionTrue
	}
	status.Allocatable = status.Capacity.DeepCopy()
	for _, f := range mutate {
		f(core)
	}
	if len(core.Status.Capacity) > 0 {
		status.Capacity, status.Allocatable = core.Status.Capacity, core.Status.Allocatable
	}
	if err := env.Client.Create(context.Background(), core); err != nil {
		t.Fatal(err)
	}
	core.Status = status
	if err := env.Client.Status().Update(context.Background(), core); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), core) })
	return core
}

// fresh reads a machine from the apiserver.
func fresh(t testing.TB, m *infrav1.Machine) *infrav1.Machine {
	t.Helper()
	got := &infrav1.Machine{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(m), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// desiredOn lists the names of the group's machines desired on, from the apiserver.
func desiredOn(t testing.TB, ns string) map[string]bool {
	t.Helper()
	list := &infrav1.MachineList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range list.Items {
		if m.Spec.Online {
			out[m.Name] = true
		}
	}
	return out
}

func gid(ns, name string) string { return cloudprovider.GroupID(ns, name) }

func targetSize(t testing.TB, c pb.CloudProviderClient, id string) int32 {
	t.Helper()
	res, err := c.NodeGroupTargetSize(ctx5s(t), &pb.NodeGroupTargetSizeRequest{Id: id})
	if err != nil {
		t.Fatalf("NodeGroupTargetSize(%s): %v", id, err)
	}
	return res.GetTargetSize()
}

func expectCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %s (%v), want %s", got, err, want)
	}
}

// node is a node as cluster-autoscaler sends it for a machine.
func node(m *infrav1.Machine) *pb.ExternalGrpcNode {
	return &pb.ExternalGrpcNode{ProviderID: m.ProviderIDOrDefault(), Name: m.KubernetesNodeNameOrDefault(),
		Labels: map[string]string{infrav1.LabelNamespace: m.Namespace, infrav1.LabelGroup: m.Spec.Group}}
}

// fakeNode is cluster-autoscaler's stand-in for an instance without a registered node.
func fakeNode(m *infrav1.Machine, reason string) *pb.ExternalGrpcNode {
	id := m.ProviderIDOrDefault()
	return &pb.ExternalGrpcNode{ProviderID: id, Name: id,
		Annotations: map[string]string{"k8s.io/cluster-autoscaler/fake-node-reason": reason}}
}
