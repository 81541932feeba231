package dashboard

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
)

var snapshotTime = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func group(ns, name string) infrav1.Group {
	return infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func machine(ns, name, grp string, online bool, acc *infrav1.MachineEnergy) infrav1.Machine {
	m := infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	m.Spec.Group, m.Spec.Online, m.Status.Energy = grp, online, acc
	return m
}

// account is an energy account opened hoursOn+hoursOff ago, on for hoursOn at 100 W, then off,
// accounted until the snapshot.
func account(hoursOn, hoursOff int) *infrav1.MachineEnergy {
	opened := snapshotTime.Add(-time.Duration(hoursOn+hoursOff) * time.Hour)
	off := energy.Draw{Source: infrav1.DrawConfigured, OnWatts: new(100.0)}
	acc := energy.Advance(nil, opened, energy.Draw{On: true, Watts: 100, Source: infrav1.DrawConfigured, OnWatts: new(100.0)}, time.UTC)
	acc = energy.Advance(acc, opened.Add(time.Duration(hoursOn)*time.Hour), off, time.UTC)
	return energy.Advance(acc, snapshotTime, off, time.UTC)
}

// Groups of the same name in two namespaces each count only their own members, and a snapshot of
// objects the watches hold makes no request (the client is nil).
func TestBuildShowsEachNamespacesGroupsWithTheirOwnMembers(t *testing.T) {
	price := resource.MustParse("0.30")
	a := group("a", "workers")
	a.Spec.Energy = &infrav1.EnergyPolicy{PricePerKWh: &price, Currency: "EUR"}
	a.Status.Members = 2
	a.Status.ScaleLedger = &infrav1.ScaleLedger{Holds: []infrav1.Hold{{Name: "w1", Reason: infrav1.HoldReason("Schedule")}}}
	b := group("b", "workers")
	b.Status.Members = 1
	w := &watched{
		groups: []infrav1.Group{b, a},
		machines: []infrav1.Machine{
			machine("a", "w1", "workers", true, account(2, 1)),
			machine("a", "w2", "workers", false, nil),
			machine("b", "w1", "workers", false, account(1, 0)),
		},
	}
	snap, problems := build(context.Background(), nil, w, "", snapshotTime)
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if len(snap.Groups) != 2 || len(snap.Machines) != 3 {
		t.Fatalf("groups %+v, machines %+v", snap.Groups, snap.Machines)
	}
	if m := snap.Machines[0]; m.Namespace != "a" || m.Name != "w1" || m.Held != "Schedule" || m.Timeline.OnSeconds != 2*3600 {
		t.Errorf("first machine: %+v", m)
	}
	if m := snap.Machines[1]; m.Held != "" || len(m.Timeline.Spans) != 1 || m.Timeline.Spans[0].State != "unknown" {
		t.Errorf("a machine without an account: %+v", m)
	}
	if len(snap.Energy) != 2 {
		t.Fatalf("energy rows: %+v", snap.Energy)
	}
	ea, eb := snap.Energy[0], snap.Energy[1]
	if ea.Namespace != "a" || ea.Members != 2 || !ea.Opened || ea.Today.OnSeconds != 2*3600 || ea.Week.OnSeconds != 2*3600 {
		t.Errorf("group a/workers: %+v", ea)
	}
	// 2 h at 100 W is 0.2 kWh, 0.06 EUR at 0.30; an hour off saved 0.1 kWh, 0.03 EUR.
	if tx := ea.Today.Text; tx.Used != "0.200 kWh" || tx.UsedCost != "0.06 EUR" || tx.Saved != "0.100 kWh" || tx.SavedCost != "0.03 EUR" || tx.TimeOn != "2h" {
		t.Errorf("group a/workers today: %+v", tx)
	}
	if eb.Namespace != "b" || eb.Members != 1 || eb.Today.OnSeconds != 3600 || eb.Today.Text.UsedCost != "" {
		t.Errorf("group b/workers: %+v", eb)
	}

	// One namespace: the other's objects are not shown.
	snap, _ = build(context.Background(), nil, &watched{groups: []infrav1.Group{a}, machines: w.machines[:2]}, "a", snapshotTime)
	if len(snap.Groups) != 1 || len(snap.Machines) != 2 || snap.Namespace != "a" {
		t.Errorf("namespace a: %d groups, %d machines", len(snap.Groups), len(snap.Machines))
	}
}

func TestEventsAreThoseOfGroupsAndMachinesNewestFirstAndBounded(t *testing.T) {
	ev := func(i int, kind, apiVersion string, at time.Time) eventsv1.Event {
		return eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e%d", i), Namespace: "ns"},
			EventTime:  metav1.NewMicroTime(at), Reason: "R", Note: fmt.Sprint(i), Type: "Normal",
			Regarding: corev1.ObjectReference{Kind: kind, APIVersion: apiVersion, Namespace: "ns", Name: fmt.Sprintf("o%d", i)},
		}
	}
	gv := infrav1.GroupVersion.String()
	var evs []eventsv1.Event
	for i := range MaxEvents + 10 {
		evs = append(evs, ev(i, "Machine", gv, snapshotTime.Add(-time.Duration(i)*time.Minute)))
	}
	evs = append(evs,
		ev(1000, "Pod", "v1", snapshotTime),                           // another kind
		ev(1001, "Machine", "cluster.x-k8s.io/v1beta1", snapshotTime), // another API's Machine
	)
	// A series is shown at its last occurrence, with its count.
	series := ev(2000, "Group", gv, snapshotTime.Add(-time.Hour))
	series.Series = &eventsv1.EventSeries{Count: 7, LastObservedTime: metav1.NewMicroTime(snapshotTime.Add(time.Second))}
	evs = append(evs, series)

	got := eventsOf(evs, snapshotTime)
	if len(got) != MaxEvents {
		t.Fatalf("%d events, want %d", len(got), MaxEvents)
	}
	if got[0].Name != "o2000" || got[0].Count != 7 || got[0].Kind != "Group" || got[0].Age != "0s" {
		t.Errorf("newest: %+v", got[0])
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.After(got[i-1].Time) {
			t.Fatalf("event %d (%s) is newer than event %d (%s)", i, got[i].Time, i-1, got[i-1].Time)
		}
		if got[i].Name == "o1000" || got[i].Name == "o1001" {
			t.Errorf("event %d is not of this API's Groups and Machines: %+v", i, got[i])
		}
	}
	if got[1].Name != "o0" || got[1].Count != 1 || got[2].Age != "60s" {
		t.Errorf("events 1 and 2: %+v, %+v", got[1], got[2])
	}
}

func TestCAStatusSaysWhyItIsNotShown(t *testing.T) {
	name := types.NamespacedName{Namespace: "kube-system", Name: "cluster-autoscaler-status"}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{caLastUpdated: "2026-03-10 11:59:58 +0000 UTC"}},
		Data:       map[string]string{"status": "Cluster-wide:\n  Health: Healthy\n"},
	}
	for _, c := range []struct {
		what    string
		name    types.NamespacedName
		cm      *corev1.ConfigMap
		problem string
		ready   bool
		want    CAStatus
	}{
		{"not asked for", types.NamespacedName{}, nil, "", true, CAStatus{State: "off"}},
		{"forbidden", name, nil, "not readable (forbidden)", false, CAStatus{State: "unreadable", Message: "not readable (forbidden)"}},
		{"not listed yet", name, nil, "", false, CAStatus{State: "loading"}},
		{"missing", name, nil, "", true, CAStatus{State: "notFound", Message: "not found"}},
		{"there", name, cm, "", true, CAStatus{State: "ok", Status: "Cluster-wide:\n  Health: Healthy", LastUpdated: "2026-03-10 11:59:58 +0000 UTC"}},
	} {
		got := caStatusOf(c.name, c.cm, c.problem, c.ready)
		c.want.Namespace, c.want.Name = c.name.Namespace, c.name.Name
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.what, got, c.want)
		}
	}
}

func TestTimeOn(t *testing.T) {
	for in, want := range map[int64]string{0: "0s", 45: "45s", 120: "2m", 7200: "2h", 48600: "13h30m", 90061: "25h1m"} {
		if got := timeOn(in); got != want {
			t.Errorf("timeOn(%d) = %q, want %q", in, got, want)
		}
	}
}
