package machine

import (
	"context"
	"errors"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The step loop runs transitions while they ask for another, and never more than
// maxTransitions: two transitions that hand a machine back and forth requeue it instead of
// spinning inside one reconcile.
func TestStepLoop(t *testing.T) {
	r := &Reconciler{}
	s := &scope{node: &infrav1.Machine{}}
	boom := errors.New("boom")
	for _, c := range []struct {
		name      string
		results   []bool // the again of each transition, in turn; the last repeats
		err       error  // returned by the last transition listed
		wantCalls int
		wantErr   error
		requeue   bool
	}{
		{name: "one transition that waits", results: []bool{false}, wantCalls: 1},
		{name: "a chain that settles", results: []bool{true, true, true, false}, wantCalls: 4},
		{name: "an error ends the chain", results: []bool{true, true}, err: boom, wantCalls: 2, wantErr: boom},
		{name: "a transition that always asks again", results: []bool{true}, wantCalls: maxTransitions, requeue: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			decide := func(*scope) transition {
				return func(context.Context, *scope) (ctrl.Result, bool, error) {
					i := min(calls, len(c.results)-1)
					calls++
					if c.err != nil && calls == len(c.results) {
						return ctrl.Result{}, true, c.err // an error ends the reconcile even so
					}
					return ctrl.Result{}, c.results[i], nil
				}
			}
			res, err := r.run(context.Background(), s, decide)
			if calls != c.wantCalls || !errors.Is(err, c.wantErr) || (res.RequeueAfter > 0) != c.requeue {
				t.Fatalf("%d transitions, result %+v, error %v; want %d, requeue %v, error %v",
					calls, res, err, c.wantCalls, c.requeue, c.wantErr)
			}
		})
	}
}
