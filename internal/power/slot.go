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
)

// Slot is one configured driver of a Node (power.start, power.stop or power.status) with the
// timeout of one call. Exactly one driver field is set; the API's validation guarantees it.
type Slot struct {
	Timeout   time.Duration
	WakeOnLAN *infrav1.WakeOnLANDriver
	IPMI      *infrav1.IPMIDriver
	Redfish   *infrav1.RedfishDriver
	SSH       *infrav1.SSHDriver
	HTTP      *infrav1.HTTPDriver
	Job       *infrav1.JobDriver
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
	}
	return ""
}

func slotFrom(a infrav1.PowerAction) Slot {
	timeout := DefaultTimeout
	if a.Timeout != nil && a.Timeout.Duration > 0 {
		timeout = a.Timeout.Duration
	}
	return Slot{
		Timeout: timeout, WakeOnLAN: a.WakeOnLAN, IPMI: a.IPMI, Redfish: a.Redfish,
		SSH: a.SSH, HTTP: a.HTTP, Job: a.Job,
	}
}

// SlotFor returns the slot that performs action for n: power.start for ActionOn, power.stop for
// ActionOff, and for ActionStatus power.status when set, else whichever of power.start and
// power.stop can report status (ipmi, redfish, http). ok is false when no slot can.
func SlotFor(n *infrav1.Node, action Action) (Slot, bool) {
	p := n.Spec.Power
	switch action {
	case ActionOn:
		return slotFrom(p.Start), true
	case ActionOff:
		return slotFrom(p.Stop), true
	case ActionStatus:
		if p.Status != nil {
			a := infrav1.PowerAction{Timeout: p.Status.Timeout, IPMI: p.Status.IPMI, Redfish: p.Status.Redfish, HTTP: p.Status.HTTP}
			return slotFrom(a), true
		}
		for _, a := range []infrav1.PowerAction{p.Stop, p.Start} {
			if a.IPMI != nil || a.Redfish != nil || (a.HTTP != nil && a.HTTP.PoweredOnPattern != "") {
				return slotFrom(a), true
			}
		}
	}
	return Slot{}, false
}
