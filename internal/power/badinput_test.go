package power

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The driver rows of docs/bad-input.md: the error a driver call returns is the Machine's
// status.lastError and the text of its Warning event.
func TestBadInputTableDrivers(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The Secrets as the manager reads them (ClientSecrets), with a BMC Secret that lacks its
	// password.
	secrets := ClientSecrets{Reader: fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "bmc-no-password"},
		Data:       map[string][]byte{"username": []byte("root")},
	}).Build()}
	redfishStatus := func(endpoint, secret string, timeout time.Duration, reader SecretReader) string {
		slot := redfishSlot(endpoint, timeout)
		slot.Redfish.CredentialsSecretRef.Name = secret
		_, err := Redfish{}.Status(ctx, Request{Machine: testMachine(), Action: ActionStatus, Slot: slot, Attempt: 1, Secrets: reader})
		if err == nil {
			t.Fatal("the call succeeded")
		}
		return err.Error()
	}
	doctable.Check(t, root, "driver-", map[string]func(*testing.T) string{
		"driver-secret-missing": func(t *testing.T) string {
			return redfishStatus("http://127.0.0.1:1", "bmc", time.Second, secrets)
		},
		"driver-secret-key-missing": func(t *testing.T) string {
			return redfishStatus("http://127.0.0.1:1", "bmc-no-password", time.Second, secrets)
		},
		"driver-connection-refused": func(t *testing.T) string {
			return redfishStatus(fmt.Sprintf("http://127.0.0.1:%d", freeTCPPort(t)), "bmc", time.Second, redfishSecrets(redfishPassword))
		},
		"driver-timeout": func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
			defer srv.Close()
			return redfishStatus(srv.URL, "bmc", 500*time.Millisecond, redfishSecrets(redfishPassword))
		},
		"driver-wrong-credentials": func(t *testing.T) string {
			srv := httptest.NewServer(newFakeBMC(system("1", "Off")))
			defer srv.Close()
			return redfishStatus(srv.URL, "bmc", 5*time.Second, redfishSecrets("wrong-Pa55-session"))
		},
		"driver-ipmi-connection-refused": func(t *testing.T) string {
			slot := Slot{Timeout: 2 * time.Second, IPMI: &infrav1.IPMIDriver{
				Address: "127.0.0.1", Port: int32(freeUDPPort(t)), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
			}}
			_, err := IPMI{}.Status(ctx, request(ActionStatus, slot, fakeSecrets{"bmc": {"username": []byte("admin"), "password": []byte("pw")}}))
			if err == nil {
				t.Fatal("the call succeeded")
			}
			return err.Error()
		},
	})
}
