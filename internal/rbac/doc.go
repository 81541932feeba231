// Package rbac holds, as kubebuilder markers, every permission the manager needs, split by where
// it applies: rbac/cluster generates the ClusterRole homelab-autoscaler-manager
// (config/rbac/role.yaml), what must be granted cluster-wide; rbac/namespaced generates the
// ClusterRole homelab-autoscaler-manager-namespaced (config/rbac/namespaced/role.yaml), which an
// installation binds with a RoleBinding in the watched namespace and in the leader election
// namespace (or with a ClusterRoleBinding when the manager watches every namespace).
//
// These two packages are the only place for RBAC markers: controller-gen reads only them, and a
// test fails on a marker anywhere else, where it would be silently ignored.
package rbac
