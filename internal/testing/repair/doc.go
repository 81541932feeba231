// Package repair holds the end-to-end tests of what the manager decides on its own: its
// observation and repairs (see docs/reliability.md) and its schedules (docs/schedules.md). They
// run the real manager (app.New), a real apiserver with kwok, and homelab-sim's Redfish and IPMI
// BMCs, whose machine faults (a power cut, a press of the power button, a hung kubelet, a machine
// that never boots) are what the manager must notice and repair; the schedule tests drive the
// manager's clock through days and a daylight-saving change.
package repair
