package power

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
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
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "bmc-no-password", Labels: credentialsLabel},
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
	// sshOff powers a machine off over SSH with the host keys pinned in hostKey, or, when it is
	// empty, in the Secret "ssh-host"; no SSH server is needed for a refused host key.
	sshOff := func(t *testing.T, hostKey, hostKeySecret string) string {
		_, clientKey, _ := newSSHKey(t)
		slot := Slot{Timeout: 2 * time.Second, SSH: &infrav1.SSHDriver{
			Address: "127.0.0.1", User: "root", HostKey: hostKey,
			KeySecretRef: infrav1.SSHKeySecretReference{Name: "ssh", Key: "ssh-privatekey"},
		}}
		secrets := fakeSecrets{"ssh": {"ssh-privatekey": clientKey}}
		if hostKey == "" {
			slot.SSH.HostKeySecretRef = &infrav1.SecretKeyReference{Name: "ssh-host", Key: "known_hosts"}
			secrets["ssh-host"] = map[string][]byte{"known_hosts": []byte(hostKeySecret)}
		}
		return driverError(t, SSH{}, request(ActionOff, slot, secrets))
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
		"driver-redfish-plain-http": func(t *testing.T) string {
			srv := httptest.NewServer(newFakeBMC(system("1", "Off")))
			defer srv.Close()
			slot := redfishSlot(srv.URL, 5*time.Second)
			slot.Redfish.AllowPlainHTTP = false
			return driverError(t, Redfish{}, request(ActionStatus, slot, redfishSecrets(redfishPassword)))
		},
		"driver-redfish-no-sessions": func(t *testing.T) string {
			bmc := newFakeBMC(system("1", "Off"))
			bmc.noSessions = true
			srv := httptest.NewServer(bmc)
			defer srv.Close()
			return redfishStatus(srv.URL, "bmc", 5*time.Second, redfishSecrets(redfishPassword))
		},
		"driver-redfish-redirect": func(t *testing.T) string {
			srv := httptest.NewServer(http.RedirectHandler("https://bmc.example/redfish/v1/", http.StatusTemporaryRedirect))
			defer srv.Close()
			return redfishStatus(srv.URL, "bmc", 5*time.Second, redfishSecrets(redfishPassword))
		},
		"driver-redfish-several-systems": func(t *testing.T) string {
			srv := httptest.NewServer(newFakeBMC(system("1", "Off"), system("2", "Off"), system("3", "Off")))
			defer srv.Close()
			return redfishStatus(srv.URL, "bmc", 5*time.Second, redfishSecrets(redfishPassword))
		},
		"driver-redfish-oversized-answer": func(t *testing.T) string {
			srv, _ := hugeBodyBMC(t, false)
			return redfishStatus(srv.URL, "bmc", 10*time.Second, redfishSecrets(redfishPassword))
		},
		"driver-ipmi-insecure-cipher-suite": func(t *testing.T) string {
			slot := Slot{Timeout: 2 * time.Second, IPMI: &infrav1.IPMIDriver{
				Address: "127.0.0.1", CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}, CipherSuite: ptr.To[int32](2),
			}}
			return driverError(t, IPMI{}, request(ActionStatus, slot, ipmiSecrets("admin", somePassword)))
		},
		"driver-ipmi-no-secure-cipher-suite": func(t *testing.T) string {
			sim := testpeers.StartIPMISim(t)
			relay := startSuiteRefusingRelay(t, sim, func(a types.CryptAlg) bool { return a == types.CryptAlg_AES_CBC_128 })
			slot := ipmiSlot(sim, 10*time.Second)
			slot.IPMI.Port = int32(relay.conn.LocalAddr().(*net.UDPAddr).Port)
			return driverError(t, IPMI{}, request(ActionStatus, slot, ipmiSecrets(sim.Username, sim.Password)))
		},
		"driver-ssh-host-key-not-a-key": func(t *testing.T) string {
			return sshOff(t, "", "Zq9!xK7#vW2$pL4%")
		},
		"driver-ssh-host-key-revoked": func(t *testing.T) string {
			_, _, hostKey := newSSHKey(t)
			return sshOff(t, "@revoked * "+hostKey, "")
		},
		"driver-ssh-host-key-cert-authority": func(t *testing.T) string {
			_, _, ca := newSSHKey(t)
			return sshOff(t, "@cert-authority *.lan "+ca, "")
		},
		"driver-egress-denied": func(t *testing.T) string {
			policy := DefaultEgressPolicy()
			slot := Slot{Timeout: 5 * time.Second, HTTP: &infrav1.HTTPDriver{URL: "http://169.254.169.254/latest/meta-data/", Method: http.MethodGet}}
			return driverError(t, HTTP{Egress: &policy}, request(ActionOn, slot, fakeSecrets{}))
		},
		"driver-secret-not-labelled": func(t *testing.T) string {
			reader := ClientSecrets{Reader: fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(&corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "sa-token"},
				Data:       map[string][]byte{"username": []byte("root"), "password": []byte("Zq9xK7vW2pL4")},
			}).Build()}
			msg := redfishStatus("http://127.0.0.1:1", "sa-token", time.Second, reader)
			noSecretIn(t, msg, "Zq9xK7vW2pL4")
			return msg
		},
		"driver-secret-manager-namespace": func(t *testing.T) string {
			reader := ClientSecrets{Reader: secrets.Reader, ManagerNamespace: testNamespace}
			return redfishStatus("http://127.0.0.1:1", "bmc", time.Second, reader)
		},
		"driver-job-no-images": func(t *testing.T) string {
			return jobOn(t, JobPolicy{}, infrav1.JobDriver{Image: "busybox:1.37"})
		},
		"driver-job-image-not-listed": func(t *testing.T) string {
			return jobOn(t, JobPolicy{Images: ImagePrefixes{"registry.example/power-scripts/"}}, infrav1.JobDriver{Image: "registry.example/other/wake:1.0"})
		},
		"driver-job-service-account": func(t *testing.T) string {
			return jobOn(t, JobPolicy{Images: ImagePrefixes{"busybox:"}}, infrav1.JobDriver{Image: "busybox:1.37", ServiceAccountName: "admin"})
		},
		"driver-job-host-network": func(t *testing.T) string {
			return jobOn(t, JobPolicy{Images: ImagePrefixes{"busybox:"}}, infrav1.JobDriver{Image: "busybox:1.37", HostNetwork: true})
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

// driverError runs the call req names on d and returns its error's message; the call must fail.
func driverError(t *testing.T, d Driver, req Request) string {
	t.Helper()
	var err error
	if req.Action == ActionStatus {
		_, err = d.Status(context.Background(), req)
	} else {
		_, err = d.Do(context.Background(), req)
	}
	if err == nil {
		t.Fatal("the call succeeded")
	}
	return err.Error()
}

// jobOn runs a power-on Job of spec under policy and returns the refusal; no Job may exist after.
func jobOn(t *testing.T, policy JobPolicy, spec infrav1.JobDriver) string {
	t.Helper()
	c := jobClient()
	msg := driverError(t, JobDriver{Client: c, Policy: policy}, jobRequest(c, &spec))
	if n := len(jobs(t, c)); n != 0 {
		t.Fatalf("%d Jobs created", n)
	}
	return msg
}
