package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

// shortSoak is the soak's length inside `go test` without -soak.
const shortSoak = 20 * time.Second

// soak drives one world of two replicas with every kind of fault at random for -soak (or
// shortSoak): cluster-autoscaler and human writes, SIGKILLs at random kill points of random
// replicas, BMC faults, machine faults (power cuts, site-wide cuts, button presses, hung kubelets
// that the group's stuckNode remediation power-cycles) and, in a long soak (which runs alone),
// kube-apiserver restarts. Every few minutes it waits for the world to settle and checks the
// invariants; at the end it prints the summary.
func soak(t *testing.T, kc string) {
	d, long := *soakFlag, *soakFlag > 0
	if !long {
		d = shortSoak
	}
	w := NewWorld(t, env, managerBin, kc, rng(300), Options{
		Machines: 6, Replicas: 2, Lease: 3 * time.Second,
		Repair: &infrav1.RepairPolicy{StuckNode: &infrav1.StuckNodeRemediation{NotReadyFor: &metav1.Duration{Duration: 10 * time.Second}}},
	})
	ctx := context.Background()
	start := time.Now()
	deadline := start.Add(d)
	const checkEvery = 3 * time.Minute
	checkpoint := start.Add(checkEvery)
	for time.Now().Before(deadline) {
		i := w.IntN(len(w.Managers))
		switch w.IntN(12) {
		case 0, 1, 2, 3:
			t.Logf("%s: %s", w.Managers[i].Name, w.RandomAction(ctx, i))
		case 4, 5:
			w.KillPoint(ctx, i)
		case 6, 7:
			m := w.Sim.Machines()[w.IntN(len(w.Sim.Machines()))]
			kind := sim.FaultKinds[w.IntN(len(sim.FaultKinds))]
			if err := w.BMCFault(m, kind, time.Duration(500+w.IntN(2500))*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			w.Stats.Fault("bmc:" + string(kind))
		case 8:
			if long {
				w.restartAPIServer(time.Duration(500+w.IntN(2500)) * time.Millisecond)
			}
		case 9:
			time.Sleep(time.Duration(w.Int64N(int64(2 * time.Second))))
		case 10, 11:
			t.Logf("%s", w.MachineFault())
		}
		w.Revive()
		time.Sleep(time.Duration(w.Int64N(int64(700 * time.Millisecond))))
		if long && time.Now().After(checkpoint) {
			w.Settle(ctx, 2*time.Minute, AnyFailures)
			w.CheckInvariants(ctx)
			fmt.Printf("soak: %s of %s\n%s", time.Since(start).Round(time.Second), d, w.Stats.Summary())
			checkpoint = time.Now().Add(checkEvery)
		}
	}
	w.Finish(ctx, 2*time.Minute, AnyFailures)
	summary := fmt.Sprintf("soak: %s, seed %d, %d machines, %d replicas\n%s", time.Since(start).Round(time.Second), seed,
		len(w.Sim.Machines()), len(w.Managers), w.Stats.Summary())
	if long {
		fmt.Print(summary)
	} else {
		t.Log(summary)
	}
	report(t, w)
}

// apiserverReconnect is how long after the kube-apiserver is back the managers may take to
// act again: client-go's watches back off before they reconnect.
const apiserverReconnect = 10 * time.Second

// restartAPIServer stops the kube-apiserver for down and starts it again (etcd keeps the data).
// Only a test that runs alone may do this. The time it is away, and the managers' reconnection,
// is an outage.
func (w *World) restartAPIServer(down time.Duration) {
	w.T.Helper()
	o := w.outageBegins(apiserverReconnect)
	if err := w.Env.RestartAPIServer(down); err != nil {
		w.T.Fatal(err)
	}
	w.outageEnds(o)
	w.mu.Lock()
	w.apiserverAway += o.to.Sub(o.from) + apiserverReconnect
	w.mu.Unlock()
	w.Stats.Fault("apiserver-restart")
}

// Revive starts again every replica whose process ended by itself, as the kubelet restarts a
// crashed container: a leader that cannot renew its Lease (the apiserver was down longer than
// the renew deadline) exits on purpose, so that it never acts without leading.
func (w *World) Revive() {
	w.T.Helper()
	for i, m := range w.Managers {
		if m.Running() {
			continue
		}
		_ = m.Kill() // reap it
		o := w.outageBegins(0)
		if err := m.Start(); err != nil {
			w.T.Fatal(err)
		}
		w.Stats.Op("replica-restarted-after-exit", 1)
		w.WaitServing(i)
		w.outageEnds(o)
	}
}
