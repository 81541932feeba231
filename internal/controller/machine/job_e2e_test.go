package machine_test

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// A real power Job, end to end: created by the reconciler, scheduled by kube-scheduler onto a
// kwok node, its pod completed by kwok, the Job marked Complete by kube-controller-manager's Job
// controller, and the success read back by the reconciler.
func TestRealJobUnderControllerManagerAndKwok(t *testing.T) {
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.StartKubeControllerManager(t, kubeconfig, "job,serviceaccount")
	env.StartScheduler(t, kubeconfig)
	env.StartKwok(t, kubeconfig)

	// An always-on node for the power Jobs to run on, played by kwok.
	runner := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        "always-on",
		Annotations: map[string]string{testenv.KwokNodeAnnotation: "fake"},
		Labels:      map[string]string{"role": "power-jobs"},
	}}
	if err := env.Client.Create(context.Background(), runner); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}

	ns := newNamespace(t)
	// The Job controller's pod must pass the restricted Pod Security level.
	enforceRestricted(t, ns)
	startManager(t, ns, nil)
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.Power.Start = &infrav1.PowerDriver{
			Timeout: &metav1.Duration{Duration: time.Minute},
			Job: &infrav1.JobDriver{
				Image:        "busybox:1.37",
				Command:      []string{"sh", "-c", "echo waking $HOMELAB_NODE"},
				NodeSelector: map[string]string{"role": "power-jobs"},
				// Without the node lifecycle controller the admission-time not-ready taint stays.
				Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists}},
			},
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, ns)
		}
	})
	testenv.Eventually(t, 60*time.Second, "the power Job to complete and be recorded", func() bool {
		op := get(t, n).Status.Operation
		return op != nil && op.CommandDone
	})
	job := &batchv1.Job{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: power.JobName("m1", power.ActionOn, 1)}, job); err != nil {
		t.Fatal(err)
	}
	if job.Status.Succeeded != 1 {
		t.Fatalf("job status: %+v", job.Status)
	}
	pods := &corev1.PodList{}
	if err := env.Client.List(context.Background(), pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Spec.NodeName != "always-on" || pods.Items[0].Status.Phase != corev1.PodSucceeded {
		t.Fatalf("the power pod did not run on the always-on node: %d pods", len(pods.Items))
	}
	// The machine boots and registers.
	if err := registerCoreNode(context.Background(), ns, ns+"-m1", true); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, n, infrav1.ProgressReady, 10*time.Second)
}

func dumpNamespace(t *testing.T, ns string) {
	jobs := &batchv1.JobList{}
	_ = env.Client.List(context.Background(), jobs, client.InNamespace(ns))
	for _, j := range jobs.Items {
		t.Logf("job %s: %+v", j.Name, j.Status)
	}
	pods := &corev1.PodList{}
	_ = env.Client.List(context.Background(), pods, client.InNamespace(ns))
	for _, p := range pods.Items {
		t.Logf("pod %s on %q: %s %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
	}
	events := &corev1.EventList{}
	_ = env.Client.List(context.Background(), events, client.InNamespace(ns))
	for _, e := range events.Items {
		t.Logf("event %s %s: %s", e.InvolvedObject.Name, e.Reason, e.Message)
	}
	t.Logf("machine status: %+v", get(t, &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m1"}}).Status)
}
