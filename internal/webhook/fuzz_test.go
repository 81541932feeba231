package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	hlwebhook "github.com/homelab-autoscaler/homelab-autoscaler/internal/webhook"
)

// review is the body the apiserver posts, written out by hand so that a broken object stays
// broken.
func review(op admissionv1.Operation, object string) []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":` +
		`{"uid":"0b3c5a4e-1b2c-4d5e-8f90-123456789abc","operation":"` + string(op) + `","object":` + object + `}}`)
}

// FuzzPowerStateWebhook feeds arbitrary bytes to the webhook, both as the body of an admission
// HTTP request (what the apiserver posts) and as the Node of a decoded request. It must never
// panic, must answer every request, and a denial must say why.
func FuzzPowerStateWebhook(f *testing.F) {
	for _, obj := range []string{
		`{"spec":{"powerState":true}}`,
		`{"spec":{"powerState":false}}`,
		`{"spec":{"powerState":"on"}}`,
		`{"spec":{"powerState":null}}`,
		`{"spec":{"powerState":1}}`,
		`{"spec":null}`,
		`{"spec":[]}`,
		`[]`,
		`null`,
		``,
		`{"spec":{"powerState":tru`,
	} {
		f.Add(review(admissionv1.Create, obj), obj)
		f.Add(review(admissionv1.Update, obj), obj)
	}
	f.Add(review(admissionv1.Delete, `{}`), `{}`)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), "")
	f.Add([]byte(`not json`), "")
	wh := &admission.Webhook{Handler: hlwebhook.PowerState{}}
	f.Fuzz(func(t *testing.T, body []byte, object string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, hlwebhook.PowerStatePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		wh.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("HTTP %d for %q", rec.Code, body)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("answer is no AdmissionReview (%v): %s", err, rec.Body.Bytes())
		}
		if !out.Response.Allowed && (out.Response.Result == nil || out.Response.Result.Message == "") {
			t.Fatalf("denied without a message: %s", rec.Body.Bytes())
		}

		for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
			res := hlwebhook.PowerState{}.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Operation: op, Object: runtime.RawExtension{Raw: []byte(object)},
			}})
			if res.Allowed {
				continue
			}
			if res.Result == nil || res.Result.Message == "" {
				t.Fatalf("%s of %q denied without a message", op, object)
			}
			if res.Result.Code == http.StatusForbidden && !strings.Contains(res.Result.Message, "spec.powerState: got the boolean") {
				t.Fatalf("%s of %q denied for another reason than a boolean powerState: %s", op, object, res.Result.Message)
			}
		}
	})
}
