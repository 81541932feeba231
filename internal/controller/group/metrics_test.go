package group

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

// TestGauges checks the exported sizes (maxSize capped by the members, minSize by the maximum)
// and that a deleted group's series go away.
func TestGauges(t *testing.T) {
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "workers"}}
	g.Spec.MinSize = 5
	g.Spec.MaxSize = ptr.To[int32](10)
	observe(g, infrav1.GroupStatus{Members: 3, Target: 2, Ready: 1, StartingUp: 1, Failed: 1}, machines.LimitsOf(g, 3, time.Now()))

	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"max (capped by the members)", testutil.ToFloat64(maxGauge.WithLabelValues("lab/workers")), 3},
		{"min (capped by max)", testutil.ToFloat64(minGauge.WithLabelValues("lab/workers")), 3},
		{"target", testutil.ToFloat64(targetGauge.WithLabelValues("lab/workers")), 2},
		{"Ready", testutil.ToFloat64(machinesGauge.WithLabelValues("lab/workers", "Ready")), 1},
		{"Failed", testutil.ToFloat64(machinesGauge.WithLabelValues("lab/workers", "Failed")), 1},
		{"Off", testutil.ToFloat64(machinesGauge.WithLabelValues("lab/workers", "Off")), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(machinesGauge); n != 5 {
		t.Fatalf("%d machine series, want one per progress", n)
	}
	forget("lab", "workers")
	if n := testutil.CollectAndCount(machinesGauge) + testutil.CollectAndCount(targetGauge) +
		testutil.CollectAndCount(maxGauge) + testutil.CollectAndCount(minGauge); n != 0 {
		t.Fatalf("%d series left after the group was deleted", n)
	}
}
