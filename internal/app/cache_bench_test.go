package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// fleetSize is the fleet of BenchmarkManagerHeap: the 5,000 machines.
const fleetSize = 5000

// BenchmarkManagerHeap reports the manager's heap with a fleet of fleetSize running machines,
// each with its registered Node (as a kubelet reports it: conditions, capacity, addresses, its
// 20 images), in one Group: heap-MiB at rest (after the fleet settled and a GC), peak-heap-MiB
// the most seen while the manager started and settled. The manager runs in the benchmark's
// process, so both are measured against the heap before it started (the test client's and the
// fleet's leftovers excluded). It runs once whatever b.N.
func BenchmarkManagerHeap(b *testing.B) {
	ctx := context.Background()
	ns := fmt.Sprintf("heap-%d", time.Now().UnixNano())
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	plug := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Cleanup(plug.Close)
	createFleet(b, ns, fleetSize, plug.URL)

	o := testmanager.Options(ns)
	// Every machine powers on at once: the pacing of power-ons is not what is measured.
	o.PowerOnRate = 0
	o.Logger = logr.Discard()
	base := heapInuse()
	var (
		peak uint64
		mu   sync.Mutex
		done = make(chan struct{})
	)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				mu.Lock()
				peak = max(peak, ms.HeapInuse)
				mu.Unlock()
			}
		}
	}()
	b.ResetTimer()
	m, _, _ := testmanager.Start(b, env.Config, o)
	testenv.Eventually(b, 10*time.Minute, "the Group to count every member Ready", func() bool {
		g := &infrav1.Group{}
		err := m.GetClient().Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet"}, g)
		return err == nil && g.Status.Ready == fleetSize && g.Status.Members == fleetSize
	})
	close(done)
	rest := heapInuse()
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	const mib = 1 << 20
	b.ReportMetric(float64(rest-min(base, rest))/mib, "heap-MiB")
	b.ReportMetric(float64(peak-min(base, peak))/mib, "peak-heap-MiB")
	b.ReportMetric(0, "ns/op")
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// createFleet creates a Group "fleet" and n Machines in ns that should run, each with the Node
// its kubelet registered, Ready.
func createFleet(t testing.TB, ns string, n int, plugURL string) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet"}}); err != nil {
		t.Fatal(err)
	}
	action := func(turn string) *infrav1.PowerDriver {
		return &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{URL: plugURL + "/" + turn}}
	}
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				name := fmt.Sprintf("%s-m%05d", ns, i)
				m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: infrav1.MachineSpec{
					Group: "fleet", Online: true, Power: &infrav1.PowerSpec{Start: action("on"), Stop: action("off")},
				}}
				if err := env.Client.Create(ctx, m); err != nil {
					errs <- err
					continue
				}
				if err := env.Client.Create(ctx, kubeletNode(ns, name)); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.DeleteAllOf(ctx, &corev1.Node{}, client.MatchingLabels{infrav1.LabelNamespace: ns})
	})
}

// kubeletNode is the Node a kubelet registers for machine name of namespace ns, with the status
// it reports: Ready, its capacity, addresses, system info and the images it holds.
func kubeletNode(ns, name string) *corev1.Node {
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("200Gi"),
	}
	conditions := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}}
	for _, c := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		conditions = append(conditions, corev1.NodeCondition{Type: c, Status: corev1.ConditionFalse, Reason: "KubeletHas" + string(c)[:4], Message: "kubelet has no " + string(c)})
	}
	for i := range conditions {
		conditions[i].LastHeartbeatTime, conditions[i].LastTransitionTime = now, now
	}
	var images []corev1.ContainerImage
	for i := range 20 {
		repo := fmt.Sprintf("registry.example.org/team/image-%02d", i)
		images = append(images, corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("%s@sha256:%064x", repo, i+1), repo + ":v1.2.3"},
			SizeBytes: int64(50_000_000 + i),
		})
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64",
			infrav1.LabelNamespace: ns,
		}},
		Spec: corev1.NodeSpec{ProviderID: "homelab://" + ns + "/" + name},
		// The apiserver keeps the status given at create for Nodes, as kubelets rely on.
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity.DeepCopy(), Conditions: conditions,
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: "0123456789abcdef", SystemUUID: "01234567-89ab-cdef-0123-456789abcdef", BootID: "89abcdef-0123",
				KernelVersion: "6.8.0-45-generic", OSImage: "Ubuntu 24.04.1 LTS", ContainerRuntimeVersion: "containerd://1.7.22",
				KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
			},
			Images: images,
		},
	}
}
