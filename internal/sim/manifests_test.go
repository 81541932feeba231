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
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

// The manifests are valid as they are: the apiserver creates every object with strict field
// validation, each Machine is written offline, and its BMC's credentials are a basic-auth Secret.
func TestManifestsCreateStrictly(t *testing.T) {
	t.Parallel()
	for _, protocol := range sim.Protocols {
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
			if strings.Count(text, "online: false") != 3 {
				t.Fatalf("want three Machines with online: false:\n%s", text)
			}
			docs := strings.Split(text, "\n---\n")
			if len(docs) != 1+2*cfg.Machines {
				t.Fatalf("%d documents, want the Group, %d Secrets and %d Machines", len(docs), cfg.Machines, cfg.Machines)
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
				switch u.GetKind() {
				case "Machine":
					if online, found, err := unstructured.NestedBool(u.Object, "spec", "online"); !found || err != nil || online {
						t.Fatalf("Machine %s: online read back as %v (found %t, %v), want false", u.GetName(), online, found, err)
					}
				case "Secret":
					want := corev1.SecretTypeBasicAuth
					if protocol == sim.ProtocolShelly {
						// Every key is a header the plug wants.
						want = corev1.SecretTypeOpaque
						if keys, _, _ := unstructured.NestedMap(u.Object, "data"); len(keys) != 1 || keys["Authorization"] == nil {
							t.Fatalf("plug Secret %s holds %v, want the Authorization header alone", u.GetName(), keys)
						}
					}
					if typ, _, _ := unstructured.NestedString(u.Object, "type"); typ != string(want) {
						t.Fatalf("Secret %s of type %q, want %s", u.GetName(), typ, want)
					}
					if u.GetLabels()[infrav1.LabelCredentials] != "true" {
						t.Fatalf("Secret %s lacks the credentials label the drivers require: %v", u.GetName(), u.GetLabels())
					}
				}
			}

			// What the apiserver stored, with the Group's defaults applied as the manager applies
			// them, drives the machine.
			stored := &infrav1.Machine{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: s.Machines()[2].Name}, stored); err != nil {
				t.Fatal(err)
			}
			g := &infrav1.Group{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: cfg.Group}, g); err != nil {
				t.Fatal(err)
			}
			if *g.Spec.MaxSize != 3 || g.Spec.Template.Labels["homelab.example/gpu"] != "none" || g.Spec.Template.Capacity.Pods().Value() != 110 {
				t.Fatalf("group: %+v", g.Spec)
			}
			switch p := stored.Spec.Power; {
			case stored.Spec.BootTimeout != nil:
				t.Fatalf("stored spec: %+v, the boot timeout comes from the Group", stored.Spec)
			case protocol != sim.ProtocolShelly && (stored.Spec.BMC == nil || p != nil):
				t.Fatalf("stored spec: %+v, want spec.bmc only", stored.Spec)
			case protocol == sim.ProtocolShelly && (stored.Spec.BMC != nil || p == nil || p.Start.HTTP == nil || p.Stop.HTTP == nil || p.Status.HTTP == nil):
				t.Fatalf("stored spec: %+v, want spec.power with http start, stop and status only", stored.Spec)
			case protocol == sim.ProtocolShelly && (p.Status.HTTP.Watts == nil || p.Status.HTTP.Watts.Preset != infrav1.WattsShellyGen2 || p.Status.HTTP.PoweredOnPattern != sim.PlugPoweredOnPattern):
				t.Fatalf("stored status slot: %+v, want the ShellyGen2 preset and the output pattern", p.Status.HTTP)
			}
			n := machines.Effective(stored, g)
			if err := machines.Check(n); err != nil {
				t.Fatalf("effective spec: %v", err)
			}
			if n.Spec.BootTimeout.Duration != 90*time.Second {
				t.Fatalf("effective bootTimeout %s, want the Group's machineDefaults.bootTimeout 90s", n.Spec.BootTimeout.Duration)
			}
			slot, _ := power.SlotFor(n, power.ActionStatus)
			req := power.Request{Machine: n, Action: power.ActionStatus, Slot: slot, Secrets: power.ClientSecrets{Reader: env.Client}}
			drv := power.NewRegistry(power.Builtin()...)[slot.DriverName()]
			if st, err := drv.Status(ctx, req); err != nil || st != infrav1.PoweredOff {
				t.Fatalf("status through the stored Machine: %v, %v", st, err)
			}
			// Every protocol reports the draw, as the BMC or plug rounds it.
			w := s.Machines()[2].Watts()
			want := map[sim.Protocol]float64{sim.ProtocolRedfish: w, sim.ProtocolIPMI: float64(sim.DCMIWatts(w)), sim.ProtocolShelly: sim.PlugWatts(w)}[protocol]
			if rd, err := drv.(power.Meter).Read(ctx, req); err != nil || rd.State != infrav1.PoweredOff || rd.Watts == nil || *rd.Watts != want {
				t.Fatalf("read through the stored Machine: %+v, %v; want off at %v W", rd, err, want)
			}
		})
	}
}

// Applying again (a new run: new ports, new passwords) updates the BMCs and credentials of the
// existing objects and leaves spec.online alone.
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
	if objs.Machines[0].Spec.BMC.Redfish.Endpoint == first.Machines[0].Spec.BMC.Redfish.Endpoint {
		t.Fatal("the second run got the same port; the test proves nothing")
	}
	if err := sim.Apply(ctx, env.Client, writer, objs); err != nil {
		t.Fatal(err)
	}
	got := getMachine(t, n)
	if !got.Spec.Online {
		t.Fatal("apply turned spec.online off")
	}
	if got.Spec.BMC.Redfish.Endpoint != second.Machines()[0].Endpoint() {
		t.Fatalf("endpoint not updated: %+v", got.Spec.BMC.Redfish)
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: got.Spec.BMC.Redfish.CredentialsSecretRef.Name}, secret); err != nil {
		t.Fatal(err)
	}
	if string(secret.Data[infrav1.CredentialsPasswordKey]) != second.Machines()[0].Password {
		t.Fatal("the Secret still holds the first run's password")
	}
}

// A run with plugs applied over a run with BMCs moves the Machines to spec.power, with the plugs'
// token Secrets beside the BMC credentials.
func TestApplySwitchesToPlugs(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	_, first := start(t, cfg)
	if first.Machines[0].Spec.BMC == nil {
		t.Fatal("the first run has no BMC")
	}
	cfg.Protocol = sim.ProtocolShelly
	second := run(t, cfg)
	ctx := context.Background()
	if err := sim.Apply(ctx, env.Client, writer, second.Objects()); err != nil {
		t.Fatal(err)
	}
	got := getMachine(t, first.Machines[0])
	if got.Spec.BMC != nil || got.Spec.Power == nil || got.Spec.Power.Status.HTTP == nil ||
		!strings.HasPrefix(got.Spec.Power.Status.HTTP.URL, second.Machines()[0].Endpoint()+"/") {
		t.Fatalf("after applying the plugs: bmc %+v, power %+v", got.Spec.BMC, got.Spec.Power)
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: got.Spec.Power.Status.HTTP.HeadersSecretRef.Name}, secret); err != nil {
		t.Fatal(err)
	}
	if string(secret.Data["Authorization"]) != second.Machines()[0].PlugAuthorization() {
		t.Fatal("the plug's Secret does not hold its token")
	}
}
