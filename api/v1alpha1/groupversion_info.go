// Package v1alpha1 holds the infra.homelab-autoscaler.dev/v1alpha1 API: Group (a node group that
// cluster-autoscaler scales), Machine (one physical machine and how to power it) and AgentRequest
// (the manager's request to a homelab-agent).
//
// +kubebuilder:object:generate=true
// +groupName=infra.homelab-autoscaler.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "infra.homelab-autoscaler.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Group{}, &GroupList{}, &Machine{}, &MachineList{}, &AgentRequest{}, &AgentRequestList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
