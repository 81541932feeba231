package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PowerState is a machine's observed power state. The values are not on/off, which YAML 1.1
// (kubectl's parser) reads as booleans.
// +kubebuilder:validation:Enum=PoweredOn;PoweredOff;Unknown
type PowerState string

const (
	// PoweredOn means the machine was observed running.
	PoweredOn PowerState = "PoweredOn"
	// PoweredOff means the machine was observed powered off.
	PoweredOff PowerState = "PoweredOff"
	// PowerUnknown means the power state could not be observed.
	PowerUnknown PowerState = "Unknown"
)

// PowerAction is what a power operation does: power the machine on or off. The same names are
// the actions of the power drivers and the power-action label of power Jobs.
// +kubebuilder:validation:Enum=on;off
type PowerAction string

const (
	// PowerActionOn powers the machine on.
	PowerActionOn PowerAction = "on"
	// PowerActionOff powers the machine off.
	PowerActionOff PowerAction = "off"
)

// Progress is the step of a machine's power lifecycle.
// +kubebuilder:validation:Enum=Off;StartingUp;Ready;ShuttingDown;Failed
type Progress string

const (
	// ProgressOff means the machine is powered off and nothing is in flight.
	ProgressOff Progress = "Off"
	// ProgressStartingUp means power-on was requested and the Node is not Ready yet.
	ProgressStartingUp Progress = "StartingUp"
	// ProgressReady means the machine runs and its Node is Ready.
	ProgressReady Progress = "Ready"
	// ProgressShuttingDown means power-off was requested and not yet confirmed.
	ProgressShuttingDown Progress = "ShuttingDown"
	// ProgressFailed means a power operation failed past its retries; lastError says why.
	ProgressFailed Progress = "Failed"
)

// MachineSpec describes one physical machine: which Group it belongs to, whether it should run,
// and how to power it on and off. Fields left unset take the Group's spec.machineDefaults, then
// the built-in defaults (see defaults.go).
type MachineSpec struct {
	// Group is the name of the Group (same namespace) this machine belongs to. It cannot be
	// changed: to move a machine to another group, delete the Machine and create it again.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="group is immutable: to move a machine to another group, delete this Machine and create it again in the new group"
	Group string `json:"group"`

	// Online is whether the machine should run. cluster-autoscaler sets it through the
	// cloud-provider API; a human may set it too (homelabctl power on|off NAME).
	// +kubebuilder:default=false
	Online bool `json:"online"`

	// KubernetesNodeName is the name the machine's kubelet registers its Node as. Defaults to the
	// name of this object.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	KubernetesNodeName string `json:"kubernetesNodeName,omitempty"`

	// ProviderID identifies the machine to cluster-autoscaler. Defaults to
	// homelab://<namespace>/<name>; it is written onto the Node when that registers with none.
	// It must start with homelab://<this Machine's namespace>/: the manager refuses any other
	// (the Machine then claims no Node and its Stalled condition says why), so a Machine never
	// names a Node of another namespace. The schema cannot check this, as validation rules do not
	// see metadata.namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z][a-zA-Z0-9+.-]*://.+$`
	ProviderID string `json:"providerID,omitempty"`

	// BMC is the machine's baseboard management controller. It powers the machine on and off and
	// reports its power state, unless a power slot names another driver. Its fields are merged
	// over the Group's machineDefaults.bmc, this machine's own winning.
	// +optional
	BMC *BMC `json:"bmc,omitempty"`

	// Power names other drivers per action: start (power on), stop (power off) and status. A
	// slot that is set replaces spec.bmc (and the Group's machineDefaults.power) for its action.
	// +optional
	Power *PowerSpec `json:"power,omitempty"`

	// BootTimeout is how long a power-on may take until the Node is Ready before the attempt
	// counts as failed. Default: the Group's machineDefaults, else 10m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="bootTimeout must be a positive duration of at most 24h, such as 10m or 90s"
	BootTimeout *metav1.Duration `json:"bootTimeout,omitempty"`

	// ShutdownTimeout is how long a power-off (drain included) may take before it counts as
	// failed. Default: the Group's machineDefaults, else 5m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="shutdownTimeout must be a positive duration of at most 24h, such as 5m or 90s"
	ShutdownTimeout *metav1.Duration `json:"shutdownTimeout,omitempty"`

	// MaxAttempts is how many attempts a power-on (or power-off) gets before the machine is
	// Failed. Default: the Group's machineDefaults, else 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxAttempts *int32 `json:"maxAttempts,omitempty"`

	// Pricing is what running this machine costs, reported to cluster-autoscaler's price-based
	// expander. Default: the Group's machineDefaults.
	// +optional
	Pricing *Pricing `json:"pricing,omitempty"`

	// PowerDraw is what the machine draws on and off when its status driver measures nothing.
	// Default: the Group's machineDefaults.powerDraw.
	// +optional
	PowerDraw *PowerDraw `json:"powerDraw,omitempty"`

	// TaintsToRemove lists taint keys that the registered Node carries only while it boots
	// (or that belong to it alone) and that must not appear in the group's template node.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	TaintsToRemove []string `json:"taintsToRemove,omitempty"`
}

// BMC is a baseboard management controller: exactly one of ipmi or redfish. In a Machine, fields
// it leaves unset are taken from the Group's machineDefaults.bmc when that names the same kind.
// +kubebuilder:validation:XValidation:rule="[has(self.ipmi), has(self.redfish)].filter(x, x).size() == 1",message="set exactly one BMC kind: ipmi or redfish"
// +kubebuilder:validation:XValidation:rule="!has(self.ipmi) || !has(self.ipmi.gracefulShutdownTimeout) || !has(self.timeout) || duration(self.ipmi.gracefulShutdownTimeout) < duration(self.timeout)",message="ipmi.gracefulShutdownTimeout must be shorter than timeout: the forced power-off that follows it happens within the same call"
// +kubebuilder:validation:XValidation:rule="!has(self.redfish) || !has(self.redfish.gracefulShutdownTimeout) || !has(self.timeout) || duration(self.redfish.gracefulShutdownTimeout) < duration(self.timeout)",message="redfish.gracefulShutdownTimeout must be shorter than timeout: the forced power-off that follows it happens within the same call"
type BMC struct {
	// Timeout bounds one call to the BMC. Default: 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="timeout must be a positive duration of at most 1h, such as 30s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// IPMI talks to the BMC over IPMI v2.0 (lanplus).
	// +optional
	IPMI *IPMIDriver `json:"ipmi,omitempty"`
	// Redfish talks to the BMC's Redfish API.
	// +optional
	Redfish *RedfishDriver `json:"redfish,omitempty"`
}

// Pricing is the cost of running a machine.
type Pricing struct {
	// HourlyRate is the cost of one hour of the machine running, in any currency unit, e.g. "0.12".
	// It cannot be negative: cluster-autoscaler's price expander would prefer such a machine
	// whatever it costs.
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0'))",message="hourlyRate must not be negative"
	HourlyRate resource.Quantity `json:"hourlyRate"`
}

// PowerSpec names a driver per action, each replacing spec.bmc for that action: start powers the
// machine on, stop powers it off, status reads its power state.
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.start.ssh)",message="power.start cannot use ssh: ssh can only power a machine off (use wakeOnLAN, ipmi, redfish, http or job)"
// +kubebuilder:validation:XValidation:rule="!has(self.stop) || !has(self.stop.wakeOnLAN)",message="power.stop cannot use wakeOnLAN: Wake-on-LAN can only power a machine on (use ipmi, redfish, ssh, http, job, agent or talos)"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.start.agent)",message="power.start cannot use agent: the machine's own agent can only shut it down (use wakeOnLAN, ipmi, redfish, http or job)"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.start.talos)",message="power.start cannot use talos: the Talos API can only shut a machine down (use wakeOnLAN, ipmi, redfish, http or job)"
type PowerSpec struct {
	// Start powers the machine on. Default: spec.bmc.
	// +optional
	Start *PowerDriver `json:"start,omitempty"`
	// Stop powers the machine off. Default: spec.bmc.
	// +optional
	Stop *PowerDriver `json:"stop,omitempty"`
	// Status reports the machine's power state. Default: spec.bmc, else whichever of start and
	// stop can report it (ipmi, redfish, http with poweredOnPattern); without any, the Node's
	// readiness is the only evidence.
	// +optional
	Status *PowerStatusSource `json:"status,omitempty"`
}

// PowerDriver is exactly one power driver, plus how long one call to it may take. An ipmi or
// redfish driver here is complete in itself: only spec.bmc takes fields from the Group.
// +kubebuilder:validation:XValidation:rule="[has(self.wakeOnLAN), has(self.ipmi), has(self.redfish), has(self.ssh), has(self.http), has(self.job), has(self.agent), has(self.talos)].filter(x, x).size() == 1",message="set exactly one power driver: one of wakeOnLAN, ipmi, redfish, ssh, http, job, agent or talos"
// +kubebuilder:validation:XValidation:rule="!has(self.ipmi) || (has(self.ipmi.address) && has(self.ipmi.credentialsSecretRef))",message="ipmi in a power slot needs address and credentialsSecretRef (only spec.bmc takes them from the Group's machineDefaults)"
// +kubebuilder:validation:XValidation:rule="!has(self.redfish) || (has(self.redfish.endpoint) && has(self.redfish.credentialsSecretRef))",message="redfish in a power slot needs endpoint and credentialsSecretRef (only spec.bmc takes them from the Group's machineDefaults)"
// +kubebuilder:validation:XValidation:rule="!has(self.ipmi) || !has(self.ipmi.gracefulShutdownTimeout) || !has(self.timeout) || duration(self.ipmi.gracefulShutdownTimeout) < duration(self.timeout)",message="ipmi.gracefulShutdownTimeout must be shorter than timeout: the forced power-off that follows it happens within the same call"
// +kubebuilder:validation:XValidation:rule="!has(self.redfish) || !has(self.redfish.gracefulShutdownTimeout) || !has(self.timeout) || duration(self.redfish.gracefulShutdownTimeout) < duration(self.timeout)",message="redfish.gracefulShutdownTimeout must be shorter than timeout: the forced power-off that follows it happens within the same call"
type PowerDriver struct {
	// Timeout bounds one call to the driver (for job: the Job's active deadline when not set there).
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="timeout must be a positive duration of at most 1h, such as 30s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// WakeOnLAN sends a magic packet (power on only).
	// +optional
	WakeOnLAN *WakeOnLANDriver `json:"wakeOnLAN,omitempty"`
	// IPMI talks to a BMC over IPMI v2.0 (lanplus).
	// +optional
	IPMI *IPMIDriver `json:"ipmi,omitempty"`
	// Redfish talks to a BMC's Redfish API.
	// +optional
	Redfish *RedfishDriver `json:"redfish,omitempty"`
	// SSH runs a command on the machine (power off only).
	// +optional
	SSH *SSHDriver `json:"ssh,omitempty"`
	// HTTP sends a request: a smart plug, Home Assistant, a hypervisor API.
	// +optional
	HTTP *HTTPDriver `json:"http,omitempty"`
	// Job runs a Kubernetes Job that does anything else.
	// +optional
	Job *JobDriver `json:"job,omitempty"`
	// Agent has the homelab-agent running on the machine itself shut it down gracefully (power off
	// only), after the manager's drain: no SSH key, no BMC. See docs/drivers/agent.md.
	// +optional
	Agent *AgentDriver `json:"agent,omitempty"`
	// Talos shuts a Talos Linux machine down through its Talos API (power off only), with a
	// talosconfig's client certificate. See docs/drivers/talos.md.
	// +optional
	Talos *TalosDriver `json:"talos,omitempty"`
}

// AgentDriver has the machine's own homelab-agent power it off. It has no settings yet: the agent
// is found by the machine's Node.
type AgentDriver struct{}

// TalosDriver shuts a Talos Linux machine down through the Talos API (apid), over mutual TLS
// with the client certificate of a talosconfig. The API answers only while the machine runs, so
// the driver cannot read the power state: without a status driver the Node's readiness confirms
// the power-off.
type TalosDriver struct {
	// Endpoint is the machine's Talos API: its host name or IP address, with an optional port
	// (default 50000), such as "10.0.0.21" or "node-1.lan:50000". The machine's certificate must
	// name this host (Talos puts the machine's addresses and hostname in it, and machine.certSANs
	// adds more). In a Group's machineDefaults it may contain {name}, replaced by each machine's
	// name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="!self.contains('/') && !self.contains(' ')",message="endpoint is a host name or IP address with an optional port, such as 10.0.0.21 or node-1.lan:50000, without a scheme or path"
	Endpoint string `json:"endpoint"`
	// CredentialsSecretRef names a Secret with the keys "ca.crt", "tls.crt" and "tls.key": the
	// ca, crt and key of a talosconfig context, base64-decoded (PEM). The certificate's role must
	// allow shutting down (os:operator or os:admin).
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef"`
	// Force shuts the machine down without Talos first cordoning and draining its Node. Off by
	// default. Talos's drain comes on top of the one before every power-off (cluster-autoscaler's
	// or the manager's), so Force mostly saves the time Talos's drain takes.
	// +optional
	Force bool `json:"force,omitempty"`
}

// PowerStatusSource is exactly one driver that can read a machine's power state.
// +kubebuilder:validation:XValidation:rule="[has(self.ipmi), has(self.redfish), has(self.http)].filter(x, x).size() == 1",message="set exactly one power status driver: one of ipmi, redfish or http"
// +kubebuilder:validation:XValidation:rule="!has(self.ipmi) || (has(self.ipmi.address) && has(self.ipmi.credentialsSecretRef))",message="ipmi in a power slot needs address and credentialsSecretRef (only spec.bmc takes them from the Group's machineDefaults)"
// +kubebuilder:validation:XValidation:rule="!has(self.redfish) || (has(self.redfish.endpoint) && has(self.redfish.credentialsSecretRef))",message="redfish in a power slot needs endpoint and credentialsSecretRef (only spec.bmc takes them from the Group's machineDefaults)"
type PowerStatusSource struct {
	// Timeout bounds one status call.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="timeout must be a positive duration of at most 1h, such as 30s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// IPMI reads the chassis power state.
	// +optional
	IPMI *IPMIDriver `json:"ipmi,omitempty"`
	// Redfish reads the system's PowerState.
	// +optional
	Redfish *RedfishDriver `json:"redfish,omitempty"`
	// HTTP sends a request whose response body matches poweredOnPattern when the machine is on.
	// +optional
	HTTP *HTTPDriver `json:"http,omitempty"`
}

// WakeOnLANDriver sends a Wake-on-LAN magic packet.
// +kubebuilder:validation:XValidation:rule="!has(self.via) || !has(self.secureOnSecretRef)",message="a relayed wake (via) cannot use secureOnSecretRef: the agent would have to read the Secret"
type WakeOnLANDriver struct {
	// MAC is the machine's network card address, e.g. "aa:bb:cc:dd:ee:ff" or "aa-bb-cc-dd-ee-ff".
	// One separator throughout: the driver's parser (net.ParseMAC) refuses a mix.
	// +kubebuilder:validation:Pattern=`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$`
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$')",message="mac must be six hex byte pairs separated by : or by - (the same throughout), e.g. aa:bb:cc:dd:ee:ff"
	MAC string `json:"mac"`
	// BroadcastAddress is where the packet is sent.
	// +kubebuilder:default="255.255.255.255"
	// +kubebuilder:validation:MaxLength=253
	BroadcastAddress string `json:"broadcastAddress,omitempty"`
	// Port is the UDP port (7 or 9 by convention).
	// +kubebuilder:default=9
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// SecureOnSecretRef names a Secret key holding a SecureOn password (6 bytes, written as a MAC).
	// +optional
	SecureOnSecretRef *SecretKeyReference `json:"secureOnSecretRef,omitempty"`
	// Via names the network segment (e.g. lan-2) whose homelab-agent sends the packets from its
	// node's host network, for a manager that cannot reach the machine's LAN with a broadcast.
	// broadcastAddress is then read on the agent's network. See docs/drivers/agent.md.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="via must name a segment in lower-case letters, digits and '-', such as lan-2"
	Via string `json:"via,omitempty"`
}

// IPMIDriver talks to a BMC over IPMI v2.0 (lanplus).
type IPMIDriver struct {
	// Address is the BMC's host name or IP address. In a Group's machineDefaults it may contain
	// {name}, replaced by each machine's name (e.g. "{name}-bmc.lan").
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Address string `json:"address,omitempty"`
	// Port is the BMC's UDP port. Default: 623.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// CredentialsSecretRef names a Secret with the keys "username" and "password" (the keys of a
	// kubernetes.io/basic-auth Secret).
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
	// CipherSuite is the RMCP+ cipher suite ID; other suites are tried when the BMC refuses it.
	// Default: 3.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=17
	CipherSuite *int32 `json:"cipherSuite,omitempty"`
	// GracefulShutdownTimeout, when set, makes power off graceful: the BMC first asks the operating
	// system to shut down (chassis power soft, an ACPI power-button press) and forces the power off
	// (chassis power off) only when the machine is still on after this long. When unset, power off
	// is immediate. It must be shorter than the action's timeout, since both steps run in one call.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="gracefulShutdownTimeout must be a positive duration of at most 1h, such as 20s"
	GracefulShutdownTimeout *metav1.Duration `json:"gracefulShutdownTimeout,omitempty"`
	// AllowInsecureCipherSuites lets the session fall back to cipher suites without encryption
	// or without integrity (0, 1, 2, 6, 7, 11, 15, 16 and the like) when the BMC refuses the
	// others. Off by default: such a session sends the password's proof and every command in a
	// form anyone on the BMC network can read or forge.
	// +optional
	AllowInsecureCipherSuites bool `json:"allowInsecureCipherSuites,omitempty"`
}

// RedfishDriver talks to a BMC's Redfish API.
type RedfishDriver struct {
	// Endpoint is the BMC's base URL, e.g. "https://10.0.0.10". In a Group's machineDefaults it
	// may contain {name}, replaced by each machine's name (e.g. "https://{name}-bmc.lan").
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://.+`
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint,omitempty"`
	// SystemID picks the ComputerSystem; may be empty when the BMC manages exactly one.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SystemID string `json:"systemID,omitempty"`
	// CredentialsSecretRef names a Secret with the keys "username" and "password" (the keys of a
	// kubernetes.io/basic-auth Secret).
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
	// CABundleRef names a PEM CA bundle that signs the BMC's certificate.
	// +optional
	CABundleRef *ConfigMapOrSecretKeyReference `json:"caBundleRef,omitempty"`
	// InsecureSkipVerify turns TLS certificate verification off. Use it only for BMCs with
	// self-signed certificates that cannot be given a CA bundle. In spec.bmc it is on when either
	// the machine or its Group's machineDefaults.bmc turns it on.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// GracefulShutdownTimeout is how long power off waits, after asking the operating system to
	// shut down (ResetType GracefulShutdown, used when the BMC offers it), before it forces the power
	// off (ResetType ForceOff). Defaults to half of the action's timeout; it must be shorter than
	// the timeout, since both steps run in one call.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="gracefulShutdownTimeout must be a positive duration of at most 1h, such as 20s"
	GracefulShutdownTimeout *metav1.Duration `json:"gracefulShutdownTimeout,omitempty"`
	// AllowBasicAuth lets the driver send the credentials with every request (HTTP basic auth)
	// when the BMC offers no Redfish sessions. Off by default: a session sends the password
	// once.
	// +optional
	AllowBasicAuth bool `json:"allowBasicAuth,omitempty"`
	// AllowPlainHTTP lets the driver send credentials to an http:// endpoint, where anyone on the
	// BMC network can read them. Off by default: such an endpoint is refused.
	// +optional
	AllowPlainHTTP bool `json:"allowPlainHTTP,omitempty"`
}

// SSHDriver runs a command on the machine over SSH (power off only).
// +kubebuilder:validation:XValidation:rule="has(self.hostKey) != has(self.hostKeySecretRef)",message="set exactly one of hostKey or hostKeySecretRef: the machine's host key must be pinned"
type SSHDriver struct {
	// Address is the machine's host name or IP address. In a Group's machineDefaults it may
	// contain {name}, replaced by each machine's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Address string `json:"address"`
	// Port is the SSH port.
	// +kubebuilder:default=22
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// User to log in as.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	User string `json:"user"`
	// KeySecretRef names a Secret key holding the private key (PEM/OpenSSH format); the key
	// defaults to "ssh-privatekey", the key of a kubernetes.io/ssh-auth Secret.
	KeySecretRef SSHKeySecretReference `json:"keySecretRef"`
	// HostKey pins the machine's public host key, in authorized_keys format ("ssh-ed25519 AAAA...").
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	HostKey string `json:"hostKey,omitempty"`
	// HostKeySecretRef names a Secret key holding the pinned public host key.
	// +optional
	HostKeySecretRef *SecretKeyReference `json:"hostKeySecretRef,omitempty"`
	// Command is run to power off.
	// +kubebuilder:default="systemctl poweroff"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Command string `json:"command,omitempty"`
}

// HTTPDriver sends one HTTP request per power action.
type HTTPDriver struct {
	// URL of the request. In a Group's machineDefaults it may contain {name}, replaced by each
	// machine's name.
	// +kubebuilder:validation:Pattern=`^https?://.+`
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`
	// Method of the request.
	// +kubebuilder:default="POST"
	// +kubebuilder:validation:Enum=GET;POST;PUT;PATCH;DELETE
	Method string `json:"method,omitempty"`
	// HeadersSecretRef names a Secret whose every key/value becomes a request header (tokens,
	// Authorization).
	// +optional
	HeadersSecretRef *SecretReference `json:"headersSecretRef,omitempty"`
	// Body is the request body, when it holds nothing secret.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Body string `json:"body,omitempty"`
	// BodySecretRef names a Secret key holding the request body, when it holds a secret.
	// +optional
	BodySecretRef *SecretKeyReference `json:"bodySecretRef,omitempty"`
	// SuccessCodes are the HTTP status codes that mean success; default: any 2xx.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=100
	// +kubebuilder:validation:items:Maximum=599
	SuccessCodes []int32 `json:"successCodes,omitempty"`
	// PoweredOnPattern, for a status request, is a regular expression that the response body
	// matches when the machine is on.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	PoweredOnPattern string `json:"poweredOnPattern,omitempty"`
	// CABundleRef names a PEM CA bundle that signs the server's certificate.
	// +optional
	CABundleRef *ConfigMapOrSecretKeyReference `json:"caBundleRef,omitempty"`
	// InsecureSkipVerify turns TLS certificate verification off.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// Watts, for a status request, finds the power draw in the response (smart plugs measure it).
	// +optional
	Watts *HTTPWatts `json:"watts,omitempty"`
}

// WattsPreset names where a common smart plug reports its power draw.
// +kubebuilder:validation:Enum=ShellyGen2;Tasmota;HomeAssistant
type WattsPreset string

const (
	// WattsShellyGen2: a Shelly Gen2+ Switch.GetStatus answer, field "apower".
	WattsShellyGen2 WattsPreset = "ShellyGen2"
	// WattsTasmota: a Tasmota "Status 0" or "Status 8" answer, StatusSNS.ENERGY.Power.
	WattsTasmota WattsPreset = "Tasmota"
	// WattsHomeAssistant: a Home Assistant /api/states/<sensor> answer, field "state".
	WattsHomeAssistant WattsPreset = "HomeAssistant"
)

// HTTPWatts finds a power draw in an HTTP response: a preset, a JSON path or a pattern.
// +kubebuilder:validation:XValidation:rule="[has(self.preset), has(self.jsonPath), has(self.pattern)].filter(x, x).size() == 1",message="set exactly one of preset, jsonPath or pattern"
type HTTPWatts struct {
	// Preset is a known plug's field: ShellyGen2 (apower), Tasmota (StatusSNS.ENERGY.Power) or
	// HomeAssistant (state).
	// +optional
	Preset WattsPreset `json:"preset,omitempty"`
	// JSONPath is the field holding the watts, as dot-separated keys and array indexes of the
	// JSON response, e.g. "StatusSNS.ENERGY.Power" or "meters.0.power". The value may be a number
	// or a string holding one.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$`
	JSONPath string `json:"jsonPath,omitempty"`
	// Pattern is a regular expression whose first group captures the watts, e.g.
	// "power: ([0-9.]+) W".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Pattern string `json:"pattern,omitempty"`
	// URL, when the draw is reported by another request than the power state (a Home Assistant
	// sensor next to its switch), is fetched with GET and the same headers and TLS settings.
	// Default: the draw is read from the status response. In a Group's machineDefaults it may
	// contain {name}.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://.+`
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`
}

// JobDriver runs a Kubernetes Job, owned by the Machine, for each power attempt.
type JobDriver struct {
	// Image of the Job's container. The manager runs only images its --job-images allows.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image"`
	// Command of the container (its entrypoint).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command,omitempty"`
	// Args of the container.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`
	// Env of the container; take secret values from Secrets with valueFrom.secretKeyRef.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Env []corev1.EnvVar `json:"env,omitempty"`
	// EnvFrom adds whole ConfigMaps or Secrets to the container's environment.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`
	// Volumes of the Job's pod: Secrets, ConfigMaps and scratch space.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Volumes []JobVolume `json:"volumes,omitempty"`
	// VolumeMounts of the container.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts,omitempty"`
	// HostNetwork runs the pod in its node's network namespace, e.g. to send a Wake-on-LAN
	// broadcast that would not leave a pod network. Only with the manager's
	// --job-allow-host-network, and only in a namespace whose Pod Security level allows it.
	// +optional
	HostNetwork bool `json:"hostNetwork,omitempty"`
	// ServiceAccountName the pod runs as: the namespace's default unless the manager's
	// --job-service-accounts lists it; its token is mounted only for a listed one.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// NodeSelector of the pod.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the pod.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// BackoffLimit is how many times the Job retries its pod.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
	// ActiveDeadlineSeconds bounds the Job's run time; defaults to the power action's timeout.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
	// TTLSecondsAfterFinished lets Kubernetes delete a finished Job after this many seconds.
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=604800
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// JobVolume is a volume of a power Job's pod. Only the kinds a power script needs are offered,
// which keeps the Machine schema small.
// +kubebuilder:validation:XValidation:rule="[has(self.secret), has(self.configMap), has(self.emptyDir)].filter(x, x).size() == 1",message="set exactly one volume source: secret, configMap or emptyDir"
type JobVolume struct {
	// Name of the volume, referred to by volumeMounts.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Secret mounts a Secret.
	// +optional
	Secret *corev1.SecretVolumeSource `json:"secret,omitempty"`
	// ConfigMap mounts a ConfigMap.
	// +optional
	ConfigMap *corev1.ConfigMapVolumeSource `json:"configMap,omitempty"`
	// EmptyDir is scratch space.
	// +optional
	EmptyDir *corev1.EmptyDirVolumeSource `json:"emptyDir,omitempty"`
}

// MachineStatus is what the controller observed of the machine.
type MachineStatus struct {
	// ObservedGeneration is the spec generation this status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// PowerState is the observed power state: PoweredOn, PoweredOff or Unknown.
	// +optional
	PowerState PowerState `json:"powerState,omitempty"`
	// PowerStateObservedAt is when powerState was last observed (read through the status driver,
	// or inferred from the Node).
	// +optional
	PowerStateObservedAt *metav1.Time `json:"powerStateObservedAt,omitempty"`
	// PowerStateSource says where powerState comes from: Driver (the status driver read it) or
	// Node (no driver can read it, or the read failed: inferred from the Node's readiness).
	// +optional
	PowerStateSource PowerStateSource `json:"powerStateSource,omitempty"`
	// LastRepair is the last thing the manager did that nobody asked for (a power-on after a power
	// loss, a power-off after an outside power-on, a power cycle, a substitution).
	// +optional
	LastRepair *Repair `json:"lastRepair,omitempty"`
	// PowerCycles are the times of the stuck-Node power cycles within the Group's
	// repair.stuckNode.window, oldest first.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	PowerCycles []metav1.Time `json:"powerCycles,omitempty"`
	// PowerOns are the times of the power-ons started in the last 24 hours (first attempts;
	// retries are the same power-on), oldest first: the Group's powerCycling.maxPowerOnsPerDay
	// counts them.
	// +optional
	// +kubebuilder:validation:MaxItems=48
	PowerOns []metav1.Time `json:"powerOns,omitempty"`
	// NodeNotReadySince is when the manager first saw the Node of a Ready machine NotReady or
	// gone; cleared when it is Ready again. Power loss and stuck-Node repairs count from it.
	// +optional
	NodeNotReadySince *metav1.Time `json:"nodeNotReadySince,omitempty"`
	// FailedBoots counts the power-on attempts whose boot timed out since the machine was last
	// Ready. cluster-autoscaler's scale-ups choose machines with fewer failed boots first.
	// +optional
	FailedBoots int32 `json:"failedBoots,omitempty"`
	// Progress is the step of the power lifecycle.
	// +optional
	Progress Progress `json:"progress,omitempty"`
	// ProgressSince is when Progress last changed.
	// +optional
	ProgressSince *metav1.Time `json:"progressSince,omitempty"`
	// LastStartupTime is when the current or last power-on attempt started.
	// +optional
	LastStartupTime *metav1.Time `json:"lastStartupTime,omitempty"`
	// LastShutdownTime is when the current or last power-off started.
	// +optional
	LastShutdownTime *metav1.Time `json:"lastShutdownTime,omitempty"`
	// Attempts counts the attempts of the current (or last) power-on or power-off.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Operation is the power operation in flight, or the last one. It is the controller's durable
	// memory: every timeout and retry is computed from it, so a restart resumes where it stopped.
	// +optional
	Operation *PowerOperation `json:"operation,omitempty"`
	// LastError is the last power operation failure, for humans and for cluster-autoscaler.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// LastErrorReason classifies LastError in CamelCase (BootTimeout, AuthFailed, Unreachable,
	// DrainBlocked, ConfigError, ...).
	// +optional
	LastErrorReason string `json:"lastErrorReason,omitempty"`
	// ProviderID is the provider ID the machine is known by.
	// +optional
	ProviderID string `json:"providerID,omitempty"`
	// KubernetesNode is the name of the Node that registered for this machine.
	// +optional
	KubernetesNode string `json:"kubernetesNode,omitempty"`
	// Conditions: Ready (the machine is where spec.online asks), Reconciling (a power-on or
	// power-off is in flight) and Stalled (it failed and needs a human), with the meanings kstatus,
	// Flux, Argo CD and kubectl wait give them.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Energy is the machine's energy account: what it drew and saved, and when it was on.
	// docs/energy.md says how it is counted.
	// +optional
	Energy *MachineEnergy `json:"energy,omitempty"`
}

// PowerOperation records one power-on or power-off and its current attempt.
type PowerOperation struct {
	// Action is "on" or "off".
	Action PowerAction `json:"action"`
	// Attempt numbers the current attempt, from 1.
	Attempt int32 `json:"attempt"`
	// Driver names the driver of the current attempt.
	// +optional
	Driver string `json:"driver,omitempty"`
	// AttemptStartedAt is when the current attempt's command was issued: recorded before the
	// driver is called, so a restart never issues the same attempt twice.
	// +optional
	// Microsecond precision: timeouts and backoffs of a few seconds are computed from it.
	AttemptStartedAt *metav1.MicroTime `json:"attemptStartedAt,omitempty"`
	// RetryAt, when set, is when the next attempt is due after the current one failed.
	// +optional
	RetryAt *metav1.MicroTime `json:"retryAt,omitempty"`
	// Drain is true when a power-off must evict the machine's pods first (it was asked for by a
	// human; cluster-autoscaler drains before it asks).
	// +optional
	Drain bool `json:"drain,omitempty"`
	// CommandDone is true once the driver reported the command done (for a Job: it succeeded).
	// +optional
	CommandDone bool `json:"commandDone,omitempty"`
	// Repair, when set, says the operation is a repair rather than a change of spec.online: a
	// power-on after a power loss, a power-off after an outside power-on, a stuck Node's power
	// cycle, or the power-off of a machine substituted after its boot timed out.
	// +optional
	Repair RepairKind `json:"repair,omitempty"`
}

// Machine is one physical machine that homelab-autoscaler powers on and off. "Node" always
// means the Kubernetes Node its kubelet registers.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hlm;hlmachine,categories=homelab
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.spec.group`
// +kubebuilder:printcolumn:name="Online",type=boolean,JSONPath=`.spec.online`
// +kubebuilder:printcolumn:name="Power",type=string,JSONPath=`.status.powerState`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.kubernetesNode`,priority=1
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.lastErrorReason`,priority=1
// +kubebuilder:printcolumn:name="Watts",type=string,JSONPath=`.status.energy.watts`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Machine struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MachineSpec   `json:"spec"`
	Status MachineStatus `json:"status,omitempty"`
}

// MachineList is a list of Machine.
// +kubebuilder:object:root=true
type MachineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Machine `json:"items"`
}
