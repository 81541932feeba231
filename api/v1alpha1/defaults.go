package v1alpha1

import "time"

// The built-in defaults. A field a Machine leaves unset takes its Group's machineDefaults, then
// the value here. Where the CRD schema also defaults a field (a +kubebuilder:default marker),
// TestCRDDefaultsAreTheConstants checks that the generated schema says the same as these
// constants, so the apiserver and the code can never disagree.
const (
	// DefaultBootTimeout bounds a power-on until the Node is Ready (spec.bootTimeout).
	DefaultBootTimeout = 10 * time.Minute
	// DefaultShutdownTimeout bounds a power-off, drain included (spec.shutdownTimeout).
	DefaultShutdownTimeout = 5 * time.Minute
	// DefaultMaxAttempts is how many attempts a power operation gets (spec.maxAttempts).
	DefaultMaxAttempts int32 = 3
	// DefaultPowerTimeout bounds one call to a power driver (power.*.timeout, bmc.timeout).
	DefaultPowerTimeout = 30 * time.Second
	// DefaultWakeOnLANBroadcast is where a magic packet is sent (wakeOnLAN.broadcastAddress).
	DefaultWakeOnLANBroadcast = "255.255.255.255"
	// DefaultWakeOnLANPort is the magic packet's UDP port (wakeOnLAN.port).
	DefaultWakeOnLANPort int32 = 9
	// DefaultIPMIPort is the BMC's RMCP+ UDP port (ipmi.port).
	DefaultIPMIPort int32 = 623
	// DefaultIPMICipherSuite is the RMCP+ cipher suite tried first (ipmi.cipherSuite).
	DefaultIPMICipherSuite int32 = 3
	// DefaultSSHPort is the SSH port (ssh.port).
	DefaultSSHPort int32 = 22
	// DefaultSSHCommand powers a machine off over SSH (ssh.command).
	DefaultSSHCommand = "systemctl poweroff"
	// DefaultTalosPort is the Talos API's port (talos.endpoint without a port).
	DefaultTalosPort int32 = 50000
	// DefaultSSHKeySecretKey is the key of a kubernetes.io/ssh-auth Secret (ssh.keySecretRef.key).
	DefaultSSHKeySecretKey = "ssh-privatekey"
	// DefaultHTTPMethod is the method of a power request (http.method).
	DefaultHTTPMethod = "POST"
	// DefaultCABundleKey is the key of a CA bundle in a ConfigMap or Secret (caBundleRef.key).
	DefaultCABundleKey = "ca.crt"
	// DefaultJobBackoffLimit is how often a power Job retries its pod (job.backoffLimit).
	DefaultJobBackoffLimit int32 = 0
	// DefaultJobTTLSecondsAfterFinished keeps a finished power Job this long (job.ttlSecondsAfterFinished).
	DefaultJobTTLSecondsAfterFinished int32 = 3600
	// DefaultPowerOffPolicy is what happens to a Node after power-off (group.powerOffPolicy).
	DefaultPowerOffPolicy = PowerOffDelete
	// DefaultMinSize is a Group's minSize.
	DefaultMinSize int32 = 0

	// DefaultObserveInterval is how often a settled machine's power state is read
	// (group.repair.observeInterval).
	DefaultObserveInterval = 5 * time.Minute
	// DefaultPowerLossGrace is how long the Node of a machine without a status driver may be
	// NotReady or away before power loss is assumed (group.repair.powerLossGrace).
	DefaultPowerLossGrace = 2 * time.Minute
	// DefaultPowerLossPolicy answers a machine desired on found off (group.repair.powerLoss).
	DefaultPowerLossPolicy = PowerLossPowerOn
	// DefaultOutsidePowerOnPolicy answers a machine desired off found on
	// (group.repair.outsidePowerOn).
	DefaultOutsidePowerOnPolicy = OutsidePowerOnEnforce
	// DefaultBootFailurePolicy answers a boot timeout (group.repair.bootFailure).
	DefaultBootFailurePolicy = BootFailureSubstitute
	// DefaultStuckNodeNotReadyFor is how long a Node may stay NotReady before a power cycle
	// (group.repair.stuckNode.notReadyFor).
	DefaultStuckNodeNotReadyFor = 10 * time.Minute
	// DefaultStuckNodeMaxPowerCycles is how many power cycles a window allows
	// (group.repair.stuckNode.maxPowerCycles).
	DefaultStuckNodeMaxPowerCycles int32 = 2
	// DefaultStuckNodeWindow is the period maxPowerCycles counts over (group.repair.stuckNode.window).
	DefaultStuckNodeWindow = time.Hour
	// DefaultMaintenanceMaxConcurrent is how many members of a group may be awake for
	// maintenance at once (group.maintenance.maxConcurrent).
	DefaultMaintenanceMaxConcurrent int32 = 1
)

// Secret keys the credentials Secrets of ipmi and redfish must hold: those of a
// kubernetes.io/basic-auth Secret.
const (
	CredentialsUsernameKey = "username"
	CredentialsPasswordKey = "password"
)

// Patterns the CRD schemas check, for code that must accept exactly what the apiserver accepts
// (homelabctl import). TestCRDPatternsAreTheConstants checks the generated schemas against them.
const (
	// MACPattern is wakeOnLAN.mac: six hex byte pairs, one separator throughout.
	MACPattern = `^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$`
	// FractionPattern is a utilization threshold of autoscalingOptions: a fraction from 0 to 1.
	FractionPattern = `^(0(\.[0-9]+)?|1(\.0+)?)$`
)
