package machines_test

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func secret(name string) *infrav1.SecretReference { return &infrav1.SecretReference{Name: name} }

func price(q string) *infrav1.Pricing { return &infrav1.Pricing{HourlyRate: resource.MustParse(q)} }

func machine(spec infrav1.MachineSpec) *infrav1.Machine {
	spec.Group = "workers"
	return &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "m1"}, Spec: spec}
}

func group(d *infrav1.MachineDefaults) *infrav1.Group {
	return &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "workers"}, Spec: infrav1.GroupSpec{MachineDefaults: d}}
}

// builtins is a spec with the built-in defaults of the three fields that always have one, and of
// a BMC's timeout, IPMI port and cipher suite when there is a BMC.
func builtins(s infrav1.MachineSpec) infrav1.MachineSpec {
	s.Group = "workers"
	if b := s.BMC; b != nil {
		if b.Timeout == nil {
			b.Timeout = dur(30 * time.Second)
		}
		if b.IPMI != nil && b.IPMI.Port == 0 {
			b.IPMI.Port = 623
		}
		if b.IPMI != nil && b.IPMI.CipherSuite == nil {
			b.IPMI.CipherSuite = ptr.To[int32](3)
		}
	}
	if s.BootTimeout == nil {
		s.BootTimeout = dur(10 * time.Minute)
	}
	if s.ShutdownTimeout == nil {
		s.ShutdownTimeout = dur(5 * time.Minute)
	}
	if s.MaxAttempts == nil {
		s.MaxAttempts = ptr.To[int32](3)
	}
	return s
}

func TestEffective(t *testing.T) {
	for _, c := range []struct {
		name    string
		machine infrav1.MachineSpec
		group   *infrav1.Group // nil: the Group does not exist
		want    infrav1.MachineSpec
	}{
		{
			name:  "no Group: the built-in defaults 10m, 5m, 3",
			group: nil,
			want:  builtins(infrav1.MachineSpec{}),
		},
		{
			name:  "a Group without machineDefaults: the built-in defaults",
			group: group(nil),
			want:  builtins(infrav1.MachineSpec{}),
		},
		{
			name:  "the Group's timeouts, attempts and pricing for a member without",
			group: group(&infrav1.MachineDefaults{BootTimeout: dur(15 * time.Minute), ShutdownTimeout: dur(time.Minute), MaxAttempts: ptr.To[int32](7), Pricing: price("0.2")}),
			want:  builtins(infrav1.MachineSpec{BootTimeout: dur(15 * time.Minute), ShutdownTimeout: dur(time.Minute), MaxAttempts: ptr.To[int32](7), Pricing: price("0.2")}),
		},
		{
			name:  "the Group's power draw for a member without",
			group: group(&infrav1.MachineDefaults{PowerDraw: &infrav1.PowerDraw{OnWatts: ptr.To(resource.MustParse("65"))}}),
			want:  builtins(infrav1.MachineSpec{PowerDraw: &infrav1.PowerDraw{OnWatts: ptr.To(resource.MustParse("65"))}}),
		},
		{
			name:    "the member's power draw wins whole",
			machine: infrav1.MachineSpec{PowerDraw: &infrav1.PowerDraw{OffWatts: ptr.To(resource.MustParse("2"))}},
			group:   group(&infrav1.MachineDefaults{PowerDraw: &infrav1.PowerDraw{OnWatts: ptr.To(resource.MustParse("65"))}}),
			want:    builtins(infrav1.MachineSpec{PowerDraw: &infrav1.PowerDraw{OffWatts: ptr.To(resource.MustParse("2"))}}),
		},
		{
			name:    "the member's timeouts, attempts and pricing win",
			machine: infrav1.MachineSpec{BootTimeout: dur(time.Minute), ShutdownTimeout: dur(2 * time.Minute), MaxAttempts: ptr.To[int32](1), Pricing: price("0.5")},
			group:   group(&infrav1.MachineDefaults{BootTimeout: dur(15 * time.Minute), ShutdownTimeout: dur(time.Hour), MaxAttempts: ptr.To[int32](7), Pricing: price("0.2")}),
			want:    builtins(infrav1.MachineSpec{BootTimeout: dur(time.Minute), ShutdownTimeout: dur(2 * time.Minute), MaxAttempts: ptr.To[int32](1), Pricing: price("0.5")}),
		},
		{
			name: "the Group's BMC whole, {name} substituted, for a member without one",
			group: group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{Timeout: dur(time.Minute), IPMI: &infrav1.IPMIDriver{
				Address: "{name}-bmc.lan", Port: 6230, CredentialsSecretRef: secret("bmc"),
			}}}),
			want: builtins(infrav1.MachineSpec{BMC: &infrav1.BMC{Timeout: dur(time.Minute), IPMI: &infrav1.IPMIDriver{
				Address: "m1-bmc.lan", Port: 6230, CredentialsSecretRef: secret("bmc"),
			}}}),
		},
		{
			name: "ipmi merged field by field, the member's fields winning",
			machine: infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{
				Address: "10.0.0.7", CipherSuite: ptr.To[int32](17),
			}}},
			group: group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{Timeout: dur(time.Minute), IPMI: &infrav1.IPMIDriver{
				Address: "{name}-bmc.lan", Port: 6230, CredentialsSecretRef: secret("bmc"), CipherSuite: ptr.To[int32](3),
				GracefulShutdownTimeout: dur(20 * time.Second),
			}}}),
			want: builtins(infrav1.MachineSpec{BMC: &infrav1.BMC{Timeout: dur(time.Minute), IPMI: &infrav1.IPMIDriver{
				Address: "10.0.0.7", Port: 6230, CredentialsSecretRef: secret("bmc"), CipherSuite: ptr.To[int32](17),
				GracefulShutdownTimeout: dur(20 * time.Second),
			}}}),
		},
		{
			name: "ipmi: the member's own credentials, port and timeout win; the address comes from the Group",
			machine: infrav1.MachineSpec{BMC: &infrav1.BMC{Timeout: dur(5 * time.Second), IPMI: &infrav1.IPMIDriver{
				Port: 1623, CredentialsSecretRef: secret("own"),
			}}},
			group: group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{Timeout: dur(time.Minute), IPMI: &infrav1.IPMIDriver{
				Address: "bmc-{name}.{name}.lan", Port: 6230, CredentialsSecretRef: secret("bmc"),
			}}}),
			want: builtins(infrav1.MachineSpec{BMC: &infrav1.BMC{Timeout: dur(5 * time.Second), IPMI: &infrav1.IPMIDriver{
				Address: "bmc-m1.m1.lan", Port: 1623, CredentialsSecretRef: secret("own"),
			}}}),
		},
		{
			name: "redfish merged field by field; insecureSkipVerify on when the Group turns it on",
			machine: infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				SystemID: "System.Embedded.1",
			}}},
			group: group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				Endpoint: "https://{name}-idrac.lan", SystemID: "1", CredentialsSecretRef: secret("idrac"),
				CABundleRef:        &infrav1.ConfigMapOrSecretKeyReference{ConfigMapName: "bmc-ca", Key: "ca.crt"},
				InsecureSkipVerify: true, GracefulShutdownTimeout: dur(30 * time.Second),
			}}}),
			want: builtins(infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				Endpoint: "https://m1-idrac.lan", SystemID: "System.Embedded.1", CredentialsSecretRef: secret("idrac"),
				CABundleRef:        &infrav1.ConfigMapOrSecretKeyReference{ConfigMapName: "bmc-ca", Key: "ca.crt"},
				InsecureSkipVerify: true, GracefulShutdownTimeout: dur(30 * time.Second),
			}}}),
		},
		{
			name: "redfish: insecureSkipVerify on when the member turns it on; its endpoint and CA win",
			machine: infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				Endpoint: "https://10.0.0.9", InsecureSkipVerify: true,
				CABundleRef: &infrav1.ConfigMapOrSecretKeyReference{SecretName: "own-ca", Key: "ca.pem"},
			}}},
			group: group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				Endpoint: "https://{name}-idrac.lan", CredentialsSecretRef: secret("idrac"),
				CABundleRef: &infrav1.ConfigMapOrSecretKeyReference{ConfigMapName: "bmc-ca", Key: "ca.crt"},
			}}}),
			want: builtins(infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				Endpoint: "https://10.0.0.9", CredentialsSecretRef: secret("idrac"), InsecureSkipVerify: true,
				CABundleRef: &infrav1.ConfigMapOrSecretKeyReference{SecretName: "own-ca", Key: "ca.pem"},
			}}}),
		},
		{
			name: "different BMC kinds: the member's alone, nothing of the Group's (not even its timeout)",
			machine: infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				Endpoint: "https://10.0.0.9",
			}}},
			group: group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{Timeout: dur(time.Minute), IPMI: &infrav1.IPMIDriver{
				Address: "{name}-bmc.lan", Port: 6230, CredentialsSecretRef: secret("bmc"),
			}}}),
			want: builtins(infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{
				Endpoint: "https://10.0.0.9",
			}}}),
		},
		{
			name: "the Group's power slots whole, with {name} in ssh.address and http.url",
			group: group(&infrav1.MachineDefaults{Power: &infrav1.PowerSpec{
				Start: &infrav1.PowerDriver{Timeout: dur(10 * time.Second), HTTP: &infrav1.HTTPDriver{URL: "http://plugs.lan/{name}/on", Method: "POST"}},
				Stop: &infrav1.PowerDriver{SSH: &infrav1.SSHDriver{
					Address: "{name}.lan", User: "root", KeySecretRef: infrav1.SSHKeySecretReference{Name: "ssh"}, HostKey: "ssh-ed25519 AAAA",
				}},
				Status: &infrav1.PowerStatusSource{HTTP: &infrav1.HTTPDriver{URL: "http://plugs.lan/{name}", PoweredOnPattern: "ON", Watts: &infrav1.HTTPWatts{Preset: infrav1.WattsHomeAssistant, URL: "http://ha.lan/api/states/sensor.{name}_power"}}},
			}}),
			want: builtins(infrav1.MachineSpec{Power: &infrav1.PowerSpec{
				Start: &infrav1.PowerDriver{Timeout: dur(10 * time.Second), HTTP: &infrav1.HTTPDriver{URL: "http://plugs.lan/m1/on", Method: "POST"}},
				Stop: &infrav1.PowerDriver{SSH: &infrav1.SSHDriver{
					Address: "m1.lan", User: "root", KeySecretRef: infrav1.SSHKeySecretReference{Name: "ssh"}, HostKey: "ssh-ed25519 AAAA",
				}},
				Status: &infrav1.PowerStatusSource{HTTP: &infrav1.HTTPDriver{URL: "http://plugs.lan/m1", PoweredOnPattern: "ON", Watts: &infrav1.HTTPWatts{Preset: infrav1.WattsHomeAssistant, URL: "http://ha.lan/api/states/sensor.m1_power"}}},
			}}),
		},
		{
			name: "the Group's ipmi and redfish slots get {name} too",
			group: group(&infrav1.MachineDefaults{Power: &infrav1.PowerSpec{
				Start:  &infrav1.PowerDriver{IPMI: &infrav1.IPMIDriver{Address: "{name}-bmc", CredentialsSecretRef: secret("bmc")}},
				Stop:   &infrav1.PowerDriver{Redfish: &infrav1.RedfishDriver{Endpoint: "https://{name}-bmc", CredentialsSecretRef: secret("bmc")}},
				Status: &infrav1.PowerStatusSource{IPMI: &infrav1.IPMIDriver{Address: "{name}-bmc", CredentialsSecretRef: secret("bmc")}},
			}}),
			want: builtins(infrav1.MachineSpec{Power: &infrav1.PowerSpec{
				Start:  &infrav1.PowerDriver{IPMI: &infrav1.IPMIDriver{Address: "m1-bmc", CredentialsSecretRef: secret("bmc")}},
				Stop:   &infrav1.PowerDriver{Redfish: &infrav1.RedfishDriver{Endpoint: "https://m1-bmc", CredentialsSecretRef: secret("bmc")}},
				Status: &infrav1.PowerStatusSource{IPMI: &infrav1.IPMIDriver{Address: "m1-bmc", CredentialsSecretRef: secret("bmc")}},
			}}),
		},
		{
			name: "the Group's talos slot gets {name} in its endpoint",
			group: group(&infrav1.MachineDefaults{Power: &infrav1.PowerSpec{
				Stop: &infrav1.PowerDriver{Talos: &infrav1.TalosDriver{Endpoint: "{name}.lan:50000", CredentialsSecretRef: secret("talos")}},
			}}),
			want: builtins(infrav1.MachineSpec{Power: &infrav1.PowerSpec{
				Stop: &infrav1.PowerDriver{Talos: &infrav1.TalosDriver{Endpoint: "m1.lan:50000", CredentialsSecretRef: secret("talos")}},
			}}),
		},
		{
			name: "a member's slot wins whole over the Group's; the Group fills the slots it lacks",
			machine: infrav1.MachineSpec{Power: &infrav1.PowerSpec{
				Start: &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: "aa:bb:cc:dd:ee:ff"}},
			}},
			group: group(&infrav1.MachineDefaults{Power: &infrav1.PowerSpec{
				Start: &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{URL: "http://plugs.lan/{name}/on"}},
				Stop:  &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{URL: "http://plugs.lan/{name}/off"}},
			}}),
			want: builtins(infrav1.MachineSpec{Power: &infrav1.PowerSpec{
				Start: &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: "aa:bb:cc:dd:ee:ff"}},
				Stop:  &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{URL: "http://plugs.lan/m1/off"}},
			}}),
		},
		{
			name: "a member's own address is taken as written: {name} is a Group pattern",
			machine: infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{
				Address: "{name}.lan", CredentialsSecretRef: secret("bmc"),
			}}},
			group: group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Port: 6230}}}),
			want: builtins(infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{
				Address: "{name}.lan", Port: 6230, CredentialsSecretRef: secret("bmc"),
			}}}),
		},
		{
			name: "the member's BMC and the Group's slots: both kept (a slot replaces the BMC for its action only)",
			machine: infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{
				Address: "10.0.0.7", CredentialsSecretRef: secret("bmc"),
			}}},
			group: group(&infrav1.MachineDefaults{Power: &infrav1.PowerSpec{
				Stop: &infrav1.PowerDriver{SSH: &infrav1.SSHDriver{Address: "{name}", User: "root", KeySecretRef: infrav1.SSHKeySecretReference{Name: "ssh"}, HostKey: "k"}},
			}}),
			want: builtins(infrav1.MachineSpec{
				BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: "10.0.0.7", CredentialsSecretRef: secret("bmc")}},
				Power: &infrav1.PowerSpec{
					Stop: &infrav1.PowerDriver{SSH: &infrav1.SSHDriver{Address: "m1", User: "root", KeySecretRef: infrav1.SSHKeySecretReference{Name: "ssh"}, HostKey: "k"}},
				},
			}),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := machine(c.machine)
			m.Status.Progress = infrav1.ProgressReady
			mBefore, gBefore := m.DeepCopy(), c.group.DeepCopy()
			got := machines.Effective(m, c.group)
			if !equality.Semantic.DeepEqual(got.Spec, c.want) {
				t.Fatalf("effective spec differs (-got +want):\n%s", diff.Diff(got.Spec, c.want))
			}
			if !equality.Semantic.DeepEqual(got.ObjectMeta, m.ObjectMeta) || !equality.Semantic.DeepEqual(got.Status, m.Status) {
				t.Fatalf("Effective changed more than the spec: %+v", got)
			}
			// Neither input is modified: both may be objects of the manager's cache.
			if !equality.Semantic.DeepEqual(m, mBefore) {
				t.Fatalf("Effective modified the machine:\n%s", diff.Diff(mBefore, m))
			}
			if !equality.Semantic.DeepEqual(c.group, gBefore) {
				t.Fatalf("Effective modified the group:\n%s", diff.Diff(gBefore, c.group))
			}
			// Nor does the result share memory with them: drivers get it, and nothing may write
			// through it into a cached object.
			if got.Spec.BMC != nil && (got.Spec.BMC == m.Spec.BMC || c.group != nil && c.group.Spec.MachineDefaults != nil && got.Spec.BMC == c.group.Spec.MachineDefaults.BMC) {
				t.Fatalf("the effective BMC is the input's")
			}
		})
	}
}

func TestCheck(t *testing.T) {
	complete := func() *infrav1.BMC {
		return &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: "10.0.0.7", CredentialsSecretRef: secret("bmc")}}
	}
	http := &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{URL: "http://plug.lan/on"}}
	for _, c := range []struct {
		name string
		spec infrav1.MachineSpec
		want string // "" for none
	}{
		{name: "a complete BMC", spec: infrav1.MachineSpec{BMC: complete()}},
		{name: "start and stop slots without a BMC", spec: infrav1.MachineSpec{Power: &infrav1.PowerSpec{Start: http, Stop: http}}},
		{
			name: "nothing at all",
			want: "nothing powers it on: set spec.bmc or spec.power.start, or machineDefaults in Group workers; " +
				"nothing powers it off: set spec.bmc or spec.power.stop, or machineDefaults in Group workers",
		},
		{
			name: "a start slot only",
			spec: infrav1.MachineSpec{Power: &infrav1.PowerSpec{Start: http}},
			want: "nothing powers it off: set spec.bmc or spec.power.stop, or machineDefaults in Group workers",
		},
		{
			name: "a stop slot and a status slot",
			spec: infrav1.MachineSpec{Power: &infrav1.PowerSpec{Stop: http, Status: &infrav1.PowerStatusSource{HTTP: http.HTTP}}},
			want: "nothing powers it on: set spec.bmc or spec.power.start, or machineDefaults in Group workers",
		},
		{
			name: "ipmi without an address",
			spec: infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{CredentialsSecretRef: secret("bmc")}}},
			want: "bmc.ipmi.address is set neither on the machine nor in Group workers's machineDefaults.bmc",
		},
		{
			name: "ipmi with a port only",
			spec: infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Port: 6230}}},
			want: "bmc.ipmi.address is set neither on the machine nor in Group workers's machineDefaults.bmc; " +
				"bmc.ipmi.credentialsSecretRef is set neither on the machine nor in Group workers's machineDefaults.bmc",
		},
		{
			name: "redfish without credentials",
			spec: infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{Endpoint: "https://10.0.0.9"}}},
			want: "bmc.redfish.credentialsSecretRef is set neither on the machine nor in Group workers's machineDefaults.bmc",
		},
		{
			name: "redfish without an endpoint",
			spec: infrav1.MachineSpec{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{CredentialsSecretRef: secret("bmc")}}},
			want: "bmc.redfish.endpoint is set neither on the machine nor in Group workers's machineDefaults.bmc",
		},
		{
			// Slots replace the BMC for power on and off, but it still reads the power state:
			// an incomplete one is reported rather than left to fail at every status read.
			name: "slots for both actions and an incomplete BMC",
			spec: infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: "10.0.0.7"}}, Power: &infrav1.PowerSpec{Start: http, Stop: http}},
			want: "bmc.ipmi.credentialsSecretRef is set neither on the machine nor in Group workers's machineDefaults.bmc",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := machines.Check(machine(c.spec))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Check refused a machine that can be powered: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("Check passed; want %q", c.want)
			case c.want != "" && err.Error() != c.want:
				t.Fatalf("Check said\n  %q\nwant\n  %q", err.Error(), c.want)
			}
		})
	}
}

// The Group completes what its member leaves out: Check passes on the effective machine that
// it refuses on the member alone, and names the Group when neither has a field.
func TestCheckOfEffective(t *testing.T) {
	m := machine(infrav1.MachineSpec{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: "10.0.0.7"}}})
	if err := machines.Check(machines.Effective(m, nil)); err == nil {
		t.Fatal("Check passed an ipmi BMC without credentials")
	}
	g := group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{IPMI: &infrav1.IPMIDriver{CredentialsSecretRef: secret("bmc")}}})
	if err := machines.Check(machines.Effective(m, g)); err != nil {
		t.Fatalf("Check refused credentials from the Group: %v", err)
	}
	other := group(&infrav1.MachineDefaults{BMC: &infrav1.BMC{Redfish: &infrav1.RedfishDriver{CredentialsSecretRef: secret("bmc")}}})
	if err := machines.Check(machines.Effective(m, other)); err == nil {
		t.Fatal("Check passed credentials from a Group BMC of another kind")
	}
}
