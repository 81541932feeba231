package cloudprovider

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics describe the gRPC calls the server answers. One set is registered with
// controller-runtime's registry (served on the manager's metrics endpoint); tests may make their
// own.
type Metrics struct {
	// Requests counts finished calls by method and gRPC code.
	Requests *prometheus.CounterVec
	// Duration observes how long calls took, by method and gRPC code.
	Duration *prometheus.HistogramVec
	// InFlight counts calls being answered, by method.
	InFlight *prometheus.GaugeVec
	// MachinesChanged counts Machines whose spec.online a write RPC changed, by method.
	MachinesChanged *prometheus.CounterVec
	// LedgerBatch observes how many write calls one ledger write decided (group commit: the
	// calls on a group that arrive while a ledger write of it is in flight share the next one).
	LedgerBatch prometheus.Histogram
	// LedgerWrites counts the batches' ledger writes by outcome: written (the Group's ledger
	// changed; conflicts met on the way are counted by the optimistic writer's metrics),
	// unchanged (every call refused, or decided nothing new), failed (no call recorded). Ledger
	// writes per call is written over LedgerBatch's sum.
	LedgerWrites *prometheus.CounterVec
}

// NewMetrics creates an unregistered set of metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_grpc_requests_total",
			Help: "cluster-autoscaler cloud-provider calls answered, by method and gRPC code.",
		}, []string{"method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "homelab_autoscaler_grpc_request_duration_seconds",
			Help: "Time to answer a cluster-autoscaler cloud-provider call, by method and gRPC code.",
			// From sub-millisecond cache reads to writes near cluster-autoscaler's 5 s deadline.
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"method", "code"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "homelab_autoscaler_grpc_requests_in_flight",
			Help: "cluster-autoscaler cloud-provider calls being answered, by method.",
		}, []string{"method"}),
		MachinesChanged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_grpc_machines_changed_total",
			Help: "Machines whose spec.online a cloud-provider write call changed, by method.",
		}, []string{"method"}),
		LedgerBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "homelab_autoscaler_grpc_ledger_batch_calls",
			Help:    "Write calls decided together by one write of a Group's scale ledger.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		LedgerWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homelab_autoscaler_grpc_ledger_writes_total",
			Help: "Batched writes of a Group's scale ledger, by outcome (written, unchanged, failed).",
		}, []string{"outcome"}),
	}
}

// Collectors returns every metric, for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Requests, m.Duration, m.InFlight, m.MachinesChanged, m.LedgerBatch, m.LedgerWrites}
}

// DefaultMetrics is registered with controller-runtime's metrics registry.
var DefaultMetrics = NewMetrics()

func init() {
	ctrlmetrics.Registry.MustRegister(DefaultMetrics.Collectors()...)
}
