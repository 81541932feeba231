package optimistic_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

const (
	groupsResource = "groups.infra.homelab-autoscaler.dev"
	counterKey     = "test.homelab-autoscaler.dev/counter"
)

var nameSeq atomic.Int64

// newGroup creates a Group with a unique name in the default namespace.
func newGroup(t testing.TB) *infrav1.Group {
	t.Helper()
	g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{
		Name:      fmt.Sprintf("g-%d-%d", time.Now().UnixNano()%1e6, nameSeq.Add(1)),
		Namespace: "default",
	}}
	if err := env.Client.Create(context.Background(), g); err != nil {
		t.Fatalf("creating group: %v", err)
	}
	return g
}

func newWriter(t testing.TB, c client.Client, opts ...optimistic.Option) (*optimistic.Writer, *optimistic.Metrics) {
	t.Helper()
	m := optimistic.NewMetrics()
	w, err := optimistic.New(c, env.Client, append([]optimistic.Option{optimistic.WithMetrics(m)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return w, m
}

func increment(g *infrav1.Group) error {
	n, _ := strconv.Atoi(g.Annotations[counterKey])
	if g.Annotations == nil {
		g.Annotations = map[string]string{}
	}
	g.Annotations[counterKey] = strconv.Itoa(n + 1)
	return nil
}

func TestConcurrentIncrementsAreNeverLost(t *testing.T) {
	ctx := t.Context()
	g := newGroup(t)
	w, m := newWriter(t, env.Client, optimistic.WithBackoff(optimistic.Backoff{
		Attempts: 100, Base: time.Millisecond, Cap: 50 * time.Millisecond, Factor: 2, Jitter: 1,
	}))

	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for range writers {
		wg.Go(func() {
			<-start
			// Each writer starts from the same (soon stale) copy, as if from a cache.
			obj := g.DeepCopy()
			if _, err := optimistic.Update(ctx, w, obj, increment); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("increment failed: %v", err)
	}

	got := &infrav1.Group{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations[counterKey] != strconv.Itoa(writers) {
		t.Fatalf("counter = %q, want %d", got.Annotations[counterKey], writers)
	}
	conflicts := testutil.ToFloat64(m.Conflicts.WithLabelValues(groupsResource, optimistic.OpUpdate))
	if conflicts == 0 {
		t.Fatalf("50 concurrent writers met no conflict: the precondition is not being sent")
	}
	if n := testutil.CollectAndCount(m.Retries); n != 1 {
		t.Fatalf("retries histogram has %d series, want 1", n)
	}
	t.Logf("%d writers, %v conflicts", writers, conflicts)
}

func TestSpecAndStatusWritersBothSurvive(t *testing.T) {
	ctx := t.Context()
	w, _ := newWriter(t, env.Client)
	for round := range 25 {
		g := newGroup(t)
		stale := g.DeepCopy()
		var wg sync.WaitGroup
		var specErr, statusErr error
		wg.Go(func() {
			_, specErr = optimistic.Update(ctx, w, stale.DeepCopy(), func(g *infrav1.Group) error {
				g.Spec.MinSize = int32(round + 1)
				g.Spec.MaxSize = ptr.To(int32(round + 10))
				return nil
			})
		})
		wg.Go(func() {
			_, statusErr = optimistic.UpdateStatus(ctx, w, stale.DeepCopy(), func(g *infrav1.Group) error {
				g.Status.Target = int32(round + 2)
				g.Status.ObservedGeneration = g.Generation
				return nil
			})
		})
		wg.Wait()
		if specErr != nil || statusErr != nil {
			t.Fatalf("round %d: spec write: %v, status write: %v", round, specErr, statusErr)
		}
		got := &infrav1.Group{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.MinSize != int32(round+1) || got.Status.Target != int32(round+2) {
			t.Fatalf("round %d: minSize=%d target=%d: one writer's change was lost", round, got.Spec.MinSize, got.Status.Target)
		}
	}
}

// conflictingClient answers the first n patches with 409 Conflict.
func conflictingClient(n int, patches *atomic.Int64, onPatch func()) client.Client {
	conflict := func(obj client.Object) error {
		return apierrors.NewConflict(schema.GroupResource{Group: infrav1.GroupVersion.Group, Resource: "groups"},
			obj.GetName(), errors.New("injected"))
	}
	return interceptor.NewClient(env.Client, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			k := patches.Add(1)
			if onPatch != nil {
				onPatch()
			}
			if n < 0 || k <= int64(n) {
				return conflict(obj)
			}
			return c.Patch(ctx, obj, p, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			k := patches.Add(1)
			if n < 0 || k <= int64(n) {
				return conflict(obj)
			}
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
}

var fastBackoff = optimistic.Backoff{Attempts: 5, Base: time.Millisecond, Cap: 5 * time.Millisecond, Factor: 2, Jitter: 0.5}

func TestInjectedConflictsAreRetriedUntilSuccess(t *testing.T) {
	g := newGroup(t)
	var patches atomic.Int64
	w, m := newWriter(t, conflictingClient(3, &patches, nil), optimistic.WithBackoff(fastBackoff))
	res, err := optimistic.Update(t.Context(), w, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Name: g.Name, Namespace: g.Namespace}}, increment)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 4 || res.Conflicts != 3 || patches.Load() != 4 {
		t.Fatalf("result %+v after %d patches, want 4 attempts with 3 conflicts", res, patches.Load())
	}
	if c := testutil.ToFloat64(m.Conflicts.WithLabelValues(groupsResource, optimistic.OpUpdate)); c != 3 {
		t.Fatalf("conflicts metric = %v, want 3", c)
	}

	// The status subresource is retried the same way.
	patches.Store(0)
	w, _ = newWriter(t, conflictingClient(2, &patches, nil), optimistic.WithBackoff(fastBackoff))
	res, err = optimistic.UpdateStatus(t.Context(), w, g.DeepCopy(), func(g *infrav1.Group) error { g.Status.Ready = 7; return nil })
	if err != nil || res.Attempts != 3 {
		t.Fatalf("status write: %+v, %v; want success on the third attempt", res, err)
	}
}

func TestExhaustedConflictsGiveTypedError(t *testing.T) {
	g := newGroup(t)
	var patches atomic.Int64
	w, m := newWriter(t, conflictingClient(-1, &patches, nil), optimistic.WithBackoff(fastBackoff))
	_, err := optimistic.Update(t.Context(), w, g.DeepCopy(), increment, optimistic.Operation("increase-size"))
	var ce *optimistic.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a ConflictError", err)
	}
	if ce.Attempts != fastBackoff.Attempts || ce.Key != client.ObjectKeyFromObject(g) || ce.Operation != "increase-size" ||
		ce.Resource != groupsResource || ce.ResourceVersion == "" {
		t.Fatalf("conflict error fields wrong: %+v", ce)
	}
	if !apierrors.IsConflict(err) || !optimistic.IsExhausted(err) {
		t.Fatalf("error should unwrap to a conflict and be exhausted: %v", err)
	}
	if patches.Load() != int64(fastBackoff.Attempts) {
		t.Fatalf("%d patches sent, want %d", patches.Load(), fastBackoff.Attempts)
	}
	if v := testutil.ToFloat64(m.Exhausted.WithLabelValues(groupsResource, "increase-size")); v != 1 {
		t.Fatalf("exhausted metric = %v, want 1", v)
	}
}

func TestCancelledContextStopsRetryingAtOnce(t *testing.T) {
	g := newGroup(t)
	ctx, cancel := context.WithCancel(t.Context())
	var patches atomic.Int64
	slow := optimistic.Backoff{Attempts: 10, Base: time.Hour, Cap: time.Hour, Factor: 1, Jitter: 0}
	w, _ := newWriter(t, conflictingClient(-1, &patches, cancel), optimistic.WithBackoff(slow))
	start := time.Now()
	_, err := optimistic.Update(ctx, w, g.DeepCopy(), increment)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if patches.Load() != 1 {
		t.Fatalf("%d patches after cancel, want 1", patches.Load())
	}
	if time.Since(start) > time.Minute {
		t.Fatalf("the writer slept through the cancellation")
	}
}

func TestDeadlineShorterThanBackoffGivesUpEarly(t *testing.T) {
	g := newGroup(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var patches atomic.Int64
	slow := optimistic.Backoff{Attempts: 10, Base: time.Hour, Cap: time.Hour, Factor: 1, Jitter: 0}
	w, _ := newWriter(t, conflictingClient(-1, &patches, nil), optimistic.WithBackoff(slow))
	_, err := optimistic.Update(ctx, w, g.DeepCopy(), increment)
	if !optimistic.IsExhausted(err) || patches.Load() != 1 {
		t.Fatalf("error %v after %d patches; want a conflict error after 1", err, patches.Load())
	}
}

func TestNotFoundIsNotRetried(t *testing.T) {
	var patches atomic.Int64
	w, _ := newWriter(t, conflictingClient(0, &patches, nil), optimistic.WithBackoff(fastBackoff))
	missing := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Name: "does-not-exist", Namespace: "default"}}
	_, err := optimistic.Update(t.Context(), w, missing, increment)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("error = %v, want NotFound", err)
	}
	// A stale copy of a deleted object: the patch itself answers NotFound.
	g := newGroup(t)
	if err := env.Client.Delete(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	_, err = optimistic.Update(t.Context(), w, g.DeepCopy(), increment)
	if !apierrors.IsNotFound(err) || patches.Load() != 1 {
		t.Fatalf("error = %v after %d patches, want NotFound after 1", err, patches.Load())
	}
}

func TestInvalidWriteIsNotRetried(t *testing.T) {
	g := newGroup(t)
	var patches atomic.Int64
	w, _ := newWriter(t, conflictingClient(0, &patches, nil), optimistic.WithBackoff(fastBackoff))
	_, err := optimistic.Update(t.Context(), w, g.DeepCopy(), func(g *infrav1.Group) error {
		g.Spec.MinSize = 5
		g.Spec.MaxSize = ptr.To(int32(2))
		return nil
	})
	if !apierrors.IsInvalid(err) || patches.Load() != 1 {
		t.Fatalf("error = %v after %d patches, want Invalid after 1", err, patches.Load())
	}
}

// countingConfig counts the write requests (PUT, PATCH, POST, DELETE) sent through it.
func countingConfig(writes *atomic.Int64) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet {
				writes.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	return cfg
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNoOpMutateSendsNoWrite(t *testing.T) {
	g := newGroup(t)
	var writes atomic.Int64
	c, err := client.New(countingConfig(&writes), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, m := newWriter(t, c)
	noop := func(g *infrav1.Group) error { g.Spec.MinSize = 0; return nil }
	for _, obj := range []*infrav1.Group{g.DeepCopy(), {ObjectMeta: metav1.ObjectMeta{Name: g.Name, Namespace: g.Namespace}}} {
		res, err := optimistic.Update(t.Context(), w, obj, noop)
		if err != nil || !res.Skipped {
			t.Fatalf("no-op update: %+v, %v", res, err)
		}
	}
	res, err := optimistic.UpdateStatus(t.Context(), w, g.DeepCopy(), func(g *infrav1.Group) error { g.Status.Ready = 0; return nil })
	if err != nil || !res.Skipped {
		t.Fatalf("no-op status update: %+v, %v", res, err)
	}
	if writes.Load() != 0 {
		t.Fatalf("%d write requests sent for no-op mutations", writes.Load())
	}
	if v := testutil.ToFloat64(m.Skipped.WithLabelValues(groupsResource, optimistic.OpUpdate)); v != 2 {
		t.Fatalf("skipped metric = %v, want 2", v)
	}
	// A real change is one request.
	if _, err := optimistic.Update(t.Context(), w, g.DeepCopy(), increment); err != nil || writes.Load() != 1 {
		t.Fatalf("a change sent %d requests (err %v), want 1", writes.Load(), err)
	}
}

func TestStaleNoOpVerdictIsConfirmedOnFreshRead(t *testing.T) {
	g := newGroup(t)
	w, _ := newWriter(t, env.Client)
	stale := g.DeepCopy()
	// Someone raises minSize; our stale copy still says 0.
	if _, err := optimistic.Update(t.Context(), w, g.DeepCopy(), func(g *infrav1.Group) error { g.Spec.MinSize = 3; return nil }); err != nil {
		t.Fatal(err)
	}
	// We want minSize 0: on the stale copy that looks like nothing to do, but it is not.
	res, err := optimistic.Update(t.Context(), w, stale, func(g *infrav1.Group) error { g.Spec.MinSize = 0; return nil })
	if err != nil || res.Skipped {
		t.Fatalf("stale no-op verdict was trusted: %+v, %v", res, err)
	}
	if stale.Spec.MinSize != 0 {
		t.Fatalf("written object not returned: minSize %d", stale.Spec.MinSize)
	}
}

func TestWritesStayInTheirPart(t *testing.T) {
	g := newGroup(t)
	w, _ := newWriter(t, env.Client)
	_, err := optimistic.UpdateStatus(t.Context(), w, g.DeepCopy(), func(g *infrav1.Group) error {
		g.Status.Ready = 1
		g.Spec.MinSize = 1
		return nil
	})
	if !errors.Is(err, optimistic.ErrScope) {
		t.Fatalf("status write that changed spec: %v, want ErrScope", err)
	}
	_, err = optimistic.Update(t.Context(), w, g.DeepCopy(), func(g *infrav1.Group) error {
		g.Status.Ready = 1
		return nil
	})
	if !errors.Is(err, optimistic.ErrScope) {
		t.Fatalf("spec write that changed status: %v, want ErrScope", err)
	}
	got := &infrav1.Group{}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(g), got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != g.ResourceVersion {
		t.Fatalf("a refused write changed the object")
	}
}

func TestMutateErrorAbortsWithoutWriting(t *testing.T) {
	g := newGroup(t)
	var patches atomic.Int64
	w, _ := newWriter(t, conflictingClient(0, &patches, nil))
	boom := errors.New("not enough machines")
	_, err := optimistic.Update(t.Context(), w, g.DeepCopy(), func(g *infrav1.Group) error { return boom })
	if !errors.Is(err, boom) || patches.Load() != 0 {
		t.Fatalf("error = %v after %d patches", err, patches.Load())
	}
}

// writeBefore answers the first status patch after writing the object through mutate first, so
// that the patch meets a real conflict.
func writeBefore(mutate func(*infrav1.Group)) client.Client {
	var once sync.Once
	return interceptor.NewClient(env.Client, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			var err error
			once.Do(func() {
				g := &infrav1.Group{}
				if err = env.Client.Get(ctx, client.ObjectKeyFromObject(obj), g); err != nil {
					return
				}
				mutate(g)
				if sub == "status" && g.Status.Ready != 0 {
					err = env.Client.Status().Update(ctx, g)
				} else {
					err = env.Client.Update(ctx, g)
				}
			})
			if err != nil {
				return err
			}
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
}

// A status write that meets a spec write retries at once: the backoff spaces writers of the same
// status, and a spec writer does not contend for it.
func TestStatusWriteRetriesAtOnceAfterASpecWrite(t *testing.T) {
	g := newGroup(t)
	slow := optimistic.Backoff{Attempts: 3, Base: time.Hour, Cap: time.Hour, Factor: 1, Jitter: 0}
	w, m := newWriter(t, writeBefore(func(g *infrav1.Group) { g.Spec.MinSize = 1 }), optimistic.WithBackoff(slow))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got := g.DeepCopy()
	res, err := optimistic.UpdateStatus(ctx, w, got, func(g *infrav1.Group) error {
		g.Status.ObservedGeneration = g.Generation
		return nil
	})
	if err != nil || res.Conflicts != 1 || res.Attempts != 2 {
		t.Fatalf("status write after a spec write: %+v, %v; want success on the second attempt, without waiting an hour", res, err)
	}
	if got.Status.ObservedGeneration != 2 {
		t.Fatalf("observedGeneration %d, want 2: the retry decides on the fresh copy", got.Status.ObservedGeneration)
	}
	if v := testutil.ToFloat64(m.Immediate.WithLabelValues(groupsResource, optimistic.OpUpdateStatus)); v != 1 {
		t.Fatalf("immediate retries metric = %v, want 1", v)
	}

	// Another writer of the status is waited for: here the wait is longer than the deadline, so
	// the write gives up after the one conflict.
	g = newGroup(t)
	w, m = newWriter(t, writeBefore(func(g *infrav1.Group) { g.Status.Ready = 3 }), optimistic.WithBackoff(slow))
	res, err = optimistic.UpdateStatus(ctx, w, g.DeepCopy(), func(g *infrav1.Group) error {
		g.Status.Target = 4
		return nil
	})
	if !optimistic.IsExhausted(err) || res.Attempts != 1 {
		t.Fatalf("status write after a status write: %+v, %v; want a conflict error after the one attempt", res, err)
	}
	if v := testutil.ToFloat64(m.Immediate.WithLabelValues(groupsResource, optimistic.OpUpdateStatus)); v != 0 {
		t.Fatalf("immediate retries metric = %v, want 0", v)
	}
}
