package sim_test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The project's IPMI driver (RMCP+ sessions, cipher suite 3) powers a simulated machine on, reads
// its chassis status, and shuts it down softly; injected faults answer "node busy".
func TestIPMIDriverPowersMachine(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Protocol = sim.ProtocolIPMI
	cfg.BMCErrors = []sim.Fault{{Index: 1, For: time.Hour}}
	s, objs := start(t, cfg)
	ctx := context.Background()
	m := s.Machines()[0]
	drv := power.IPMI{}

	if st, err := drv.Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOff {
		t.Fatalf("status before power-on: %v, %v", st, err)
	}
	if out, err := drv.Do(ctx, request(objs, 0, power.ActionOn)); err != nil || !out.Done {
		t.Fatalf("power on: %+v, %v", out, err)
	}
	testenv.Eventually(t, 10*time.Second, "the Node", func() bool { return env.Node(t, m.Name) != nil })
	if st, err := drv.Status(ctx, request(objs, 0, power.ActionStatus)); err != nil || st != infrav1.PoweredOn {
		t.Fatalf("status after power-on: %v, %v", st, err)
	}
	out, err := drv.Do(ctx, request(objs, 0, power.ActionOff))
	if err != nil || !strings.Contains(out.Detail, "shut down") {
		t.Fatalf("power off: %+v, %v", out, err)
	}
	testenv.Eventually(t, 5*time.Second, "the Node to go", func() bool { return env.Node(t, m.Name) == nil })
	if c := m.Counters(); c.PowerOn != 1 || c.PowerOff != 1 || c.Commands[sim.CommandGracefulShutdown] != 1 {
		t.Fatalf("counters: %+v", c)
	}

	_, err = drv.Status(ctx, request(objs, 1, power.ActionStatus))
	wantClass(t, err, power.ClassBMCError, "0xc0")

	req := request(objs, 0, power.ActionStatus)
	req.Secrets = staticSecrets{"username": m.Username, "password": "not-the-password"}
	_, err = drv.Status(ctx, req)
	wantClass(t, err, power.ClassAuthFailed, "refused")
}

// ipmitool, an independent IPMI implementation, talks to a simulated BMC: chassis status and
// power control over lanplus.
func TestIPMIToolTalksToBMC(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Machines = 1
	cfg.Protocol = sim.ProtocolIPMI
	cfg.BootDelay = 100 * time.Millisecond
	s := run(t, cfg)
	m := s.Machines()[0]
	host, port, err := net.SplitHostPort(m.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	ipmitool := func(args ...string) string {
		t.Helper()
		base := []string{"-I", "lanplus", "-H", host, "-p", port, "-U", m.Username, "-P", m.Password, "-C", "17", "-N", "1", "-R", "3"}
		out, err := exec.Command("ipmitool", append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ipmitool %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := ipmitool("chassis", "power", "status"); !strings.Contains(out, "Chassis Power is off") {
		t.Fatalf("power status: %s", out)
	}
	ipmitool("chassis", "power", "on")
	if out := ipmitool("chassis", "power", "status"); !strings.Contains(out, "Chassis Power is on") {
		t.Fatalf("power status after power on: %s", out)
	}
	testenv.Eventually(t, 10*time.Second, "the Node", func() bool { return env.Node(t, m.Name) != nil })
	ipmitool("chassis", "power", "off")
	testenv.Eventually(t, 5*time.Second, "the Node to go", func() bool { return env.Node(t, m.Name) == nil })
	if c := m.Counters(); c.PowerOn != 1 || c.Commands[sim.CommandForceOff] != 1 {
		t.Fatalf("counters: %+v", c)
	}
}
