// Package sim is the virtual homelab behind homelab-sim: it plays N physical machines, each with
// its own BMC on a loopback port that speaks a real management protocol (Redfish over HTTP, or
// IPMI v2.0 over UDP), or behind a smart plug that speaks Shelly's Gen2 RPC over HTTP, so that
// homelab-autoscaler's real power drivers drive it.
//
// Each machine draws power: its standby draw while off, its idle draw plus its load's share up to
// its full-load draw while on, nothing behind a plug that is off. The BMCs and plugs report it
// (Redfish Power and EnvironmentMetrics, DCMI Get Power Reading, the plug's apower), and the
// simulator keeps every change of it, so that the energy a machine drew between two instants is
// known exactly (Machine.EnergyBetween) to check the manager's accounting against.
//
// A machine powered on through its BMC registers its Node after a boot delay (annotated for
// kwok, which keeps it Ready), and one powered off deletes it after a shutdown delay. Every power
// command a BMC receives is counted per machine, for reliability checks such as "no machine was
// powered on twice for one attempt". Faults can be injected: machines that power on but never
// register, BMCs that answer errors for a while, and machine faults that bypass the BMC: power
// cuts, power-button presses and hung kubelets.
//
// Nothing in the package polls: BMC requests arrive on listeners, and the only waits are timers
// for the boot and shutdown delays, for injected faults, for retrying a failed API call, and
// for two late looks at a Node taken from kwok. (go-ipmi's server sweeps expired IPMI sessions
// on a ticker of its own, slowed to 30 s here.)
package sim
