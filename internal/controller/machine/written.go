package machine

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// written keeps each machine as this reconciler last wrote it, until the cache delivers that
// version. A reconcile that starts before then (another change's event, a requeue) would decide
// on the cached copy, older than the status the reconciler itself just wrote: its write would
// conflict with that write, and its fresh read would show the status changed, which the
// optimistic writer then waits out. Under a burst of spec changes, when the apiserver's watch
// lags, that made most status writes conflict at least once. Deciding on the newer copy avoids
// it. It is only a hint: the write's resourceVersion precondition still catches whatever changed
// since, and a restart, which forgets it, only costs those conflicts again.
type written struct {
	mu   sync.Mutex
	last map[types.NamespacedName]*infrav1.Machine
}

// remember keeps m as written.
func (w *written) remember(m *infrav1.Machine) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[types.NamespacedName]*infrav1.Machine{}
	}
	w.last[types.NamespacedName{Namespace: m.Namespace, Name: m.Name}] = m.DeepCopy()
}

// fresher returns the copy to decide on: the machine as last written when the cached copy is
// older, else the cached copy (and the written one is forgotten).
func (w *written) fresher(cached *infrav1.Machine) *infrav1.Machine {
	key := types.NamespacedName{Namespace: cached.Namespace, Name: cached.Name}
	w.mu.Lock()
	defer w.mu.Unlock()
	mine, ok := w.last[key]
	if !ok {
		return cached
	}
	if c, err := resourceversion.CompareResourceVersion(mine.ResourceVersion, cached.ResourceVersion); err == nil && c > 0 && mine.UID == cached.UID {
		return mine.DeepCopy()
	}
	delete(w.last, key)
	return cached
}

// forget drops a machine that is gone.
func (w *written) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, key)
}
