package v1alpha1

// Condition types shared by Group and Machine. Reconciling and Stalled have the meanings kstatus
// gives them (sigs.k8s.io/cli-utils/pkg/kstatus), so Flux, Argo CD and kubectl wait tell a machine
// still booting (InProgress) from a failed one (Failed) and from one that is done (Current).
const (
	// ConditionReady is the summary condition: True when the object is where its spec asks.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the object is on its way to where its spec asks: a
	// power-on or power-off in flight, a retry pending.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the object cannot get there without a human: a power
	// operation failed past its attempts, or its configuration is unusable.
	ConditionStalled = "Stalled"
)

// Well-known labels and annotations. Everything the project writes onto other objects lives
// under this prefix.
const (
	// LabelGroup is set on Nodes (and Jobs) to the name of the machine's Group.
	LabelGroup = "homelab-autoscaler.dev/group"
	// LabelMachine is set on Nodes (and Jobs) to the name of the Machine.
	LabelMachine = "homelab-autoscaler.dev/machine"
	// LabelNamespace is a Node's opt-in: its kubelet sets it at registration
	// (--node-labels=homelab-autoscaler.dev/namespace=NAMESPACE) and only the Machines of that
	// namespace may then claim the Node. A Node without it is never adopted, so a Machine cannot
	// take over a Node it was not meant for (another tenant's, the control plane's). The manager
	// reads it and never writes it. With LabelGroup it names one Group, whose name alone may recur
	// in other namespaces.
	LabelNamespace = "homelab-autoscaler.dev/namespace"
	// LabelCredentials is a Secret's opt-in: the power drivers use only Secrets labelled
	// homelab-autoscaler.dev/credentials: "true", so a Machine cannot make the manager read (and
	// send to an address of its choosing) any other Secret of its namespace, such as a
	// ServiceAccount token or a TLS key.
	LabelCredentials = "homelab-autoscaler.dev/credentials" //nolint:gosec // a label's name, not a credential
	// LabelPowerAction is set on power Jobs to the action they perform ("on" or "off").
	LabelPowerAction = "homelab-autoscaler.dev/power-action"
)

// SecretReference names a Secret in the namespace of the object that refers to it. Credentials
// are only ever read from Secrets at the moment they are used; the API has no field for an
// inline password, key or token. The Secret must opt in with the label
// homelab-autoscaler.dev/credentials: "true".
type SecretReference struct {
	// Name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeyReference names one key of a Secret in the same namespace.
type SecretKeyReference struct {
	// Name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// ConfigMapOrSecretKeyReference names one key of a ConfigMap or a Secret in the same namespace,
// for data that is not secret in itself (a CA bundle) but may live in either.
// +kubebuilder:validation:XValidation:rule="has(self.configMapName) != has(self.secretName)",message="set exactly one of configMapName or secretName"
type ConfigMapOrSecretKeyReference struct {
	// ConfigMapName names a ConfigMap in the same namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ConfigMapName string `json:"configMapName,omitempty"`
	// SecretName names a Secret in the same namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`
	// Key within the ConfigMap or Secret.
	// +kubebuilder:default="ca.crt"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// SSHKeySecretReference names the Secret key that holds an SSH private key.
type SSHKeySecretReference struct {
	// Name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within the Secret; the key of a kubernetes.io/ssh-auth Secret by default.
	// +kubebuilder:default="ssh-privatekey"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}
