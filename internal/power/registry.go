package power

// Registry maps driver names to drivers.
type Registry map[string]Driver

// Options configures the built-in drivers.
type Options struct {
	// Egress limits the addresses the drivers connect and send to; nil allows every address.
	Egress *EgressPolicy
	// Relay records the wake requests homelab-agents send (wakeOnLAN.via); nil refuses them.
	Relay relayClient
}

// Builtin returns the drivers that need nothing but their configuration: Wake-on-LAN, IPMI,
// Redfish, SSH, HTTP and Talos, with the zero Options. The Job driver needs a client and is added by
// whoever builds one.
func Builtin() []Driver {
	return BuiltinWith(Options{})
}

// BuiltinWith returns the drivers of Builtin configured by o.
func BuiltinWith(o Options) []Driver {
	//nolint:staticcheck // each driver takes the options it needs; a conversion would break when they differ
	return []Driver{WakeOnLAN{Egress: o.Egress, Relay: o.Relay}, IPMI{Egress: o.Egress}, Redfish{Egress: o.Egress}, SSH{Egress: o.Egress}, HTTP{Egress: o.Egress},
		Agent{Relay: o.Relay}, Talos{Egress: o.Egress}}
}

// NewRegistry registers drivers by their names.
func NewRegistry(drivers ...Driver) Registry {
	r := Registry{}
	for _, d := range drivers {
		r[d.Name()] = d
	}
	return r
}

// For returns the driver configured in s. A driver this build does not have is a ClassUnsupported
// *Error.
func (r Registry) For(s Slot, action Action) (Driver, error) {
	name := s.DriverName()
	if name == "" {
		return nil, Errorf("", action, ClassConfig, "no power driver configured")
	}
	d, ok := r[name]
	if !ok {
		return nil, Errorf(name, action, ClassUnsupported, "the %s driver is not available", name)
	}
	return d, nil
}
