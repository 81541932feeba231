package group

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// The group gauges are labelled with the group's cluster-autoscaler id (namespace/name) rather
// than a namespace label, which would clash with the scraped pod's own namespace label. Only the
// leader runs this controller, so only the leader exports them.
var (
	machinesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_group_machines",
		Help: "Members of each Group by progress (Off, StartingUp, Ready, ShuttingDown, Failed).",
	}, []string{"group", "progress"})
	targetGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_group_target_size",
		Help: "Members of each Group desired on: cluster-autoscaler's target size.",
	}, []string{"group"})
	maxGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_group_max_size",
		Help: "Each Group's effective maximum size: spec.maxSize capped by the number of members and lowered by open schedule windows' maxOnline.",
	}, []string{"group"})
	minGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_group_min_size",
		Help: "Each Group's effective minimum size: spec.minSize raised by open schedule windows' minOnline, at most the effective maximum.",
	}, []string{"group"})
	windowGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_group_schedule_window_open",
		Help: "1 for each schedule window of a Group that is open (absent when closed).",
	}, []string{"group", "window"})
	scheduleActions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_autoscaler_group_schedule_actions_total",
		Help: "The manager's own schedule decisions on a Group's machines, by action: powered on (FloorPowerOn, MaintenanceWake), powered off (FloorEnd, CeilingPowerOff, MaintenanceEnd) or left to cluster-autoscaler (Released).",
	}, []string{"group", "action"})
)

// observeWindows exports which of a group's windows are open.
func observeWindows(g *infrav1.Group, open []string) {
	id := groupID(g.Namespace, g.Name)
	windowGauge.DeletePartialMatch(prometheus.Labels{"group": id})
	for _, w := range open {
		windowGauge.WithLabelValues(id, w).Set(1)
	}
}

func countAction(g *infrav1.Group, action string) {
	scheduleActions.WithLabelValues(groupID(g.Namespace, g.Name), action).Inc()
}

// Collectors returns the group gauges, for documentation checks.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{machinesGauge, targetGauge, maxGauge, minGauge, windowGauge, scheduleActions, energyUsed, energySaved, powerGauge}
}

// The energy series follow the Groups' status.energy. Its totals only grow, except when a member
// leaves the group: the counter then starts again from the new total, which rate() and increase()
// read as a counter reset.
var (
	energyUsed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_autoscaler_group_energy_used_joules_total",
		Help: "Energy the members of each Group drew since their accounts were opened, in joules.",
	}, []string{"group"})
	energySaved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_autoscaler_group_energy_saved_joules_total",
		Help: "Energy the members of each Group saved against running the whole time, in joules.",
	}, []string{"group"})
	powerGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_group_power_watts",
		Help: "The members' current power draw, summed per Group.",
	}, []string{"group"})

	// exported holds the totals each group's counters stand at.
	exported   = map[string]infrav1.EnergyTotals{}
	exportedMu sync.Mutex
)

// observeEnergy exports a group's energy sums; nil (no member has an account) exports none.
func observeEnergy(g *infrav1.Group, e *infrav1.GroupEnergy) {
	id := groupID(g.Namespace, g.Name)
	if e == nil {
		forgetEnergy(id)
		return
	}
	exportedMu.Lock()
	defer exportedMu.Unlock()
	prev := exported[id]
	advance(energyUsed, id, prev.UsedJoules, e.UsedJoules)
	advance(energySaved, id, prev.SavedJoules, e.SavedJoules)
	exported[id] = e.EnergyTotals
	powerGauge.WithLabelValues(id).Set(e.Watts.AsApproximateFloat64())
}

// advance brings a group's counter from prev to now, starting it again when the total shrank.
func advance(c *prometheus.CounterVec, id string, prev, now int64) {
	if now < prev {
		c.DeleteLabelValues(id)
		prev = 0
	}
	c.WithLabelValues(id).Add(float64(now - prev))
}

func forgetEnergy(id string) {
	exportedMu.Lock()
	defer exportedMu.Unlock()
	delete(exported, id)
	energyUsed.DeleteLabelValues(id)
	energySaved.DeleteLabelValues(id)
	powerGauge.DeleteLabelValues(id)
}

func init() {
	ctrlmetrics.Registry.MustRegister(Collectors()...)
}

func groupID(namespace, name string) string { return namespace + "/" + name }

// observe exports a group's counts as the status reports them.
func observe(g *infrav1.Group, st infrav1.GroupStatus, limits machines.Limits) {
	id := groupID(g.Namespace, g.Name)
	for progress, n := range map[infrav1.Progress]int32{
		infrav1.ProgressOff:          st.PoweredOff,
		infrav1.ProgressStartingUp:   st.StartingUp,
		infrav1.ProgressReady:        st.Ready,
		infrav1.ProgressShuttingDown: st.ShuttingDown,
		infrav1.ProgressFailed:       st.Failed,
	} {
		machinesGauge.WithLabelValues(id, string(progress)).Set(float64(n))
	}
	targetGauge.WithLabelValues(id).Set(float64(st.Target))
	maxGauge.WithLabelValues(id).Set(float64(limits.Max))
	minGauge.WithLabelValues(id).Set(float64(limits.Min))
}

// forget drops a deleted group's series.
func forget(namespace, name string) {
	id := groupID(namespace, name)
	machinesGauge.DeletePartialMatch(prometheus.Labels{"group": id})
	targetGauge.DeleteLabelValues(id)
	maxGauge.DeleteLabelValues(id)
	minGauge.DeleteLabelValues(id)
	windowGauge.DeletePartialMatch(prometheus.Labels{"group": id})
	scheduleActions.DeletePartialMatch(prometheus.Labels{"group": id})
	forgetEnergy(id)
}
