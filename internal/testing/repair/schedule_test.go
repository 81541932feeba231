package repair_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The schedule's decisions, end to end: the whole manager with a clock the test drives (the
// group controller's requeues included), and one test on the real clock.
func TestSchedules(t *testing.T) {
	startKwok(t)
	t.Run("WeekdayFloorAcrossDST", func(t *testing.T) { t.Parallel(); testWeekdayFloor(t) })
	t.Run("ForcedOffDrainsFirst", func(t *testing.T) { t.Parallel(); testForcedOff(t) })
	t.Run("MaintenanceWake", func(t *testing.T) { t.Parallel(); testMaintenanceWake(t) })
	t.Run("OneMinuteWindow", func(t *testing.T) { t.Parallel(); testOneMinuteWindow(t) })
}

// clockedManager runs the manager on a fake clock from at. Power-ons are paced by that clock
// too: a burst large enough for the test stands in for the time that does not pass.
func clockedManager(t *testing.T, ns string, at time.Time) (*clocktesting.FakeClock, string) {
	t.Helper()
	clk := clocktesting.NewFakeClock(at)
	addr := manager(t, ns, func(o *app.Options) {
		o.Clock, o.PowerOnBurst = clk, 100
		o.Logger = logr.FromSlogHandler(testenv.TestLogger(t, "manager").Handler())
	})
	return clk, addr
}

func getGroup(t *testing.T, ns, name string) *infrav1.Group {
	t.Helper()
	g := &infrav1.Group{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, g); err != nil {
		t.Fatal(err)
	}
	return g
}

// waitSchedule waits until the group's status.schedule says the windows in open are open, with
// the effective minimum min.
func waitSchedule(t *testing.T, ns, name string, open []string, min int32) *infrav1.ScheduleStatus {
	t.Helper()
	var st *infrav1.ScheduleStatus
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("group %s: windows %v open, minimum %d", name, open, min), func() bool {
		st = getGroup(t, ns, name).Status.Schedule
		return st != nil && slices.Equal(st.Active, open) && st.MinSize == min
	})
	return st
}

func progressOf(t *testing.T, objs sim.Objects) map[infrav1.Progress]int {
	t.Helper()
	out := map[infrav1.Progress]int{}
	for _, m := range objs.Machines {
		out[get(t, m).Status.Progress]++
	}
	return out
}

func waitCounts(t *testing.T, objs sim.Objects, want map[infrav1.Progress]int, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, fmt.Sprintf("machines %v", want), func() bool {
		got := progressOf(t, objs)
		for p, n := range want {
			if got[p] != n {
				return false
			}
		}
		return true
	})
}

// waitGroupEvent waits for an Event with reason about the Group.
func waitGroupEvent(t *testing.T, ns, group, reason string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "a "+reason+" Event about group "+group, func() bool {
		return hasEvent(t, ns, group, reason)
	})
}

func nodeGroupMin(t *testing.T, c pb.CloudProviderClient, id string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.NodeGroups(ctx, &pb.NodeGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range res.GetNodeGroups() {
		if g.GetId() == id {
			return g.GetMinSize()
		}
	}
	t.Fatalf("NodeGroups has no %s", id)
	return -1
}

// A weekday floor 08:00–18:00 in Berlin, driven across the spring daylight-saving change: it
// opens at 07:00 UTC on Friday (CET) and at 06:00 UTC on Monday (CEST). Each time the manager
// powers a machine on by itself and cluster-autoscaler sees minSize 1; when the window closes the
// machine, idle, is drained and powered off again.
func testWeekdayFloor(t *testing.T) {
	cfg := homelab(t, sim.ProtocolRedfish, 2, nil)
	_, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.Schedules = []infrav1.ScheduleWindow{{Name: "weekday-warm", Days: []infrav1.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri"},
			Start: "08:00", End: "18:00", TimeZone: "Europe/Berlin", MinOnline: ptr.To[int32](1)}}
	})
	clk, addr := clockedManager(t, cfg.Namespace, time.Date(2026, 3, 27, 6, 59, 30, 0, time.UTC))
	c, id := dial(t, addr), cloudprovider.GroupID(cfg.Namespace, cfg.Group)

	st := waitSchedule(t, cfg.Namespace, cfg.Group, nil, 0)
	if st.NextChange == nil || !st.NextChange.Equal(&metav1.Time{Time: time.Date(2026, 3, 27, 7, 0, 0, 0, time.UTC)}) {
		t.Fatalf("next change %v, want Friday 07:00 UTC (08:00 CET)", st.NextChange)
	}
	if n := progressOf(t, objs)[infrav1.ProgressReady]; n != 0 || nodeGroupMin(t, c, id) != 0 {
		t.Fatalf("before the window: %d Ready", n)
	}

	for _, edge := range []struct {
		opens, closes, next time.Time
	}{
		{time.Date(2026, 3, 27, 7, 0, 0, 0, time.UTC), time.Date(2026, 3, 27, 17, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 6, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 30, 6, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 16, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 6, 0, 0, 0, time.UTC)},
	} {
		clk.SetTime(edge.opens.Add(time.Second))
		waitSchedule(t, cfg.Namespace, cfg.Group, []string{"weekday-warm"}, 1)
		waitCounts(t, objs, map[infrav1.Progress]int{infrav1.ProgressReady: 1, infrav1.ProgressOff: 1}, 30*time.Second)
		if min := nodeGroupMin(t, c, id); min != 1 {
			t.Fatalf("%s: NodeGroups minSize %d inside the window", edge.opens, min)
		}
		held := getGroup(t, cfg.Namespace, cfg.Group).Status.ScaleLedger
		if held == nil || len(held.Holds) != 1 || held.Holds[0].Reason != infrav1.HoldFloor {
			t.Fatalf("%s: holds %+v", edge.opens, held)
		}

		clk.SetTime(edge.closes.Add(time.Second))
		st := waitSchedule(t, cfg.Namespace, cfg.Group, nil, 0)
		waitCounts(t, objs, map[infrav1.Progress]int{infrav1.ProgressOff: 2}, 30*time.Second)
		if st.NextChange == nil || !st.NextChange.Time.Equal(edge.next) {
			t.Fatalf("after %s: next change %v, want %s", edge.closes, st.NextChange, edge.next)
		}
		if min := nodeGroupMin(t, c, id); min != 0 {
			t.Fatalf("%s: NodeGroups minSize %d after the window", edge.closes, min)
		}
	}
	for _, reason := range []string{"WindowOpened", "WindowClosed", "FloorPowerOn", "FloorEnd"} {
		waitGroupEvent(t, cfg.Namespace, cfg.Group, reason)
	}
}

// A quiet window with powerOffExcess powers off the machines running at its start, drained
// first: while a PodDisruptionBudget refuses the eviction of a workload on one of them, that
// machine gets no power-off command; once the budget is gone, the workload is evicted and the
// machine powered off.
func testForcedOff(t *testing.T) {
	cfg := homelab(t, sim.ProtocolRedfish, 2, nil)
	s, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.Schedules = []infrav1.ScheduleWindow{{Name: "gpu-night", Start: "23:00", End: "07:00",
			MaxOnline: ptr.To[int32](0), PowerOffExcess: true}}
	})
	clk, _ := clockedManager(t, cfg.Namespace, time.Date(2026, 6, 3, 22, 59, 0, 0, time.UTC))
	allReady(t, objs, 30*time.Second)

	busy := get(t, objs.Machines[0])
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: "training", Labels: map[string]string{"app": "training"}},
		Spec: corev1.PodSpec{NodeName: busy.Status.KubernetesNode, TerminationGracePeriodSeconds: ptr.To[int64](0), Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: "training"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "training"}}},
	}
	for _, o := range []client.Object{pdb, pod} {
		if err := env.Client.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	// The status the disruption controller would write: the one pod healthy, no disruption allowed.
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
	if err := env.Client.Status().Update(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}

	clk.SetTime(time.Date(2026, 6, 3, 23, 0, 1, 0, time.UTC))
	waitSchedule(t, cfg.Namespace, cfg.Group, []string{"gpu-night"}, 0)
	// The idle machine goes; the busy one waits for its drain.
	waitProgress(t, objs.Machines[1], infrav1.ProgressOff, 30*time.Second)
	testenv.Eventually(t, 30*time.Second, busy.Name+" to report the blocked drain", func() bool {
		st := get(t, busy).Status
		return st.LastErrorReason == "DrainBlocked"
	})
	if c := s.Machines()[0].Counters(); c.PowerOff != 0 {
		t.Fatalf("%s got a power-off command while its workload could not be evicted: %+v", busy.Name, c.History)
	}
	if got := get(t, busy); got.Status.Progress != infrav1.ProgressShuttingDown || got.Spec.Online {
		t.Fatalf("%s: online %v, progress %s", busy.Name, got.Spec.Online, got.Status.Progress)
	}

	if err := env.Client.Delete(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, busy, infrav1.ProgressOff, 60*time.Second)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), &corev1.Pod{}); err == nil {
		got := &corev1.Pod{}
		_ = env.Client.Get(context.Background(), client.ObjectKeyFromObject(pod), got)
		if got.DeletionTimestamp.IsZero() {
			t.Fatalf("%s is off but its workload was never evicted", busy.Name)
		}
	}
	if c := s.Machines()[0].Counters(); c.PowerOff != 1 {
		t.Fatalf("%s: %d power-off commands, want 1", busy.Name, c.PowerOff)
	}
	waitGroupEvent(t, cfg.Namespace, cfg.Group, "CeilingPowerOff")
}

// A machine off for longer than maintenance.offLongerThan is woken, becomes Ready, and once
// wakeFor has passed is drained and powered off again: one power-on and one power-off command.
func testMaintenanceWake(t *testing.T) {
	cfg := homelab(t, sim.ProtocolIPMI, 1, nil)
	s, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.Maintenance = &infrav1.MaintenanceWake{OffLongerThan: metav1.Duration{Duration: 24 * time.Hour},
			WakeFor: metav1.Duration{Duration: 30 * time.Minute}, MaxConcurrent: 1}
	})
	now := time.Now()
	clk, _ := clockedManager(t, cfg.Namespace, now)
	m := objs.Machines[0]
	waitProgress(t, m, infrav1.ProgressOff, 30*time.Second)

	clk.SetTime(now.Add(24*time.Hour + time.Minute))
	waitProgress(t, m, infrav1.ProgressReady, 30*time.Second)
	waitGroupEvent(t, cfg.Namespace, cfg.Group, "MaintenanceWake")
	clk.SetTime(now.Add(24*time.Hour + 32*time.Minute))
	waitProgress(t, m, infrav1.ProgressOff, 30*time.Second)
	waitGroupEvent(t, cfg.Namespace, cfg.Group, "MaintenanceEnd")
	if c := s.Machines()[0].Counters(); c.PowerOn != 1 || c.PowerOff != 1 {
		t.Fatalf("commands: %+v", c.History)
	}
	if g := getGroup(t, cfg.Namespace, cfg.Group); g.Status.ScaleLedger != nil && len(g.Status.ScaleLedger.Holds) > 0 {
		t.Fatalf("holds after the wake: %+v", g.Status.ScaleLedger.Holds)
	}
}

// On the real clock, a window one minute long with minOnline 2: the two machines power on and
// report Ready and NodeGroups over gRPC reports minSize 2; when the minute is over both fall back:
// minSize 0, the machines off.
func testOneMinuteWindow(t *testing.T) {
	cfg := homelab(t, sim.ProtocolRedfish, 3, nil)
	// The window opens at the first whole minute at least 20 seconds away (time to start).
	opens := time.Now().UTC().Add(20 * time.Second).Truncate(time.Minute).Add(time.Minute)
	_, objs := start(t, cfg, func(g *infrav1.Group) {
		g.Spec.Schedules = []infrav1.ScheduleWindow{{Name: "one-minute", Cron: fmt.Sprintf("%d %d * * *", opens.Minute(), opens.Hour()),
			Duration: &metav1.Duration{Duration: time.Minute}, MinOnline: ptr.To[int32](2)}}
	})
	addr := manager(t, cfg.Namespace, nil)
	c, id := dial(t, addr), cloudprovider.GroupID(cfg.Namespace, cfg.Group)
	if min := nodeGroupMin(t, c, id); min != 0 {
		t.Fatalf("minSize %d before the window", min)
	}
	testenv.Eventually(t, 90*time.Second, "NodeGroups to report minSize 2", func() bool { return nodeGroupMin(t, c, id) == 2 })
	waitCounts(t, objs, map[infrav1.Progress]int{infrav1.ProgressReady: 2, infrav1.ProgressOff: 1}, 40*time.Second)
	if time.Now().Before(opens) {
		t.Fatalf("minSize was raised before the window opened at %s", opens)
	}
	testenv.Eventually(t, 90*time.Second, "NodeGroups to report minSize 0 again", func() bool { return nodeGroupMin(t, c, id) == 0 })
	if time.Now().Before(opens.Add(time.Minute)) {
		t.Fatalf("minSize fell back before the window closed at %s", opens.Add(time.Minute))
	}
	waitCounts(t, objs, map[infrav1.Progress]int{infrav1.ProgressOff: 3}, 40*time.Second)
}
