package machine_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// startKubelet plays the kubelet's part in pod deletion: a pod marked for deletion on one of the
// given core Nodes is removed (there is no kubelet to confirm it here).
func startKubelet(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			pods := &corev1.PodList{}
			if err := env.Client.List(ctx, pods, client.InNamespace(ns)); err == nil {
				for i := range pods.Items {
					if p := &pods.Items[i]; !p.DeletionTimestamp.IsZero() {
						_ = env.Client.Delete(ctx, p, client.GracePeriodSeconds(0))
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func createPod(t *testing.T, ns, name, nodeName string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "protected"}},
		Spec: corev1.PodSpec{
			NodeName:   nodeName,
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	// A healthy pod: the Eviction API lets unhealthy pods go regardless of the budget.
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := env.Client.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func podExists(t *testing.T, p *corev1.Pod) bool {
	t.Helper()
	err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), &corev1.Pod{})
	return err == nil
}

func TestHumanPowerOffDrainsAndReportsABlockingPDB(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	startKubelet(t, ns)
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.ShutdownTimeout = &metav1.Duration{Duration: time.Minute}
	})
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	pod := createPod(t, ns, "web", ns+"-m1")
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "protect"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "protected"}},
		},
	}
	if err := env.Client.Create(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	// The disruption controller does not run here: publish the PDB status it would compute.
	pdb.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1, DisruptionsAllowed: 0,
	}
	if err := env.Client.Status().Update(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}

	setDesired(t, n, false)
	var got *infrav1.Machine
	testenv.Eventually(t, 10*time.Second, "the blocked drain to be reported", func() bool {
		got = get(t, n)
		return got.Status.LastErrorReason == "DrainBlocked"
	})
	if got.Status.Progress != infrav1.ProgressShuttingDown || drv.total("m1", power.ActionOff) != 0 {
		t.Fatalf("power-off went ahead despite the PDB: %+v, %d off commands", got.Status, drv.total("m1", power.ActionOff))
	}
	// A blocked drain is still on its way (kstatus InProgress), not stalled: the PDB may allow the
	// eviction any moment; the reason and the blocked pod show in the Reconciling message.
	expectCondition(t, got, infrav1.ConditionReconciling, metav1.ConditionTrue, "PoweringOff")
	expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionFalse, "AsExpected")
	if msg := condition(got, infrav1.ConditionReconciling).Message; !strings.Contains(msg, "DrainBlocked") || !strings.Contains(msg, "pod "+ns+"/web") {
		t.Fatalf("the Reconciling condition does not say the drain is blocked: %q", msg)
	}
	waitEvent(t, n, "DrainBlocked")
	if core := env.Node(t, ns+"-m1"); core == nil || !core.Spec.Unschedulable {
		t.Fatalf("the core Node was not cordoned before the drain")
	}
	if !podExists(t, pod) {
		t.Fatalf("the protected pod was evicted")
	}

	// The PDB allows the disruption: the pod is evicted and the machine powers off.
	pdb.Status.DisruptionsAllowed = 1
	if err := env.Client.Status().Update(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	got = waitProgress(t, n, infrav1.ProgressOff, 15*time.Second)
	if podExists(t, pod) {
		t.Fatalf("the machine powered off with its pod still bound")
	}
	if drv.count("m1", power.ActionOff, 1) != 1 || got.Status.LastError != "" {
		t.Fatalf("after the drain: %d off commands, status %+v", drv.count("m1", power.ActionOff, 1), got.Status)
	}
}

func TestAutoscalerPowerOffDoesNotDrainAgain(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true)
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	// A pod the autoscaler chose to leave (e.g. a DaemonSet-like pod it ignores): no drain touches it.
	pod := createPod(t, ns, "left-by-ca", ns+"-m1")

	setDesiredOffByAutoscaler(t, n)
	got := waitProgress(t, n, infrav1.ProgressOff, 10*time.Second)
	if got.Status.Operation.Drain {
		t.Fatalf("a cluster-autoscaler power-off was drained again")
	}
	if !podExists(t, pod) {
		t.Fatalf("the controller evicted a pod on a node cluster-autoscaler drained")
	}

	// A later human power-off of the same machine (the marker is now stale) drains.
	setDesired(t, n, true)
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	setDesired(t, n, false)
	testenv.Eventually(t, 10*time.Second, "a draining power-off", func() bool {
		got = get(t, n)
		return got.Status.Operation != nil && got.Status.Operation.Action == infrav1.PowerActionOff && got.Status.Operation.Drain
	})
}

// Whoever may edit a Machine (and its Group's metadata) cannot make the manager skip the drain of
// a power-off: the record of a power-off cluster-autoscaler drained lives in the Group's status,
// which the default RBAC gives such a user no right to write. The marker annotation of earlier
// versions, and a ledger written into the Group's annotations, are both ignored.
func TestMachineAuthorCannotSkipTheDrain(t *testing.T) {
	ns := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	startKubelet(t, ns)
	g := createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true)
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
	pod := createPod(t, ns, "tenant-b-web", ns+"-m1")

	cur := get(t, n)
	forged := `{"powerOffs":[{"name":"m1","generation":` + strconv.FormatInt(cur.Generation+1, 10) + `}]}`
	if _, err := optimistic.Update(context.Background(), testWriter, g, func(g *infrav1.Group) error {
		if g.Annotations == nil {
			g.Annotations = map[string]string{}
		}
		g.Annotations["homelab-autoscaler.dev/scale-ledger"] = forged
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := optimistic.Update(context.Background(), testWriter, cur, func(m *infrav1.Machine) error {
		m.Spec.Online = false
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations["homelab-autoscaler.dev/power-off-by-cluster-autoscaler"] = strconv.FormatInt(m.Generation+1, 10)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := waitProgress(t, n, infrav1.ProgressOff, 15*time.Second)
	if !got.Status.Operation.Drain {
		t.Fatal("a power-off marked by the machine's author as drained by cluster-autoscaler was not drained")
	}
	if podExists(t, pod) {
		t.Fatal("the machine powered off with its pod still bound")
	}
}
