package cloudprovider

import (
	"context"
	"time"

	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
)

// writeContext detaches a write call from its caller's cancellation, bounded by the call
// timeout: once a decision is recorded it is applied in full even if cluster-autoscaler gives
// up waiting, rather than left for another replica to roll forward.
func (s *Server) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.opts.CallTimeout)
}

// logWrite records one write call: what was asked, what was changed, and how it ended.
func (s *Server) logWrite(method string, key types.NamespacedName, asked any, changes []ledgerChange, started time.Time, err error) {
	kv := []any{"method", method, "group", GroupID(key.Namespace, key.Name), "asked", asked,
		"machines", changeNames(changes), "duration", s.opts.Now().Sub(started).String()}
	if err != nil {
		st, _ := status.FromError(toStatus(err))
		s.opts.Logger.Info("cloud-provider write refused or failed", append(kv, "code", st.Code().String(), "error", st.Message())...)
		return
	}
	s.opts.Metrics.MachinesChanged.WithLabelValues(method).Add(float64(len(changes)))
	s.opts.Logger.Info("cloud-provider write", kv...)
}
