// Package faults is the reliability harness: it runs the real manager binary as processes
// against a real control plane and a simulated homelab (internal/sim), injects faults (SIGKILL
// of a manager at random points of power transitions, kube-apiserver restarts, misbehaving
// BMCs, conflicting writers, and machine faults: power cuts under one machine or the whole
// site, presses of power buttons, hung kubelets) and checks the invariants that say nothing was
// lost, nothing done twice and nothing left broken:
//
//   - every machine converges to its desired power state (spec.online), or is Failed with a
//     reason the scenario accepts;
//   - no BMC received a power command without the attempt the manager recorded for it in
//     status.operation before, nor two power-on commands for one attempt (a repair's commands
//     included; a button press or a cut is no command);
//   - the target size cluster-autoscaler reads (NodeGroupTargetSize over gRPC) equals the
//     number of machines desired on;
//   - once settled, the power state a machine's status reports is its BMC's;
//   - a machine that lost power while it ran desired on is Ready again within its bound
//     (World.RecoveryBound, extended by the outages of the manager meanwhile);
//   - every edit a human made to spec.online survives unless a later write replaced it, and
//     every change of spec.online is a human's edit or a decision of the group's scale ledger
//     (cluster-autoscaler's, or the manager's substitution or adoption).
//   - once settled, every decision the group's scale ledger lists has been carried out.
//
// The tests in this package are the harness's runs; docs/reliability.md describes them.
package faults
