package power

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	projectscheme "github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

func TestImagePrefixesAllow(t *testing.T) {
	t.Parallel()
	var l ImagePrefixes
	for _, s := range []string{"registry.example/power-scripts/,docker.io/library/busybox:", "ghcr.io/homelab/ipmitool", "localhost:5000/tools@"} {
		if err := l.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	for image, want := range map[string]bool{
		"registry.example/power-scripts/wake:1.0":        true,
		"registry.example/power-scripts/a/b@sha256:0123": true,
		"registry.example/power-scripts-old/wake:1.0":    false,
		"registry.example/other/wake:1.0":                false,
		"busybox:1.37":                                   true,
		"docker.io/busybox:1.37":                         true,
		"index.docker.io/library/busybox:1.37":           true,
		"docker.io/library/busybox:1.37":                 true,
		"busybox":                                        false, // no tag: not after "busybox:"
		"busybox@sha256:0123":                            false,
		"evil/busybox:1.37":                              false,
		"ghcr.io/homelab/ipmitool":                       true,
		"ghcr.io/homelab/ipmitool:2":                     true,
		"ghcr.io/homelab/ipmitool@sha256:0123":           true,
		"ghcr.io/homelab/ipmitool/helper:2":              true,
		"ghcr.io/homelab/ipmitool-evil:2":                false,
		"ghcr.io/homelab/ipmi":                           false,
		"localhost:5000/tools@sha256:0123":               true,
		"localhost:5000/tools:1":                         false,
		"registry.example.evil/power-scripts/wake:1.0":   false,
		"registry.example/power-scripts":                 false,
		"docker.io/library/busybox-evil:1.37":            false,
	} {
		if got := l.Allows(image); got != want {
			t.Errorf("Allows(%q) = %v, want %v", image, got, want)
		}
	}
	if (ImagePrefixes{}).Allows("busybox:1.37") {
		t.Fatal("an empty list allowed an image")
	}
}

func TestImagePrefixesSetRefusesWhatAllowsTooMuch(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a,,b", "*", "registry.example/*", "a b"} {
		var l ImagePrefixes
		err := l.Set(s)
		if err == nil {
			t.Errorf("Set(%q) accepted", s)
			continue
		}
		if !strings.Contains(err.Error(), "--"+FlagJobImages) {
			t.Errorf("Set(%q): %v does not name the flag", s, err)
		}
	}
}

func TestServiceAccountList(t *testing.T) {
	t.Parallel()
	var l ServiceAccountList
	if err := l.Set("power-jobs,homelab/bmc-tools"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns, name string
		want     bool
	}{
		{"any", "power-jobs", true},
		{"homelab", "bmc-tools", true},
		{"other", "bmc-tools", false},
		{"homelab", "default", false},
	} {
		if got := l.Lists(c.ns, c.name); got != c.want {
			t.Errorf("Lists(%s, %s) = %v", c.ns, c.name, got)
		}
	}
	for _, bad := range []string{"", "a/b/c", "Upper", "ns/", "/name", "bad_ns/x"} {
		var l ServiceAccountList
		if err := l.Set(bad); err == nil || !strings.Contains(err.Error(), "--"+FlagJobServiceAccounts) {
			t.Errorf("Set(%q): %v", bad, err)
		}
	}
}

// jobClient is a client holding the Secrets given, with the kinds a Job driver writes.
func jobClient(objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(projectscheme.New()).WithObjects(objs...).Build()
}

func jobRequest(c client.Client, spec *infrav1.JobDriver) Request {
	return Request{
		Machine: testMachine(), Action: ActionOn, Attempt: 1,
		Slot:    Slot{Timeout: time.Minute, Job: spec},
		Secrets: ClientSecrets{Reader: c},
	}
}

func jobs(t *testing.T, c client.Client) []batchv1.Job {
	t.Helper()
	list := &batchv1.JobList{}
	if err := c.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// What the policy refuses is a ConfigError naming the flag that would allow it, and no Job is
// created.
func TestJobDriverRefusesWhatThePolicyDoesNotAllow(t *testing.T) {
	t.Parallel()
	allowed := JobPolicy{Images: ImagePrefixes{"registry.example/power/"}, ServiceAccounts: ServiceAccountList{"power-jobs"}}
	cases := []struct {
		name   string
		policy JobPolicy
		spec   infrav1.JobDriver
		want   []string
	}{
		{"no images", JobPolicy{}, infrav1.JobDriver{Image: "busybox:1.37"},
			[]string{`image "busybox:1.37" is refused`, "--job-images=docker.io/library/busybox"}},
		{"image not listed", allowed, infrav1.JobDriver{Image: "registry.example/other/x:1"},
			[]string{"--job-images (registry.example/power/)", "registry.example/other/x"}},
		{"service account", allowed, infrav1.JobDriver{Image: "registry.example/power/x:1", ServiceAccountName: "admin"},
			[]string{`serviceAccountName "admin" is refused`, "--job-service-accounts"}},
		{"host network", allowed, infrav1.JobDriver{Image: "registry.example/power/x:1", HostNetwork: true},
			[]string{"hostNetwork is refused", "--job-allow-host-network"}},
		{"all at once", JobPolicy{}, infrav1.JobDriver{Image: "x", ServiceAccountName: "admin", HostNetwork: true},
			[]string{"--job-images", "--job-service-accounts", "--job-allow-host-network"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := jobClient()
			_, err := JobDriver{Client: c, Policy: tc.policy}.Do(context.Background(), jobRequest(c, &tc.spec))
			msg := wantClass(t, err, ClassConfig)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("the refusal is not one line: %q", msg)
			}
			if n := len(jobs(t, c)); n != 0 {
				t.Fatalf("%d Jobs created", n)
			}
		})
	}
}

// The token is mounted only for a ServiceAccount the policy lists; every pod gets the
// "restricted" securityContext.
func TestJobDriverBuildsRestrictedPods(t *testing.T) {
	t.Parallel()
	policy := JobPolicy{Images: ImagePrefixes{"busybox:"}, ServiceAccounts: ServiceAccountList{"power-jobs"}, AllowHostNetwork: true}
	for _, tc := range []struct {
		sa        string
		hostNet   bool
		wantToken bool
	}{{"", false, false}, {"default", false, false}, {"power-jobs", true, true}} {
		c := jobClient()
		spec := &infrav1.JobDriver{Image: "busybox:1.37", ServiceAccountName: tc.sa, HostNetwork: tc.hostNet}
		if _, err := (JobDriver{Client: c, Policy: policy}).Do(context.Background(), jobRequest(c, spec)); err != nil {
			t.Fatal(err)
		}
		js := jobs(t, c)
		if len(js) != 1 {
			t.Fatalf("%d Jobs", len(js))
		}
		pod := js[0].Spec.Template.Spec
		if got := ptr.Deref(pod.AutomountServiceAccountToken, true); got != tc.wantToken {
			t.Errorf("serviceAccountName %q: token mounted %v, want %v", tc.sa, got, tc.wantToken)
		}
		if pod.HostNetwork != tc.hostNet {
			t.Errorf("hostNetwork %v", pod.HostNetwork)
		}
		psc, sc := pod.SecurityContext, pod.Containers[0].SecurityContext
		if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) == 0 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext %+v", psc)
		}
		if sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.RunAsNonRoot, false) ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container securityContext %+v", sc)
		}
	}
}

// A Secret the pod would read must be one the drivers may use: the Job driver refuses the same
// Secrets ClientSecrets does, naming the label, and an optional Secret that does not exist is
// no reason to refuse.
func TestJobDriverChecksTheSecretsItsPodReads(t *testing.T) {
	t.Parallel()
	const value = "Zq9xK7vW2pL4-job-secret"
	plain := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "sa-token"}, Data: map[string][]byte{"token": []byte(value)}}
	labelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "bmc", Labels: credentialsLabel}, Data: map[string][]byte{"password": []byte(value)}}
	policy := JobPolicy{Images: ImagePrefixes{"busybox:"}}
	keyRef := func(name string, optional bool) []corev1.EnvVar {
		return []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k", Optional: ptr.To(optional),
		}}}}
	}
	for _, tc := range []struct {
		name    string
		spec    infrav1.JobDriver
		refused bool
	}{
		{"env of an unlabelled Secret", infrav1.JobDriver{Env: keyRef("sa-token", false)}, true},
		{"envFrom of an unlabelled Secret", infrav1.JobDriver{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sa-token"}}}}}, true},
		{"volume of an unlabelled Secret", infrav1.JobDriver{Volumes: []infrav1.JobVolume{{Name: "v", Secret: &corev1.SecretVolumeSource{SecretName: "sa-token"}}}}, true},
		{"an unlabelled optional Secret", infrav1.JobDriver{Env: keyRef("sa-token", true)}, true},
		{"a missing Secret", infrav1.JobDriver{Env: keyRef("missing", false)}, true},
		{"a missing optional Secret", infrav1.JobDriver{Env: keyRef("missing", true)}, false},
		{"a labelled Secret", infrav1.JobDriver{Env: keyRef("bmc", false), Volumes: []infrav1.JobVolume{{Name: "v", Secret: &corev1.SecretVolumeSource{SecretName: "bmc"}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := jobClient(plain.DeepCopy(), labelled.DeepCopy())
			tc.spec.Image = "busybox:1.37"
			_, err := JobDriver{Client: c, Policy: policy}.Do(context.Background(), jobRequest(c, &tc.spec))
			if !tc.refused {
				if err != nil || len(jobs(t, c)) != 1 {
					t.Fatalf("not created: %v", err)
				}
				return
			}
			msg := wantClass(t, err, ClassConfig, value)
			if strings.Contains(tc.name, "unlabelled") && !strings.Contains(msg, infrav1.LabelCredentials) {
				t.Errorf("%q does not name the label", msg)
			}
			if n := len(jobs(t, c)); n != 0 {
				t.Fatalf("%d Jobs created", n)
			}
		})
	}
}
