// Package namespaced lists, as kubebuilder markers, the permissions the manager needs in each
// namespace it watches, where Groups and Machines live: their Secrets, ConfigMaps, power Jobs and
// Events are there too.
package namespaced

// Groups and machines: read through the cache; the controllers write status, the gRPC server
// writes machines' desired power state and each Group's scale ledger, all as optimistic patches.
// +kubebuilder:rbac:groups=infra.homelab-autoscaler.dev,resources=groups;machines,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=infra.homelab-autoscaler.dev,resources=groups/status;machines/status,verbs=get;patch

// Power drivers read credentials and CA bundles at call time, by name: get only, never list.
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get

// The job driver runs a Job per power action and removes it once the operation is done.
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete

// Events on machines and Groups (events.k8s.io).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Requests to homelab-agents (a relayed wake, a shutdown from the inside): the manager records one
// AgentRequest per attempt, reads the agents' answers through the cache, records that it gave up
// when nobody answered in time (a status update with the read resourceVersion as precondition),
// and deletes a machine's requests of attempts that are over.
// +kubebuilder:rbac:groups=infra.homelab-autoscaler.dev,resources=agentrequests,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=infra.homelab-autoscaler.dev,resources=agentrequests/status,verbs=get;update
