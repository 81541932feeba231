// Package optimistic is the one way this project writes to the Kubernetes API.
//
// Every write applies a mutate function to a recent copy of the object and sends the result as a
// JSON merge patch that carries the object's resourceVersion, so the API server refuses it with
// 409 Conflict if anybody wrote the object in between. On a conflict the object is read fresh
// from the API server (not from a cache, which may still be behind), the mutate function is applied
// again, and the write is retried with jittered exponential backoff, bounded by Backoff.Attempts and
// by the context. There is no fallback to a write without the precondition: that would be the lost
// update this package exists to prevent.
//
// Spec (and metadata) and status are written separately, through the main resource and the
// status subresource; a mutate function that touches the other part is refused with ErrScope
// rather than having its change silently dropped. A mutate function that changes nothing sends
// nothing.
package optimistic

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Operation names used in metrics and errors when the caller names none.
const (
	OpUpdate       = "update"
	OpUpdateStatus = "update-status"
)

// Writer writes objects optimistically. It is safe for concurrent use.
type Writer struct {
	client  client.Client
	reader  client.Reader
	backoff Backoff
	metrics *Metrics
	sleep   func(context.Context, time.Duration) error
}

// Option configures a Writer.
type Option func(*Writer)

// WithBackoff sets the retry policy (default DefaultBackoff).
func WithBackoff(b Backoff) Option { return func(w *Writer) { w.backoff = b } }

// WithMetrics sets where conflicts are counted (default DefaultMetrics).
func WithMetrics(m *Metrics) Option { return func(w *Writer) { w.metrics = m } }

// New returns a Writer that writes through c and, after a conflict, reads fresh copies through
// apiReader. apiReader must read from the API server itself (a manager's GetAPIReader()), not
// from an informer cache that may not have seen the write that caused the conflict.
func New(c client.Client, apiReader client.Reader, opts ...Option) (*Writer, error) {
	w := &Writer{client: c, reader: apiReader, backoff: DefaultBackoff(), metrics: DefaultMetrics, sleep: sleepCtx}
	for _, o := range opts {
		o(w)
	}
	if err := w.backoff.Validate(); err != nil {
		return nil, fmt.Errorf("optimistic write backoff: %w", err)
	}
	return w, nil
}

// Result says how a write went.
type Result struct {
	// Attempts is the number of mutate-and-write rounds (writes sent, or 1 for a skipped write).
	Attempts int
	// Conflicts is the number of 409 answers met.
	Conflicts int
	// Skipped is true when nothing was sent because the mutate function changed nothing.
	Skipped bool
}

// CallOption tunes one call.
type CallOption func(*call)

// Operation names the write in metrics and errors (e.g. "increase-size").
func Operation(name string) CallOption { return func(c *call) { c.op = name } }

// ConfirmUnchanged makes UpdateStatus confirm a "nothing changed" verdict on a fresh read, as
// Update does, for a status with more than one writer.
func ConfirmUnchanged() CallOption { return func(c *call) { c.confirm = true } }

type call struct {
	op      string
	status  bool
	confirm bool
}

// Update applies mutate to obj's metadata and spec and writes them. obj names the object (its
// namespace and name) and receives the object as written. If obj carries a resourceVersion it is
// taken as the first base (a copy from an informer cache saves a read); otherwise obj is read
// fresh first. Because several writers share spec and metadata, a "nothing changed" verdict on a
// base the caller supplied is confirmed against a fresh read before the write is skipped.
//
// mutate may run several times, each time on a fresher copy; it must derive its change from the
// object it is given, and may return an error to abort (returned wrapped, not retried).
func Update[T client.Object](ctx context.Context, w *Writer, obj T, mutate func(T) error, opts ...CallOption) (Result, error) {
	c := call{op: OpUpdate}
	for _, o := range opts {
		o(&c)
	}
	return run(ctx, w, obj, mutate, c)
}

// UpdateStatus applies mutate to obj's status and writes it through the status subresource; see
// Update. Status has one writer (the object's reconciler), so a "nothing changed" verdict on a
// supplied base is trusted: if that base was stale, the watch event of the newer version brings the
// reconciler back.
func UpdateStatus[T client.Object](ctx context.Context, w *Writer, obj T, mutate func(T) error, opts ...CallOption) (Result, error) {
	c := call{op: OpUpdateStatus, status: true}
	for _, o := range opts {
		o(&c)
	}
	return run(ctx, w, obj, mutate, c)
}

func run[T client.Object](ctx context.Context, w *Writer, obj T, mutate func(T) error, c call) (Result, error) {
	key := client.ObjectKeyFromObject(obj)
	resource := w.resourceOf(obj)
	conflicts := w.metrics.Conflicts.WithLabelValues(resource, c.op)

	cur, ok := obj.DeepCopyObject().(T)
	if !ok {
		return Result{}, fmt.Errorf("%s %s %s: cannot copy %T", c.op, resource, key, obj)
	}
	fresh := false
	if cur.GetResourceVersion() == "" {
		cur = blank(obj)
		if err := w.reader.Get(ctx, key, cur); err != nil {
			return Result{}, fmt.Errorf("%s %s %s: reading: %w", c.op, resource, key, err)
		}
		fresh = true
	}

	res := Result{}
	var lastConflict error
	for {
		res.Attempts++
		base, _ := cur.DeepCopyObject().(T)
		if err := mutate(cur); err != nil {
			return res, fmt.Errorf("%s %s %s: %w", c.op, resource, key, err)
		}
		changed, err := changes(base, cur, c.status)
		if err != nil {
			return res, fmt.Errorf("%s %s %s: %w", c.op, resource, key, err)
		}
		if !changed {
			if !fresh && (!c.status || c.confirm) {
				// The base came from the caller and may be stale; decide on a fresh copy.
				cur = blank(obj)
				if err := w.reader.Get(ctx, key, cur); err != nil {
					return res, fmt.Errorf("%s %s %s: reading: %w", c.op, resource, key, err)
				}
				fresh = true
				res.Attempts--
				continue
			}
			w.metrics.Skipped.WithLabelValues(resource, c.op).Inc()
			res.Skipped = true
			copyInto(obj, cur)
			return res, nil
		}

		patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
		if c.status {
			err = w.client.Status().Patch(ctx, cur, patch)
		} else {
			err = w.client.Patch(ctx, cur, patch)
		}
		if err == nil {
			w.metrics.Retries.WithLabelValues(resource, c.op).Observe(float64(res.Attempts))
			copyInto(obj, cur)
			return res, nil
		}
		if !apierrors.IsConflict(err) {
			return res, fmt.Errorf("%s %s %s: %w", c.op, resource, key, err)
		}
		res.Conflicts++
		conflicts.Inc()
		lastConflict = err
		if res.Attempts >= w.backoff.Attempts {
			return res, w.exhausted(resource, key, c.op, res, base.GetResourceVersion(), lastConflict)
		}
		if c.status {
			// A status write conflicts with every write of the object, and most of them are to its
			// spec or metadata (a human, cluster-autoscaler through the cloud provider) by writers
			// that do not contend for the status: waiting would only let more of them in. The
			// backoff is for writers of the same status; when the status is as it was, the write
			// is decided again on the fresh copy at once. When it changed, this copy is dropped:
			// after the wait the write is decided on a copy read then, not on one as old as the wait.
			next := blank(obj)
			if err := w.reader.Get(ctx, key, next); err != nil {
				return res, fmt.Errorf("%s %s %s: re-reading after a conflict: %w", c.op, resource, key, err)
			}
			same, err := sameStatus(base, next)
			if err != nil {
				return res, fmt.Errorf("%s %s %s: %w", c.op, resource, key, err)
			}
			if same {
				w.metrics.Immediate.WithLabelValues(resource, c.op).Inc()
				fresh = true
				cur = next
				continue
			}
		}
		wait := w.backoff.jittered(w.backoff.Delay(res.Conflicts))
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			// The next attempt could not finish in time; give up now rather than at the deadline.
			return res, w.exhausted(resource, key, c.op, res, base.GetResourceVersion(), lastConflict)
		}
		if err := w.sleep(ctx, wait); err != nil {
			w.metrics.Retries.WithLabelValues(resource, c.op).Observe(float64(res.Attempts))
			return res, fmt.Errorf("%s %s %s: gave up after %d conflicts: %w", c.op, resource, key, res.Conflicts, err)
		}
		fresh = true
		cur = blank(obj)
		if err := w.reader.Get(ctx, key, cur); err != nil {
			return res, fmt.Errorf("%s %s %s: re-reading after a conflict: %w", c.op, resource, key, err)
		}
	}
}

func (w *Writer) exhausted(resource string, key client.ObjectKey, op string, res Result, rv string, last error) error {
	w.metrics.Exhausted.WithLabelValues(resource, op).Inc()
	w.metrics.Retries.WithLabelValues(resource, op).Observe(float64(res.Attempts))
	return &ConflictError{Resource: resource, Key: key, Operation: op, Attempts: res.Attempts, ResourceVersion: rv, Err: last}
}

// resourceOf names obj's kind for metrics: "machines.infra.homelab-autoscaler.dev", or the kind when
// the REST mapping is unknown.
func (w *Writer) resourceOf(obj client.Object) string {
	gvk, err := apiutil.GVKForObject(obj, w.client.Scheme())
	if err != nil {
		return reflect.TypeOf(obj).Elem().Name()
	}
	m, err := w.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return gvk.GroupKind().String()
	}
	return m.Resource.GroupResource().String()
}

// changes reports whether mutate changed the part of the object the write carries, and refuses a
// change to the part it does not carry.
func changes(before, after client.Object, status bool) (bool, error) {
	b, a, err := unstructuredPair(before, after)
	if err != nil {
		return false, err
	}
	bs, as := b["status"], a["status"]
	delete(b, "status")
	delete(a, "status")
	statusChanged := !equality.Semantic.DeepEqual(bs, as)
	restChanged := !equality.Semantic.DeepEqual(b, a)
	if status && restChanged {
		return false, fmt.Errorf("%w: a status write changed metadata or spec", ErrScope)
	}
	if !status && statusChanged {
		return false, fmt.Errorf("%w: a spec write changed status", ErrScope)
	}
	if status {
		return statusChanged, nil
	}
	return restChanged, nil
}

// sameStatus reports whether two versions of an object carry the same status.
func sameStatus(a, b client.Object) (bool, error) {
	ua, ub, err := unstructuredPair(a, b)
	if err != nil {
		return false, err
	}
	return equality.Semantic.DeepEqual(ua["status"], ub["status"]), nil
}

// unstructuredPair converts two objects to their unstructured form, to compare their parts.
func unstructuredPair(a, b client.Object) (ua, ub map[string]any, err error) {
	if ua, err = runtime.DefaultUnstructuredConverter.ToUnstructured(a); err != nil {
		return nil, nil, err
	}
	if ub, err = runtime.DefaultUnstructuredConverter.ToUnstructured(b); err != nil {
		return nil, nil, err
	}
	return ua, ub, nil
}

// blank returns a new empty object of obj's type to read into: decoding into a used object would
// keep fields that the fresh version no longer has.
func blank[T client.Object](obj T) T {
	n := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(T)
	if u, ok := any(n).(*unstructured.Unstructured); ok {
		u.SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
	}
	return n
}

// copyInto makes dst hold src's content (both of the same concrete pointer type).
func copyInto(dst, src client.Object) {
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src).Elem())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
