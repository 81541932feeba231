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
		Help: "Each Group's effective maximum size (spec.maxSize capped by the number of members).",
	}, []string{"group"})
	minGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_group_min_size",
		Help: "Each Group's minimum size (spec.minSize, at most the effective maximum).",
	}, []string{"group"})
)

// Collectors returns the group gauges, for documentation checks.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{machinesGauge, targetGauge, maxGauge, minGauge, energyMetrics}
}

// energyCollector exports each group's energy sums as the last reconcile took them. The totals
// are counters in Prometheus' sense: they only grow, except when a member leaves the group.
type energyCollector struct {
	used, saved, watts *prometheus.Desc
	mu                 sync.Mutex
	sums               map[string]infrav1.GroupEnergy
}

var energyMetrics = &energyCollector{
	used: prometheus.NewDesc("homelab_autoscaler_group_energy_used_joules_total",
		"Energy the members of each Group drew since their accounts were opened, in joules.", []string{"group"}, nil),
	saved: prometheus.NewDesc("homelab_autoscaler_group_energy_saved_joules_total",
		"Energy the members of each Group saved against running the whole time, in joules.", []string{"group"}, nil),
	watts: prometheus.NewDesc("homelab_autoscaler_group_power_watts",
		"The members' current power draw, summed per Group.", []string{"group"}, nil),
	sums: map[string]infrav1.GroupEnergy{},
}

func (c *energyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.used
	ch <- c.saved
	ch <- c.watts
}

func (c *energyCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.sums {
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.CounterValue, float64(e.UsedJoules), id)
		ch <- prometheus.MustNewConstMetric(c.saved, prometheus.CounterValue, float64(e.SavedJoules), id)
		ch <- prometheus.MustNewConstMetric(c.watts, prometheus.GaugeValue, e.Watts.AsApproximateFloat64(), id)
	}
}

// observeEnergy exports a group's energy sums; nil (no member has an account) exports none.
func observeEnergy(g *infrav1.Group, e *infrav1.GroupEnergy) {
	energyMetrics.mu.Lock()
	defer energyMetrics.mu.Unlock()
	id := groupID(g.Namespace, g.Name)
	if e == nil {
		delete(energyMetrics.sums, id)
		return
	}
	energyMetrics.sums[id] = *e
}

func init() {
	ctrlmetrics.Registry.MustRegister(Collectors()...)
}

func groupID(namespace, name string) string { return namespace + "/" + name }

// observe exports a group's counts as the status reports them.
func observe(g *infrav1.Group, st infrav1.GroupStatus) {
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
	limits := machines.LimitsOf(g, st.Members)
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
	energyMetrics.mu.Lock()
	delete(energyMetrics.sums, id)
	energyMetrics.mu.Unlock()
}
