package faults

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Recorder watches the machines of one namespace and keeps what the invariants need: every
// power-on attempt the manager recorded (by its start time), every desired power state
// (spec.online) by generation, and the transitions that finished an operation. A watch delivers every write, so
// an attempt recorded and replaced a moment later is still seen; a broken watch (an apiserver
// restart) resumes from the last resourceVersion.
type Recorder struct {
	c  client.WithWatch
	ns string

	mu      sync.Mutex
	latest  map[string]*infrav1.Machine
	changed chan struct{}
	// onAttempts: machine -> attempt start -> attempt number.
	onAttempts map[string]map[time.Time]int32
	// specs: machine -> generation -> desired action (spec.online).
	specs map[string]map[int64]infrav1.PowerAction
	// finished counts finished operations: StartingUp to Ready, ShuttingDown to Off, and any
	// change into Failed.
	finished map[infrav1.Progress]int
	// rewatches counts how often the watch had to be started again.
	rewatches int
}

// NewRecorder starts watching namespace ns until ctx ends. It returns once the first list is in.
func NewRecorder(ctx context.Context, c client.WithWatch, ns string) (*Recorder, error) {
	r := &Recorder{
		c: c, ns: ns,
		latest: map[string]*infrav1.Machine{}, changed: make(chan struct{}),
		onAttempts: map[string]map[time.Time]int32{}, specs: map[string]map[int64]infrav1.PowerAction{},
		finished: map[infrav1.Progress]int{},
	}
	rv, err := r.list(ctx)
	if err != nil {
		return nil, err
	}
	go r.run(ctx, rv)
	return r, nil
}

func (r *Recorder) list(ctx context.Context) (string, error) {
	list := &infrav1.MachineList{}
	if err := r.c.List(ctx, list, client.InNamespace(r.ns)); err != nil {
		return "", err
	}
	for i := range list.Items {
		r.observe(&list.Items[i])
	}
	return list.ResourceVersion, nil
}

// run keeps a watch open from rv, starting it again whenever it ends.
func (r *Recorder) run(ctx context.Context, rv string) {
	for ctx.Err() == nil {
		w, err := r.c.Watch(ctx, &infrav1.MachineList{}, client.InNamespace(r.ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			r.pause(ctx)
			continue
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				if n, ok := ev.Object.(*infrav1.Machine); ok {
					r.observe(n)
					rv = n.ResourceVersion
				}
			case watch.Bookmark:
				if n, ok := ev.Object.(*infrav1.Machine); ok {
					rv = n.ResourceVersion
				}
			case watch.Error:
				if status, ok := ev.Object.(*metav1.Status); ok && apierrors.IsResourceExpired(apierrors.FromObject(status)) {
					rv = "" // too old to resume: list again
				}
			}
		}
		w.Stop()
		r.mu.Lock()
		r.rewatches++
		r.mu.Unlock()
		if rv == "" {
			for ctx.Err() == nil {
				if rv, err = r.list(ctx); err == nil {
					break
				}
				r.pause(ctx)
			}
		}
		r.pause(ctx)
	}
}

func (r *Recorder) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(200 * time.Millisecond):
	}
}

func (r *Recorder) observe(n *infrav1.Machine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.latest[n.Name]
	r.latest[n.Name] = n.DeepCopy()
	if op := n.Status.Operation; op != nil && op.Action == infrav1.PowerActionOn && op.AttemptStartedAt != nil {
		if r.onAttempts[n.Name] == nil {
			r.onAttempts[n.Name] = map[time.Time]int32{}
		}
		r.onAttempts[n.Name][op.AttemptStartedAt.UTC()] = op.Attempt
	}
	if r.specs[n.Name] == nil {
		r.specs[n.Name] = map[int64]infrav1.PowerAction{}
	}
	r.specs[n.Name][n.Generation] = n.DesiredAction()
	if prev != nil {
		from, to := prev.Status.Progress, n.Status.Progress
		switch {
		case from == infrav1.ProgressStartingUp && to == infrav1.ProgressReady,
			from == infrav1.ProgressShuttingDown && to == infrav1.ProgressOff,
			from != "" && from != to && to == infrav1.ProgressFailed:
			r.finished[to]++
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Latest returns the last seen state of every machine.
func (r *Recorder) Latest() map[string]*infrav1.Machine {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*infrav1.Machine, len(r.latest))
	for k, v := range r.latest {
		out[k] = v.DeepCopy()
	}
	return out
}

// WaitFor waits until cond holds for the machines as last seen, or ctx ends.
func (r *Recorder) WaitFor(ctx context.Context, cond func(map[string]*infrav1.Machine) bool) error {
	for {
		r.mu.Lock()
		ok := cond(r.latest)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// OnAttempts returns machine's recorded power-on attempts: start time -> attempt number.
func (r *Recorder) OnAttempts(machine string) map[time.Time]int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[time.Time]int32{}
	for k, v := range r.onAttempts[machine] {
		out[k] = v
	}
	return out
}

// SpecAt returns the desired action (spec.online) seen at generation gen of machine, if seen.
func (r *Recorder) SpecAt(machine string, gen int64) (infrav1.PowerAction, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.specs[machine][gen]
	return v, ok
}

// Finished returns how many power-ons ended Ready, power-offs ended Off, and operations Failed.
func (r *Recorder) Finished() map[infrav1.Progress]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[infrav1.Progress]int{}
	for k, v := range r.finished {
		out[k] = v
	}
	return out
}
