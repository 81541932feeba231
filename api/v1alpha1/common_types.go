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
	// LabelPowerAction is set on power Jobs to the action they perform ("on" or "off").
	LabelPowerAction = "homelab-autoscaler.dev/power-action"
	// AnnotationPowerOffByAutoscaler marks a power-off requested by cluster-autoscaler, which
	// drains the node itself, so the controller does not drain it again. Its value is the Machine's
	// metadata.generation that the request produced: a later spec change by anyone else makes it
	// stale, and that power-off drains.
	AnnotationPowerOffByAutoscaler = "homelab-autoscaler.dev/power-off-by-cluster-autoscaler"
	// AnnotationSubstituted marks a power-off decided because the machine's boot timed out and
	// another member was powered on in its place. Its value is "GENERATION/SUBSTITUTE": the
	// machine generation the power-off created and the substitute's name.
	AnnotationSubstituted = "homelab-autoscaler.dev/substituted"
)

// SecretReference names a Secret in the namespace of the object that refers to it. Credentials
// are only ever read from Secrets at the moment they are used; the API has no field for an
// inline password, key or token.
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
