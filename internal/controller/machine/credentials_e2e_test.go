package machine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// plug is a smart plug's HTTP API that records the Authorization header of every request.
type plug struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func startPlug(t *testing.T) *plug {
	p := &plug{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		p.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *plug) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auth...)
}

// plugMachine is a Machine powered through the plug with the headers of Secret secret.
func plugMachine(t *testing.T, ns string, p *plug, secret string) *infrav1.Machine {
	slot := func(path string) *infrav1.PowerDriver {
		return &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{
			URL: p.URL + path, Method: http.MethodPost, HeadersSecretRef: &infrav1.SecretReference{Name: secret},
		}}
	}
	return createMachine(t, ns, "m1", "workers", true, func(n *infrav1.Machine) {
		n.Spec.Power = &infrav1.PowerSpec{Start: slot("/on"), Stop: slot("/off")}
	})
}

func createSecret(t *testing.T, ns, name string, labels map[string]string, data map[string]string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, StringData: data}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// expectNowhere fails when value appears in any Machine (status included) or Event of ns.
func expectNowhere(t *testing.T, ns, value string) {
	t.Helper()
	var texts []string
	machines := &infrav1.MachineList{}
	if err := env.Client.List(context.Background(), machines, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(machines)
	if err != nil {
		t.Fatal(err)
	}
	texts = append(texts, string(b))
	events := &eventsv1.EventList{}
	if err := env.Client.List(context.Background(), events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		texts = append(texts, e.Note)
	}
	for _, text := range texts {
		if strings.Contains(text, value) {
			t.Fatalf("the Secret's content appears in a Machine or an Event: %s", text)
		}
	}
}

// A Machine that points a driver at a Secret of its namespace that is not labelled as
// credentials (here one holding a token meant for something else) is refused: nothing is sent,
// the machine is Failed with a ConfigError naming the label, and the Secret's content appears in
// no status or Event. Once labelled, the same Secret works.
func TestDriversUseOnlyLabelledSecrets(t *testing.T) {
	const token = "tok-Zq9xK7vW2pL4-other-app"
	ns := newNamespace(t)
	p := startPlug(t)
	startManagerWith(t, ns, func(*app.Options) {})
	createGroup(t, ns, "workers")
	secret := createSecret(t, ns, "other-app-token", nil, map[string]string{"Authorization": "Bearer " + token})
	n := plugMachine(t, ns, p, secret.Name)

	got := waitProgress(t, n, infrav1.ProgressFailed, 20*time.Second)
	if got.Status.LastErrorReason != string(power.ClassConfig) || !strings.Contains(got.Status.LastError, infrav1.LabelCredentials) {
		t.Fatalf("status: %q %q", got.Status.LastErrorReason, got.Status.LastError)
	}
	waitEvent(t, n, "Failed")
	if r := p.requests(); len(r) != 0 {
		t.Fatalf("the plug got %d requests with an unlabelled Secret", len(r))
	}
	expectNowhere(t, ns, token)

	// Labelled, the Secret is used: a spec edit retries the machine, and the power-on carries
	// the header.
	key := client.ObjectKeyFromObject(secret)
	if err := env.Client.Get(context.Background(), key, secret); err != nil {
		t.Fatal(err)
	}
	secret.Labels = map[string]string{infrav1.LabelCredentials: "true"}
	if err := env.Client.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	setDesired(t, n, false)
	waitProgress(t, n, infrav1.ProgressOff, 20*time.Second)
	setDesired(t, n, true)
	testenv.Eventually(t, 20*time.Second, "the power-on to reach the plug with the Secret's header", func() bool {
		for _, a := range p.requests() {
			if a == "Bearer "+token {
				return true
			}
		}
		return false
	})
	expectNowhere(t, ns, token)
}

// A labelled Secret of the manager's own namespace is refused unless the manager allows it.
func TestDriversRefuseSecretsOfTheManagerNamespace(t *testing.T) {
	const token = "tok-Zq9xK7vW2pL4-manager"
	ns := newNamespace(t)
	p := startPlug(t)
	startManagerWith(t, ns, func(o *app.Options) { o.ManagerNamespace = ns })
	createGroup(t, ns, "workers")
	createSecret(t, ns, "plug", map[string]string{infrav1.LabelCredentials: "true"}, map[string]string{"Authorization": "Bearer " + token})
	n := plugMachine(t, ns, p, "plug")

	got := waitProgress(t, n, infrav1.ProgressFailed, 20*time.Second)
	if got.Status.LastErrorReason != string(power.ClassConfig) || !strings.Contains(got.Status.LastError, "--allow-manager-namespace-secrets") {
		t.Fatalf("status: %q %q", got.Status.LastErrorReason, got.Status.LastError)
	}
	if r := p.requests(); len(r) != 0 {
		t.Fatalf("the plug got %d requests", len(r))
	}
	expectNowhere(t, ns, token)
}
