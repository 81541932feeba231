package cloudprovider_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/schedule"
)

// clocked starts a replica whose clock the test drives, from at.
func clocked(t *testing.T, at time.Time) (*replica, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(at)
	return startReplica(t, func(o *app.Options) { o.Clock = clk }), clk
}

// wednesday10 is inside the windows the tests below open from 06:00 to 20:00 UTC.
var wednesday10 = time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)

func daytime(name string, minOn, maxOn *int32, excess bool) infrav1.ScheduleWindow {
	return infrav1.ScheduleWindow{Name: name, Start: "06:00", End: "20:00", MinOnline: minOn, MaxOnline: maxOn, PowerOffExcess: excess}
}

func withWindows(ws ...infrav1.ScheduleWindow) func(*infrav1.Group) {
	return func(g *infrav1.Group) { g.Spec.Schedules = ws }
}

func nodeGroupOf(t *testing.T, c pb.CloudProviderClient, id string) *pb.NodeGroup {
	t.Helper()
	res, err := c.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range res.GetNodeGroups() {
		if g.GetId() == id {
			return g
		}
	}
	t.Fatalf("NodeGroups has no %s", id)
	return nil
}

func runSchedule(t *testing.T, r *replica, ns, group string, busy map[string]bool) schedule.Outcome {
	t.Helper()
	out, err := r.srv.Schedule(ctx5s(t), types.NamespacedName{Namespace: ns, Name: group}, func(_ context.Context, m *infrav1.Machine) (bool, error) {
		return busy[m.Name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ledgerOf(t *testing.T, ns, group string) infrav1.ScaleLedger {
	t.Helper()
	g := &infrav1.Group{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: group}, g); err != nil {
		t.Fatal(err)
	}
	if g.Status.ScaleLedger == nil {
		return infrav1.ScaleLedger{}
	}
	return *g.Status.ScaleLedger
}

// A quiet window reports maxSize 0 to cluster-autoscaler and refuses a scale-up with
// ResourceExhausted naming the window and when it ends; once it closes the same call succeeds.
func TestQuietWindowRefusesIncreaseSize(t *testing.T) {
	r, clk := clocked(t, time.Date(2026, 6, 3, 23, 30, 0, 0, time.UTC))
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g", withWindows(infrav1.ScheduleWindow{Name: "quiet-hours", Start: "23:00", End: "07:00",
		TimeZone: "Europe/Berlin", MaxOnline: ptr[int32](0)}))
	createMachines(t, ns, "g", 2, nil)
	r.sync(t, ns)
	id := gid(ns, "g")

	// 23:30 UTC is 01:30 in Berlin (CEST): inside.
	if ng := nodeGroupOf(t, c, id); ng.GetMaxSize() != 0 || ng.GetMinSize() != 0 || !strings.Contains(ng.GetDebug(), `window "quiet-hours"`) {
		t.Fatalf("inside the window: %+v", ng)
	}
	err := increase(t, c, id, 1)
	expectCode(t, err, 8) // ResourceExhausted
	want := `node group ` + id + `: target 0 + 1 would exceed its maxSize 0: maximum 0 set by window "quiet-hours" (until Thu 07:00 CEST)`
	if msg := status.Convert(err).Message(); msg != want {
		t.Fatalf("refusal:\n got %q\nwant %q", msg, want)
	}
	if len(desiredOn(t, ns)) != 0 {
		t.Fatal("the refused call changed a machine")
	}

	clk.SetTime(time.Date(2026, 6, 4, 5, 0, 0, 0, time.UTC)) // 07:00 CEST: closed
	if ng := nodeGroupOf(t, c, id); ng.GetMaxSize() != 2 {
		t.Fatalf("after the window: %+v", ng)
	}
	if err := increase(t, c, id, 1); err != nil {
		t.Fatal(err)
	}
}

// A floor powers members on through the ledger, as a scale-up would choose them, and holds
// them; when its window closes an idle held member is drained and powered off and a busy one is
// released to cluster-autoscaler. minSize follows the window.
func TestFloorPowersOnAndReleases(t *testing.T) {
	r, clk := clocked(t, wednesday10)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g", withWindows(daytime("warm", ptr[int32](2), nil, false)))
	ms := createMachines(t, ns, "g", 3, nil)
	r.sync(t, ns)
	id := gid(ns, "g")
	if ng := nodeGroupOf(t, c, id); ng.GetMinSize() != 2 || ng.GetMaxSize() != 3 {
		t.Fatalf("inside the window: %+v", ng)
	}

	out := runSchedule(t, r, ns, "g", nil)
	on := desiredOn(t, ns)
	if len(on) != 2 || len(out.Actions) != 2 || out.Actions[0].Kind != schedule.ActionFloorPowerOn {
		t.Fatalf("floor: desired on %v, actions %+v", on, out.Actions)
	}
	l := ledgerOf(t, ns, "g")
	if len(l.Holds) != 2 || l.Holds[0].Reason != infrav1.HoldFloor || l.Holds[0].Window != "warm" {
		t.Fatalf("holds %+v", l.Holds)
	}
	// A second look decides nothing more.
	if out := runSchedule(t, r, ns, "g", nil); len(out.Actions) != 0 {
		t.Fatalf("repeated: %+v", out.Actions)
	}
	var held []*infrav1.Machine
	for _, m := range ms {
		if on[m.Name] {
			held = append(held, m)
		}
	}

	clk.SetTime(time.Date(2026, 6, 3, 20, 0, 1, 0, time.UTC))
	r.sync(t, ns)
	if ng := nodeGroupOf(t, c, id); ng.GetMinSize() != 0 {
		t.Fatalf("after the window: %+v", ng)
	}
	out = runSchedule(t, r, ns, "g", map[string]bool{held[0].Name: true})
	kinds := map[string]string{}
	for _, a := range out.Actions {
		kinds[a.Machine] = a.Kind
	}
	if kinds[held[0].Name] != schedule.ActionReleased || kinds[held[1].Name] != schedule.ActionFloorEnd {
		t.Fatalf("after the window: %+v", out.Actions)
	}
	on = desiredOn(t, ns)
	if !on[held[0].Name] || on[held[1].Name] {
		t.Fatalf("desired on after the window: %v", on)
	}
	l = ledgerOf(t, ns, "g")
	if len(l.Holds) != 0 {
		t.Fatalf("holds after the window: %+v", l.Holds)
	}
	for _, p := range l.PowerOffs {
		if p.Name == held[1].Name {
			t.Fatalf("the floor's power-off is recorded as drained by cluster-autoscaler: %+v", l.PowerOffs)
		}
	}
}

// A ceiling with powerOffExcess powers off the members above it, held ones first, then those
// not Ready, then the most recently started; the lifecycle controller drains them (the power-offs
// are not recorded as cluster-autoscaler's). A ceiling without it powers nothing off.
func TestCeilingPowersOffTheExcess(t *testing.T) {
	r, _ := clocked(t, wednesday10)
	ns := newNamespace(t)
	started := func(h int) *metav1.Time {
		t := metav1.NewTime(wednesday10.Add(-time.Duration(h) * time.Hour))
		return &t
	}
	createGroup(t, ns, "g", withWindows(daytime("soft", nil, ptr[int32](0), false), daytime("hard", nil, ptr[int32](1), true)))
	createMachines(t, ns, "g", 4, func(i int, m *infrav1.Machine) {
		m.Spec.Online = true
		m.Status.Progress, m.Status.PowerState = infrav1.ProgressReady, infrav1.PoweredOn
		m.Status.LastStartupTime = started(4 - i) // m0003 started last
		if i == 0 {
			m.Status.Progress = infrav1.ProgressStartingUp
		}
	})
	r.sync(t, ns)
	out := runSchedule(t, r, ns, "g", nil)
	on := desiredOn(t, ns)
	if len(out.Actions) != 3 || !on["m0001"] || len(on) != 1 {
		t.Fatalf("desired on %v after %+v; want only m0001 (Ready, started first) left", on, out.Actions)
	}
	if out.Actions[0].Machine != "m0000" || out.Actions[1].Machine != "m0003" || out.Actions[0].Kind != schedule.ActionCeilingPowerOff {
		t.Fatalf("order: %+v; want the one not Ready, then the most recently started", out.Actions)
	}
	if !strings.Contains(out.Actions[0].Message, `window "hard"`) {
		t.Fatalf("message %q does not name the window", out.Actions[0].Message)
	}
	if l := ledgerOf(t, ns, "g"); len(l.PowerOffs) != 0 {
		t.Fatalf("recorded as drained by cluster-autoscaler: %+v", l.PowerOffs)
	}
}

// A member off for longer than offLongerThan is woken (oldest first, maxConcurrent at a time),
// held until wakeFor has passed, then powered off; never while a ceiling window is open.
func TestMaintenanceWake(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	r, clk := clocked(t, now)
	ns := newNamespace(t)
	days := func(d int) *metav1.Time { t := metav1.NewTime(now.Add(-time.Duration(d) * 24 * time.Hour)); return &t }
	createGroup(t, ns, "g", func(g *infrav1.Group) {
		g.Spec.Maintenance = &infrav1.MaintenanceWake{OffLongerThan: metav1.Duration{Duration: 7 * 24 * time.Hour},
			WakeFor: metav1.Duration{Duration: 30 * time.Minute}, MaxConcurrent: 1}
	})
	createMachines(t, ns, "g", 3, func(i int, m *infrav1.Machine) {
		m.Status.LastShutdownTime = days([]int{8, 9, 1}[i])
	})
	r.sync(t, ns)
	out := runSchedule(t, r, ns, "g", nil)
	if on := desiredOn(t, ns); len(on) != 1 || !on["m0001"] || out.Actions[0].Kind != schedule.ActionMaintenanceWake {
		t.Fatalf("woken %v (%+v); want m0001, off longest", on, out.Actions)
	}
	if want := now.Add(30 * time.Minute); !out.Next.Equal(want) {
		t.Fatalf("next %s, want the wake's end %s", out.Next, want)
	}
	if l := ledgerOf(t, ns, "g"); len(l.Holds) != 1 || l.Holds[0].Reason != infrav1.HoldMaintenance || l.Holds[0].Until == nil {
		t.Fatalf("holds %+v", l.Holds)
	}
	// m0000 is due too, but one at a time.
	if out := runSchedule(t, r, ns, "g", nil); len(out.Actions) != 0 {
		t.Fatalf("a second wake at once: %+v", out.Actions)
	}

	clk.SetTime(now.Add(31 * time.Minute))
	r.sync(t, ns)
	out = runSchedule(t, r, ns, "g", nil)
	kinds := map[string]string{}
	for _, a := range out.Actions {
		kinds[a.Machine] = a.Kind
	}
	if kinds["m0001"] != schedule.ActionMaintenanceEnd || kinds["m0000"] != schedule.ActionMaintenanceWake {
		t.Fatalf("after the wake: %+v", out.Actions)
	}
	if on := desiredOn(t, ns); len(on) != 1 || !on["m0000"] {
		t.Fatalf("desired on %v", on)
	}

	// A quiet window cuts the wake short and stops new ones.
	g := &infrav1.Group{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "g"}, g); err != nil {
		t.Fatal(err)
	}
	g.Spec.Schedules = []infrav1.ScheduleWindow{{Name: "quiet", Cron: "* * * * *", Duration: &metav1.Duration{Duration: time.Hour}, MaxOnline: ptr[int32](5)}}
	if err := env.Client.Update(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	r.sync(t, ns)
	out = runSchedule(t, r, ns, "g", nil)
	if len(out.Actions) != 1 || out.Actions[0].Machine != "m0000" || out.Actions[0].Kind != schedule.ActionMaintenanceEnd ||
		!strings.Contains(out.Actions[0].Message, `cut short by window "quiet"`) {
		t.Fatalf("in a ceiling window: %+v", out.Actions)
	}
	if on := desiredOn(t, ns); len(on) != 0 {
		t.Fatalf("desired on %v in a ceiling window", on)
	}
}

// powerCycling: a member powered off less than minOffTime ago is chosen last, even over one that
// never booted; one powered on maxPowerOnsPerDay times in 24 hours is not chosen at all, and a
// refusal it causes says so.
func TestPowerCyclingShapesTheChoice(t *testing.T) {
	now := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	r, _ := clocked(t, now)
	c := r.client(t)
	ns := newNamespace(t)
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	createGroup(t, ns, "g", func(g *infrav1.Group) {
		g.Spec.PowerCycling = &infrav1.PowerCycling{MinOffTime: &metav1.Duration{Duration: time.Hour}, MaxPowerOnsPerDay: ptr[int32](3)}
	})
	createMachines(t, ns, "g", 3, func(i int, m *infrav1.Machine) {
		switch i {
		case 0: // booted before (the first choice without powerCycling), off for 10 minutes
			m.Status.ProviderID = m.ProviderIDOrDefault()
			off := ago(10 * time.Minute)
			m.Status.LastShutdownTime = &off
		case 1: // never booted
		case 2: // booted before, powered on three times today
			m.Status.ProviderID = m.ProviderIDOrDefault()
			m.Status.PowerOns = []metav1.Time{ago(20 * time.Hour), ago(5 * time.Hour), ago(2 * time.Hour)}
			off := ago(90 * time.Minute)
			m.Status.LastShutdownTime = &off
		}
	})
	r.sync(t, ns)
	id := gid(ns, "g")
	if err := increase(t, c, id, 1); err != nil {
		t.Fatal(err)
	}
	if on := desiredOn(t, ns); len(on) != 1 || !on["m0001"] {
		t.Fatalf("chose %v; want m0001 (m0000 is cooling down, m0002 is at its daily cap)", on)
	}
	if err := increase(t, c, id, 1); err != nil {
		t.Fatal(err)
	}
	if on := desiredOn(t, ns); len(on) != 2 || !on["m0000"] {
		t.Fatalf("chose %v; want m0000 once nothing else can serve", on)
	}
	waitFor(t, "an Event saying powerCycling shaped the choice", func() bool {
		list := &eventsv1.EventList{}
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Regarding.Name == "g" && e.Reason == "PowerCycling" && strings.Contains(e.Note, "chosen because no other member could serve: m0000") {
				return true
			}
		}
		return false
	})
	err := increase(t, c, id, 1)
	expectCode(t, err, 8)
	want := "node group " + id + ": 1 machines asked for, only 0 can be powered on (1 reached powerCycling.maxPowerOnsPerDay (3); the others are on, being deleted, or Failed)"
	if msg := status.Convert(err).Message(); msg != want {
		t.Fatalf("refusal:\n got %q\nwant %q", msg, want)
	}
}
