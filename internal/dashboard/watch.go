package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// source is one kind of object the dashboard watches: an informer fed through the user's client
// (client-go's reflector lists, watches, and lists again when a watch ends or its resourceVersion
// is gone), and the error its last list or watch ended with, which the page shows instead of
// tables that would look empty.
type source struct {
	what     string
	informer cache.SharedIndexInformer
	synced   cache.DoneChecker

	mu  sync.Mutex
	err error
}

// newSource watches the objects newList lists with opts; changed is called after every change
// of the objects or of the source's error.
func newSource(c client.WithWatch, what string, newList func() client.ObjectList, example runtime.Object, changed func(), opts ...client.ListOption) (*source, error) {
	s := &source{what: what}
	with := func(o *metav1.ListOptions) []client.ListOption {
		// The reflector pages its lists and resumes its watches through Limit, Continue and
		// ResourceVersion; controller-runtime takes Limit and Continue from its own fields.
		return append(append([]client.ListOption{}, opts...), &client.ListOptions{Raw: o, Limit: o.Limit, Continue: o.Continue})
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list := newList()
			err := c.List(ctx, list, with(&o)...)
			s.setErr(err, changed)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := c.Watch(ctx, newList(), with(&o)...)
			s.setErr(err, changed)
			return w, err
		},
	}
	s.informer = cache.NewSharedIndexInformerWithOptions(lw, example, cache.SharedIndexInformerOptions{})
	// The reflector reports through setErr; its default handler would also log to stderr.
	if err := s.informer.SetWatchErrorHandlerWithContext(func(context.Context, *cache.Reflector, error) {}); err != nil {
		return nil, fmt.Errorf("watching %s: %w", what, err)
	}
	if err := s.informer.SetTransform(dropManagedFields); err != nil {
		return nil, fmt.Errorf("watching %s: %w", what, err)
	}
	reg, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	})
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", what, err)
	}
	s.synced = reg.HasSyncedChecker()
	return s, nil
}

// run runs the informer until ctx ends; what the reflector would log is in the source's error.
func (s *source) run(ctx context.Context) {
	s.informer.RunWithContext(klog.NewContext(ctx, logr.Discard()))
}

// setErr records the outcome of a list or watch, calling changed when it differs from the last.
// A watch that ends because the dashboard stops is no error.
func (s *source) setErr(err error, changed func()) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.mu.Lock()
	before := s.err
	s.err = err
	s.mu.Unlock()
	if (before == nil) != (err == nil) || (err != nil && before.Error() != err.Error()) {
		changed()
	}
}

// problem says why the source cannot be shown, "" when it can: not readable (forbidden), or the
// error itself.
func (s *source) problem() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err == nil:
		return ""
	case apierrors.IsForbidden(s.err):
		return "not readable (forbidden)"
	default:
		return s.err.Error()
	}
}

// listed is true once the source listed its objects.
func (s *source) listed() bool { return cache.IsDone(s.synced) }

// ready is true once the source listed its objects, or failed to.
func (s *source) ready() bool { return s.listed() || s.problem() != "" }

// items are the objects the source holds now, copied, so the snapshot may keep them.
func items[T any, P interface {
	*T
	runtime.Object
}](s *source) []T {
	objs := s.informer.GetStore().List()
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(P); ok {
			out = append(out, *(p.DeepCopyObject().(P)))
		}
	}
	return out
}

// dropManagedFields keeps the informers' copies small: nothing the dashboard shows is in them.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
