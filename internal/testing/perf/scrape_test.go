package perf

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP homelab_autoscaler_optimistic_conflicts_total Conflicts.
# TYPE homelab_autoscaler_optimistic_conflicts_total counter
homelab_autoscaler_optimistic_conflicts_total{kind="Group",op="update"} 3
homelab_autoscaler_optimistic_conflicts_total{kind="Machine",op="status"} 4
go_memstats_heap_inuse_bytes 1.2345e+07
workqueue_queue_duration_seconds_bucket{name="machine",le="0.001"} 2
workqueue_queue_duration_seconds_bucket{name="machine",le="0.01"} 5
workqueue_queue_duration_seconds_bucket{name="machine",le="+Inf"} 6
workqueue_queue_duration_seconds_count{name="machine"} 6
odd{a="x,y=\"z\"",b="2"} 1 1700000000000
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("homelab_autoscaler_optimistic_conflicts_total"); got != 7 {
		t.Errorf("conflicts: %v, want 7", got)
	}
	if got := m.Sum(heapMetric); got != 12345000 {
		t.Errorf("heap: %v", got)
	}
	if got := m.ByLabels("homelab_autoscaler_optimistic_conflicts_total", "kind"); got["Machine"] != 4 || got["Group"] != 3 {
		t.Errorf("by kind: %v", got)
	}
	if got := m.ByLabels("odd", "a", "b"); got[`x,y="z"/2`] != 1 {
		t.Errorf("quoted label: %v", got)
	}
	h := m.Histograms("workqueue_queue_duration_seconds", "name")["machine"]
	if h == nil || h.GetSampleCount() != 6 || len(h.GetBucket()) != 2 || h.GetBucket()[1].GetCumulativeCount() != 5 {
		t.Fatalf("histogram: %v", h)
	}
	if q := HistogramQuantile(0.5, nil, h); q <= 0.001 || q > 0.01 {
		t.Errorf("median %v, want in the second bucket", q)
	}
}
