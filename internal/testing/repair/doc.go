// Package repair holds the end-to-end tests of the manager's observation and repairs (see
// docs/reliability.md): the real manager (app.New), a real apiserver with kwok, and homelab-sim's
// Redfish and IPMI BMCs, whose machine faults (a power cut, a press of the power button, a hung
// kubelet, a machine that never boots) are what the manager must notice and repair.
package repair
