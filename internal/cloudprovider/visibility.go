package cloudprovider

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/util/resourceversion"
	toolscache "k8s.io/client-go/tools/cache"
)

// kind names an informer whose progress is tracked.
type kind string

const (
	kindMachines kind = "machines"
	kindGroups   kind = "groups"
)

// visibility records, per informer and namespace, the highest resourceVersion the cache has
// delivered. Events of one watch arrive in resourceVersion order and the store is updated before
// handlers run, so once a version is recorded the cache holds that write and every earlier one of
// the namespace. Writers wait on it to read their own writes; no waiting polls.
type visibility struct {
	mu   sync.Mutex
	seen map[visKey]string
	// wake is closed (and replaced) on every recorded event, waking waiters.
	wake chan struct{}
}

type visKey struct {
	kind      kind
	namespace string
}

func newVisibility() *visibility {
	return &visibility{seen: map[visKey]string{}, wake: make(chan struct{})}
}

// advance records a delivered resourceVersion and wakes the waiters.
func (v *visibility) advance(k kind, ns, rv string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := visKey{k, ns}
	if newer(rv, v.seen[key]) {
		v.seen[key] = rv
	}
	close(v.wake)
	v.wake = make(chan struct{})
}

// wait blocks until the cache has delivered an object of kind k in namespace ns at
// resourceVersion rv or later, or ctx ends.
func (v *visibility) wait(ctx context.Context, k kind, ns, rv string) error {
	if rv == "" {
		return nil
	}
	for {
		v.mu.Lock()
		done := !newer(rv, v.seen[visKey{k, ns}])
		wake := v.wake
		v.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the cache to observe %s of %s at resourceVersion %s: %w", k, ns, rv, ctx.Err())
		}
	}
}

// handler records every event of an informer of kind k.
func (v *visibility) handler(k kind, meta func(any) (ns, rv string, ok bool)) toolscache.ResourceEventHandler {
	record := func(o any) {
		if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		if ns, rv, ok := meta(o); ok {
			v.advance(k, ns, rv)
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { record(o) },
		UpdateFunc: func(_, o any) { record(o) },
		DeleteFunc: record,
	}
}

// newer reports whether resourceVersion a is later than b (any well-formed version is later
// than ""). Malformed versions never count as newer.
func newer(a, b string) bool {
	if b == "" {
		return a != ""
	}
	c, err := resourceversion.CompareResourceVersion(a, b)
	return err == nil && c > 0
}

// maxVersion returns the later of two resourceVersions.
func maxVersion(a, b string) string {
	if newer(a, b) {
		return a
	}
	return b
}
