package power

import (
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Driver names, as the API spells the fields that select them.
const (
	DriverWakeOnLAN = "wakeOnLAN"
	DriverIPMI      = "ipmi"
	DriverRedfish   = "redfish"
	DriverSSH       = "ssh"
	DriverHTTP      = "http"
	DriverJob       = "job"
	DriverAgent     = "agent"
	DriverTalos     = "talos"
)

// Slot is one configured driver of a Machine (its BMC, or power.start, power.stop or power.status)
// with the timeout of one call. Exactly one driver field is set; the API's validation guarantees it.
type Slot struct {
	Timeout   time.Duration
	WakeOnLAN *infrav1.WakeOnLANDriver
	IPMI      *infrav1.IPMIDriver
	Redfish   *infrav1.RedfishDriver
	SSH       *infrav1.SSHDriver
	HTTP      *infrav1.HTTPDriver
	Job       *infrav1.JobDriver
	Agent     *infrav1.AgentDriver
	Talos     *infrav1.TalosDriver
}

// DriverName names the slot's driver, or "" for an empty slot.
func (s Slot) DriverName() string {
	switch {
	case s.WakeOnLAN != nil:
		return DriverWakeOnLAN
	case s.IPMI != nil:
		return DriverIPMI
	case s.Redfish != nil:
		return DriverRedfish
	case s.SSH != nil:
		return DriverSSH
	case s.HTTP != nil:
		return DriverHTTP
	case s.Job != nil:
		return DriverJob
	case s.Agent != nil:
		return DriverAgent
	case s.Talos != nil:
		return DriverTalos
	}
	return ""
}

func slotFrom(a infrav1.PowerDriver) Slot {
	timeout := DefaultTimeout
	if a.Timeout != nil && a.Timeout.Duration > 0 {
		timeout = a.Timeout.Duration
	}
	return Slot{
		Timeout: timeout, WakeOnLAN: a.WakeOnLAN, IPMI: a.IPMI, Redfish: a.Redfish,
		SSH: a.SSH, HTTP: a.HTTP, Job: a.Job, Agent: a.Agent, Talos: a.Talos,
	}
}

func bmcSlot(b *infrav1.BMC) Slot {
	return slotFrom(infrav1.PowerDriver{Timeout: b.Timeout, IPMI: b.IPMI, Redfish: b.Redfish})
}

// SlotFor returns the slot that performs action for m, which must carry its Group's defaults
// already (machines.Effective): power.start (ActionOn) or power.stop (ActionOff) when set, else
// spec.bmc. For ActionStatus: power.status, else spec.bmc, else whichever of power.start and
// power.stop can report status (ipmi, redfish, http with a poweredOnPattern). ok is false when
// nothing is configured for the action.
func SlotFor(m *infrav1.Machine, action Action) (Slot, bool) {
	var p infrav1.PowerSpec
	if m.Spec.Power != nil {
		p = *m.Spec.Power
	}
	bmc := m.Spec.BMC
	switch action {
	case ActionOn, ActionOff:
		d := p.Start
		if action == ActionOff {
			d = p.Stop
		}
		switch {
		case d != nil:
			return slotFrom(*d), true
		case bmc != nil:
			return bmcSlot(bmc), true
		}
	case ActionStatus:
		switch {
		case p.Status != nil:
			return slotFrom(infrav1.PowerDriver{Timeout: p.Status.Timeout, IPMI: p.Status.IPMI, Redfish: p.Status.Redfish, HTTP: p.Status.HTTP}), true
		case bmc != nil:
			return bmcSlot(bmc), true
		}
		for _, d := range []*infrav1.PowerDriver{p.Stop, p.Start} {
			if d != nil && (d.IPMI != nil || d.Redfish != nil || (d.HTTP != nil && d.HTTP.PoweredOnPattern != "")) {
				return slotFrom(*d), true
			}
		}
	}
	return Slot{}, false
}
