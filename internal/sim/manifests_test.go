package sim_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

// The manifests are valid as they are: the apiserver creates every object with strict field
// validation, and a YAML 1.1 reader takes powerState as the string "off".
func TestManifestsCreateStrictly(t *testing.T) {
	t.Parallel()
	for _, protocol := range []sim.Protocol{sim.ProtocolRedfish, sim.ProtocolIPMI} {
		t.Run(string(protocol), func(t *testing.T) {
			cfg := config(t)
			cfg.Protocol = protocol
			cfg.Machines = 3
			cfg.NodeBootTimeout = 90 * time.Second
			cfg.Labels = map[string]string{"homelab.example/gpu": "none"}
			s := run(t, cfg)
			var out bytes.Buffer
			if err := sim.WriteManifests(&out, s.Objects().All()); err != nil {
				t.Fatal(err)
			}
			text := out.String()
			if strings.Count(text, `powerState: "off"`) != 3 {
				t.Fatalf("want three quoted powerState \"off\":\n%s", text)
			}
			docs := strings.Split(text, "\n---\n")
			if len(docs) != 1+2*cfg.Machines {
				t.Fatalf("%d documents, want the Group, %d Secrets and %d Nodes", len(docs), cfg.Machines, cfg.Machines)
			}
			ctx := context.Background()
			for _, doc := range docs {
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
					t.Fatalf("%v:\n%s", err, doc)
				}
				if err := env.Client.Create(ctx, u, client.FieldValidation("Strict")); err != nil {
					t.Fatalf("creating %s %s: %v\n%s", u.GetKind(), u.GetName(), err, doc)
				}
				if u.GetKind() == "Node" {
					if ps, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "powerState"); ps != "off" {
						t.Fatalf("powerState read back as %#v", ps)
					}
				}
			}

			// What the apiserver stored drives the machine.
			n := &infrav1.Machine{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: s.Machines()[2].Name}, n); err != nil {
				t.Fatal(err)
			}
			if n.Spec.BootTimeout.Duration != 90*time.Second || n.Spec.Power.Status == nil {
				t.Fatalf("stored spec: %+v", n.Spec)
			}
			slot, _ := power.SlotFor(n, power.ActionStatus)
			req := power.Request{Node: n, Action: power.ActionStatus, Slot: slot, Secrets: power.ClientSecrets{Reader: env.Client}}
			drv := power.NewRegistry(power.Builtin()...)[slot.DriverName()]
			if st, err := drv.Status(ctx, req); err != nil || st != infrav1.PowerOff {
				t.Fatalf("status through the stored Node: %v, %v", st, err)
			}
			g := &infrav1.Group{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: cfg.Group}, g); err != nil {
				t.Fatal(err)
			}
			if *g.Spec.MaxSize != 3 || g.Spec.Template.Labels["homelab.example/gpu"] != "none" || g.Spec.Template.Capacity.Pods().Value() != 110 {
				t.Fatalf("group: %+v", g.Spec)
			}
		})
	}
}

// Applying again (a new run: new ports, new passwords) updates the drivers and credentials of
// the existing objects and leaves the desired power state alone.
func TestApplyUpdatesExistingObjects(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	_, first := start(t, cfg)
	ctx := context.Background()
	n := first.Machines[0]
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(n), n); err != nil {
		t.Fatal(err)
	}
	n.Spec.Online = true
	if err := env.Client.Update(ctx, n); err != nil {
		t.Fatal(err)
	}

	second := run(t, cfg)
	objs := second.Objects()
	if objs.Machines[0].Spec.Power.Start.Redfish.Endpoint == first.Machines[0].Spec.Power.Start.Redfish.Endpoint {
		t.Fatal("the second run got the same port; the test proves nothing")
	}
	if err := sim.Apply(ctx, env.Client, writer, objs); err != nil {
		t.Fatal(err)
	}
	got := getNode(t, n)
	if !got.Spec.Online {
		t.Fatalf("apply changed powerState to %q", got.Spec.PowerState)
	}
	if got.Spec.Power.Start.Redfish.Endpoint != second.Machines()[0].Endpoint() ||
		got.Spec.Power.Status.Redfish.Endpoint != second.Machines()[0].Endpoint() {
		t.Fatalf("endpoints not updated: %+v", got.Spec.Power)
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: got.Spec.Power.Start.Redfish.CredentialsSecretRef.Name}, secret); err != nil {
		t.Fatal(err)
	}
	if string(secret.Data["password"]) != second.Machines()[0].Password {
		t.Fatal("the Secret still holds the first run's password")
	}
}
