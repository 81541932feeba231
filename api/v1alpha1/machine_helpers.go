package v1alpha1

// KubernetesNodeNameOrDefault is the name the machine's Node registers as:
// spec.kubernetesNodeName, or the name of this object.
func (m *Machine) KubernetesNodeNameOrDefault() string {
	if m.Spec.KubernetesNodeName != "" {
		return m.Spec.KubernetesNodeName
	}
	return m.Name
}

// ProviderIDOrDefault is the machine's provider ID: spec.providerID, or
// homelab://<namespace>/<name>.
func (m *Machine) ProviderIDOrDefault() string {
	if m.Spec.ProviderID != "" {
		return m.Spec.ProviderID
	}
	return "homelab://" + m.Namespace + "/" + m.Name
}

// DesiredAction is the power action spec.online asks for.
func (m *Machine) DesiredAction() PowerAction {
	if m.Spec.Online {
		return PowerActionOn
	}
	return PowerActionOff
}
