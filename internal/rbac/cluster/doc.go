// Package cluster lists, as kubebuilder markers, the permissions the manager needs cluster-wide.
// Nothing here may be namespaced data other than what a drain must see on any node.
package cluster

// Nodes are cluster-scoped and the only kind watched cluster-wide. The Node sync
// writes providerID and group labels, the power lifecycle cordons (both optimistic patches),
// and a powered-off machine's Node is deleted when the Group's powerOffPolicy says so.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch;delete

// A drain lists the pods of one node (from the API, never cached: no cluster-wide Pod informer)
// and evicts them, wherever their namespace.
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create

// The metrics endpoint checks a scraper's token (TokenReview) and its right to get /metrics
// (SubjectAccessReview).
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
