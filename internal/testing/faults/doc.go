// Package faults is the reliability harness: it runs the real manager binary as processes
// against a real control plane and a simulated homelab (internal/sim), injects faults (SIGKILL
// of a manager at random points of power transitions, kube-apiserver restarts, misbehaving
// BMCs, conflicting writers) and checks, after every run, the invariants that say nothing was
// lost and nothing done twice:
//
//   - every machine converges to its desired power state (spec.online), or is Failed with a
//     reason;
//   - no machine received two power-on commands for one power-on attempt (the BMC's commands,
//     by their times, against the attempts the manager recorded in status.operation);
//   - the target size cluster-autoscaler reads (NodeGroupTargetSize over gRPC) equals the
//     number of machines desired on;
//   - every edit a human made to spec.online survives unless a later write replaced it.
//
// The tests in this package are the harness's runs; docs/reliability.md describes them.
package faults
