package faults

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Converged lists what still differs from the desired state: a machine desired on must be
// Ready, powered on and registered Ready; one desired off must be Off, powered off and
// deregistered. A Failed machine counts as settled when it says why (allowFailed), else it is
// listed too. An empty answer means the world has settled.
func (w *World) Converged(ctx context.Context, allowFailed bool) ([]string, error) {
	list := &infrav1.MachineList{}
	if err := w.Env.Client.List(ctx, list, client.InNamespace(w.Namespace)); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range list.Items {
		m := w.Sim.Machine(n.Name)
		if m == nil {
			out = append(out, fmt.Sprintf("%s: no simulated machine", n.Name))
			continue
		}
		core := &corev1.Node{}
		err := w.Env.Client.Get(ctx, client.ObjectKey{Name: n.Name}, core)
		switch {
		case apierrors.IsNotFound(err):
			core = nil
		case err != nil:
			return nil, err
		}
		st := n.Status
		if st.Progress == infrav1.ProgressFailed {
			if !allowFailed || st.LastError == "" || st.LastErrorReason == "" {
				out = append(out, fmt.Sprintf("%s: Failed (%s: %s), desired %s", n.Name, st.LastErrorReason, st.LastError, n.DesiredAction()))
			}
			continue
		}
		if n.Status.ObservedGeneration != n.Generation {
			out = append(out, fmt.Sprintf("%s: status reflects generation %d, spec is at %d", n.Name, st.ObservedGeneration, n.Generation))
			continue
		}
		switch n.DesiredAction() {
		case infrav1.PowerActionOn:
			if st.Progress != infrav1.ProgressReady || !m.PoweredOn() || !machines.IsNodeReady(core) {
				out = append(out, fmt.Sprintf("%s: desired on; progress %q, machine %s, core Node ready %v", n.Name, st.Progress, m.Phase(), machines.IsNodeReady(core)))
			}
		default:
			if st.Progress != infrav1.ProgressOff || m.PoweredOn() || core != nil {
				out = append(out, fmt.Sprintf("%s: desired off; progress %q, machine %s, core Node present %v", n.Name, st.Progress, m.Phase(), core != nil))
			}
		}
	}
	return out, nil
}

// Settle waits until the world has converged (see Converged), up to timeout; what still
// differs then is recorded as violations.
func (w *World) Settle(ctx context.Context, timeout time.Duration, allowFailed bool) {
	var diff []string
	if testenv.Poll(timeout, 200*time.Millisecond, func() bool {
		var err error
		diff, err = w.Converged(ctx, allowFailed)
		return err == nil && len(diff) == 0
	}) {
		return
	}
	for _, d := range diff {
		w.Stats.Violation("not converged after " + timeout.String() + ": " + d)
	}
}

// CheckInvariants records, as violations, every broken invariant other than convergence:
// two power-on commands for one attempt, a target size other than the machines desired on
// (asked of every running replica), and a human edit that did not survive.
func (w *World) CheckInvariants(ctx context.Context) {
	for _, m := range w.Sim.Machines() {
		for _, v := range OnCommandsPerAttempt(m.Counters(), w.Recorder.OnAttempts(m.Name)) {
			w.Stats.Violation(m.Name + ": " + v)
		}
	}

	list := &infrav1.MachineList{}
	if err := w.Env.Client.List(ctx, list, client.InNamespace(w.Namespace)); err != nil {
		w.Stats.Violation("listing machines: " + err.Error())
		return
	}
	desiredOn := 0
	final := map[string]*infrav1.Machine{}
	for i := range list.Items {
		n := &list.Items[i]
		final[n.Name] = n
		if n.Spec.Online {
			desiredOn++
		}
	}
	for i, m := range w.Managers {
		if !m.Running() {
			continue
		}
		var target int32
		var err error
		// The replica's cache may lag the last write by a moment.
		testenv.Poll(5*time.Second, 100*time.Millisecond, func() bool {
			target, err = w.TargetSize(ctx, i)
			return err == nil && int(target) == desiredOn
		})
		if err != nil {
			w.Stats.Violation(fmt.Sprintf("%s: NodeGroupTargetSize: %v", m.Name, err))
		} else if int(target) != desiredOn {
			w.Stats.Violation(fmt.Sprintf("%s: NodeGroupTargetSize is %d, %d machines are desired on", m.Name, target, desiredOn))
		}
	}

	last := map[string]HumanEdit{}
	w.mu.Lock()
	edits := slices.Clone(w.edits)
	w.mu.Unlock()
	for _, e := range edits {
		if seen, ok := w.Recorder.SpecAt(e.Machine, e.Generation); ok && seen != e.Desired {
			w.Stats.Violation(fmt.Sprintf("%s: the human wrote %s at generation %d, the API showed %s", e.Machine, e.Desired, e.Generation, seen))
		}
		if e.Generation > last[e.Machine].Generation {
			last[e.Machine] = e
		}
	}
	for name, e := range last {
		n := final[name]
		switch {
		case n == nil:
			w.Stats.Violation(name + ": the machine is gone")
		case n.Generation < e.Generation:
			w.Stats.Violation(fmt.Sprintf("%s: generation went back from %d to %d", name, e.Generation, n.Generation))
		case n.Generation == e.Generation && n.DesiredAction() != e.Desired:
			w.Stats.Violation(fmt.Sprintf("%s: the human's last edit (%s) was lost: spec says %s", name, e.Desired, n.DesiredAction()))
		}
	}
}

// OnCommandsPerAttempt matches every power-on command a BMC received to the power-on attempt
// recorded last before it (the manager records an attempt before it calls the driver). It
// returns a finding for an attempt that got two commands and for a command no attempt
// explains. The history holds the last commands only; the total count is checked as well.
func OnCommandsPerAttempt(c sim.Counters, attempts map[time.Time]int32) []string {
	starts := make([]time.Time, 0, len(attempts))
	for t := range attempts {
		starts = append(starts, t)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	var out []string
	perAttempt := map[time.Time]int{}
	for _, r := range c.History {
		if r.Command != sim.CommandOn {
			continue
		}
		i := sort.Search(len(starts), func(i int) bool { return starts[i].After(r.At) }) - 1
		if i < 0 {
			out = append(out, fmt.Sprintf("power-on command at %s before any recorded attempt", r.At.Format(time.RFC3339Nano)))
			continue
		}
		perAttempt[starts[i]]++
		if perAttempt[starts[i]] == 2 {
			out = append(out, fmt.Sprintf("two power-on commands for attempt %d started at %s", attempts[starts[i]], starts[i].Format(time.RFC3339Nano)))
		}
	}
	if c.PowerOn > len(attempts) {
		out = append(out, fmt.Sprintf("%d power-on commands for %d recorded attempts", c.PowerOn, len(attempts)))
	}
	return out
}

// Finish settles the world, checks every invariant and counts the completed power
// operations.
func (w *World) Finish(ctx context.Context, timeout time.Duration, allowFailed bool) {
	w.Settle(ctx, timeout, allowFailed)
	w.CheckInvariants(ctx)
	names := map[infrav1.Progress]string{infrav1.ProgressReady: "power-on", infrav1.ProgressOff: "power-off", infrav1.ProgressFailed: "failed"}
	for p, n := range w.Recorder.Finished() {
		w.Stats.Op(names[p], n)
	}
}
