// Package v1alpha1 holds the infra.homelab-autoscaler.dev/v1alpha1 API: Group (a node group that
// cluster-autoscaler scales) and Node (one physical machine and how to power it).
//
// +kubebuilder:object:generate=true
// +groupName=infra.homelab-autoscaler.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "infra.homelab-autoscaler.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
