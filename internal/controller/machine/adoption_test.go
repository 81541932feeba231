package machine_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// refusedNode is a Node a machine answers to but may not adopt, registered Ready before the
// machine exists, with a pod of another namespace on it.
type refusedNode struct {
	core   *corev1.Node
	labels map[string]string
	taints []corev1.Taint
	pod    *corev1.Pod
}

func registerRefusedNode(t *testing.T, name, providerID string, labels map[string]string) *refusedNode {
	t.Helper()
	ctx := context.Background()
	core := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: maps.Clone(labels)}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	if err := env.Client.Create(ctx, core); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), core) })
	if err := setCoreNodeReady(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	workloads := newNamespace(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: workloads, Name: "app"}, Spec: corev1.PodSpec{
		NodeName: name, Containers: []corev1.Container{{Name: "app", Image: "busybox"}},
	}}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return &refusedNode{core: core, labels: labels, taints: core.Spec.Taints, pod: pod}
}

// expectUntouched fails unless the Node is as its kubelet registered it: not labeled, given no
// providerID, not cordoned, its pod not evicted, not deleted.
func (r *refusedNode) expectUntouched(t *testing.T) {
	t.Helper()
	got := env.Node(t, r.core.Name)
	if got == nil {
		t.Fatalf("Node %s was deleted", r.core.Name)
	}
	if !maps.Equal(got.Labels, r.labels) {
		t.Errorf("Node %s labels %v, want those it registered with, %v", got.Name, got.Labels, r.labels)
	}
	if got.Spec.ProviderID != r.core.Spec.ProviderID {
		t.Errorf("Node %s providerID %q, registered with %q", got.Name, got.Spec.ProviderID, r.core.Spec.ProviderID)
	}
	if got.Spec.Unschedulable || !slices.EqualFunc(got.Spec.Taints, r.taints, func(a, b corev1.Taint) bool { return a.MatchTaint(&b) }) {
		t.Errorf("Node %s was cordoned: unschedulable %v, taints %v", got.Name, got.Spec.Unschedulable, got.Spec.Taints)
	}
	pod := &corev1.Pod{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(r.pod), pod); err != nil || !pod.DeletionTimestamp.IsZero() {
		t.Errorf("the pod on Node %s was evicted (%v, deletion %v)", got.Name, err, pod.DeletionTimestamp)
	}
}

// A machine that answers to a Node it may not adopt (a control-plane Node, one that does not opt
// in, another namespace's by name or by providerID, one that two machines claim) goes through a
// power-on and a power-off without taking it: the Node is never labeled, cordoned, drained or
// deleted, and the machine's Stalled condition says why.
func TestRefusedNodesAreNeverAdopted(t *testing.T) {
	ns := newNamespace(t)
	other := newNamespace(t)
	drv := newMachineDriver()
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	optIn := func(namespace string) map[string]string { return map[string]string{infrav1.LabelNamespace: namespace} }

	type machineCase struct {
		name   string
		mutate func(*infrav1.Machine)
	}
	cases := []struct {
		what     string
		node     func() *refusedNode
		machines []machineCase
		reason   string
		message  string
	}{{
		what: "a control-plane Node, although it opts in",
		node: func() *refusedNode {
			return registerRefusedNode(t, ns+"-cp", "", map[string]string{infrav1.LabelNamespace: ns, "node-role.kubernetes.io/control-plane": ""})
		},
		machines: []machineCase{{name: "cp"}},
		reason:   machines.ReasonControlPlaneNode,
		message:  "Node " + ns + "-cp is a control-plane node (label node-role.kubernetes.io/control-plane): no machine adopts one",
	}, {
		what:     "a Node without the opt-in label",
		node:     func() *refusedNode { return registerRefusedNode(t, ns+"-plain", "", nil) },
		machines: []machineCase{{name: "plain"}},
		reason:   machines.ReasonNodeNotOptedIn,
		message: "Node " + ns + "-plain does not opt in to machines: its kubelet must register it with the label homelab-autoscaler.dev/namespace=" +
			ns + " (--node-labels)",
	}, {
		what:     "another namespace's Node, by name",
		node:     func() *refusedNode { return registerRefusedNode(t, other+"-w1", "", optIn(other)) },
		machines: []machineCase{{name: "by-name", mutate: func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = other + "-w1" }}},
		reason:   machines.ReasonNodeNotOptedIn,
		message:  fmt.Sprintf("Node %s-w1 opts in to the machines of namespace %q only (label homelab-autoscaler.dev/namespace), not of %q", other, other, ns),
	}, {
		what: "another namespace's Node, by its providerID",
		node: func() *refusedNode {
			return registerRefusedNode(t, other+"-w2", "homelab://"+other+"/w2", optIn(other))
		},
		machines: []machineCase{{name: "by-id", mutate: func(m *infrav1.Machine) { m.Spec.ProviderID = "homelab://" + other + "/w2" }}},
		reason:   machines.ReasonProviderIDOutsideNamespace,
		message: fmt.Sprintf("spec.providerID %q does not start with %q: a machine's providerID must lie in its own namespace, and until it does the machine claims no Node",
			"homelab://"+other+"/w2", "homelab://"+ns+"/"),
	}, {
		what:     "another namespace's Node that carries this machine's providerID",
		node:     func() *refusedNode { return registerRefusedNode(t, other+"-w3", "homelab://"+ns+"/w3", optIn(other)) },
		machines: []machineCase{{name: "w3"}},
		reason:   machines.ReasonNodeNotOptedIn,
		message:  fmt.Sprintf("Node %s-w3 opts in to the machines of namespace %q only (label homelab-autoscaler.dev/namespace), not of %q", other, other, ns),
	}, {
		what: "a Node two machines name",
		node: func() *refusedNode { return registerRefusedNode(t, ns+"-twin", "", optIn(ns)) },
		machines: []machineCase{
			{name: "twin-a", mutate: func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = ns + "-twin" }},
			{name: "twin-b", mutate: func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = ns + "-twin" }},
		},
		reason:  machines.ReasonNodeClaimedTwice,
		message: "Node " + ns + "-twin is also claimed by %s (same spec.providerID or spec.kubernetesNodeName in this namespace): no machine gets it while more than one claims it",
	}, {
		what: "a Node two machines claim by providerID",
		node: func() *refusedNode { return registerRefusedNode(t, ns+"-same", "homelab://"+ns+"/same", optIn(ns)) },
		machines: []machineCase{
			{name: "same-a", mutate: func(m *infrav1.Machine) { m.Spec.ProviderID = "homelab://" + ns + "/same" }},
			{name: "same-b", mutate: func(m *infrav1.Machine) { m.Spec.ProviderID = "homelab://" + ns + "/same" }},
		},
		reason:  machines.ReasonNodeClaimedTwice,
		message: "Node " + ns + "-same is also claimed by %s (same spec.providerID or spec.kubernetesNodeName in this namespace): no machine gets it while more than one claims it",
	}}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			var ms []*infrav1.Machine
			for _, mc := range c.machines {
				// The test registers the Node; powering the machine on only turns it on.
				drv.set(func(d *machineDriver) { d.neverUp[mc.name] = true })
				ms = append(ms, createMachine(t, ns, mc.name, "workers", false, func(m *infrav1.Machine) {
					m.Spec.BootTimeout = &metav1.Duration{Duration: time.Hour}
					if mc.mutate != nil {
						mc.mutate(m)
					}
				}))
			}
			// Every claim is in the manager's cache before the Node registers, so that the
			// duplicate claims arrive together, as they do for a Node that registers later.
			for _, m := range ms {
				waitProgress(t, m, infrav1.ProgressOff, 10*time.Second)
			}
			node := c.node()
			expectReported := func(progress infrav1.Progress) {
				t.Helper()
				for i, m := range ms {
					want := c.message
					if len(ms) > 1 {
						want = fmt.Sprintf(c.message, ms[1-i].Name)
					}
					var got *infrav1.Machine
					testenv.Eventually(t, 10*time.Second, fmt.Sprintf("%s to be %s and report %s", m.Name, progress, c.reason), func() bool {
						got = get(t, m)
						s := condition(got, infrav1.ConditionStalled)
						return got.Status.Progress == progress && s != nil && s.Reason == c.reason
					})
					expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, c.reason)
					if msg := condition(got, infrav1.ConditionStalled).Message; msg != want {
						t.Errorf("%s Stalled message\n%s\nwant\n%s", m.Name, msg, want)
					}
					if got.Status.KubernetesNode != "" {
						t.Errorf("%s took the refused Node as its own: %+v", m.Name, got.Status)
					}
				}
			}
			expectReported(infrav1.ProgressOff)

			// Powered on: the Node is Ready, but it is not the machine's, so the machine waits
			// for its own.
			for _, m := range ms {
				setDesired(t, m, true)
			}
			expectReported(infrav1.ProgressStartingUp)
			node.expectUntouched(t)

			// Powered off: the lifecycle would cordon, drain and delete the machine's Node.
			for _, m := range ms {
				setDesired(t, m, false)
			}
			expectReported(infrav1.ProgressOff)
			for _, m := range ms {
				if drv.total(m.Name, power.ActionOn) == 0 || drv.total(m.Name, power.ActionOff) == 0 {
					t.Fatalf("%s was not powered on and off (%d on, %d off commands)", m.Name,
						drv.total(m.Name, power.ActionOn), drv.total(m.Name, power.ActionOff))
				}
			}
			node.expectUntouched(t)
		})
	}
}
