package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// settle is how long status --watch lets a burst of changes (one power-on writes a Machine
// several times) gather before it prints once.
const settle = 300 * time.Millisecond

// watchStatus runs show once the Groups and Machines of ns are watched, then again after every
// change to them, until ctx ends (Ctrl-C), which is not an error.
func watchStatus(ctx context.Context, env *Env, c client.WithWatch, ns, output string, show func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan struct{}, 1)
	ready := make(chan struct{}, 2)
	failed := make(chan error, 2)
	for _, list := range []func() client.ObjectList{
		func() client.ObjectList { return &infrav1.GroupList{} },
		func() client.ObjectList { return &infrav1.MachineList{} },
	} {
		go func() {
			if err := follow(ctx, c, ns, list, ready, changed); err != nil && ctx.Err() == nil {
				failed <- err
			}
		}()
	}
	for range 2 {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case <-ready:
		}
	}
	for {
		switch output {
		case "yaml":
			fmt.Fprintln(env.Out, "---")
		case "table", "wide":
			fmt.Fprintf(env.Out, "# %s\n", time.Now().Format(time.RFC3339))
		}
		if err := show(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case <-changed:
		}
		t := time.NewTimer(settle)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		select {
		case <-changed:
		default:
		}
	}
}

// follow lists the objects of ns, says it is ready, and watches them from that list on, marking
// changed at every event, until ctx ends (its error is then ctx's). A watch the apiserver closes is resumed from the last version seen;
// when that version is too old (410 Gone), it lists again and counts that as a change.
func follow(ctx context.Context, c client.WithWatch, ns string, newList func() client.ObjectList, ready, changed chan<- struct{}) error {
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	relist := func() (string, error) {
		l := newList()
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			return "", fmt.Errorf("listing %T: %w", l, err)
		}
		acc, err := meta.ListAccessor(l)
		if err != nil {
			return "", err
		}
		return acc.GetResourceVersion(), nil
	}
	rv, err := relist()
	if err != nil {
		return err
	}
	ready <- struct{}{}
	for {
		w, err := c.Watch(ctx, newList(), client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
				return fmt.Errorf("watching: %w", err)
			}
			if rv, err = relist(); err != nil {
				return err
			}
			notify()
			continue
		}
		rv, err = drain(ctx, w, rv, notify)
		w.Stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errExpired) {
			if rv, err = relist(); err != nil {
				return err
			}
			notify()
		} else if err != nil {
			return err
		}
	}
}

var errExpired = errors.New("the watch's resource version expired")

// drain reads w until it ends, returning the last resource version seen.
func drain(ctx context.Context, w watch.Interface, rv string, notify func()) (string, error) {
	for {
		select {
		case <-ctx.Done():
			return rv, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, nil
			}
			if ev.Type == watch.Error {
				if st, ok := ev.Object.(*metav1.Status); ok && (st.Code == http.StatusGone || st.Reason == metav1.StatusReasonExpired) {
					return rv, errExpired
				}
				return rv, fmt.Errorf("watching: %w", apierrors.FromObject(ev.Object))
			}
			if acc, err := meta.Accessor(ev.Object); err == nil && acc.GetResourceVersion() != "" {
				rv = acc.GetResourceVersion()
			}
			if ev.Type != watch.Bookmark {
				notify()
			}
		}
	}
}
