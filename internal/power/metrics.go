package power

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Results recorded in the operations counter besides the error classes.
const (
	// ResultSuccess: the action finished, or the status was read.
	ResultSuccess = "success"
	// ResultPending: an asynchronous driver started (or is still running) the action.
	ResultPending = "pending"
)

// Metrics counts and times driver calls. One set is registered with controller-runtime's
// registry (served on the manager's metrics endpoint); tests may make their own.
type Metrics struct {
	// Operations counts calls by driver, action and result: success, pending, or the error class
	// (Unreachable, AuthFailed, Unsupported, BMCError, Timeout, ConfigError, Failed).
	Operations *prometheus.CounterVec
	// Duration observes how long calls took by driver and action.
	Duration *prometheus.HistogramVec
}

// NewMetrics creates an unregistered set of metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_power_operations_total",
			Help: "Power driver calls by driver, action (on, off, status) and result (success, pending, or the error class).",
		}, []string{"driver", "action", "result"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "homelab_autoscaler_power_operation_duration_seconds",
			Help: "How long power driver calls took, by driver and action.",
			// From a Wake-on-LAN send (milliseconds) to a graceful shutdown that ends in a forced
			// power-off (minutes).
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"driver", "action"}),
	}
}

// Collectors returns every metric, for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Operations, m.Duration}
}

// DefaultMetrics is registered with controller-runtime's metrics registry.
var DefaultMetrics = NewMetrics()

func init() {
	ctrlmetrics.Registry.MustRegister(DefaultMetrics.Collectors()...)
}

// Instrument wraps d so that every call is counted and timed in m (DefaultMetrics when m is nil).
// It works for any Driver, the built-in ones and the Job driver alike; wrap each driver once,
// when building the Registry.
func Instrument(d Driver, m *Metrics) Driver {
	if m == nil {
		m = DefaultMetrics
	}
	return &instrumented{Driver: d, metrics: m}
}

type instrumented struct {
	Driver
	metrics *Metrics
}

func (i *instrumented) Do(ctx context.Context, req Request) (Outcome, error) {
	start := time.Now()
	out, err := i.Driver.Do(ctx, req)
	result := ResultSuccess
	switch {
	case err != nil:
		result = string(ClassOf(err))
	case !out.Done:
		result = ResultPending
	}
	i.observe(req.Action, result, time.Since(start))
	return out, err
}

func (i *instrumented) Status(ctx context.Context, req Request) (infrav1.PowerState, error) {
	start := time.Now()
	state, err := i.Driver.Status(ctx, req)
	result := ResultSuccess
	if err != nil {
		result = string(ClassOf(err))
	}
	i.observe(ActionStatus, result, time.Since(start))
	return state, err
}

// Read is counted as the status read it is. A driver without a power reading reads the state
// alone, so every instrumented driver is a Meter.
func (i *instrumented) Read(ctx context.Context, req Request) (Reading, error) {
	m, ok := i.Driver.(Meter)
	if !ok {
		state, err := i.Status(ctx, req)
		return Reading{State: state}, err
	}
	start := time.Now()
	rd, err := m.Read(ctx, req)
	result := ResultSuccess
	if err != nil {
		result = string(ClassOf(err))
	}
	i.observe(ActionStatus, result, time.Since(start))
	return rd, err
}

func (i *instrumented) observe(action Action, result string, took time.Duration) {
	name := i.Name()
	i.metrics.Operations.WithLabelValues(name, string(action), result).Inc()
	i.metrics.Duration.WithLabelValues(name, string(action)).Observe(took.Seconds())
}
