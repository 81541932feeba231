// Package webhook holds the admission webhook that turns one YAML trap into a clear message.
//
// YAML 1.1, which kubectl speaks, reads an unquoted `powerState: on` as the boolean true. The CRD
// schema rejects a boolean there, but the API server's type check runs before any validation
// rule and its message ("must be of type string") does not say what to do. Mutating admission
// runs before schema validation, so this webhook sees the boolean first and answers with a
// message that says to quote the value. It changes nothing; with failurePolicy Ignore, an
// unreachable webhook only means the plainer schema message.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// PowerStatePath is where the webhook is served.
const PowerStatePath = "/mutate-infra-homelab-autoscaler-dev-v1alpha1-node"

// +kubebuilder:webhook:path=/mutate-infra-homelab-autoscaler-dev-v1alpha1-node,mutating=true,failurePolicy=ignore,sideEffects=None,groups=infra.homelab-autoscaler.dev,resources=nodes,verbs=create;update,versions=v1alpha1,name=powerstate.nodes.infra.homelab-autoscaler.dev,admissionReviewVersions=v1,timeoutSeconds=2

// PowerState denies a Node whose spec.powerState is not a string, explaining the YAML quirk.
type PowerState struct{}

// Handle implements admission.Handler.
func (PowerState) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	var obj struct {
		Spec struct {
			PowerState json.RawMessage `json:"powerState"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the Node: %w", err))
	}
	if msg := CheckPowerState(obj.Spec.PowerState); msg != "" {
		return admission.Denied(msg)
	}
	return admission.Allowed("")
}

// CheckPowerState returns the message for a powerState value that is not a string, or "".
func CheckPowerState(raw json.RawMessage) string {
	var b bool
	if len(raw) == 0 || json.Unmarshal(raw, &b) != nil {
		return ""
	}
	word := "off"
	if b {
		word = "on"
	}
	return fmt.Sprintf(`spec.powerState: got the boolean %t; it must be the string "on" or "off". `+
		`In YAML quote it (powerState: "%s"), because an unquoted on/off is read as a boolean`, b, word)
}
