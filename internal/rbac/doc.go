// Package rbac holds, as kubebuilder markers, every permission the manager needs, split by where
// it applies. rbac/cluster generates config/rbac/role.yaml: the ClusterRole
// homelab-autoscaler-manager, what must be granted cluster-wide, and the Role of the same name in
// the manager's own namespace, leader election's Lease (by name) and Events. rbac/namespaced
// generates the ClusterRole homelab-autoscaler-manager-namespaced (config/rbac/namespaced/role.yaml),
// what the manager needs where Groups and Machines live, which an installation binds with a
// RoleBinding in each watched namespace (or with a ClusterRoleBinding when the manager watches
// every namespace).
//
// These two packages are the only place for RBAC markers: controller-gen reads only them, and a
// test fails on a marker anywhere else, where it would be silently ignored.
package rbac
