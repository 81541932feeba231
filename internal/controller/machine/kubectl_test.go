package machine_test

import (
	"strings"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
)

// kubectl, as users run it against the machines: `kubectl wait --for=condition=Ready` returns
// once a booting machine is Ready (and not before), and `kubectl get hlm` and `kubectl get
// homelab` list it with its state.
func TestKubectlWaitsForAReadyMachine(t *testing.T) {
	kubectl := env.Kubectl(t)
	ns := newNamespace(t)
	drv := newMachineDriver()
	drv.set(func(d *machineDriver) { d.neverUp["m1"] = true })
	startManager(t, ns, power.NewRegistry(drv))
	createGroup(t, ns, "workers")
	n := createMachine(t, ns, "m1", "workers", true)
	waitProgress(t, n, infrav1.ProgressStartingUp, 10*time.Second)

	wait := kubectl(t.Context(), "-n", ns,
		"wait", "--for=condition=Ready", "machine/m1", "--timeout=60s")
	var out strings.Builder
	wait.Stdout, wait.Stderr = &out, &out
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- wait.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("kubectl wait returned while the machine was booting (%v):\n%s", err, out.String())
	case <-time.After(2 * time.Second):
	}

	// The machine boots.
	if err := registerCoreNode(t.Context(), ns, ns+"-m1", true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil || !strings.Contains(out.String(), "machine.infra.homelab-autoscaler.dev/m1 condition met") {
			t.Fatalf("kubectl wait: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl wait did not return after the machine became Ready (progress %s):\n%s", get(t, n).Status.Progress, out.String())
	}

	for _, resource := range []string{"hlm", "homelab"} {
		got, err := kubectl(t.Context(), "-n", ns, "get", resource).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get %s: %v\n%s", resource, err, got)
		}
		var row []string
		for _, line := range strings.Split(string(got), "\n") {
			if f := strings.Fields(line); len(f) > 0 && (f[0] == "m1" || f[0] == "machine.infra.homelab-autoscaler.dev/m1") {
				row = f
			}
		}
		// NAME GROUP ONLINE POWER PROGRESS AGE
		if len(row) < 5 || row[1] != "workers" || row[2] != "true" || row[3] != "PoweredOn" || row[4] != "Ready" {
			t.Fatalf("kubectl get %s does not list m1 as an online, powered-on, Ready machine of workers:\n%s", resource, got)
		}
	}
}
