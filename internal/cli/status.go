package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// MachineStatus is one Machine in `homelabctl status -o json`.
type MachineStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Group     string `json:"group"`
	// Online is spec.online: whether the machine should run.
	Online bool `json:"online"`
	// Power is status.powerState, the observed power state ("" until first observed).
	Power string `json:"power"`
	// PowerSource is status.powerStateSource: Driver when the status driver read Power, Node
	// when it was inferred from the Node's readiness.
	PowerSource string `json:"powerSource,omitempty"`
	// PowerObservedAt is when Power was last observed, and PowerAge how long before this
	// output: an old observation of a machine with a status driver means reads stopped.
	PowerObservedAt *metav1.Time `json:"powerObservedAt,omitempty"`
	PowerAge        string       `json:"powerAge,omitempty"`
	Progress        string       `json:"progress"`
	// Repairing is status.operation.repair: the repair the running power operation carries out,
	// empty when it follows a change of spec.online.
	Repairing string `json:"repairing,omitempty"`
	Since     string `json:"since,omitempty"`
	Attempts  int32  `json:"attempts"`
	// FailedBoots is status.failedBoots: boots that timed out since the machine was last Ready.
	FailedBoots int32         `json:"failedBoots,omitempty"`
	LastRepair  *RepairStatus `json:"lastRepair,omitempty"`
	LastError   string        `json:"lastError,omitempty"`
}

// RepairStatus is status.lastRepair in `homelabctl status -o json`: the last thing the manager
// did to a machine that nobody asked for.
type RepairStatus struct {
	Kind string      `json:"kind"`
	At   metav1.Time `json:"at"`
	// Age is how long before this output the repair was decided.
	Age     string `json:"age"`
	Message string `json:"message"`
}

// GroupStatus is one Group in `homelabctl status -o json`.
type GroupStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Min and Max are the limits cluster-autoscaler sees now: maxSize capped by the members,
	// both moved by open schedule windows.
	Min     int32 `json:"min"`
	Max     int32 `json:"max"`
	Target  int32 `json:"target"`
	Ready   int32 `json:"ready"`
	Members int32 `json:"members"`
	// Windows are the open schedule windows; LimitedBy says which window sets Min or Max.
	Windows   []string `json:"windows,omitempty"`
	LimitedBy string   `json:"limitedBy,omitempty"`
	// NextChange is when a window opens or closes next, NextWindow which, Next how soon.
	NextChange *metav1.Time `json:"nextChange,omitempty"`
	NextWindow string       `json:"nextWindow,omitempty"`
	Next       string       `json:"next,omitempty"`
	// Holds are the members the manager powered on by itself (schedule floor, maintenance wake).
	Holds []infrav1.Hold `json:"holds,omitempty"`
}

// Status is the output of `homelabctl status -o json`.
type Status struct {
	Groups   []GroupStatus   `json:"groups"`
	Machines []MachineStatus `json:"machines"`
	// Agents are the homelab-agent pods of the cluster; AgentsNote says why they are not shown.
	Agents     []AgentStatus `json:"agents"`
	AgentsNote string        `json:"agentsNote,omitempty"`
}

// statusFormats are the outputs of status.
var statusFormats = []string{"table", "wide", "json", "yaml"}

func statusCommand(env *Env, k *Kube) *cobra.Command {
	var output string
	var watch bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Groups and Machines: limits, online, observed power, progress, since, repairs, errors",
		Long: `Groups and Machines of the namespace (all of them with -A): each group's limits as
cluster-autoscaler sees them (moved by open schedule windows), target, Ready members, windows and
the next change; each machine's desired state (ONLINE) beside what was observed (POWER, with the
age of the observation), progress, attempts, holds, the last repair and the last error; and the
homelab-agents that relay wakes and shutdowns.

-o wide adds the power source, failed boots and the repair in progress, and does not shorten
errors; -o json and -o yaml print every field. --watch prints the status again whenever a Group
or Machine changes, until interrupted.`,
		Example: `  homelabctl status -n homelab
  homelabctl status -A -o wide
  kubectl homelab status --watch`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(output, statusFormats...); err != nil {
				return err
			}
			cl, ns, err := k.connect()
			if err != nil {
				return err
			}
			show := func(ctx context.Context) error {
				st, err := CollectStatus(ctx, cl, ns, time.Now())
				if err != nil {
					return err
				}
				if st.Agents, st.AgentsNote, err = collectAgents(ctx, cl); err != nil {
					return err
				}
				return printStatusAs(env, st, output)
			}
			if !watch {
				return show(c.Context())
			}
			return watchStatus(c.Context(), env, cl, ns, output, show)
		},
	}
	k.AddAllNamespacesFlag(cmd.Flags())
	outputFlag(cmd, &output, "table", statusFormats...)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "After the status, print it again on every change of a Group or Machine.")
	return cmd
}

func printStatusAs(env *Env, st *Status, output string) error {
	switch output {
	case "json":
		return writeJSON(env.Out, st)
	case "yaml":
		return writeYAML(env.Out, st)
	default:
		printStatus(env, st, output == "wide")
		return nil
	}
}

// CollectStatus reads the Groups and Machines of ns (all namespaces when empty) as `status`
// shows them at now; the agents are not included.
func CollectStatus(ctx context.Context, c client.Client, ns string, now time.Time) (*Status, error) {
	groups := &infrav1.GroupList{}
	if err := c.List(ctx, groups, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing Groups: %w", err)
	}
	list := &infrav1.MachineList{}
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing Machines: %w", err)
	}
	st := &Status{Groups: []GroupStatus{}, Machines: []MachineStatus{}}
	for _, g := range groups.Items {
		limits := machines.LimitsOf(&g, g.Status.Members, now)
		gs := GroupStatus{
			Namespace: g.Namespace, Name: g.Name, Min: limits.Min, Max: limits.Max,
			Target: g.Status.Target, Ready: g.Status.Ready, Members: g.Status.Members,
			Windows: limits.Schedule.Open, LimitedBy: limits.Explain(&g, now),
		}
		if next := limits.Schedule.Next; !next.IsZero() {
			t := metav1.NewTime(next)
			gs.NextChange, gs.NextWindow, gs.Next = &t, limits.Schedule.NextWindow, duration.HumanDuration(next.Sub(now))
		}
		if l := g.Status.ScaleLedger; l != nil {
			gs.Holds = l.Holds
		}
		st.Groups = append(st.Groups, gs)
	}
	for _, m := range list.Items {
		ms := MachineStatus{
			Namespace: m.Namespace, Name: m.Name, Group: m.Spec.Group, Online: m.Spec.Online,
			Power: string(m.Status.PowerState), PowerSource: string(m.Status.PowerStateSource),
			PowerObservedAt: m.Status.PowerStateObservedAt, Progress: string(m.Status.Progress),
			Attempts: m.Status.Attempts, FailedBoots: m.Status.FailedBoots, LastError: m.Status.LastError,
		}
		if m.Status.PowerStateObservedAt != nil {
			ms.PowerAge = age(now, m.Status.PowerStateObservedAt.Time)
		}
		if op := m.Status.Operation; op != nil {
			ms.Repairing = string(op.Repair)
		}
		if m.Status.ProgressSince != nil {
			ms.Since = age(now, m.Status.ProgressSince.Time)
		}
		if lr := m.Status.LastRepair; lr != nil {
			ms.LastRepair = &RepairStatus{Kind: string(lr.Kind), At: lr.At, Age: age(now, lr.At.Time), Message: lr.Message}
		}
		st.Machines = append(st.Machines, ms)
	}
	sort.Slice(st.Machines, func(i, j int) bool {
		a, b := st.Machines[i], st.Machines[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Name < b.Name
	})
	return st, nil
}

func printStatus(env *Env, st *Status, wide bool) {
	rows := [][]string{}
	held := map[string]string{}
	for _, g := range st.Groups {
		next := ""
		if g.NextWindow != "" {
			next = g.NextWindow + " in " + g.Next
		}
		rows = append(rows, []string{g.Namespace, g.Name, fmt.Sprint(g.Min), fmt.Sprint(g.Max), fmt.Sprint(g.Target), fmt.Sprint(g.Ready), fmt.Sprint(g.Members),
			dash(strings.Join(g.Windows, ",")), dash(next)})
		for _, h := range g.Holds {
			held[g.Namespace+"/"+h.Name] = string(h.Reason)
		}
	}
	table(env.Out, []string{"NAMESPACE", "GROUP", "MIN", "MAX", "TARGET", "READY", "MEMBERS", "WINDOWS", "NEXT CHANGE"}, rows)
	for _, g := range st.Groups {
		if g.LimitedBy != "" {
			fmt.Fprintf(env.Out, "%s/%s: %s\n", g.Namespace, g.Name, g.LimitedBy)
		}
	}
	fmt.Fprintln(env.Out)
	rows = rows[:0]
	header := []string{"NAMESPACE", "GROUP", "MACHINE", "ONLINE", "POWER", "PROGRESS", "SINCE", "ATTEMPTS", "HELD", "LAST REPAIR", "LAST ERROR"}
	if wide {
		header = []string{"NAMESPACE", "GROUP", "MACHINE", "ONLINE", "POWER", "SOURCE", "OBSERVED", "PROGRESS", "REPAIRING", "SINCE", "ATTEMPTS", "FAILED BOOTS", "HELD", "LAST REPAIR", "LAST ERROR"}
	}
	for _, m := range st.Machines {
		lastErr := m.LastError
		if len(lastErr) > 60 && !wide {
			lastErr = lastErr[:57] + "..."
		}
		h := dash(held[m.Namespace+"/"+m.Name])
		if wide {
			observed := ""
			if m.PowerObservedAt != nil {
				observed = m.PowerObservedAt.UTC().Format(time.RFC3339)
			}
			rows = append(rows, []string{m.Namespace, m.Group, m.Name, fmt.Sprint(m.Online), dash(m.Power), dash(m.PowerSource), dash(observed), dash(m.Progress),
				dash(m.Repairing), dash(m.Since), fmt.Sprint(m.Attempts), fmt.Sprint(m.FailedBoots), h, dash(repairCell(m.LastRepair)), dash(lastErr)})
			continue
		}
		rows = append(rows, []string{m.Namespace, m.Group, m.Name, fmt.Sprint(m.Online), dash(powerCell(m)), dash(m.Progress),
			dash(m.Since), fmt.Sprint(m.Attempts), h, dash(repairCell(m.LastRepair)), dash(lastErr)})
	}
	table(env.Out, header, rows)
	fmt.Fprintln(env.Out)
	printAgents(env, st.Agents, st.AgentsNote)
}

// powerCell is the observed power state with the age of the observation, and its source when
// it was only inferred from the Node: ONLINE beside it is the desired state.
func powerCell(m MachineStatus) string {
	if m.Power == "" || m.PowerAge == "" {
		return m.Power
	}
	if m.PowerSource == string(infrav1.PowerStateFromNode) {
		return fmt.Sprintf("%s (%s, Node)", m.Power, m.PowerAge)
	}
	return fmt.Sprintf("%s (%s)", m.Power, m.PowerAge)
}

// repairCell is the kind and age of the last repair; its message is in -o json and the
// Machine's Events.
func repairCell(r *RepairStatus) string {
	if r == nil {
		return ""
	}
	return r.Kind + " " + r.Age + " ago"
}

// age is how long before now t was, as kubectl prints ages. A t slightly ahead of now (the
// manager's clock runs ahead of this one) counts as now.
func age(now, t time.Time) string {
	return duration.HumanDuration(max(now.Sub(t), 0))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
