package perf_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// tracker watches the machines of a namespace from outside the manager, as a user would, and
// remembers when each one's state changed. Times are when the watch event arrived here.
type tracker struct {
	mu       sync.Mutex
	machines map[string]*seen
	cancel   context.CancelFunc
	done     chan struct{}
}

type seen struct {
	desired    infrav1.PowerAction
	progress   infrav1.Progress
	progressAt time.Time
	generation int64
	observed   int64
	// observedAt lists when status.observedGeneration rose, and to what.
	observedAt []genAt
	// powerObserved lists the distinct values of status.powerStateObservedAt, oldest first.
	powerObserved []time.Time
}

type genAt struct {
	gen int64
	at  time.Time
}

// track starts watching; a closed watch is reopened (its first events repeat the current state,
// which changes nothing recorded).
func track(env *testenv.Env, namespace string) *tracker {
	ctx, cancel := context.WithCancel(context.Background())
	t := &tracker{machines: map[string]*seen{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for ctx.Err() == nil {
			w, err := env.Client.Watch(ctx, &infrav1.MachineList{}, client.InNamespace(namespace))
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if n, ok := ev.Object.(*infrav1.Machine); ok && ev.Type != watch.Deleted {
					t.record(n, time.Now())
				}
			}
			w.Stop()
		}
	}()
	return t
}

func (t *tracker) stop() {
	t.cancel()
	<-t.done
}

func (t *tracker) record(n *infrav1.Machine, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.machines[n.Name]
	if s == nil {
		s = &seen{}
		t.machines[n.Name] = s
	}
	s.desired, s.generation = n.DesiredAction(), n.Generation
	if n.Status.Progress != s.progress {
		s.progress, s.progressAt = n.Status.Progress, now
	}
	if at := n.Status.PowerStateObservedAt; at != nil && (len(s.powerObserved) == 0 || at.After(s.powerObserved[len(s.powerObserved)-1])) {
		s.powerObserved = append(s.powerObserved, at.Time)
	}
	if n.Status.ObservedGeneration > s.observed {
		s.observed = n.Status.ObservedGeneration
		s.observedAt = append(s.observedAt, genAt{s.observed, now})
	}
}

// names lists the machines seen, sorted.
func (t *tracker) names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.machines))
	for n := range t.machines {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// count is how many machines match.
func (t *tracker) count(match func(*seen) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.machines {
		if match(s) {
			n++
		}
	}
	return n
}

// desiredOn lists the machines whose spec.online is true.
func (t *tracker) desiredOn() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for name, s := range t.machines {
		if s.desired == infrav1.PowerActionOn {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// latest is the last time one of the machines reached progress p; ok is false while any of
// them is elsewhere.
func (t *tracker) latest(names []string, p infrav1.Progress) (at time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		s := t.machines[n]
		if s == nil || s.progress != p {
			return time.Time{}, false
		}
		if s.progressAt.After(at) {
			at = s.progressAt
		}
	}
	return at, true
}

// observedBy is when the machine's status.observedGeneration reached gen; ok is false if it has
// not yet.
func (t *tracker) observedBy(name string, gen int64) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.machines[name]
	if s == nil {
		return time.Time{}, false
	}
	for _, g := range s.observedAt {
		if g.gen >= gen {
			return g.at, true
		}
	}
	return time.Time{}, false
}

// settled reports whether every machine's status reflects its spec and it is in progress p.
func (t *tracker) settled(p infrav1.Progress) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.machines {
		if s.progress != p || s.observed != s.generation {
			return false
		}
	}
	return true
}

// observationGaps lists, in seconds, the time between consecutive recorded power observations
// of each machine (status.powerStateObservedAt), for every pair whose later one is in [from, to).
func (t *tracker) observationGaps(from, to time.Time) []float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []float64
	for _, s := range t.machines {
		for i := 1; i < len(s.powerObserved); i++ {
			if at := s.powerObserved[i]; !at.Before(from) && at.Before(to) {
				out = append(out, at.Sub(s.powerObserved[i-1]).Seconds())
			}
		}
	}
	return out
}

// progressCount is how many machines are in progress p with their status caught up with
// their spec.
func (t *tracker) progressCount(p infrav1.Progress) int {
	return t.count(func(s *seen) bool { return s.progress == p && s.observed == s.generation })
}

// get is what was last seen of the machine.
func (t *tracker) get(name string) (seen, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.machines[name]
	if !ok {
		return seen{}, false
	}
	return *s, true
}
