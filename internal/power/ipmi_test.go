package power

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
)

// ipmiSlot is a slot that reaches sim as its BMC, with the credentials in Secret "bmc".
func ipmiSlot(sim *testpeers.IPMISim, timeout time.Duration) Slot {
	return Slot{Timeout: timeout, IPMI: &infrav1.IPMIDriver{
		Address:              sim.Address,
		Port:                 int32(sim.Port),
		CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		CipherSuite:          ptr.To[int32](3),
	}}
}

// ipmiSecrets holds the credentials Secret "bmc".
func ipmiSecrets(username, password string) fakeSecrets {
	return fakeSecrets{"bmc": {"username": []byte(username), "password": []byte(password)}}
}

// somePassword is the password of the tests that reach no BMC: it must not leak either.
const somePassword = "ipmi-Pa55-word"

func TestIPMIPowerOnOffAndStatus(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	d := IPMI{}
	secrets := ipmiSecrets(sim.Username, sim.Password)
	ctx := context.Background()
	slot := ipmiSlot(sim, 10*time.Second)

	st, err := d.Status(ctx, request(ActionStatus, slot, secrets))
	if err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status of a fresh simulator: %v, %v; want off", st, err)
	}

	out, err := d.Do(ctx, request(ActionOn, slot, secrets))
	if err != nil || !out.Done {
		t.Fatalf("power on: %+v, %v", out, err)
	}
	if got := sim.Power(t); got != infrav1.PoweredOn {
		t.Fatalf("ipmitool sees %s after power on", got)
	}
	if st, err := d.Status(ctx, request(ActionStatus, slot, secrets)); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("status after power on: %v, %v", st, err)
	}

	// Powering on a machine that is on sends nothing: some BMCs answer that with an error.
	before := strings.Count(sim.ChassisLog(t), "set power")
	out, err = d.Do(ctx, request(ActionOn, slot, secrets))
	if err != nil || !out.Done || !strings.Contains(out.Detail, "already on") {
		t.Fatalf("second power on: %+v, %v", out, err)
	}
	if after := strings.Count(sim.ChassisLog(t), "set power"); after != before {
		t.Fatalf("a second power on sent another chassis control")
	}

	out, err = d.Do(ctx, request(ActionOff, slot, secrets))
	if err != nil || !out.Done {
		t.Fatalf("power off: %+v, %v", out, err)
	}
	if got := sim.Power(t); got != infrav1.PoweredOff {
		t.Fatalf("ipmitool sees %s after power off", got)
	}
	if !strings.Contains(sim.ChassisLog(t), "set power 0") {
		t.Fatalf("power off without gracefulShutdownTimeout must be a hard power off; chassis log:\n%s", sim.ChassisLog(t))
	}
	if st, err := d.Status(ctx, request(ActionStatus, slot, secrets)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status after power off: %v, %v", st, err)
	}
}

func TestIPMIGracefulShutdown(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	d := IPMI{}
	secrets := ipmiSecrets(sim.Username, sim.Password)
	ctx := context.Background()

	t.Run("operating system shuts down", func(t *testing.T) {
		sim.SetPower(t, true)
		sim.HonorSoftShutdown(t, true)
		defer sim.HonorSoftShutdown(t, false)
		sim.ResetChassisLog(t)
		slot := ipmiSlot(sim, 20*time.Second)
		slot.IPMI.GracefulShutdownTimeout = duration(10 * time.Second)

		out, err := d.Do(ctx, request(ActionOff, slot, secrets))
		if err != nil || !out.Done || !strings.Contains(out.Detail, "soft") {
			t.Fatalf("graceful power off: %+v, %v", out, err)
		}
		log := sim.ChassisLog(t)
		if !strings.Contains(log, "set shutdown 1") || strings.Contains(log, "set power 0") {
			t.Fatalf("want a soft shutdown and no forced power off; chassis log:\n%s", log)
		}
		if got := sim.Power(t); got != infrav1.PoweredOff {
			t.Fatalf("ipmitool sees %s", got)
		}
	})

	t.Run("operating system ignores it", func(t *testing.T) {
		sim.SetPower(t, true)
		sim.ResetChassisLog(t)
		slot := ipmiSlot(sim, 20*time.Second)
		slot.IPMI.GracefulShutdownTimeout = duration(1500 * time.Millisecond)

		start := time.Now()
		out, err := d.Do(ctx, request(ActionOff, slot, secrets))
		if err != nil || !out.Done {
			t.Fatalf("power off: %+v, %v", out, err)
		}
		if took := time.Since(start); took < 1500*time.Millisecond {
			t.Fatalf("forced the power off after %s, before the graceful window ended", took)
		}
		log := sim.ChassisLog(t)
		if !strings.Contains(log, "set shutdown 1") || !strings.Contains(log, "set power 0") {
			t.Fatalf("want a soft shutdown, then a forced power off; chassis log:\n%s", log)
		}
		if got := sim.Power(t); got != infrav1.PoweredOff {
			t.Fatalf("ipmitool sees %s", got)
		}
	})
}

func TestIPMICipherSuiteFallback(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	// ipmi_sim refuses suite 17 ("invalid authentication algorithm"); the driver goes on to 3.
	slot := ipmiSlot(sim, 10*time.Second)
	slot.IPMI.CipherSuite = ptr.To[int32](17)
	start := time.Now()
	st, err := IPMI{}.Status(context.Background(), request(ActionStatus, slot, ipmiSecrets(sim.Username, sim.Password)))
	if err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status with suite 17 configured: %v, %v", st, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("falling back from a refused suite took %s; a refusal is an answer, not a timeout", took)
	}
}

func TestIPMIWrongPasswordIsAuthFailed(t *testing.T) {
	t.Parallel()
	sim := testpeers.StartIPMISim(t)
	const wrong = "not-the-Pa55word"
	start := time.Now()
	_, err := IPMI{}.Do(context.Background(), request(ActionOn, ipmiSlot(sim, 10*time.Second), ipmiSecrets(sim.Username, wrong)))
	wantClass(t, err, ClassAuthFailed, wrong, sim.Password)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a refused password took %s to report", took)
	}
	if got := sim.Power(t); got != infrav1.PoweredOff {
		t.Fatalf("the machine is %s after a refused power on", got)
	}
	if _, err := (IPMI{}).Status(context.Background(), request(ActionStatus, ipmiSlot(sim, 10*time.Second), ipmiSecrets(sim.Username, wrong))); err == nil {
		t.Fatal("status with a wrong password succeeded")
	} else {
		wantClass(t, err, ClassAuthFailed, wrong)
	}
}

func TestIPMINothingListening(t *testing.T) {
	t.Parallel()
	t.Run("closed port", func(t *testing.T) {
		slot := Slot{Timeout: 3 * time.Second, IPMI: &infrav1.IPMIDriver{
			Address: "127.0.0.1", Port: int32(freeUDPPort(t)), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		}}
		start := time.Now()
		_, err := IPMI{}.Do(context.Background(), request(ActionOn, slot, ipmiSecrets("admin", somePassword)))
		msg := wantClassIn(t, err, []Class{ClassUnreachable, ClassTimeout}, somePassword)
		if took := time.Since(start); took > slot.Timeout+500*time.Millisecond {
			t.Fatalf("took %s, past the %s timeout (%v)", took, slot.Timeout, msg)
		}
	})

	t.Run("silent BMC", func(t *testing.T) {
		// A socket that takes the datagrams and never answers, like a BMC that hangs.
		silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = silent.Close() }()
		slot := Slot{Timeout: 2 * time.Second, IPMI: &infrav1.IPMIDriver{
			Address: "127.0.0.1", Port: int32(silent.LocalAddr().(*net.UDPAddr).Port), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"},
		}}
		start := time.Now()
		_, err = IPMI{}.Status(context.Background(), request(ActionStatus, slot, ipmiSecrets("admin", somePassword)))
		wantClassIn(t, err, []Class{ClassUnreachable, ClassTimeout}, somePassword)
		if took := time.Since(start); took > slot.Timeout+500*time.Millisecond {
			t.Fatalf("a silent BMC held the call for %s, past the %s timeout", took, slot.Timeout)
		}
	})
}

func TestIPMIMissingCredentialsIsConfigError(t *testing.T) {
	t.Parallel()
	slot := Slot{Timeout: time.Second, IPMI: &infrav1.IPMIDriver{Address: "127.0.0.1", Port: int32(freeUDPPort(t)), CredentialsSecretRef: &infrav1.SecretReference{Name: "bmc"}}}
	_, err := IPMI{}.Do(context.Background(), request(ActionOn, slot, fakeSecrets{}))
	wantClass(t, err, ClassConfig)
	_, err = IPMI{}.Do(context.Background(), request(ActionOn, slot, fakeSecrets{"bmc": {"username": []byte("admin")}}))
	wantClass(t, err, ClassConfig)
}

// wantClassIn is wantClass for a result that may fairly be any of several classes.
func wantClassIn(t *testing.T, err error, classes []Class, secrets ...string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error of class %v, got none", classes)
	}
	got := ClassOf(err)
	for _, c := range classes {
		if got == c {
			return wantClass(t, err, c, secrets...)
		}
	}
	t.Fatalf("want class %v, got %s: %v", classes, got, err)
	return ""
}
