package dashboard

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
)

// MaxEvents bounds the Events a snapshot carries, newest first.
const MaxEvents = 50

// Snapshot is everything the page shows, as of At. The server builds one from the watches'
// objects after they change and sends it to every open page.
type Snapshot struct {
	At time.Time `json:"at"`
	// Namespace is the one shown, "" for all.
	Namespace  string `json:"namespace"`
	AllowPower bool   `json:"allowPower"`
	// Groups and Machines are what `homelabctl status` shows, Machines with their holds and
	// power timelines.
	Groups   []cli.GroupStatus `json:"groups"`
	Machines []Machine         `json:"machines"`
	// Energy is each Group's energy today and over the last 7 days.
	Energy        []GroupEnergy `json:"energy"`
	CloudProvider CloudProvider `json:"cloudProvider"`
	CAStatus      CAStatus      `json:"caStatus"`
	// Events are the latest Events of Groups and Machines, newest first, at most MaxEvents.
	Events []Event `json:"events"`
	// EventsProblem says why the Events cannot be shown ("not readable (forbidden)").
	EventsProblem string `json:"eventsProblem,omitempty"`
	// Problems say what could not be read, so that nothing missing looks like nothing there.
	Problems []string `json:"problems"`
}

// Machine is one Machine as `homelabctl status` shows it, with its power timeline.
type Machine struct {
	cli.MachineStatus
	// Held is the reason the manager powered the machine on by itself (its Group's holds).
	Held     string   `json:"held,omitempty"`
	Timeline Timeline `json:"timeline"`
}

// GroupEnergy is a Group's energy as `homelabctl energy` counts it, for today and the last 7
// days of the group's time zone.
type GroupEnergy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	TimeZone  string `json:"timeZone"`
	// Opened is false while no member has an energy account.
	Opened  bool `json:"opened"`
	Members int  `json:"members"`
	On      int  `json:"on"`
	// Watts is the members' current draw, WattsSources where the figures come from.
	Watts        float64  `json:"watts"`
	WattsSources []string `json:"wattsSources"`
	Today        Figures  `json:"today"`
	Week         Figures  `json:"week"`
}

// Figures are a group's energy over a period, with the text the page prints.
type Figures struct {
	cli.EnergyFigures
	// From and To are the period's first and last day (YYYY-MM-DD).
	From string      `json:"from"`
	To   string      `json:"to"`
	Text FiguresText `json:"text"`
}

// FiguresText is Figures as printed: time on, kWh, and money when the group has a price.
type FiguresText struct {
	TimeOn    string `json:"timeOn"`
	Used      string `json:"used"`
	Saved     string `json:"saved"`
	UsedCost  string `json:"usedCost,omitempty"`
	SavedCost string `json:"savedCost,omitempty"`
}

// Event is one Event of a Group or Machine.
type Event struct {
	Time      time.Time `json:"time"`
	Age       string    `json:"age"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Action    string    `json:"action,omitempty"`
	Note      string    `json:"note"`
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	// Count is how often it happened (an events.k8s.io series), at least 1.
	Count int32 `json:"count"`
}

// CAStatus is cluster-autoscaler's status ConfigMap.
type CAStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// State is ok, notFound, unreadable (Message says why: "not readable (forbidden)" or the
	// error), loading, or off when the dashboard was asked not to show it.
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// Status is the ConfigMap's status text, LastUpdated when cluster-autoscaler wrote it.
	Status      string `json:"status,omitempty"`
	LastUpdated string `json:"lastUpdated,omitempty"`
}

// caLastUpdated is the annotation cluster-autoscaler writes its status ConfigMap's time into.
const caLastUpdated = "cluster-autoscaler.kubernetes.io/last-updated"

// watched are the objects the watches hold at one instant.
type watched struct {
	groups   []infrav1.Group
	machines []infrav1.Machine
	events   []eventsv1.Event
	// caStatus is the status ConfigMap, nil when there is none.
	caStatus *corev1.ConfigMap
}

// fromWatches answers the Lists of Groups and Machines that cli.CollectStatus and
// cli.CollectEnergy make with the objects the watches hold, so that a snapshot costs the
// apiserver no request and shows one instant.
type fromWatches struct {
	client.Client
	w *watched
}

// List serves Groups and Machines from the watches and leaves other kinds to the client.
func (f fromWatches) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	ns := (&client.ListOptions{}).ApplyOptions(opts).Namespace
	switch l := list.(type) {
	case *infrav1.GroupList:
		l.Items = inNamespace(f.w.groups, ns)
	case *infrav1.MachineList:
		l.Items = inNamespace(f.w.machines, ns)
	default:
		return f.Client.List(ctx, list, opts...)
	}
	return nil
}

func inNamespace[T any, P interface {
	*T
	GetNamespace() string
}](objs []T, ns string) []T {
	out := make([]T, 0, len(objs))
	for i := range objs {
		if ns == "" || P(&objs[i]).GetNamespace() == ns {
			out = append(out, objs[i])
		}
	}
	return out
}

// build makes the snapshot of w at now, for the namespace ns ("" for all).
func build(ctx context.Context, c client.Client, w *watched, ns string, now time.Time) (*Snapshot, []string) {
	snap := &Snapshot{At: now, Namespace: ns, Groups: []cli.GroupStatus{}, Machines: []Machine{},
		Energy: []GroupEnergy{}, Events: []Event{}}
	var problems []string
	r := fromWatches{Client: c, w: w}
	st, err := cli.CollectStatus(ctx, r, ns, now)
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		snap.Groups = st.Groups
		held := map[string]string{}
		for _, g := range st.Groups {
			for _, h := range g.Holds {
				held[g.Namespace+"/"+h.Name] = string(h.Reason)
			}
		}
		accounts := map[string]*infrav1.MachineEnergy{}
		for i := range w.machines {
			accounts[w.machines[i].Namespace+"/"+w.machines[i].Name] = w.machines[i].Status.Energy
		}
		for _, m := range st.Machines {
			key := m.Namespace + "/" + m.Name
			snap.Machines = append(snap.Machines, Machine{MachineStatus: m, Held: held[key], Timeline: timelineOf(accounts[key], now)})
		}
	}
	energyRows, warnings := groupEnergy(ctx, r, w.groups, now)
	snap.Energy = energyRows
	problems = append(problems, warnings...)
	snap.Events = eventsOf(w.events, now)
	return snap, problems
}

// groupEnergy is every Group's energy today and over the last week, namespace by namespace
// (cli.CollectEnergy matches members to their Group by name within one namespace).
func groupEnergy(ctx context.Context, r client.Client, groups []infrav1.Group, now time.Time) ([]GroupEnergy, []string) {
	policies := map[types.NamespacedName]*infrav1.EnergyPolicy{}
	var namespaces []string
	for _, g := range groups {
		policies[types.NamespacedName{Namespace: g.Namespace, Name: g.Name}] = g.Spec.Energy
		if !slices.Contains(namespaces, g.Namespace) {
			namespaces = append(namespaces, g.Namespace)
		}
	}
	sort.Strings(namespaces)
	out := []GroupEnergy{}
	var problems []string
	for _, ns := range namespaces {
		day, warnings, err := cli.CollectEnergy(ctx, r, ns, "", "day", false, now)
		if err != nil {
			problems = append(problems, fmt.Sprintf("energy of namespace %s: %v", ns, err))
			continue
		}
		problems = append(problems, warnings...)
		week, _, err := cli.CollectEnergy(ctx, r, ns, "", "week", false, now)
		if err != nil {
			problems = append(problems, fmt.Sprintf("energy of namespace %s: %v", ns, err))
			continue
		}
		for i, g := range day.Groups {
			policy := policies[types.NamespacedName{Namespace: g.Namespace, Name: g.Name}]
			out = append(out, GroupEnergy{
				Namespace: g.Namespace, Name: g.Name, TimeZone: g.TimeZone, Opened: g.Since != nil,
				Members: g.Members, On: g.On, Watts: math.Round(g.Watts*10) / 10, WattsSources: g.WattsSources,
				Today: figures(g.EnergyFigures, g.From, g.To, policy),
				Week:  figures(week.Groups[i].EnergyFigures, week.Groups[i].From, week.Groups[i].To, policy),
			})
		}
	}
	return out, problems
}

func figures(f cli.EnergyFigures, from, to string, policy *infrav1.EnergyPolicy) Figures {
	out := Figures{EnergyFigures: f, From: from, To: to, Text: FiguresText{
		TimeOn: timeOn(f.OnSeconds),
		Used:   energy.FormatKWh(f.UsedKWh) + " kWh", Saved: energy.FormatKWh(f.SavedKWh) + " kWh",
	}}
	if cost, ok := energy.Money(f.UsedJoules, policy); ok {
		out.Text.UsedCost = cost
	}
	if cost, ok := energy.Money(f.SavedJoules, policy); ok {
		out.Text.SavedCost = cost
	}
	return out
}

// timeOn is a time on in hours and minutes, or minutes, or seconds: 13h30m, 2m, 45s.
func timeOn(seconds int64) string {
	h, m := seconds/3600, seconds%3600/60
	switch {
	case h > 0 && m > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh", h)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	default:
		return fmt.Sprintf("%ds", seconds)
	}
}

// eventsOf are the Events of Groups and Machines among evs, newest first, at most MaxEvents.
func eventsOf(evs []eventsv1.Event, now time.Time) []Event {
	out := []Event{}
	for i := range evs {
		e := &evs[i]
		gv, err := schema.ParseGroupVersion(e.Regarding.APIVersion)
		if err != nil || gv.Group != infrav1.GroupVersion.Group || (e.Regarding.Kind != "Group" && e.Regarding.Kind != "Machine") {
			continue
		}
		at, count := eventTime(e)
		out = append(out, Event{
			Time: at, Age: duration.HumanDuration(max(now.Sub(at), 0)), Type: e.Type, Reason: e.Reason,
			Action: e.Action, Note: e.Note, Kind: e.Regarding.Kind, Namespace: e.Regarding.Namespace,
			Name: e.Regarding.Name, Count: count,
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > MaxEvents {
		out = out[:MaxEvents]
	}
	return out
}

// eventTime is when an Event last happened and how often: events.k8s.io folds repeats into a
// series; Events written through the core API carry their times in the deprecated fields.
func eventTime(e *eventsv1.Event) (time.Time, int32) {
	if s := e.Series; s != nil {
		return s.LastObservedTime.Time, max(s.Count, 1)
	}
	count := max(e.DeprecatedCount, 1)
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time, count
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time, count
	default:
		return e.CreationTimestamp.Time, count
	}
}

// caStatusOf is the view of the status ConfigMap named name, as the watch holds it (cm) or why
// it could not be read (problem).
func caStatusOf(name types.NamespacedName, cm *corev1.ConfigMap, problem string, ready bool) CAStatus {
	out := CAStatus{Namespace: name.Namespace, Name: name.Name}
	switch {
	case name.Name == "":
		out.State = "off"
	case problem != "":
		out.State, out.Message = "unreadable", problem
	case !ready:
		out.State = "loading"
	case cm == nil:
		out.State, out.Message = "notFound", "not found"
	default:
		out.State = "ok"
		out.Status = strings.TrimRight(cm.Data["status"], "\n")
		out.LastUpdated = cm.Annotations[caLastUpdated]
	}
	return out
}
