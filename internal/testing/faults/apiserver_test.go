package faults

import (
	"context"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The kube-apiserver restarts (etcd keeps the data, the port and certificates stay) in the
// middle of a scale-up: the manager, kwok and the machines reconnect by themselves, the
// machines that were starting finish, and nothing is powered on twice. It runs alone: every
// other test's clients would see the outage too.
func TestAPIServerRestartDuringScaleUp(t *testing.T) {
	kc := kubeconfig(t)
	env.StartKwok(t, kc)
	w := NewWorld(t, env, managerBin, kc, rng(400), Options{})
	ctx := context.Background()
	if _, err := w.ScaleUp(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ScaleUp(ctx, 0); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := w.Recorder.WaitFor(wctx, func(machines map[string]*infrav1.Machine) bool {
		for _, m := range machines {
			if m.Status.Progress == infrav1.ProgressStartingUp {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no machine started up: %v", err)
	}
	// Down for longer than the boot: machines register while the apiserver is away (the
	// simulator retries), and the manager sees them only after it reconnects.
	w.restartAPIServer(2 * time.Second)
	if _, err := Retry(wctx, func(ctx context.Context) (int, error) { return w.ScaleUp(ctx, 0) }); err != nil {
		t.Fatal(err)
	}
	w.Finish(ctx, 90*time.Second, NoFailures)
	t.Logf("%s\n%s", w.Namespace, w.Stats.Summary())
	report(t, w)
}
