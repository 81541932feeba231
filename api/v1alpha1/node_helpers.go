package v1alpha1

// KubernetesNodeNameOrDefault is the name the machine's core Node registers as:
// spec.kubernetesNodeName, or the name of this object.
func (n *Node) KubernetesNodeNameOrDefault() string {
	if n.Spec.KubernetesNodeName != "" {
		return n.Spec.KubernetesNodeName
	}
	return n.Name
}

// ProviderIDOrDefault is the machine's provider ID: spec.providerID, or
// homelab://<namespace>/<name>.
func (n *Node) ProviderIDOrDefault() string {
	if n.Spec.ProviderID != "" {
		return n.Spec.ProviderID
	}
	return "homelab://" + n.Namespace + "/" + n.Name
}

// DesiredPowerState is spec.powerState, "off" when unset.
func (n *Node) DesiredPowerState() PowerState {
	if n.Spec.PowerState == PowerOn {
		return PowerOn
	}
	return PowerOff
}
