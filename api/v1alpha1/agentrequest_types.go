package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AgentRequestKind is what an AgentRequest asks a homelab-agent to do.
// +kubebuilder:validation:Enum=Wake;Shutdown
type AgentRequestKind string

const (
	// AgentWake: send a machine's Wake-on-LAN magic packets from the segment's host network.
	AgentWake AgentRequestKind = "Wake"
	// AgentShutdown: the agent running on the machine shuts it down gracefully.
	AgentShutdown AgentRequestKind = "Shutdown"
)

// AgentRequestSpec is the manager's request, written once when it is created.
type AgentRequestSpec struct {
	// Kind of the request.
	Kind AgentRequestKind `json:"kind"`
	// Machine the request is for.
	// +kubebuilder:validation:MaxLength=253
	Machine string `json:"machine"`
	// Attempt is the machine's power attempt (status.operation.attempt) the request belongs to.
	// +kubebuilder:validation:Minimum=1
	Attempt int32 `json:"attempt"`
	// Segment names the network segment whose agents may serve a Wake.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Segment string `json:"segment,omitempty"`
	// Node is the machine's Node, whose agent alone may serve a Shutdown.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node,omitempty"`
	// MAC of the machine's network card, for a Wake.
	// +optional
	// +kubebuilder:validation:MaxLength=17
	MAC string `json:"mac,omitempty"`
	// Target is host:port the magic packets are sent to, read on the agent's network.
	// +optional
	// +kubebuilder:validation:MaxLength=260
	Target string `json:"target,omitempty"`
	// Deadline is when the manager gives up unless an agent took the request: no agent takes it
	// after that, so a late agent never acts on an attempt the manager has failed.
	Deadline metav1.Time `json:"deadline"`
}

// AgentRequestState is where a request stands.
// +kubebuilder:validation:Enum=Claimed;Acting;Done;Abandoned
type AgentRequestState string

const (
	// AgentRequestClaimed: an agent took the request and is about to act.
	AgentRequestClaimed AgentRequestState = "Claimed"
	// AgentRequestActing: the agent recorded that it acts now; no other agent takes it over.
	AgentRequestActing AgentRequestState = "Acting"
	// AgentRequestDone: the agent acted.
	AgentRequestDone AgentRequestState = "Done"
	// AgentRequestAbandoned: the manager failed the attempt; no agent acts on it any more.
	AgentRequestAbandoned AgentRequestState = "Abandoned"
)

// AgentRequestStatus is written by the agent that serves the request, and by the manager when it
// gives up on it. Every write has the object's resourceVersion as precondition, so exactly one
// agent serves a request.
type AgentRequestStatus struct {
	// State of the request; empty while nobody has taken it.
	// +optional
	State AgentRequestState `json:"state,omitempty"`
	// Agent that took it: "<node>/<pod>".
	// +optional
	Agent string `json:"agent,omitempty"`
	// RenewedAt is when the agent last wrote the request: a claim stands for ClaimSeconds after it.
	// +optional
	RenewedAt *metav1.MicroTime `json:"renewedAt,omitempty"`
	// ClaimSeconds is how long a claim stands without the Acting record.
	// +optional
	ClaimSeconds int32 `json:"claimSeconds,omitempty"`
	// Detail says what the agent did, or why the manager gave up.
	// +optional
	Detail string `json:"detail,omitempty"`
}

// AgentRequest is the manager's request to a homelab-agent, the one place where the two meet
// (docs/drivers/agent.md): the manager has no host network and the agent opens no port.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hlar,categories=homelab
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.kind`
// +kubebuilder:printcolumn:name="Machine",type=string,JSONPath=`.spec.machine`
// +kubebuilder:printcolumn:name="Segment",type=string,JSONPath=`.spec.segment`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`,priority=1
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.status.agent`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AgentRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AgentRequestSpec   `json:"spec,omitempty"`
	Status AgentRequestStatus `json:"status,omitempty"`
}

// AgentRequestList is a list of AgentRequest.
// +kubebuilder:object:root=true
type AgentRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentRequest `json:"items"`
}
