package cli_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
)

// TestStatusObservedAndRepairs checks that `homelabctl status` puts the observed power state,
// its age and source beside the desired one, and the machine's last repair, in the table and in
// -o json.
func TestStatusObservedAndRepairs(t *testing.T) {
	const ns = "status-repairs"
	ctx := context.Background()
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"}}); err != nil {
		t.Fatal(err)
	}
	// Whole seconds: the API keeps metav1.Time at that precision.
	now := time.Now().Truncate(time.Second)
	ago := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	lostMsg := "the machine lost power: its status driver says it is off; powering it on again"
	outsideMsg := "the machine was powered on from outside (its Node m2 is Ready); powering it off again"

	// m1 runs as desired; its status driver read it on 30 minutes ago, after it had lost power.
	createWithStatus(t, "m1", ns, true, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressReady
		st.PowerState, st.PowerStateSource, st.PowerStateObservedAt = infrav1.PoweredOn, infrav1.PowerStateFromDriver, ago(30*time.Minute)
		st.LastRepair = &infrav1.Repair{Kind: infrav1.RepairPowerLost, At: *ago(20 * time.Minute), Message: lostMsg}
	})
	// m2 should be off but was found running (seen through its Node only) and is being powered
	// off again.
	createWithStatus(t, "m2", ns, false, func(st *infrav1.MachineStatus) {
		st.Progress = infrav1.ProgressShuttingDown
		st.PowerState, st.PowerStateSource, st.PowerStateObservedAt = infrav1.PoweredOn, infrav1.PowerStateFromNode, ago(40*time.Minute)
		st.LastRepair = &infrav1.Repair{Kind: infrav1.RepairOutsidePowerOn, At: *ago(3*time.Hour + 30*time.Minute), Message: outsideMsg}
		st.Operation = &infrav1.PowerOperation{Action: infrav1.PowerActionOff, Attempt: 1, Drain: true, Repair: infrav1.RepairOutsidePowerOn}
		st.FailedBoots = 2
	})
	// m3 was never observed nor repaired.
	createWithStatus(t, "m3", ns, false, func(st *infrav1.MachineStatus) { st.Progress = infrav1.ProgressOff })

	out, _, err := run(t, "status", "--kubeconfig", kubeconfig, "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	rows := machineRows(t, out)
	want := map[string]map[string]string{
		"m1": {"ONLINE": "true", "POWER": "PoweredOn (30m)", "PROGRESS": "Ready", "LAST REPAIR": "PowerLost 20m ago", "LAST ERROR": "-"},
		"m2": {"ONLINE": "false", "POWER": "PoweredOn (40m, Node)", "PROGRESS": "ShuttingDown", "LAST REPAIR": "OutsidePowerOn 3h30m ago"},
		"m3": {"ONLINE": "false", "POWER": "-", "PROGRESS": "Off", "LAST REPAIR": "-"},
	}
	for name, cells := range want {
		row, ok := rows[name]
		if !ok {
			t.Fatalf("status table has no row for %s:\n%s", name, out)
		}
		for col, v := range cells {
			if row[col] != v {
				t.Errorf("%s: %s is %q, want %q\n%s", name, col, row[col], v, out)
			}
		}
	}
	if strings.Contains(out, outsideMsg) {
		t.Errorf("the table carries the repair's message, which belongs to -o json:\n%s", out)
	}

	out, _, err = run(t, "status", "--kubeconfig", kubeconfig, "-n", ns, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st cli.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if len(st.Machines) != 3 {
		t.Fatalf("status json has %d machines, want 3:\n%s", len(st.Machines), out)
	}
	m1, m2, m3 := st.Machines[0], st.Machines[1], st.Machines[2]
	if m1.Power != "PoweredOn" || m1.PowerSource != "Driver" || m1.PowerAge != "30m" ||
		m1.PowerObservedAt == nil || !m1.PowerObservedAt.Equal(ago(30*time.Minute)) || m1.Repairing != "" {
		t.Errorf("m1's observation in json: %+v", m1)
	}
	if r := m1.LastRepair; r == nil || r.Kind != "PowerLost" || r.Age != "20m" || r.Message != lostMsg || !r.At.Equal(ago(20*time.Minute)) {
		t.Errorf("m1's last repair in json: %+v", r)
	}
	if m2.Online || m2.PowerSource != "Node" || m2.Repairing != "OutsidePowerOn" || m2.FailedBoots != 2 ||
		m2.LastRepair == nil || m2.LastRepair.Kind != "OutsidePowerOn" || m2.LastRepair.Message != outsideMsg {
		t.Errorf("m2 in json: %+v (last repair %+v)", m2, m2.LastRepair)
	}
	if m3.Power != "" || m3.PowerObservedAt != nil || m3.PowerAge != "" || m3.LastRepair != nil {
		t.Errorf("m3, never observed nor repaired, in json: %+v", m3)
	}
	// Unset fields stay out of the JSON rather than appear as zero values.
	var raw struct {
		Machines []map[string]any `json:"machines"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"powerObservedAt", "powerAge", "powerSource", "lastRepair", "repairing", "failedBoots"} {
		if _, ok := raw.Machines[2][key]; ok {
			t.Errorf("m3's json has %q: %v", key, raw.Machines[2])
		}
	}
}

// createWithStatus creates a Machine of group workers and writes its status through the status
// subresource, as the manager does.
func createWithStatus(t *testing.T, name, ns string, online bool, set func(*infrav1.MachineStatus)) {
	t.Helper()
	ctx := context.Background()
	m := machine(name)
	m.Namespace = ns
	m.Spec.Online = online
	if err := env.Client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
		t.Fatal(err)
	}
	set(&m.Status)
	if err := env.Client.Status().Update(ctx, m); err != nil {
		t.Fatalf("writing %s's status: %v", name, err)
	}
}

var columnGap = regexp.MustCompile(`\s{2,}`)

// machineRows reads the machine table of `homelabctl status` (the second table) into its cells
// by column header, per machine name.
func machineRows(t *testing.T, out string) map[string]map[string]string {
	t.Helper()
	_, machines, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("status prints no machine table:\n%s", out)
	}
	// The agents follow the machines, after an empty line.
	machines, _, _ = strings.Cut(machines, "\n\n")
	lines := strings.Split(strings.TrimSpace(machines), "\n")
	header := columnGap.Split(lines[0], -1)
	rows := map[string]map[string]string{}
	for _, line := range lines[1:] {
		cells := columnGap.Split(line, -1)
		if len(cells) != len(header) {
			t.Fatalf("row %q has %d cells for %d columns %q", line, len(cells), len(header), header)
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = cells[i]
		}
		rows[row["MACHINE"]] = row
	}
	return rows
}
