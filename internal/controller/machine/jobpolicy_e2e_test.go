package machine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

// startManagerWith runs the manager with the built-in drivers (the drivers' egress allows the
// loopback address of the test's servers) and short retries, watching ns, after set has changed
// its options.
func startManagerWith(t *testing.T, ns string, set func(o *app.Options)) {
	t.Helper()
	o := testmanager.Options(ns)
	o.PowerRetryBase, o.PowerRetryCap, o.PowerConfirmInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	set(&o)
	testmanager.Start(t, env.Config, o)
}

// enforceRestricted labels ns so that the apiserver's Pod Security admission refuses every pod
// that does not meet the "restricted" level.
func enforceRestricted(t *testing.T, ns string) {
	t.Helper()
	patch := []byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted"}}}`)
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if err := env.Client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
}

// A Job driver that asks for what the manager's policy does not allow is refused before anything
// is created: the machine is Failed with a ConfigError that names the flag, and no Job exists.
func TestJobPolicyRefusalsCreateNoJob(t *testing.T) {
	ns := newNamespace(t)
	startManagerWith(t, ns, func(o *app.Options) {
		o.Drivers = power.Registry{}
		o.JobPolicy = power.JobPolicy{Images: power.ImagePrefixes{"registry.example/power-scripts/"}}
	})
	createGroup(t, ns, "workers")
	cases := map[string]struct {
		job  infrav1.JobDriver
		flag string
	}{
		"host-network":    {infrav1.JobDriver{Image: "registry.example/power-scripts/wake:1.0", HostNetwork: true}, "--job-allow-host-network"},
		"service-account": {infrav1.JobDriver{Image: "registry.example/power-scripts/wake:1.0", ServiceAccountName: "admin"}, "--job-service-accounts"},
		"image":           {infrav1.JobDriver{Image: "registry.example/other/wake:1.0"}, "--job-images"},
	}
	machines := map[string]*infrav1.Machine{}
	for name, tc := range cases {
		machines[name] = createMachine(t, ns, name, "workers", true, func(n *infrav1.Machine) {
			n.Spec.Power.Start = &infrav1.PowerDriver{Job: tc.job.DeepCopy()}
		})
	}
	for name, tc := range cases {
		got := waitProgress(t, machines[name], infrav1.ProgressFailed, 20*time.Second)
		if got.Status.LastErrorReason != string(power.ClassConfig) || !strings.Contains(got.Status.LastError, tc.flag) {
			t.Errorf("%s: status %q %q", name, got.Status.LastErrorReason, got.Status.LastError)
		}
		expectCondition(t, got, infrav1.ConditionStalled, metav1.ConditionTrue, "ConfigError")
		waitEvent(t, machines[name], "Failed")
	}
	jobs := &batchv1.JobList{}
	if err := env.Client.List(context.Background(), jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 0 {
		t.Fatalf("%d Jobs were created", len(jobs.Items))
	}
}

// The pod of a default power Job (default ServiceAccount, Secret, ConfigMap and scratch volumes)
// is admitted in a namespace that enforces the "restricted" Pod Security level, by the
// apiserver's own admission. The same pod on the host network is not: hostNetwork, when the
// manager allows it, needs a namespace at the "privileged" level.
func TestJobPodPassesRestrictedPodSecurity(t *testing.T) {
	ns := newNamespace(t)
	enforceRestricted(t, ns)
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m1"}, Spec: infrav1.MachineSpec{Group: "workers"}}
	spec := &infrav1.JobDriver{
		Image:   "busybox:1.37",
		Command: []string{"sh", "-c", "cat /bmc/password >/dev/null"},
		Volumes: []infrav1.JobVolume{
			{Name: "bmc", Secret: &corev1.SecretVolumeSource{SecretName: "bmc"}},
			{Name: "ca", ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "ca"}}},
			{Name: "scratch", EmptyDir: &corev1.EmptyDirVolumeSource{}},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "bmc", MountPath: "/bmc", ReadOnly: true}},
	}
	podOf := func(name string, spec *infrav1.JobDriver) *corev1.Pod {
		job := power.BuildJob(m, power.Slot{Timeout: time.Minute, Job: spec}, power.ActionOn, 1, name, false)
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: job.Spec.Template.Labels}, Spec: job.Spec.Template.Spec}
	}
	if err := env.Client.Create(context.Background(), podOf("restricted", spec)); err != nil {
		t.Fatalf("the power Job's pod is refused in a restricted namespace: %v", err)
	}
	hostNet := spec.DeepCopy()
	hostNet.HostNetwork = true
	err := env.Client.Create(context.Background(), podOf("host-network", hostNet))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Fatalf("a host-network pod in a restricted namespace: %v, want a PodSecurity refusal", err)
	}
}
