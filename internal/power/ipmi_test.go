package power

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const (
	ipmiUser     = "admin"
	ipmiPassword = "ipmi-Pa55-word"
)

// ipmiSim is OpenIPMI's BMC simulator, ipmi_sim, serving IPMI v2.0 on a loopback UDP port. Its
// chassis power lives in a file that a chassis-control script reads and writes; the script logs
// every call, so a test can tell a soft shutdown from a forced power-off.
type ipmiSim struct {
	port      int
	dir       string
	powerFile string
	logFile   string
}

// ipmiChassisScript is called by ipmi_sim as "chassis.sh <mc> get power" (answering power:0|1)
// and "chassis.sh <mc> set power 0|1" or "set shutdown 1" (chassis power soft). When the file
// soft-honored exists, a soft shutdown turns the power off a second later, as an operating
// system that obeys the ACPI power button would.
const ipmiChassisScript = `#!/bin/sh
DIR=%q
STATE="$DIR/power"
dev=$1; op=$2; shift 2
[ -f "$STATE" ] || echo 0 > "$STATE"
echo "$op $*" >> "$DIR/chassis.log"
case $op in
  get) for p in "$@"; do case $p in
         power) echo "power:$(cat "$STATE")";;
         boot) echo "boot:default";;
         *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  set) while [ $# -gt 0 ]; do p=$1; v=$2; shift 2
         case $p in
           power) echo "$v" > "$STATE";;
           shutdown) if [ -f "$DIR/soft-honored" ]; then (sleep 1; echo 0 > "$STATE") >/dev/null 2>&1 & fi;;
           reset|boot|identify) ;;
           *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  *) exit 1;;
esac
`

func startIPMISim(t *testing.T) *ipmiSim {
	t.Helper()
	simBin := requireBinary(t, "ipmi_sim")
	requireBinary(t, "ipmitool")
	// The free port is found by binding and closing it, so another process may take it before
	// ipmi_sim binds it; then ipmi_sim exits and another port is tried.
	for range 3 {
		s := &ipmiSim{port: freeUDPPort(t), dir: t.TempDir()}
		s.powerFile = filepath.Join(s.dir, "power")
		s.logFile = filepath.Join(s.dir, "chassis.log")
		writeFile(t, s.powerFile, "0\n", 0o644)
		writeFile(t, filepath.Join(s.dir, "chassis.sh"), fmt.Sprintf(ipmiChassisScript, s.dir), 0o755)
		writeFile(t, filepath.Join(s.dir, "lan.conf"), fmt.Sprintf(`name "homelab-test-bmc"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s 0x20"
  user 2 true "%s" "%s" admin 10 none md2 md5 straight
`, s.port, filepath.Join(s.dir, "chassis.sh"), ipmiUser, ipmiPassword), 0o644)
		writeFile(t, filepath.Join(s.dir, "bmc.emu"), `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sel_enable 0x20 50 0x0a
mc_enable 0x20
`, 0o644)
		stateDir := filepath.Join(s.dir, "state")
		if err := os.Mkdir(stateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := startPeer(t, simBin, "-c", filepath.Join(s.dir, "lan.conf"), "-f", filepath.Join(s.dir, "bmc.emu"), "-s", stateDir, "-n")
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !p.exited() {
			if out, err := s.ipmitool("chassis", "power", "status"); err == nil && strings.Contains(out, "Chassis Power is") {
				return s
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !p.exited() {
			t.Fatalf("ipmi_sim did not answer ipmitool on 127.0.0.1:%d within 10s:\n%s", s.port, p.out.String())
		}
	}
	t.Fatal("ipmi_sim exited three times right after starting (port taken?)")
	return nil
}

// ipmitool runs the independent client against the simulator.
func (s *ipmiSim) ipmitool(args ...string) (string, error) {
	base := []string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", ipmiUser, "-P", ipmiPassword, "-C", "3", "-N", "1", "-R", "2"}
	out, err := exec.Command("ipmitool", append(base, args...)...).CombinedOutput()
	return string(out), err
}

// ipmitoolPower is the power state the independent client sees.
func (s *ipmiSim) ipmitoolPower(t *testing.T) infrav1.PowerState {
	t.Helper()
	out, err := s.ipmitool("chassis", "power", "status")
	if err != nil {
		t.Fatalf("ipmitool chassis power status: %v: %s", err, out)
	}
	switch {
	case strings.Contains(out, "Chassis Power is on"):
		return infrav1.PowerOn
	case strings.Contains(out, "Chassis Power is off"):
		return infrav1.PowerOff
	}
	t.Fatalf("ipmitool printed no power state: %s", out)
	return ""
}

func (s *ipmiSim) setPower(t *testing.T, on bool) {
	t.Helper()
	v := "0\n"
	if on {
		v = "1\n"
	}
	writeFile(t, s.powerFile, v, 0o644)
}

func (s *ipmiSim) chassisLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(s.logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func (s *ipmiSim) slot(timeout time.Duration) Slot {
	return Slot{Timeout: timeout, IPMI: &infrav1.IPMIDriver{
		Address:              "127.0.0.1",
		Port:                 int32(s.port),
		CredentialsSecretRef: infrav1.SecretReference{Name: "bmc"},
		CipherSuite:          3,
	}}
}

func ipmiSecrets(password string) fakeSecrets {
	return fakeSecrets{"bmc": {"username": []byte(ipmiUser), "password": []byte(password)}}
}

func TestIPMIPowerOnOffAndStatus(t *testing.T) {
	t.Parallel()
	sim := startIPMISim(t)
	d := IPMI{}
	secrets := ipmiSecrets(ipmiPassword)
	ctx := context.Background()
	slot := sim.slot(10 * time.Second)

	st, err := d.Status(ctx, request(ActionStatus, slot, secrets))
	if err != nil || st != infrav1.PowerOff {
		t.Fatalf("status of a fresh simulator: %v, %v; want off", st, err)
	}

	out, err := d.Do(ctx, request(ActionOn, slot, secrets))
	if err != nil || !out.Done {
		t.Fatalf("power on: %+v, %v", out, err)
	}
	if got := sim.ipmitoolPower(t); got != infrav1.PowerOn {
		t.Fatalf("ipmitool sees %s after power on", got)
	}
	if st, err := d.Status(ctx, request(ActionStatus, slot, secrets)); err != nil || st != infrav1.PowerOn {
		t.Fatalf("status after power on: %v, %v", st, err)
	}

	// Powering on a machine that is on sends nothing: some BMCs answer that with an error.
	before := strings.Count(sim.chassisLog(t), "set power")
	out, err = d.Do(ctx, request(ActionOn, slot, secrets))
	if err != nil || !out.Done || !strings.Contains(out.Detail, "already on") {
		t.Fatalf("second power on: %+v, %v", out, err)
	}
	if after := strings.Count(sim.chassisLog(t), "set power"); after != before {
		t.Fatalf("a second power on sent another chassis control")
	}

	out, err = d.Do(ctx, request(ActionOff, slot, secrets))
	if err != nil || !out.Done {
		t.Fatalf("power off: %+v, %v", out, err)
	}
	if got := sim.ipmitoolPower(t); got != infrav1.PowerOff {
		t.Fatalf("ipmitool sees %s after power off", got)
	}
	if !strings.Contains(sim.chassisLog(t), "set power 0") {
		t.Fatalf("power off without gracefulShutdownTimeout must be a hard power off; chassis log:\n%s", sim.chassisLog(t))
	}
	if st, err := d.Status(ctx, request(ActionStatus, slot, secrets)); err != nil || st != infrav1.PowerOff {
		t.Fatalf("status after power off: %v, %v", st, err)
	}
}

func TestIPMIGracefulShutdown(t *testing.T) {
	t.Parallel()
	sim := startIPMISim(t)
	d := IPMI{}
	secrets := ipmiSecrets(ipmiPassword)
	ctx := context.Background()

	t.Run("operating system shuts down", func(t *testing.T) {
		sim.setPower(t, true)
		writeFile(t, filepath.Join(sim.dir, "soft-honored"), "", 0o644)
		defer func() { _ = os.Remove(filepath.Join(sim.dir, "soft-honored")) }()
		writeFile(t, sim.logFile, "", 0o644)
		slot := sim.slot(20 * time.Second)
		slot.IPMI.GracefulShutdownTimeout = duration(10 * time.Second)

		out, err := d.Do(ctx, request(ActionOff, slot, secrets))
		if err != nil || !out.Done || !strings.Contains(out.Detail, "soft") {
			t.Fatalf("graceful power off: %+v, %v", out, err)
		}
		log := sim.chassisLog(t)
		if !strings.Contains(log, "set shutdown 1") || strings.Contains(log, "set power 0") {
			t.Fatalf("want a soft shutdown and no forced power off; chassis log:\n%s", log)
		}
		if got := sim.ipmitoolPower(t); got != infrav1.PowerOff {
			t.Fatalf("ipmitool sees %s", got)
		}
	})

	t.Run("operating system ignores it", func(t *testing.T) {
		sim.setPower(t, true)
		writeFile(t, sim.logFile, "", 0o644)
		slot := sim.slot(20 * time.Second)
		slot.IPMI.GracefulShutdownTimeout = duration(1500 * time.Millisecond)

		start := time.Now()
		out, err := d.Do(ctx, request(ActionOff, slot, secrets))
		if err != nil || !out.Done {
			t.Fatalf("power off: %+v, %v", out, err)
		}
		if took := time.Since(start); took < 1500*time.Millisecond {
			t.Fatalf("forced the power off after %s, before the graceful window ended", took)
		}
		log := sim.chassisLog(t)
		if !strings.Contains(log, "set shutdown 1") || !strings.Contains(log, "set power 0") {
			t.Fatalf("want a soft shutdown, then a forced power off; chassis log:\n%s", log)
		}
		if got := sim.ipmitoolPower(t); got != infrav1.PowerOff {
			t.Fatalf("ipmitool sees %s", got)
		}
	})
}

func TestIPMICipherSuiteFallback(t *testing.T) {
	t.Parallel()
	sim := startIPMISim(t)
	// ipmi_sim refuses suite 17 ("invalid authentication algorithm"); the driver goes on to 3.
	slot := sim.slot(10 * time.Second)
	slot.IPMI.CipherSuite = 17
	start := time.Now()
	st, err := IPMI{}.Status(context.Background(), request(ActionStatus, slot, ipmiSecrets(ipmiPassword)))
	if err != nil || st != infrav1.PowerOff {
		t.Fatalf("status with suite 17 configured: %v, %v", st, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("falling back from a refused suite took %s; a refusal is an answer, not a timeout", took)
	}
}

func TestIPMIWrongPasswordIsAuthFailed(t *testing.T) {
	t.Parallel()
	sim := startIPMISim(t)
	const wrong = "not-the-Pa55word"
	start := time.Now()
	_, err := IPMI{}.Do(context.Background(), request(ActionOn, sim.slot(10*time.Second), ipmiSecrets(wrong)))
	wantClass(t, err, ClassAuthFailed, wrong, ipmiPassword)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a refused password took %s to report", took)
	}
	if got := sim.ipmitoolPower(t); got != infrav1.PowerOff {
		t.Fatalf("the machine is %s after a refused power on", got)
	}
	if _, err := (IPMI{}).Status(context.Background(), request(ActionStatus, sim.slot(10*time.Second), ipmiSecrets(wrong))); err == nil {
		t.Fatal("status with a wrong password succeeded")
	} else {
		wantClass(t, err, ClassAuthFailed, wrong)
	}
}

func TestIPMINothingListening(t *testing.T) {
	t.Parallel()
	t.Run("closed port", func(t *testing.T) {
		slot := Slot{Timeout: 3 * time.Second, IPMI: &infrav1.IPMIDriver{
			Address: "127.0.0.1", Port: int32(freeUDPPort(t)), CredentialsSecretRef: infrav1.SecretReference{Name: "bmc"},
		}}
		start := time.Now()
		_, err := IPMI{}.Do(context.Background(), request(ActionOn, slot, ipmiSecrets(ipmiPassword)))
		msg := wantClassIn(t, err, []Class{ClassUnreachable, ClassTimeout}, ipmiPassword)
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
			Address: "127.0.0.1", Port: int32(silent.LocalAddr().(*net.UDPAddr).Port), CredentialsSecretRef: infrav1.SecretReference{Name: "bmc"},
		}}
		start := time.Now()
		_, err = IPMI{}.Status(context.Background(), request(ActionStatus, slot, ipmiSecrets(ipmiPassword)))
		wantClassIn(t, err, []Class{ClassUnreachable, ClassTimeout}, ipmiPassword)
		if took := time.Since(start); took > slot.Timeout+500*time.Millisecond {
			t.Fatalf("a silent BMC held the call for %s, past the %s timeout", took, slot.Timeout)
		}
	})
}

func TestIPMIMissingCredentialsIsConfigError(t *testing.T) {
	t.Parallel()
	slot := Slot{Timeout: time.Second, IPMI: &infrav1.IPMIDriver{Address: "127.0.0.1", Port: int32(freeUDPPort(t)), CredentialsSecretRef: infrav1.SecretReference{Name: "bmc"}}}
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
