// Package cloudprovider serves cluster-autoscaler's externalgrpc CloudProvider service over the
// project's API: a Group is a node group, its member Machines are the instances, and a group's
// target size is the number of members whose spec.online is true.
//
// Reads are answered from the manager's informer cache: the per-group counts that
// NodeGroupTargetSize and NodeGroups need are kept up to date by an event handler (fleet), and
// single machines are found through the cache's field indexes, so no hot path lists the fleet.
//
// Writes (NodeGroupIncreaseSize, NodeGroupDeleteNodes, NodeGroupDecreaseTargetSize) are decided
// against one serialization point per group, a ledger annotation on the Group written with a
// resourceVersion precondition through the optimistic package, and only then applied to the
// chosen machines; see transact.go. That keeps maxSize, minSize and all-or-nothing grants true
// across any number of server replicas, none of which needs to be the leader.
//
// docs/cloudprovider.md describes the behaviour of every RPC for operators.
package cloudprovider
