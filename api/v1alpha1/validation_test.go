package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

var seq atomic.Int64

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// fromYAML builds an unstructured object the way kubectl would send it, so YAML quirks (an
// unquoted on) reach the apiserver as a user's file would.
func fromYAML(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	u.SetNamespace("default")
	u.SetName(uniqueName(strings.ToLower(u.GetKind())))
	return u
}

const validMachineSpec = `
  group: workers
  online: false
  power:
    start:
      wakeOnLAN:
        mac: "aa:bb:cc:dd:ee:01"
    stop:
      ssh:
        address: 192.0.2.10
        user: root
        keySecretRef: {name: node-ssh, key: ssh-privatekey}
        hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTestsOnly"
`

func machineYAML(spec string) string {
	return "apiVersion: infra.homelab-autoscaler.dev/v1alpha1\nkind: Machine\nspec:" + spec
}

func groupYAML(spec string) string {
	return "apiVersion: infra.homelab-autoscaler.dev/v1alpha1\nkind: Group\nspec:" + spec
}

func TestValidObjectsAreAccepted(t *testing.T) {
	for name, doc := range map[string]string{
		"machine with wol and ssh": machineYAML(validMachineSpec),
		"machine with a bmc": machineYAML(`
  group: workers
  online: true
  bootTimeout: 90s
  bmc: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}
  power:
    status: {redfish: {endpoint: "https://192.0.2.20", credentialsSecretRef: {name: bmc}}}
`),
		"machine whose bmc comes from its group": machineYAML(`
  group: workers
  bmc: {ipmi: {address: 192.0.2.21}}
`),
		"machine with only a group": machineYAML(`
  group: workers
`),
		"machine with job": machineYAML(`
  group: workers
  power:
    start: {job: {image: "busybox:1.37", command: [sh, -c, "echo on"], env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: t, key: token}}}]}}
    stop: {http: {url: "http://plug.local/relay/0?turn=off", headersSecretRef: {name: plug}}}
`),
		"machine with talos": machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:02"}}
    stop: {talos: {endpoint: "192.0.2.30:50000", credentialsSecretRef: {name: talos}, force: true}}
`),
		"group with talos defaults": groupYAML(`
  machineDefaults:
    power:
      stop: {talos: {endpoint: "{name}.lan", credentialsSecretRef: {name: talos}}}
`),
		"group with machine defaults": groupYAML(`
  machineDefaults:
    bmc: {redfish: {endpoint: "https://{name}-bmc.lan", credentialsSecretRef: {name: bmc}, insecureSkipVerify: true}}
    power:
      stop: {ssh: {address: "{name}.lan", user: root, keySecretRef: {name: ssh}, hostKeySecretRef: {name: hostkeys, key: "{name}"}}}
    bootTimeout: 15m
    maxAttempts: 5
    pricing: {hourlyRate: "0.05"}
`),
		"group": groupYAML(`
  minSize: 0
  maxSize: 4
  template:
    capacity: {cpu: "4", memory: 16Gi, pods: "110"}
  autoscalingOptions:
    scaleDownUtilizationThreshold: "0.5"
    scaleDownUnneededTime: 5m
`),
	} {
		t.Run(name, func(t *testing.T) {
			if err := env.Client.Create(t.Context(), fromYAML(t, doc)); err != nil {
				t.Fatalf("valid object rejected: %v", err)
			}
		})
	}
}

func TestInvalidObjectsAreRejectedWithClearMessages(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want string
	}{
		{"min greater than max", groupYAML(`
  minSize: 3
  maxSize: 2`), "minSize must not be greater than maxSize"},
		{"negative min", groupYAML(`
  minSize: -1`), "spec.minSize: Invalid value: -1: spec.minSize in body should be greater than or equal to 0"},
		{"negative max", groupYAML(`
  maxSize: -2`), "spec.maxSize in body should be greater than or equal to 0"},
		{"bad utilization threshold", groupYAML(`
  autoscalingOptions: {scaleDownUtilizationThreshold: "1.5"}`), "spec.autoscalingOptions.scaleDownUtilizationThreshold in body should match"},
		{"negative duration in group", groupYAML(`
  autoscalingOptions: {scaleDownUnneededTime: "-5m"}`), "scaleDownUnneededTime must be a positive duration"},
		{"two drivers in one slot", machineYAML(`
  group: workers
  power:
    start:
      wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}
      ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"set exactly one power driver: one of wakeOnLAN, ipmi, redfish, ssh, http, job, agent or talos"},
		{"no driver in a slot", machineYAML(`
  group: workers
  power:
    start: {}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"set exactly one power driver"},
		{"bad MAC", machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"mac must be six hex byte pairs separated by : or by - (the same throughout), e.g. aa:bb:cc:dd:ee:ff"},
		{"wol cannot power off", machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}`),
			"power.stop cannot use wakeOnLAN"},
		{"ssh cannot power on", machineYAML(`
  group: workers
  power:
    start: {ssh: {address: h, user: root, keySecretRef: {name: k, key: k}, hostKey: "ssh-ed25519 AAAA"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"power.start cannot use ssh"},
		{"talos cannot power on", machineYAML(`
  group: workers
  power:
    start: {talos: {endpoint: 192.0.2.30, credentialsSecretRef: {name: talos}}}
    stop: {talos: {endpoint: 192.0.2.30, credentialsSecretRef: {name: talos}}}`),
			"power.start cannot use talos: the Talos API can only shut a machine down (use wakeOnLAN, ipmi, redfish, http or job)"},
		{"talos endpoint as a URL", machineYAML(`
  group: workers
  power:
    stop: {talos: {endpoint: "https://192.0.2.30:50000", credentialsSecretRef: {name: talos}}}`),
			"endpoint is a host name or IP address with an optional port, such as 10.0.0.21 or node-1.lan:50000, without a scheme or path"},
		{"talos without credentials", machineYAML(`
  group: workers
  power:
    stop: {talos: {endpoint: 192.0.2.30}}`),
			"spec.power.stop.talos.credentialsSecretRef: Required value"},
		{"talos beside another driver", machineYAML(`
  group: workers
  power:
    stop:
      talos: {endpoint: 192.0.2.30, credentialsSecretRef: {name: talos}}
      ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}`),
			"set exactly one power driver: one of wakeOnLAN, ipmi, redfish, ssh, http, job, agent or talos"},
		{"ssh without a pinned host key", machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ssh: {address: h, user: root, keySecretRef: {name: k, key: k}}}`),
			"the machine's host key must be pinned"},
		{"ipmi without credentials", machineYAML(`
  group: workers
  power:
    start: {ipmi: {address: 192.0.2.20}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"ipmi in a power slot needs address and credentialsSecretRef (only spec.bmc takes them from the Group's machineDefaults)"},
		{"online as a string", machineYAML(`
  group: workers
  online: "yes"`),
			`spec.online: Invalid value: "string": spec.online in body must be of type boolean: "string"`},
		{"two BMC kinds", machineYAML(`
  group: workers
  bmc: {ipmi: {address: 192.0.2.20}, redfish: {endpoint: "https://192.0.2.20"}}`),
			"set exactly one BMC kind: ipmi or redfish"},
		{"empty bmc", machineYAML(`
  group: workers
  bmc: {}`),
			"set exactly one BMC kind: ipmi or redfish"},
		{"redfish slot without an endpoint", machineYAML(`
  group: workers
  power:
    status: {redfish: {credentialsSecretRef: {name: bmc}}}`),
			"redfish in a power slot needs endpoint and credentialsSecretRef (only spec.bmc takes them from the Group's machineDefaults)"},
		{"group default with two BMC kinds", groupYAML(`
  machineDefaults:
    bmc: {ipmi: {credentialsSecretRef: {name: bmc}}, redfish: {credentialsSecretRef: {name: bmc}}}`),
			"set exactly one BMC kind: ipmi or redfish"},
		{"group default zero boot timeout", groupYAML(`
  machineDefaults: {bootTimeout: 0s}`),
			"bootTimeout must be a positive duration"},
		{"group default max attempts", groupYAML(`
  machineDefaults: {maxAttempts: 0}`),
			"spec.machineDefaults.maxAttempts in body should be greater than or equal to 1"},
		{"zero boot timeout", machineYAML(`
  group: workers
  bootTimeout: 0s
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"bootTimeout must be a positive duration"},
		{"missing group", machineYAML(`
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"spec.group: Required value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(t.Context(), fromYAML(t, tc.doc))
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("message %q\ndoes not contain %q", err.Error(), tc.want)
			}
		})
	}
}

// An inline password has nowhere to go: with strict field validation (kubectl's default) the
// apiserver names the unknown field; without it, the field is pruned and never stored.
func TestInlinePasswordIsImpossible(t *testing.T) {
	doc := machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, username: admin, password: hunter2, credentialsSecretRef: {name: bmc}}}`)
	err := env.Client.Create(t.Context(), fromYAML(t, doc), client.FieldValidation(metav1.FieldValidationStrict))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.power.stop.ipmi.password"`) {
		t.Fatalf("strict create with an inline password: %v", err)
	}
	u := fromYAML(t, doc)
	if err := env.Client.Create(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(u.GroupVersionKind())
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(u), got); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "power", "stop", "ipmi", "password"); found {
		t.Fatalf("an inline password was stored")
	}
}

func TestGroupOfMachineIsImmutable(t *testing.T) {
	ctx := t.Context()
	u := fromYAML(t, machineYAML(validMachineSpec))
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	n := &infrav1.Machine{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), n); err != nil {
		t.Fatal(err)
	}
	n.Spec.Group = "other"
	err := env.Client.Update(ctx, n)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "group is immutable: to move a machine to another group, delete this Machine and create it again") {
		t.Fatalf("changing the group: %v", err)
	}
}

func TestDefaultsAndStatusAndGeneration(t *testing.T) {
	ctx := t.Context()
	n := &infrav1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName("machine"), Namespace: "default"},
		Spec: infrav1.MachineSpec{
			Group: "workers",
			Power: &infrav1.PowerSpec{
				Start: &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: "aa:bb:cc:dd:ee:02"}},
				Stop:  &infrav1.PowerDriver{IPMI: &infrav1.IPMIDriver{Address: "192.0.2.30", CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}}},
			},
		},
		Status: infrav1.MachineStatus{Progress: infrav1.ProgressReady, LastError: "set on create"},
	}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	got := &infrav1.Machine{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(n), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Progress != "" || got.Status.LastError != "" {
		t.Fatalf("status set on create was stored: %+v", got.Status)
	}
	s := got.Spec
	// Fields a Group's machineDefaults may fill have no schema default: unset stays unset.
	if s.Online || s.BootTimeout != nil || s.ShutdownTimeout != nil || s.MaxAttempts != nil ||
		s.Power.Stop.IPMI.Port != 0 || s.Power.Stop.IPMI.CipherSuite != nil {
		t.Fatalf("fields the Group may default were defaulted by the schema: %+v", s)
	}
	if s.Power.Start.WakeOnLAN.Port != infrav1.DefaultWakeOnLANPort || s.Power.Start.WakeOnLAN.BroadcastAddress != infrav1.DefaultWakeOnLANBroadcast ||
		s.Power.Start.Timeout.Duration != infrav1.DefaultPowerTimeout {
		t.Fatalf("defaults not applied: %+v", s)
	}
	if got.Generation != 1 {
		t.Fatalf("generation %d after create", got.Generation)
	}

	got.Spec.Online = true
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 {
		t.Fatalf("generation %d after a spec change, want 2", got.Generation)
	}
	got.Status.Progress = infrav1.ProgressStartingUp
	got.Status.ObservedGeneration = got.Generation
	if err := env.Client.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 || got.Status.Progress != infrav1.ProgressStartingUp {
		t.Fatalf("status write: generation %d, progress %q", got.Generation, got.Status.Progress)
	}

	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("group"), Namespace: "default"},
		Spec: infrav1.GroupSpec{MaxSize: ptr.To(int32(3))}, Status: infrav1.GroupStatus{Target: 9}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	if g.Status.Target != 0 || g.Spec.PowerOffPolicy != infrav1.PowerOffDelete || g.Generation != 1 {
		t.Fatalf("group after create: status %+v, policy %q, generation %d", g.Status, g.Spec.PowerOffPolicy, g.Generation)
	}
}

func TestSamplesAreValid(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(data), "\n---\n") {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil || len(u.Object) == 0 {
				continue
			}
			if u.GetAPIVersion() != infrav1.GroupVersion.String() {
				continue
			}
			u.SetNamespace("samples")
			if err := ensureNamespace(t.Context(), "samples"); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Create(t.Context(), u, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
				t.Errorf("%s document %d (%s %s): %v", filepath.Base(f), i, u.GetKind(), u.GetName(), err)
			}
		}
	}
}

func ensureNamespace(ctx context.Context, name string) error {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// kubectl, as users run it, finds our kinds by category and short name.
func TestKubectlFindsKindsByCategoryAndShortName(t *testing.T) {
	kubectl := env.Kubectl(t)
	u := fromYAML(t, machineYAML(validMachineSpec))
	if err := env.Client.Create(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"get", "homelab", "-n", "default"},
		{"get", "hlm", "-n", "default"},
		{"get", "hlmachine", "-n", "default"},
		{"get", "machines.infra.homelab-autoscaler.dev", "-n", "default"},
		{"get", "hlg", "-n", "default"},
		{"get", "hlgroup", "-n", "default"},
	} {
		out, err := kubectl(t.Context(), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		if args[1] == "homelab" || strings.HasPrefix(args[1], "hlm") || strings.HasPrefix(args[1], "machines") {
			if !strings.Contains(string(out), u.GetName()) || !strings.Contains(string(out), "PROGRESS") || !strings.Contains(string(out), "ONLINE") {
				t.Fatalf("kubectl %v does not list the machine with its columns:\n%s", args, out)
			}
		}
	}
}

// kubectl wait, as Flux and scripts use it, sees a machine's Ready condition.
func TestKubectlWaitsForReady(t *testing.T) {
	kubectl := env.Kubectl(t)
	u := fromYAML(t, machineYAML(validMachineSpec))
	if err := env.Client.Create(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	m := &infrav1.Machine{}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(u), m); err != nil {
		t.Fatal(err)
	}
	wait := func() ([]byte, error) {
		return kubectl(t.Context(), "-n", "default", "wait", "--for=condition=Ready", "--timeout=2s", "machine/"+m.Name).CombinedOutput()
	}
	if out, err := wait(); err == nil {
		t.Fatalf("kubectl wait returned before the machine was Ready:\n%s", out)
	}
	m.Status.ObservedGeneration = m.Generation
	m.Status.Progress = infrav1.ProgressOff
	m.Status.Conditions = []metav1.Condition{{
		Type: infrav1.ConditionReady, Status: metav1.ConditionTrue, Reason: "PoweredOff", Message: "the machine is off, as desired",
		LastTransitionTime: metav1.Now(), ObservedGeneration: m.Generation,
	}}
	if err := env.Client.Status().Update(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if out, err := wait(); err != nil || !strings.Contains(string(out), "condition met") {
		t.Fatalf("kubectl wait --for=condition=Ready: %v\n%s", err, out)
	}
}

// Every default the CRD schemas carry is one of the constants the code falls back to, so the
// apiserver and the code never disagree; a new +kubebuilder:default marker needs its constant here.
func TestCRDDefaultsAreTheConstants(t *testing.T) {
	want := map[string]any{
		"spec.online":                 false,
		"spec.minSize":                int64(infrav1.DefaultMinSize),
		"spec.powerOffPolicy":         string(infrav1.DefaultPowerOffPolicy),
		"start.timeout":               infrav1.DefaultPowerTimeout.String(),
		"stop.timeout":                infrav1.DefaultPowerTimeout.String(),
		"status.timeout":              infrav1.DefaultPowerTimeout.String(),
		"wakeOnLAN.broadcastAddress":  infrav1.DefaultWakeOnLANBroadcast,
		"wakeOnLAN.port":              int64(infrav1.DefaultWakeOnLANPort),
		"ssh.port":                    int64(infrav1.DefaultSSHPort),
		"ssh.command":                 infrav1.DefaultSSHCommand,
		"keySecretRef.key":            infrav1.DefaultSSHKeySecretKey,
		"http.method":                 infrav1.DefaultHTTPMethod,
		"caBundleRef.key":             infrav1.DefaultCABundleKey,
		"job.backoffLimit":            int64(infrav1.DefaultJobBackoffLimit),
		"job.ttlSecondsAfterFinished": int64(infrav1.DefaultJobTTLSecondsAfterFinished),
		"repair.powerLoss":            string(infrav1.DefaultPowerLossPolicy),
		"repair.outsidePowerOn":       string(infrav1.DefaultOutsidePowerOnPolicy),
		"repair.bootFailure":          string(infrav1.DefaultBootFailurePolicy),
		"maintenance.maxConcurrent":   int64(infrav1.DefaultMaintenanceMaxConcurrent),
	}
	files, err := filepath.Glob("../../config/crd/bases/*.yaml")
	if err != nil || len(files) != 3 {
		t.Fatalf("CRDs: %v %v", files, err)
	}
	seen := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := map[string]any{}
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatal(err)
		}
		versions, _, _ := unstructured.NestedSlice(crd, "spec", "versions")
		for _, v := range versions {
			schema, _, _ := unstructured.NestedMap(v.(map[string]any), "schema", "openAPIV3Schema")
			walkSchema(schema, nil, "default", func(path []string, def any) {
				if i := slices.Index(path, "job"); i >= 0 && len(path) > i+2 {
					return // inside the Kubernetes types a Job driver embeds (env, volumes): Kubernetes' own defaults
				}
				seen++
				key := strings.Join(path[max(0, len(path)-2):], ".")
				expected, ok := want[key]
				if !ok {
					t.Errorf("%s: %s has default %v but no constant in defaults.go (add one and list it here)", filepath.Base(f), strings.Join(path, "."), def)
					return
				}
				if fmt.Sprint(normalizeDefault(def)) != fmt.Sprint(expected) {
					t.Errorf("%s: %s defaults to %v in the schema, the code uses %v", filepath.Base(f), strings.Join(path, "."), def, expected)
				}
			})
		}
	}
	if seen < len(want) {
		t.Errorf("found %d defaults in the schemas, expected at least %d", seen, len(want))
	}
}

// The patterns code repeats (homelabctl import) are the ones the CRD schemas check.
func TestCRDPatternsAreTheConstants(t *testing.T) {
	want := map[string]string{
		"wakeOnLAN.mac":                    infrav1.MACPattern,
		"scaleDownUtilizationThreshold":    infrav1.FractionPattern,
		"scaleDownGpuUtilizationThreshold": infrav1.FractionPattern,
	}
	seen := map[string]bool{}
	files, err := filepath.Glob("../../config/crd/bases/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := map[string]any{}
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatal(err)
		}
		versions, _, _ := unstructured.NestedSlice(crd, "spec", "versions")
		for _, v := range versions {
			schema, _, _ := unstructured.NestedMap(v.(map[string]any), "schema", "openAPIV3Schema")
			walkSchema(schema, nil, "pattern", func(path []string, pattern any) {
				for key, expected := range want {
					if strings.HasSuffix(strings.Join(path, "."), key) {
						seen[key] = true
						if pattern != expected {
							t.Errorf("%s: %s has pattern %v, the code uses %s", filepath.Base(f), strings.Join(path, "."), pattern, expected)
						}
					}
				}
			})
		}
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("no schema has a pattern at %s", key)
		}
	}
}

// walkSchema calls visit with the path and value of every keyword named key in an OpenAPI schema.
func walkSchema(schema map[string]any, path []string, key string, visit func([]string, any)) {
	if v, ok := schema[key]; ok {
		visit(path, v)
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		for name, sub := range props {
			if m, ok := sub.(map[string]any); ok {
				walkSchema(m, append(slices.Clone(path), name), key, visit)
			}
		}
	}
	if items, ok := schema["items"].(map[string]any); ok {
		walkSchema(items, path, key, visit)
	}
}

// normalizeDefault makes a YAML number and a Go duration comparable with the constants.
func normalizeDefault(v any) any {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case string:
		if d, err := time.ParseDuration(x); err == nil && strings.ContainsAny(x, "smh") && !strings.Contains(x, " ") {
			return d.String()
		}
	}
	return v
}
