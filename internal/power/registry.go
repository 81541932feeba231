package power

// Registry maps driver names to drivers.
type Registry map[string]Driver

// Builtin returns the drivers that need nothing but their configuration: Wake-on-LAN, IPMI,
// Redfish, SSH and HTTP. The Job driver needs a client and is added by whoever builds one.
func Builtin() []Driver {
	return []Driver{WakeOnLAN{}, IPMI{}, Redfish{}, SSH{}, HTTP{}}
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
