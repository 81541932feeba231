package webhook_test

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testenv"
	hlwebhook "github.com/homelab-autoscaler/homelab-autoscaler/internal/webhook"
)

// The webhook row of docs/bad-input.md: the denial of an unquoted powerState, which kubectl
// prints after the webhook's name.
func TestBadInputTableWebhook(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doctable.Check(t, root, "webhook-", map[string]func(*testing.T) string{
		"webhook-unquoted-power-state": func(t *testing.T) string {
			res := hlwebhook.PowerState{}.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(`{"spec":{"powerState":true}}`)},
			}})
			if res.Allowed || res.Result == nil {
				t.Fatal("an unquoted powerState was allowed")
			}
			return res.Result.Message
		},
	})
}
