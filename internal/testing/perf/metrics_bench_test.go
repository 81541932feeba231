package perf_test

import (
	dto "github.com/prometheus/client_model/go"
)

// queueMetric is controller-runtime's workqueue latency histogram, one series per queue (one
// queue per controller, its name in the label "name").
const queueMetric = "workqueue_queue_duration_seconds"

// queueHistograms scrapes the manager's workqueue_queue_duration_seconds by queue name.
func queueHistograms(m *manager) map[string]*dto.Histogram {
	return m.metrics().Histograms(queueMetric, "name")
}
