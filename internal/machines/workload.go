package machines

import corev1 "k8s.io/api/core/v1"

// IsWorkload reports whether a pod is work that a drain evicts and that keeps a machine the
// manager powered on by itself from being powered off again: not finished, not a mirror pod, not
// a DaemonSet's pod (those run on every node and go with it).
func IsWorkload(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return false
	}
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" && o.Controller != nil && *o.Controller {
			return false
		}
	}
	return true
}
