package machines_test

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
)

func TestLimitsOf(t *testing.T) {
	for _, c := range []struct {
		name    string
		min     int32
		max     *int32
		members int32
		want    machines.Limits
	}{
		{"maxSize unset: the members", 1, nil, 4, machines.Limits{Min: 1, Max: 4}},
		{"maxSize below the members", 0, ptr.To[int32](2), 4, machines.Limits{Min: 0, Max: 2}},
		{"maxSize above the members is capped", 1, ptr.To[int32](10), 3, machines.Limits{Min: 1, Max: 3}},
		{"minSize above the effective maximum is capped", 5, ptr.To[int32](10), 3, machines.Limits{Min: 3, Max: 3}},
		{"minSize above maxSize is capped", 2, ptr.To[int32](1), 3, machines.Limits{Min: 1, Max: 1}},
		{"no members", 2, nil, 0, machines.Limits{Min: 0, Max: 0}},
		{"maxSize zero", 0, ptr.To[int32](0), 3, machines.Limits{Min: 0, Max: 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &infrav1.Group{Spec: infrav1.GroupSpec{MinSize: c.min, MaxSize: c.max}}
			if got := machines.LimitsOf(g, c.members, time.Time{}); got.Min != c.want.Min || got.Max != c.want.Max {
				t.Fatalf("LimitsOf(min %d, max %v, %d members) = %+v, want %+v", c.min, ptr.Deref(c.max, -1), c.members, got, c.want)
			}
		})
	}
}
