package machines

import infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"

// Limits are a Group's size bounds as cluster-autoscaler must see them.
type Limits struct {
	Min, Max int32
}

// LimitsOf derives a Group's effective bounds from its spec and its member count: maxSize defaults
// to, and is capped by, the number of members (a machine cannot be powered on twice), and minSize
// never exceeds the effective maximum, which cluster-autoscaler would take for a broken group.
// The gRPC server, the Group's status and its metrics all report these figures.
func LimitsOf(g *infrav1.Group, members int32) Limits {
	maxSize := members
	if g.Spec.MaxSize != nil && *g.Spec.MaxSize < maxSize {
		maxSize = *g.Spec.MaxSize
	}
	return Limits{Min: min(g.Spec.MinSize, maxSize), Max: maxSize}
}
