package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// applyWorkers bounds the writes in flight: a thousand machines make two thousand objects.
const applyWorkers = 16

// Apply creates the namespace (when missing) and the objects in the cluster. Objects that exist
// already are updated where a new run changes them, through optimistic writes: the Secrets get
// this run's credentials and the Machines this run's spec.bmc and spec.power (ports change per
// run, and the protocol may). Nothing else of an existing object is touched: its spec.online
// belongs to cluster-autoscaler and humans, and an existing Group keeps its limits and
// machineDefaults.
func Apply(ctx context.Context, c client.Client, w *optimistic.Writer, o Objects) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Group.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	if err := create(ctx, c, o.Group.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// Secrets first: a Machine's driver reads its Secret at call time.
	err := forEach(ctx, o.Secrets, func(want *corev1.Secret) error {
		return createOrUpdate(ctx, c, w, want, func(have *corev1.Secret) error {
			have.Data = want.Data
			// A Secret of an earlier version's run lacks the label the drivers require.
			if have.Labels == nil {
				have.Labels = map[string]string{}
			}
			maps.Copy(have.Labels, want.Labels)
			return nil
		})
	})
	if err != nil {
		return err
	}
	return forEach(ctx, o.Machines, func(want *infrav1.Machine) error {
		return createOrUpdate(ctx, c, w, want, func(have *infrav1.Machine) error {
			if have.Spec.Group != want.Spec.Group {
				return fmt.Errorf("existing Machine %s/%s belongs to Group %q, not %q (delete it to move it)", have.Namespace, have.Name, have.Spec.Group, want.Spec.Group)
			}
			have.Spec.BMC, have.Spec.Power = want.Spec.BMC, want.Spec.Power
			return nil
		})
	})
}

func create(ctx context.Context, c client.Client, obj client.Object) error {
	if err := c.Create(ctx, obj); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return err
		}
		return fmt.Errorf("creating %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// createOrUpdate creates want, or applies update to the existing object optimistically.
func createOrUpdate[T client.Object](ctx context.Context, c client.Client, w *optimistic.Writer, want T, update func(T) error) error {
	fresh, _ := want.DeepCopyObject().(T)
	err := create(ctx, c, fresh)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	key, _ := want.DeepCopyObject().(T)
	key.SetResourceVersion("")
	if _, err := optimistic.Update(ctx, w, key, update, optimistic.Operation("homelab-sim-apply")); err != nil {
		return fmt.Errorf("updating %T %s/%s: %w", want, want.GetNamespace(), want.GetName(), err)
	}
	return nil
}

// forEach runs do for every item, applyWorkers at a time, and returns every error.
func forEach[T any](ctx context.Context, items []T, do func(T) error) error {
	work := make(chan T)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range min(applyWorkers, len(items)) {
		wg.Go(func() {
			for item := range work {
				if err := do(item); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, item := range items {
		if ctx.Err() != nil {
			break
		}
		work <- item
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}
