package machines

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// NamePlaceholder in an address or URL of a Group's machineDefaults stands for the member's name.
const NamePlaceholder = "{name}"

// Effective returns a copy of m whose spec carries what the manager acts on: m's own fields, then
// its Group's machineDefaults (g may be nil), then the built-in defaults of api/v1alpha1. The rules:
//   - bootTimeout, shutdownTimeout, maxAttempts, pricing and powerDraw: the member's, else the
//     Group's, else the built-in value (pricing and powerDraw have none);
//   - spec.bmc is merged field by field over machineDefaults.bmc when both name the same kind (the
//     member's field wins; insecureSkipVerify is on when either turns it on); of different kinds,
//     the member's is used alone;
//   - each power slot: the member's, else the Group's (used whole), else spec.bmc;
//   - {name} in any address or URL taken from the Group becomes the member's name.
//
// Only the copy's spec changes; m is not modified, so a cached object may be passed.
func Effective(m *infrav1.Machine, g *infrav1.Group) *infrav1.Machine {
	out := m.DeepCopy()
	var d infrav1.MachineDefaults
	if g != nil && g.Spec.MachineDefaults != nil {
		d = *g.Spec.MachineDefaults.DeepCopy()
	}
	s := &out.Spec
	s.BootTimeout = firstDuration(s.BootTimeout, d.BootTimeout, infrav1.DefaultBootTimeout)
	s.ShutdownTimeout = firstDuration(s.ShutdownTimeout, d.ShutdownTimeout, infrav1.DefaultShutdownTimeout)
	switch {
	case s.MaxAttempts != nil:
	case d.MaxAttempts != nil:
		s.MaxAttempts = d.MaxAttempts
	default:
		s.MaxAttempts = ptr.To(infrav1.DefaultMaxAttempts)
	}
	s.Pricing = PricingOf(m, g)
	if s.PowerDraw == nil {
		s.PowerDraw = d.PowerDraw
	}
	if d.BMC != nil {
		substituteBMC(d.BMC, m.Name)
	}
	s.BMC = mergeBMC(s.BMC, d.BMC)
	if b := s.BMC; b != nil {
		// The drivers would apply these too; written here, homelabctl effective shows them.
		if b.Timeout == nil {
			b.Timeout = &metav1.Duration{Duration: infrav1.DefaultPowerTimeout}
		}
		if b.IPMI != nil && b.IPMI.Port == 0 {
			b.IPMI.Port = infrav1.DefaultIPMIPort
		}
		if b.IPMI != nil && b.IPMI.CipherSuite == nil {
			b.IPMI.CipherSuite = ptr.To(infrav1.DefaultIPMICipherSuite)
		}
	}
	if d.Power != nil {
		substitutePower(d.Power, m.Name)
		if s.Power == nil {
			s.Power = &infrav1.PowerSpec{}
		}
		if s.Power.Start == nil {
			s.Power.Start = d.Power.Start
		}
		if s.Power.Stop == nil {
			s.Power.Stop = d.Power.Stop
		}
		if s.Power.Status == nil {
			s.Power.Status = d.Power.Status
		}
	}
	return out
}

// PricingOf is what running m costs: its own spec.pricing, else its Group's
// machineDefaults.pricing (g may be nil), else nil. The gRPC server's price answers and its choice
// of the machine to power on use it without building the whole effective spec.
func PricingOf(m *infrav1.Machine, g *infrav1.Group) *infrav1.Pricing {
	switch {
	case m.Spec.Pricing != nil:
		return m.Spec.Pricing
	case g != nil && g.Spec.MachineDefaults != nil:
		return g.Spec.MachineDefaults.Pricing
	}
	return nil
}

func firstDuration(own, group *metav1.Duration, builtin time.Duration) *metav1.Duration {
	switch {
	case own != nil:
		return own
	case group != nil:
		return group
	}
	return &metav1.Duration{Duration: builtin}
}

func mergeBMC(own, group *infrav1.BMC) *infrav1.BMC {
	switch {
	case group == nil:
		return own
	case own == nil:
		return group
	}
	out := own.DeepCopy()
	sameKind := (out.IPMI != nil && group.IPMI != nil) || (out.Redfish != nil && group.Redfish != nil)
	if !sameKind {
		// The Group's BMC is another machine's kind of controller: none of its fields, its
		// timeout included, says anything about this one.
		return out
	}
	if out.Timeout == nil {
		out.Timeout = group.Timeout
	}
	switch {
	case out.IPMI != nil && group.IPMI != nil:
		o, gr := out.IPMI, group.IPMI
		if o.Address == "" {
			o.Address = gr.Address
		}
		if o.Port == 0 {
			o.Port = gr.Port
		}
		if o.CredentialsSecretRef == nil {
			o.CredentialsSecretRef = gr.CredentialsSecretRef
		}
		if o.CipherSuite == nil {
			o.CipherSuite = gr.CipherSuite
		}
		if o.GracefulShutdownTimeout == nil {
			o.GracefulShutdownTimeout = gr.GracefulShutdownTimeout
		}
		o.AllowInsecureCipherSuites = o.AllowInsecureCipherSuites || gr.AllowInsecureCipherSuites
	case out.Redfish != nil && group.Redfish != nil:
		o, gr := out.Redfish, group.Redfish
		if o.Endpoint == "" {
			o.Endpoint = gr.Endpoint
		}
		if o.SystemID == "" {
			o.SystemID = gr.SystemID
		}
		if o.CredentialsSecretRef == nil {
			o.CredentialsSecretRef = gr.CredentialsSecretRef
		}
		if o.CABundleRef == nil {
			o.CABundleRef = gr.CABundleRef
		}
		o.InsecureSkipVerify = o.InsecureSkipVerify || gr.InsecureSkipVerify
		o.AllowBasicAuth = o.AllowBasicAuth || gr.AllowBasicAuth
		o.AllowPlainHTTP = o.AllowPlainHTTP || gr.AllowPlainHTTP
		if o.GracefulShutdownTimeout == nil {
			o.GracefulShutdownTimeout = gr.GracefulShutdownTimeout
		}
	}
	return out
}

func substituteBMC(b *infrav1.BMC, name string) {
	if b.IPMI != nil {
		b.IPMI.Address = strings.ReplaceAll(b.IPMI.Address, NamePlaceholder, name)
	}
	if b.Redfish != nil {
		b.Redfish.Endpoint = strings.ReplaceAll(b.Redfish.Endpoint, NamePlaceholder, name)
	}
}

func substitutePower(p *infrav1.PowerSpec, name string) {
	for _, d := range []*infrav1.PowerDriver{p.Start, p.Stop} {
		if d == nil {
			continue
		}
		substituteBMC(&infrav1.BMC{IPMI: d.IPMI, Redfish: d.Redfish}, name)
		if d.SSH != nil {
			d.SSH.Address = strings.ReplaceAll(d.SSH.Address, NamePlaceholder, name)
		}
		if d.Talos != nil {
			d.Talos.Endpoint = strings.ReplaceAll(d.Talos.Endpoint, NamePlaceholder, name)
		}
		substituteHTTP(d.HTTP, name)
	}
	if st := p.Status; st != nil {
		substituteBMC(&infrav1.BMC{IPMI: st.IPMI, Redfish: st.Redfish}, name)
		substituteHTTP(st.HTTP, name)
	}
}

// substituteHTTP names the member in an HTTP driver's URLs: the request's and the power reading's.
func substituteHTTP(h *infrav1.HTTPDriver, name string) {
	if h == nil {
		return
	}
	h.URL = strings.ReplaceAll(h.URL, NamePlaceholder, name)
	if h.Watts != nil {
		h.Watts.URL = strings.ReplaceAll(h.Watts.URL, NamePlaceholder, name)
	}
}

// Check reports what makes an effective machine (from Effective) impossible to power: no driver
// for power on or off, or a BMC that lacks its address or credentials on the machine and in the
// Group. The message names the fields to set, for status.lastError and the Stalled condition.
func Check(eff *infrav1.Machine) error {
	var problems []string
	p := eff.Spec.Power
	if eff.Spec.BMC == nil && (p == nil || p.Start == nil) {
		problems = append(problems, "nothing powers it on: set spec.bmc or spec.power.start, or machineDefaults in Group "+eff.Spec.Group)
	}
	if eff.Spec.BMC == nil && (p == nil || p.Stop == nil) {
		problems = append(problems, "nothing powers it off: set spec.bmc or spec.power.stop, or machineDefaults in Group "+eff.Spec.Group)
	}
	if b := eff.Spec.BMC; b != nil {
		where := "on the machine nor in Group " + eff.Spec.Group + "'s machineDefaults.bmc"
		if b.IPMI != nil {
			if b.IPMI.Address == "" {
				problems = append(problems, "bmc.ipmi.address is set neither "+where)
			}
			if b.IPMI.CredentialsSecretRef == nil {
				problems = append(problems, "bmc.ipmi.credentialsSecretRef is set neither "+where)
			}
		}
		if b.Redfish != nil {
			if b.Redfish.Endpoint == "" {
				problems = append(problems, "bmc.redfish.endpoint is set neither "+where)
			}
			if b.Redfish.CredentialsSecretRef == nil {
				problems = append(problems, "bmc.redfish.credentialsSecretRef is set neither "+where)
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(problems, "; "))
}
