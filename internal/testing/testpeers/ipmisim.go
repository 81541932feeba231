package testpeers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// IPMISim is OpenIPMI's BMC simulator, ipmi_sim, serving IPMI v2.0 (RMCP+, "lanplus", cipher
// suite 3) on a loopback UDP port with one admin user. Its chassis power lives in a file that a
// chassis-control script reads and writes; the script logs every call, so a test can count the
// power commands the BMC received and tell a soft shutdown from a forced power-off.
type IPMISim struct {
	// Address and Port are where the BMC listens.
	Address string
	Port    int
	// Username and Password are the credentials of its admin user.
	Username string
	Password string

	dir       string
	powerFile string
	logFile   string
}

const (
	ipmiSimUser     = "admin"
	ipmiSimPassword = "ipmi-Pa55-word" //nolint:gosec // the simulated BMC's own, loopback only
)

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

// StartIPMISim starts ipmi_sim with the chassis off and waits until ipmitool gets an answer from
// it. It fails the test when ipmi_sim or ipmitool is not installed. The simulator stops when the
// test ends.
func StartIPMISim(t testing.TB) *IPMISim {
	t.Helper()
	simBin := RequireBinary(t, "ipmi_sim")
	RequireBinary(t, "ipmitool")
	// The free port is found by binding and closing it, so another process may take it before
	// ipmi_sim binds it; then ipmi_sim exits and another port is tried.
	for range 3 {
		s := &IPMISim{Address: "127.0.0.1", Port: FreeUDPPort(t), Username: ipmiSimUser, Password: ipmiSimPassword, dir: t.TempDir()}
		s.powerFile = filepath.Join(s.dir, "power")
		s.logFile = filepath.Join(s.dir, "chassis.log")
		writeFile(t, s.powerFile, "0\n", 0o644)
		writeFile(t, filepath.Join(s.dir, "chassis.sh"), fmt.Sprintf(ipmiChassisScript, s.dir), 0o755)
		writeFile(t, filepath.Join(s.dir, "lan.conf"), fmt.Sprintf(`name "homelab-test-bmc"
set_working_mc 0x20
  startlan 1
    addr %s %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s 0x20"
  user 2 true "%s" "%s" admin 10 none md2 md5 straight
`, s.Address, s.Port, filepath.Join(s.dir, "chassis.sh"), s.Username, s.Password), 0o644)
		writeFile(t, filepath.Join(s.dir, "bmc.emu"), `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
sel_enable 0x20 50 0x0a
mc_enable 0x20
`, 0o644)
		stateDir := filepath.Join(s.dir, "state")
		if err := os.Mkdir(stateDir, 0o750); err != nil {
			t.Fatal(err)
		}
		p := StartPeer(t, simBin, "-c", filepath.Join(s.dir, "lan.conf"), "-f", filepath.Join(s.dir, "bmc.emu"), "-s", stateDir, "-n")
		answered := false
		testenv.Poll(10*time.Second, 100*time.Millisecond, func() bool {
			out, err := s.IPMITool("chassis", "power", "status")
			answered = err == nil && strings.Contains(out, "Chassis Power is")
			return answered || p.Exited()
		})
		if answered {
			// The readiness probe's "get power" is not part of what the test does.
			writeFile(t, s.logFile, "", 0o644)
			return s
		}
		if !p.Exited() {
			t.Fatalf("ipmi_sim did not answer ipmitool on %s:%d within 10s:\n%s", s.Address, s.Port, p.Out.String())
		}
	}
	t.Fatal("ipmi_sim exited three times right after starting (port taken?)")
	return nil
}

// IPMITool runs ipmitool, an independent IPMI client, against the simulator with its
// credentials and returns its combined output.
func (s *IPMISim) IPMITool(args ...string) (string, error) {
	base := []string{"-I", "lanplus", "-H", s.Address, "-p", strconv.Itoa(s.Port), "-U", s.Username, "-P", s.Password, "-C", "3", "-N", "1", "-R", "2"}
	out, err := exec.Command("ipmitool", append(base, args...)...).CombinedOutput() //nolint:gosec // the test's own arguments
	return string(out), err
}

// ReadPower is the chassis power state ipmitool reports ("chassis power status"). It is safe
// to call from any goroutine.
func (s *IPMISim) ReadPower() (infrav1.PowerState, error) {
	out, err := s.IPMITool("chassis", "power", "status")
	if err != nil {
		return infrav1.PowerUnknown, fmt.Errorf("ipmitool chassis power status: %w: %s", err, strings.TrimSpace(out))
	}
	switch {
	case strings.Contains(out, "Chassis Power is on"):
		return infrav1.PoweredOn, nil
	case strings.Contains(out, "Chassis Power is off"):
		return infrav1.PoweredOff, nil
	}
	return infrav1.PowerUnknown, fmt.Errorf("ipmitool printed no power state: %s", strings.TrimSpace(out))
}

// Power is ReadPower for the test goroutine: an error fails the test.
func (s *IPMISim) Power(t testing.TB) infrav1.PowerState {
	t.Helper()
	st, err := s.ReadPower()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// SetPower turns the simulated chassis on or off out of band, as a finger on the power button
// would: no IPMI command is sent and nothing is added to the chassis log. (To send a command,
// use IPMITool("chassis", "power", "on"); that is logged like any other client's.)
func (s *IPMISim) SetPower(t testing.TB, on bool) {
	t.Helper()
	v := "0\n"
	if on {
		v = "1\n"
	}
	writeFile(t, s.powerFile, v, 0o644)
}

// HonorSoftShutdown decides whether the simulated operating system obeys a soft shutdown
// ("chassis power soft"): when it does, the power goes off a second after the command.
func (s *IPMISim) HonorSoftShutdown(t testing.TB, honor bool) {
	t.Helper()
	path := filepath.Join(s.dir, "soft-honored")
	if honor {
		writeFile(t, path, "", 0o644)
		return
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// ChassisLog is every call of the chassis-control script since the start (or the last
// ResetChassisLog), one a line: "get power" for a status read, "set power 1" for a power-on,
// "set power 0" for a forced power-off, "set shutdown 1" for a soft shutdown.
func (s *IPMISim) ChassisLog(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(s.logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// ChassisControls is the chassis commands that changed (or asked to change) the power, in the
// order the BMC received them: the "set ..." lines of ChassisLog.
func (s *IPMISim) ChassisControls(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(s.ChassisLog(t), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "set ") {
			out = append(out, line)
		}
	}
	return out
}

// ResetChassisLog empties the chassis log.
func (s *IPMISim) ResetChassisLog(t testing.TB) {
	t.Helper()
	writeFile(t, s.logFile, "", 0o644)
}
