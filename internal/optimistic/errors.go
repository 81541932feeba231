package optimistic

import (
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ConflictError is returned when every attempt of a write met a newer version of the object
// (409 Conflict). Callers map it: the gRPC server to Aborted, reconcilers to a requeue.
// It unwraps to the last conflict, so apierrors.IsConflict is true for it.
type ConflictError struct {
	// Resource is the object's group-resource, e.g. "machines.infra.homelab-autoscaler.dev".
	Resource string
	// Key is the object's namespace and name.
	Key client.ObjectKey
	// Operation names the write, e.g. "update" or "update-status".
	Operation string
	// Attempts is the number of writes made.
	Attempts int
	// ResourceVersion is the version the last attempt was based on.
	ResourceVersion string
	// Err is the last conflict error.
	Err error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %s %s: still conflicting after %d attempts (last resourceVersion %q): %v",
		e.Operation, e.Resource, e.Key, e.Attempts, e.ResourceVersion, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// IsExhausted reports whether err is (or wraps) a ConflictError.
func IsExhausted(err error) bool {
	var ce *ConflictError
	return errors.As(err, &ce)
}

// ErrScope is returned (wrapped) when a mutate function changed a part of the object that its
// write cannot carry: status in a spec write, or anything but status in a status write. Such a
// change would be silently dropped by the API server, so it is refused instead.
var ErrScope = errors.New("mutate changed a part of the object this write does not carry")
