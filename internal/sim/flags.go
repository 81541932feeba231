package sim

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Options are homelab-sim's command line: the Config plus what the command does with it.
type Options struct {
	Config
	// Kubeconfig reaches the cluster; empty means $KUBECONFIG, ~/.kube/config or in-cluster.
	Kubeconfig string
	// ManifestsFile, when set, receives the Group, Secrets and Machines as YAML once every BMC
	// listens.
	ManifestsFile string
	// Apply creates (or updates) those objects in the cluster.
	Apply bool
	// DebugAddress serves /debug/counters; empty turns it off.
	DebugAddress string
}

// BindFlags registers the command line on fs, with DefaultConfig's values as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	o.Config = DefaultConfig()
	c := &o.Config
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Kubeconfig of the cluster; empty uses $KUBECONFIG, ~/.kube/config or the in-cluster configuration.")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "Namespace of the Group, Machines and Secrets.")
	fs.StringVar(&c.Group, "group", c.Group, "Name of the Group; machines are named GROUP-INDEX.")
	fs.IntVar(&c.Machines, "machines", c.Machines, "Number of machines.")
	fs.DurationVar(&c.BootDelay, "boot-delay", c.BootDelay, "Time from power-on until the machine's Node registers.")
	fs.DurationVar(&c.BootJitter, "boot-jitter", 0, "Random spread of the boot delay (± this much).")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", c.ShutdownDelay, "Time a graceful shutdown takes until the power is off and the Node is gone.")
	fs.DurationVar(&c.ShutdownJitter, "shutdown-jitter", 0, "Random spread of the shutdown delay (± this much).")
	fs.Func("protocol", "How machines are powered: redfish (a BMC speaking Redfish over HTTP), ipmi (a BMC speaking IPMI v2.0 lanplus over UDP) or shelly (no BMC: a smart plug speaking Shelly Gen2 RPC over HTTP). (default redfish)", func(v string) error {
		c.Protocol = Protocol(v)
		return nil
	})
	fs.StringVar(&c.BMCAddress, "bmc-address", c.BMCAddress, "IP address the BMCs listen on, each on its own ephemeral port.")
	fs.StringVar(&c.Username, "bmc-username", c.Username, "BMC user name; every machine gets its own random password.")
	fs.Var(quantityFlag{c.Capacity, corev1.ResourceCPU}, "cpu", "CPU capacity of each machine.")
	fs.Var(quantityFlag{c.Capacity, corev1.ResourceMemory}, "memory", "Memory capacity of each machine.")
	fs.Var(quantityFlag{c.Capacity, corev1.ResourcePods}, "pods", "Pod capacity of each machine.")
	fs.Var((*labelsFlag)(&c.Labels), "labels", "Labels of each Node and of the Group's template, KEY=VALUE,... (repeatable).")
	fs.BoolVar(&c.MachineLabels, "machine-labels", c.MachineLabels, "Register each Node with its Group's and Machine's labels (homelab-autoscaler.dev/group, /machine), as a kubelet given them in --node-labels does; false registers it with the namespace opt-in only, and the manager adds them (one Node write per registration).")
	fs.Var((*indexesFlag)(&c.NeverBoot), "never-boot", "Indexes of machines that power on but never register a Node, I,J,... (repeatable).")
	fs.Var((*faultsFlag)(&c.BMCErrors), "bmc-errors", "BMCs (or plugs) that answer errors (HTTP 500, IPMI node busy) for a while after the start, INDEX:DURATION,... (repeatable).")
	for _, k := range []FaultKind{FaultHang, FaultLie, FaultGarbage} {
		fs.Var(&kindFaultsFlag{list: &c.BMCFaults, kind: k}, "bmc-"+string(k), bmcFaultUsage[k])
	}
	fs.Var((*faultsFlag)(&c.LateBoot), "late-boot", "Machines that register their Node this much later than the boot delay, on every boot, INDEX:DURATION,... (repeatable).")
	fs.Var((*faultsFlag)(&c.Flap), "flap", "Machines whose Node alternates Ready and NotReady every 0.5s for this long after each registration, INDEX:DURATION,... (repeatable).")
	fs.Var((*faultsFlag)(&c.PowerCut), "power-cut", "Machines whose power is cut this long after they first reach Running, with no BMC command (the BMC then says Off; the Node stays, NotReady), INDEX:DURATION,... (repeatable).")
	fs.Var((*faultsFlag)(&c.PowerButton), "power-button", "Machines whose power button is pressed this long after the start: an off machine boots, with no BMC command, INDEX:DURATION,... (repeatable).")
	fs.Var((*indexesFlag)(&c.KubeletHang), "kubelet-hang", "Indexes of machines whose kubelet hangs on every boot: the BMC says On, the Node registers but never becomes Ready, I,J,... (repeatable).")
	fs.Float64Var(&c.StandbyWatts, "standby-watts", c.StandbyWatts, "What a machine draws off (its BMC and network card), in watts.")
	fs.Float64Var(&c.IdleWatts, "idle-watts", c.IdleWatts, "What a machine draws on and idle, in watts.")
	fs.Float64Var(&c.LoadedWatts, "loaded-watts", c.LoadedWatts, "What a machine draws on at full load, in watts (POST /debug/machines/NAME/load sets a machine's load).")
	fs.Float64Var(&c.WattsSpread, "watts-spread", 0, "Per-machine variation of the three draws: each machine's are scaled by its own factor within ± this fraction (0.1 is ±10%), the same across runs.")
	fs.Func("bmc-power-readings", "Power readings the BMCs offer: both (Redfish Power and EnvironmentMetrics; IPMI DCMI), power (Redfish Power only), environment (Redfish EnvironmentMetrics only) or none (IPMI: DCMI answers invalid command). Plugs always report their draw. (default both)", func(v string) error {
		c.PowerReadings = PowerReadings(v)
		return nil
	})
	fs.DurationVar(&c.NodeBootTimeout, "node-boot-timeout", 0, "How long a power-on may take until the machine's Node is Ready, written into the Group's spec.machineDefaults.bootTimeout; 0 leaves the built-in default (10m).")
	fs.StringVar(&o.ManifestsFile, "manifests", "", "Write the Group, Secrets and Machines as YAML to this file once every BMC listens.")
	fs.BoolVar(&o.Apply, "apply", false, "Create the Group, Secrets and Machines in the cluster (existing ones get this run's endpoints and credentials).")
	fs.StringVar(&o.DebugAddress, "debug-address", "127.0.0.1:8090", "Address of the /debug/counters endpoint (keep it on loopback); empty turns it off.")
}

// quantityFlag sets one resource of a capacity list.
type quantityFlag struct {
	list corev1.ResourceList
	name corev1.ResourceName
}

func (f quantityFlag) String() string {
	if f.list == nil {
		return ""
	}
	q := f.list[f.name]
	return q.String()
}

func (f quantityFlag) Set(v string) error {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return err
	}
	f.list[f.name] = q
	return nil
}

// labelsFlag collects KEY=VALUE pairs.
type labelsFlag map[string]string

func (f *labelsFlag) String() string {
	if f == nil || *f == nil {
		return ""
	}
	var kv []string
	for k, v := range *f {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

func (f *labelsFlag) Set(v string) error {
	if *f == nil {
		*f = map[string]string{}
	}
	for _, pair := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || k == "" {
			return fmt.Errorf("label %q is not KEY=VALUE", pair)
		}
		(*f)[k] = val
	}
	return nil
}

// indexesFlag collects machine indexes.
type indexesFlag []int

func (f *indexesFlag) String() string {
	if f == nil {
		return ""
	}
	var s []string
	for _, i := range *f {
		s = append(s, strconv.Itoa(i))
	}
	return strings.Join(s, ",")
}

func (f *indexesFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("machine index %q is not a number", part)
		}
		*f = append(*f, i)
	}
	return nil
}

// faultsFlag collects INDEX:DURATION pairs.
type faultsFlag []Fault

func (f *faultsFlag) String() string {
	if f == nil {
		return ""
	}
	var s []string
	for _, x := range *f {
		s = append(s, fmt.Sprintf("%d:%s", x.Index, x.For))
	}
	return strings.Join(s, ",")
}

func (f *faultsFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		idx, dur, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return errors.New("want INDEX:DURATION, e.g. 2:30s")
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			return fmt.Errorf("machine index %q is not a number", idx)
		}
		d, err := time.ParseDuration(dur)
		if err != nil {
			return err
		}
		*f = append(*f, Fault{Index: i, For: d})
	}
	return nil
}

var bmcFaultUsage = map[FaultKind]string{
	FaultHang:    "Redfish BMCs that hold every request unanswered (until the client gives up) for a while after the start, INDEX:DURATION,... (repeatable).",
	FaultLie:     "Redfish BMCs that report the opposite power state for a while after the start, INDEX:DURATION,... (repeatable).",
	FaultGarbage: "Redfish BMCs that answer 200 with a body that is not JSON for a while after the start, INDEX:DURATION,... (repeatable).",
}

// kindFaultsFlag collects INDEX:DURATION pairs of one fault kind into a shared list.
type kindFaultsFlag struct {
	list *[]Fault
	kind FaultKind
}

func (f *kindFaultsFlag) String() string {
	if f == nil || f.list == nil {
		return ""
	}
	var mine faultsFlag
	for _, x := range *f.list {
		if x.Kind == f.kind {
			mine = append(mine, x)
		}
	}
	return mine.String()
}

func (f *kindFaultsFlag) Set(v string) error {
	var parsed faultsFlag
	if err := parsed.Set(v); err != nil {
		return err
	}
	for _, x := range parsed {
		x.Kind = f.kind
		*f.list = append(*f.list, x)
	}
	return nil
}
