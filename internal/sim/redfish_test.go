package sim_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The project's own Redfish driver powers a simulated machine on and off and reads its state;
// the Node follows after the boot and shutdown delays.
func TestRedfishDriverPowersMachine(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Labels = map[string]string{"homelab.example/rack": "r1"}
	s, objs := start(t, cfg)
	ctx := context.Background()
	m := s.Machines()[0]
	drv := power.Redfish{}

	if st, err := drv.Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status before power-on: %v, %v", st, err)
	}
	poweredAt := time.Now()
	out, err := drv.Do(ctx, request(objs, 0, power.ActionOn))
	if err != nil || !out.Done {
		t.Fatalf("power on: %+v, %v", out, err)
	}
	if st, err := drv.Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("status after power-on: %v, %v", st, err)
	}
	if env.Node(t, m.Name) != nil && time.Since(poweredAt) < cfg.BootDelay {
		t.Fatal("the Node registered before the boot delay")
	}
	testenv.Eventually(t, 10*time.Second, "the Node", func() bool { return env.Node(t, m.Name) != nil })
	if took := time.Since(poweredAt); took < cfg.BootDelay {
		t.Fatalf("the Node registered %s after power-on, before the %s boot delay", took, cfg.BootDelay)
	}
	core := env.Node(t, m.Name)
	if core.Spec.ProviderID != "homelab://"+cfg.Namespace+"/"+m.Name ||
		core.Annotations[sim.KwokNodeAnnotation] != "fake" ||
		core.Labels["homelab.example/rack"] != "r1" || core.Labels[corev1.LabelHostname] != m.Name {
		t.Fatalf("Node: providerID %q, annotations %v, labels %v", core.Spec.ProviderID, core.Annotations, core.Labels)
	}
	for name, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: "4", corev1.ResourceMemory: "16Gi", corev1.ResourcePods: "110"} {
		if q := core.Status.Capacity[name]; q.Cmp(resource.MustParse(want)) != 0 {
			t.Fatalf("capacity %s = %s, want %s", name, q.String(), want)
		}
		if q := core.Status.Allocatable[name]; q.Cmp(resource.MustParse(want)) != 0 {
			t.Fatalf("allocatable %s = %s, want %s", name, q.String(), want)
		}
	}

	// On again: the driver sees the machine on and sends nothing.
	if out, err := drv.Do(ctx, request(objs, 0, power.ActionOn)); err != nil || !strings.Contains(out.Detail, "already") {
		t.Fatalf("second power on: %+v, %v", out, err)
	}

	// Off: the driver asks for a graceful shutdown and waits until the BMC says Off, which the
	// machine reaches after the shutdown delay; no ForceOff is needed.
	offAt := time.Now()
	out, err = drv.Do(ctx, request(objs, 0, power.ActionOff))
	if err != nil || !strings.Contains(out.Detail, "gracefully") {
		t.Fatalf("power off: %+v, %v", out, err)
	}
	if took := time.Since(offAt); took < cfg.ShutdownDelay {
		t.Fatalf("off after %s, before the %s shutdown delay", took, cfg.ShutdownDelay)
	}
	testenv.Eventually(t, 5*time.Second, "the Node to go", func() bool { return env.Node(t, m.Name) == nil && m.Counters().Deregistrations == 1 })
	if st, err := drv.Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status after power-off: %v, %v", st, err)
	}

	c := m.Counters()
	if c.PowerOn != 1 || c.PowerOff != 1 || c.Commands[sim.CommandGracefulShutdown] != 1 || c.Commands[sim.CommandForceOff] != 0 ||
		c.Registrations != 1 || c.Deregistrations != 1 || len(c.History) != 2 {
		t.Fatalf("counters: %+v", c)
	}
	if other := s.Machines()[1].Counters(); other.PowerOn+other.PowerOff != 0 {
		t.Fatalf("the other machine received commands: %+v", other)
	}
}

// Sessions, basic auth and refused credentials behave as on a real BMC.
func TestRedfishAuthentication(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	s, objs := start(t, cfg)
	m := s.Machines()[0]
	base := m.Endpoint()

	get := func(path string, auth func(*http.Request)) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != nil {
			auth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	if code := get("/redfish/v1/", nil); code != http.StatusOK {
		t.Fatalf("service root without credentials: %d; it is public", code)
	}
	if code := get("/redfish/v1/Systems", nil); code != http.StatusUnauthorized {
		t.Fatalf("systems without credentials: %d", code)
	}
	if code := get("/redfish/v1/Systems/1", basic(m.Username, m.Password)); code != http.StatusOK {
		t.Fatalf("system with basic auth: %d", code)
	}
	if code := get("/redfish/v1/Systems/1", basic(m.Username, "wrong")); code != http.StatusUnauthorized {
		t.Fatalf("system with a wrong password: %d", code)
	}

	login, _ := http.NewRequest(http.MethodPost, base+"/redfish/v1/SessionService/Sessions",
		strings.NewReader(`{"UserName":"`+m.Username+`","Password":"`+m.Password+`"}`))
	resp, err := http.DefaultClient.Do(login)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	token, location := resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || token == "" || location == "" {
		t.Fatalf("login: %d, token %q, location %q", resp.StatusCode, token, location)
	}
	withToken := func(r *http.Request) { r.Header.Set("X-Auth-Token", token) }
	if code := get("/redfish/v1/Systems", withToken); code != http.StatusOK {
		t.Fatalf("systems with the session token: %d", code)
	}
	logout, _ := http.NewRequest(http.MethodDelete, base+location, nil)
	withToken(logout)
	if resp, err := http.DefaultClient.Do(logout); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}
	if code := get("/redfish/v1/Systems", withToken); code != http.StatusUnauthorized {
		t.Fatalf("systems with a logged-out token: %d", code)
	}

	// Credentials are per machine: another machine's password is refused, and the driver says
	// so without retrying with basic auth.
	req := request(objs, 0, power.ActionOn)
	req.Secrets = staticSecrets{"username": m.Username, "password": "not-" + m.Password}
	_, err = power.Redfish{}.Do(context.Background(), req)
	wantClass(t, err, power.ClassAuthFailed, "401")
	if c := m.Counters(); c.PowerOn != 0 {
		t.Fatalf("a command got through with a wrong password: %+v", c)
	}
}

// A hard power-off (ForceOff) cuts the power at once: the Node goes without waiting for a
// shutdown. An unknown ResetType is refused as Redfish says.
func TestRedfishForceOff(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.BootDelay = 100 * time.Millisecond
	cfg.ShutdownDelay = time.Hour
	s, _ := start(t, cfg)
	m := s.Machines()[0]

	reset := func(resetType string) int {
		req, _ := http.NewRequest(http.MethodPost, m.Endpoint()+"/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
			strings.NewReader(`{"ResetType":"`+resetType+`"}`))
		req.SetBasicAuth(m.Username, m.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := reset("Nmi"); code != http.StatusBadRequest {
		t.Fatalf("ResetType Nmi: %d, want 400", code)
	}
	if code := reset("On"); code != http.StatusNoContent {
		t.Fatalf("On: %d", code)
	}
	testenv.Eventually(t, 10*time.Second, "the Node", func() bool { return env.Node(t, m.Name) != nil })
	if code := reset("ForceOff"); code != http.StatusNoContent {
		t.Fatalf("ForceOff: %d", code)
	}
	if m.PoweredOn() {
		t.Fatal("still on after ForceOff")
	}
	testenv.Eventually(t, 5*time.Second, "the Node to go", func() bool { return env.Node(t, m.Name) == nil })
	if c := m.Counters(); c.PowerOn != 1 || c.PowerOff != 1 || c.Commands[sim.CommandForceOff] != 1 {
		t.Fatalf("counters: %+v", c)
	}
}

// Concurrent BMC requests are safe (run with -race) and every command is counted.
func TestRedfishConcurrentRequests(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.BootDelay = time.Hour
	s, objs := start(t, cfg)
	m := s.Machines()[0]
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 20 {
		wg.Go(func() {
			if _, err := (power.Redfish{}).Status(ctx, request(objs, 0, power.ActionStatus)); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, m.Endpoint()+"/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
				strings.NewReader(`{"ResetType":"On"}`))
			req.SetBasicAuth(m.Username, m.Password)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_ = resp.Body.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c := m.Counters(); c.PowerOn != 20 || !m.PoweredOn() || m.Phase() != "Booting" {
		t.Fatalf("after 20 concurrent power-ons: phase %s, counters %+v", m.Phase(), c)
	}
}

// staticSecrets hands the driver fixed credentials.
type staticSecrets map[string]string

func (s staticSecrets) SecretData(context.Context, string, string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for k, v := range s {
		out[k] = []byte(v)
	}
	return out, nil
}

func (s staticSecrets) SecretValue(ctx context.Context, ns, name, key string) ([]byte, error) {
	data, _ := s.SecretData(ctx, ns, name)
	return data[key], nil
}
