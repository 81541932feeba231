package sim_test

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

func parse(t *testing.T, args ...string) (*sim.Options, error) {
	t.Helper()
	fs := flag.NewFlagSet("homelab-sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := &sim.Options{}
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return o, o.Validate()
}

func TestFlags(t *testing.T) {
	t.Parallel()
	o, err := parse(t, "--kubeconfig", "/tmp/kc", "--namespace", "lab", "--group", "workers", "--machines", "12",
		"--boot-delay", "2s", "--boot-jitter", "500ms", "--shutdown-delay", "1s", "--protocol", "ipmi",
		"--cpu", "8", "--memory", "32Gi", "--pods", "50", "--labels", "a=1,b=2", "--labels", "c=3",
		"--never-boot", "3", "--never-boot", "5,7", "--bmc-errors", "2:30s,4:1m", "--manifests", "/tmp/m.yaml", "--apply")
	if err != nil {
		t.Fatal(err)
	}
	c := o.Config
	if o.Kubeconfig != "/tmp/kc" || c.Namespace != "lab" || c.Group != "workers" || c.Machines != 12 ||
		c.BootDelay != 2*time.Second || c.BootJitter != 500*time.Millisecond || c.ShutdownDelay != time.Second ||
		c.Protocol != sim.ProtocolIPMI || o.ManifestsFile != "/tmp/m.yaml" || !o.Apply {
		t.Fatalf("options: %+v", o)
	}
	if cpu := c.Capacity[corev1.ResourceCPU]; cpu.String() != "8" {
		t.Fatalf("cpu %s", cpu.String())
	}
	if mem := c.Capacity[corev1.ResourceMemory]; mem.String() != "32Gi" {
		t.Fatalf("memory %s", mem.String())
	}
	if len(c.Labels) != 3 || c.Labels["c"] != "3" || !slices.Equal(c.NeverBoot, []int{3, 5, 7}) {
		t.Fatalf("labels %v, never-boot %v", c.Labels, c.NeverBoot)
	}
	if !slices.Equal(c.BMCErrors, []sim.Fault{{Index: 2, For: 30 * time.Second}, {Index: 4, For: time.Minute}}) {
		t.Fatalf("bmc-errors %v", c.BMCErrors)
	}
	more, err := parse(t, "--machines", "4", "--bmc-hang", "0:5s", "--bmc-lie", "1:1m,2:2m", "--bmc-garbage", "3:1s", "--late-boot", "1:20s", "--flap", "2:3s")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(more.BMCFaults, []sim.Fault{
		{Index: 0, For: 5 * time.Second, Kind: sim.FaultHang},
		{Index: 1, For: time.Minute, Kind: sim.FaultLie}, {Index: 2, For: 2 * time.Minute, Kind: sim.FaultLie},
		{Index: 3, For: time.Second, Kind: sim.FaultGarbage},
	}) || !slices.Equal(more.LateBoot, []sim.Fault{{Index: 1, For: 20 * time.Second}}) ||
		!slices.Equal(more.Flap, []sim.Fault{{Index: 2, For: 3 * time.Second}}) {
		t.Fatalf("bmc faults %v, late boot %v", more.BMCFaults, more.LateBoot)
	}
	machine, err := parse(t, "--machines", "4", "--power-cut", "0:5s,1:0s", "--power-button", "2:1m", "--kubelet-hang", "1", "--kubelet-hang", "3")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(machine.PowerCut, []sim.Fault{{Index: 0, For: 5 * time.Second}, {Index: 1}}) ||
		!slices.Equal(machine.PowerButton, []sim.Fault{{Index: 2, For: time.Minute}}) ||
		!slices.Equal(machine.KubeletHang, []int{1, 3}) {
		t.Fatalf("power cut %v, power button %v, kubelet hang %v", machine.PowerCut, machine.PowerButton, machine.KubeletHang)
	}
	energy, err := parse(t, "--protocol", "shelly", "--standby-watts", "1.5", "--idle-watts", "30", "--loaded-watts", "95.5",
		"--watts-spread", "0.1", "--bmc-power-readings", "environment")
	if err != nil {
		t.Fatal(err)
	}
	if e := energy.Config; e.Protocol != sim.ProtocolShelly || e.StandbyWatts != 1.5 || e.IdleWatts != 30 || e.LoadedWatts != 95.5 ||
		e.WattsSpread != 0.1 || e.PowerReadings != sim.PowerReadingsEnvironment {
		t.Fatalf("energy options: %+v", e)
	}
	if c.MachineName(0) != "workers-00" || c.MachineName(11) != "workers-11" {
		t.Fatalf("names %s, %s", c.MachineName(0), c.MachineName(11))
	}

	defaults, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if defaults.BootDelay != 5*time.Second || defaults.ShutdownDelay != 3*time.Second || defaults.Protocol != sim.ProtocolRedfish ||
		defaults.StandbyWatts != 2.5 || defaults.IdleWatts != 45 || defaults.LoadedWatts != 120 || defaults.WattsSpread != 0 ||
		defaults.PowerReadings != sim.PowerReadingsBoth {
		t.Fatalf("defaults: %+v", defaults.Config)
	}
}

func TestFlagsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--machines", "0"}, "at least 1"},
		{[]string{"--protocol", "wol"}, "redfish, ipmi or shelly"},
		{[]string{"--bmc-power-readings", "dcmi"}, "power readings must be one of [both power environment none]"},
		{[]string{"--standby-watts", "-1"}, "standby watts must be between 0 and 100000"},
		{[]string{"--idle-watts", "NaN"}, "idle watts must be between"},
		{[]string{"--loaded-watts", "20"}, "loaded watts (20) must not be less than idle watts (45)"},
		{[]string{"--loaded-watts", "200000"}, "loaded watts must be between 0 and 100000"},
		{[]string{"--watts-spread", "1"}, "watts spread must be at least 0 and less than 1"},
		{[]string{"--idle-watts", "lots"}, "invalid value"},
		{[]string{"--bmc-lie", "0:1s", "--protocol", "shelly"}, "Redfish BMCs only"},
		{[]string{"--never-boot", "3"}, "out of range"},
		{[]string{"--bmc-errors", "1"}, "INDEX:DURATION"},
		{[]string{"--bmc-errors", "1:0s"}, "positive duration"},
		{[]string{"--bmc-hang", "0:1s", "--protocol", "ipmi"}, "Redfish BMCs only"},
		{[]string{"--bmc-lie", "7:1s"}, "out of range"},
		{[]string{"--late-boot", "1:0s"}, "positive duration"},
		{[]string{"--power-cut", "1"}, "INDEX:DURATION"},
		{[]string{"--power-cut", "1:soon"}, "invalid duration"},
		{[]string{"--power-cut", "1:-1s"}, "power-cut for machine 1 must not be negative"},
		{[]string{"--power-cut", "3:1s"}, "power-cut machine index 3 is out of range"},
		{[]string{"--power-button", "x:1s"}, "not a number"},
		{[]string{"--power-button", "0:-5s"}, "power-button for machine 0 must not be negative"},
		{[]string{"--power-button", "-1:1s"}, "power-button machine index -1 is out of range"},
		{[]string{"--kubelet-hang", "one"}, "not a number"},
		{[]string{"--kubelet-hang", "0,3"}, "kubelet-hang machine index 3 is out of range"},
		{[]string{"--group", "Not_A_Host"}, "host names"},
		{[]string{"--labels", "novalue"}, "KEY=VALUE"},
		{[]string{"--pods", "0"}, "pods must be positive"},
		{[]string{"--boot-delay", "-1s"}, "must not be negative"},
	} {
		_, err := parse(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
