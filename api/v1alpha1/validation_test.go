package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

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

const validNodeSpec = `
  group: workers
  powerState: "off"
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

func nodeYAML(spec string) string {
	return "apiVersion: infra.homelab-autoscaler.dev/v1alpha1\nkind: Node\nspec:" + spec
}

func groupYAML(spec string) string {
	return "apiVersion: infra.homelab-autoscaler.dev/v1alpha1\nkind: Group\nspec:" + spec
}

func TestValidObjectsAreAccepted(t *testing.T) {
	for name, doc := range map[string]string{
		"node with wol and ssh": nodeYAML(validNodeSpec),
		"node with ipmi": nodeYAML(`
  group: workers
  powerState: "on"
  bootTimeout: 90s
  power:
    start: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}
    status: {redfish: {endpoint: "https://192.0.2.20", credentialsSecretRef: {name: bmc}}}
`),
		"node with job": nodeYAML(`
  group: workers
  power:
    start: {job: {image: "busybox:1.37", command: [sh, -c, "echo on"], env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: t, key: token}}}]}}
    stop: {http: {url: "http://plug.local/relay/0?turn=off", headersSecretRef: {name: plug}}}
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
		{"two drivers in one slot", nodeYAML(`
  group: workers
  power:
    start:
      wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}
      ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"set exactly one power driver: one of wakeOnLAN, ipmi, redfish, ssh, http or job"},
		{"no driver in a slot", nodeYAML(`
  group: workers
  power:
    start: {}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"set exactly one power driver"},
		{"bad MAC", nodeYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"mac must be six hex byte pairs separated by : or by - (the same throughout), e.g. aa:bb:cc:dd:ee:ff"},
		{"wol cannot power off", nodeYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}`),
			"power.stop cannot use wakeOnLAN"},
		{"ssh cannot power on", nodeYAML(`
  group: workers
  power:
    start: {ssh: {address: h, user: root, keySecretRef: {name: k, key: k}, hostKey: "ssh-ed25519 AAAA"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"power.start cannot use ssh"},
		{"ssh without a pinned host key", nodeYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ssh: {address: h, user: root, keySecretRef: {name: k, key: k}}}`),
			"the machine's host key must be pinned"},
		{"ipmi without credentials", nodeYAML(`
  group: workers
  power:
    start: {ipmi: {address: 192.0.2.20}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"spec.power.start.ipmi.credentialsSecretRef: Required value"},
		// The schema's own message; the powerState webhook (internal/webhook), where installed,
		// answers first with one that says to quote the value.
		{"boolean powerState (unquoted on)", nodeYAML(`
  group: workers
  powerState: on
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			`spec.powerState: Invalid value: "boolean": spec.powerState in body must be of type string`},
		{"unknown powerState", nodeYAML(`
  group: workers
  powerState: "standby"
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			`spec.powerState: Unsupported value: "standby": supported values: "on", "off"`},
		{"zero boot timeout", nodeYAML(`
  group: workers
  bootTimeout: 0s
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`),
			"bootTimeout must be a positive duration"},
		{"missing group", nodeYAML(`
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
	doc := nodeYAML(`
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

func TestGroupOfNodeIsImmutable(t *testing.T) {
	ctx := t.Context()
	u := fromYAML(t, nodeYAML(validNodeSpec))
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	n := &infrav1.Machine{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), n); err != nil {
		t.Fatal(err)
	}
	n.Spec.Group = "other"
	err := env.Client.Update(ctx, n)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "group is immutable: to move a machine to another group, delete this Node and create it again") {
		t.Fatalf("changing the group: %v", err)
	}
}

func TestDefaultsAndStatusAndGeneration(t *testing.T) {
	ctx := t.Context()
	n := &infrav1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName("node"), Namespace: "default"},
		Spec: infrav1.MachineSpec{
			Group: "workers",
			Power: &infrav1.PowerSpec{
				Start: &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: "aa:bb:cc:dd:ee:02"}},
				Stop:  infrav1.PowerDriver{IPMI: &infrav1.IPMIDriver{Address: "192.0.2.30", CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}}},
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
	if s.PowerState != infrav1.PowerOff || s.BootTimeout.Duration.String() != "10m0s" || s.ShutdownTimeout.Duration.String() != "5m0s" ||
		s.MaxAttempts != 3 || s.Power.Start.WakeOnLAN.Port != 9 || s.Power.Start.WakeOnLAN.BroadcastAddress != "255.255.255.255" ||
		s.Power.Stop.IPMI.Port != 623 || s.Power.Stop.IPMI.CipherSuite != 3 || s.Power.Start.Timeout.Duration.String() != "30s" {
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
	kubectl := filepath.Join(env.AssetsDir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl not built (run make controlplane): %v", err)
	}
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u := fromYAML(t, nodeYAML(validNodeSpec))
	if err := env.Client.Create(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"get", "homelab", "-n", "default"},
		{"get", "hln", "-n", "default"},
		{"get", "hlnode", "-n", "default"},
		{"get", "hlg", "-n", "default"},
		{"get", "hlgroup", "-n", "default"},
	} {
		out, err := exec.CommandContext(t.Context(), kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		if args[1] == "homelab" || strings.HasPrefix(args[1], "hln") {
			if !strings.Contains(string(out), u.GetName()) || !strings.Contains(string(out), "PROGRESS") {
				t.Fatalf("kubectl %v does not list the node with its columns:\n%s", args, out)
			}
		}
	}
}
