package machine

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The machine counters are labelled with the machine's group id (namespace/name) and the
// machine's name: an alert on a machine that keeps losing power needs the machine, and only
// machines that drifted have series. Only the leader runs this controller, so only the leader
// counts.
var (
	driftCounter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_autoscaler_machine_drift_total",
		Help: "Observations that differed from what the manager expected, by kind (PowerLost, OutsidePowerOn, NodeNotReady, StuckNode, BootTimeout).",
	}, []string{"group", "machine", "kind"})
	repairCounter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_autoscaler_machine_repairs_total",
		Help: "Repairs the manager started, by kind (PowerLost, OutsidePowerOn, Adopted, StuckNode, Substituted).",
	}, []string{"group", "machine", "kind"})
	observationCounter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_autoscaler_power_observations_total",
		Help: "Reads of machines' power state, by source (Driver, Node) and result (PoweredOn, PoweredOff, Unknown, error).",
	}, []string{"source", "result"})
	pacedCounter = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "homelab_autoscaler_power_on_paced_total",
		Help: "Power-ons delayed by the manager-wide pacing (--power-on-rate, --max-booting).",
	})
	wattsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homelab_autoscaler_machine_power_watts",
		Help: "Each machine's power draw as its energy account counts it, by source (Measured, Configured, Unknown).",
	}, []string{"group", "machine", "source"})
)

// Collectors returns the machine counters, for documentation checks.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{driftCounter, repairCounter, observationCounter, pacedCounter, wattsGauge}
}

func init() {
	ctrlmetrics.Registry.MustRegister(Collectors()...)
}

func countDrift(s *scope, kind string) {
	driftCounter.WithLabelValues(s.node.Namespace+"/"+s.node.Spec.Group, s.node.Name, kind).Inc()
}

func countRepair(s *scope, kind infrav1.RepairKind) {
	repairCounter.WithLabelValues(s.node.Namespace+"/"+s.node.Spec.Group, s.node.Name, string(kind)).Inc()
}

func countObservation(o observation) {
	result := string(o.state)
	if o.err != nil {
		result = "error"
	}
	observationCounter.WithLabelValues(string(o.source), result).Inc()
}

// wattsGroups remembers each exported machine's group, to drop its series when it is deleted
// (a deleted object no longer says its group).
var wattsGroups sync.Map // namespace/name -> group id

// exportWatts sets the machine's power gauge from its energy account: one series per machine,
// labelled with the source of its current figure.
func exportWatts(m *infrav1.Machine) {
	acc := m.Status.Energy
	if acc == nil {
		return
	}
	group := m.Namespace + "/" + m.Spec.Group
	wattsGroups.Store(m.Namespace+"/"+m.Name, group)
	for _, src := range []infrav1.DrawSource{infrav1.DrawMeasured, infrav1.DrawConfigured, infrav1.DrawUnknown} {
		if src != acc.WattsSource {
			wattsGauge.DeleteLabelValues(group, m.Name, string(src))
		}
	}
	wattsGauge.WithLabelValues(group, m.Name, string(acc.WattsSource)).Set(acc.Watts.AsApproximateFloat64())
}

// forgetWatts drops a deleted machine's power series.
func forgetWatts(namespace, name string) {
	if group, ok := wattsGroups.LoadAndDelete(namespace + "/" + name); ok {
		wattsGauge.DeletePartialMatch(prometheus.Labels{"group": group.(string), "machine": name})
	}
}
