package optimistic

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics counts what optimistic writes meet. One set is registered with controller-runtime's
// registry (served on the manager's metrics endpoint); tests may make their own.
type Metrics struct {
	// Conflicts counts 409 Conflict answers.
	Conflicts *prometheus.CounterVec
	// Retries observes how many attempts each finished write took (1 = no conflict).
	Retries *prometheus.HistogramVec
	// Exhausted counts writes that gave up after their last attempt still conflicted.
	Exhausted *prometheus.CounterVec
	// Skipped counts writes not sent because the mutate function changed nothing.
	Skipped *prometheus.CounterVec
	// Immediate counts conflicts of status writes retried without a wait, because the status
	// was as it had been (the conflicting write was to spec or metadata).
	Immediate *prometheus.CounterVec
}

// NewMetrics creates an unregistered set of metrics.
func NewMetrics() *Metrics {
	labels := []string{"resource", "operation"}
	return &Metrics{
		Conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_optimistic_conflicts_total",
			Help: "Writes to the Kubernetes API answered 409 Conflict (the object changed since it was read); each is retried from a fresh read.",
		}, labels),
		Retries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "homelab_autoscaler_optimistic_retries",
			Help:    "Attempts each optimistic write took until it succeeded or gave up (1 means no conflict).",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24},
		}, labels),
		Exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_optimistic_exhausted_total",
			Help: "Optimistic writes that gave up because every attempt conflicted.",
		}, labels),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_optimistic_skipped_total",
			Help: "Optimistic writes not sent because they would have changed nothing.",
		}, labels),
		Immediate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_optimistic_immediate_retries_total",
			Help: "Status writes retried without waiting after a conflict, because the conflicting write changed only spec or metadata.",
		}, labels),
	}
}

// Collectors returns every metric, for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Conflicts, m.Retries, m.Exhausted, m.Skipped, m.Immediate}
}

// DefaultMetrics is registered with controller-runtime's metrics registry.
var DefaultMetrics = NewMetrics()

func init() {
	ctrlmetrics.Registry.MustRegister(DefaultMetrics.Collectors()...)
}
