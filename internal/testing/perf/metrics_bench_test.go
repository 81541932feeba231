package perf_test

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// sumCounters adds up every series of a counter vector.
func sumCounters(c prometheus.Collector) float64 {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return 0
	}
	families, err := reg.Gather()
	if err != nil {
		return 0
	}
	sum := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// queueHistograms returns controller-runtime's workqueue_queue_duration_seconds by queue name
// (one queue per controller).
func queueHistograms() map[string]*dto.Histogram {
	out := map[string]*dto.Histogram{}
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		if f.GetName() != "workqueue_queue_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "name" {
					out[l.GetValue()] = m.GetHistogram()
				}
			}
		}
	}
	return out
}
