// Package cluster lists, as kubebuilder markers, the permissions the manager needs whatever it
// watches: cluster-wide, what a Node sync, a drain and the metrics endpoint must reach on any node
// or namespace; in its own namespace, leader election's Lease and Events. Nothing here may be
// namespaced data other than what a drain must see on any node.
package cluster

// Nodes are cluster-scoped and the only kind watched cluster-wide. The Node sync
// writes providerID and group labels, the power lifecycle cordons (both optimistic patches),
// and a powered-off machine's Node is deleted when the Group's powerOffPolicy says so.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch;delete

// A drain lists the pods of one node (from the API, never cached: no cluster-wide Pod informer)
// and evicts them, wherever their namespace. RBAC cannot limit a list to one node's pods.
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create

// The metrics endpoint checks a scraper's token (TokenReview) and its right to get /metrics
// (SubjectAccessReview).
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Leader election reads and renews one Lease, by name, in the manager's own namespace: these
// markers name the kustomize install's namespace and the default --leader-election-id, and the
// chart renders the same rules for its release namespace and Lease name. RBAC never sees the name
// of an object being created, so create cannot be limited to that Lease. The election records
// its own Events (core API) on the Lease.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=homelab-autoscaler,resources=leases,verbs=get;update,resourceNames=homelab-autoscaler.infra.homelab-autoscaler.dev
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=homelab-autoscaler,resources=leases,verbs=create
// +kubebuilder:rbac:groups="",namespace=homelab-autoscaler,resources=events,verbs=create;patch
