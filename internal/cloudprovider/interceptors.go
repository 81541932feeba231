package cloudprovider

import (
	"context"
	"fmt"
	"path"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// unary wraps every call: a deadline of at most CallTimeout, errors mapped to meaningful gRPC
// codes (never Unknown), a panic turned into Internal instead of killing the manager, and the
// call metrics.
func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	method := path.Base(info.FullMethod)
	started := s.opts.Now()
	inFlight := s.opts.Metrics.InFlight.WithLabelValues(method)
	inFlight.Inc()
	defer func() {
		if r := recover(); r != nil {
			s.opts.Logger.Error(fmt.Errorf("panic: %v", r), "cloud-provider call panicked", "method", method, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("internal error answering %s", method)
		}
		err = toStatus(err)
		code := status.Code(err).String()
		inFlight.Dec()
		s.opts.Metrics.Requests.WithLabelValues(method, code).Inc()
		s.opts.Metrics.Duration.WithLabelValues(method, code).Observe(s.opts.Now().Sub(started).Seconds())
	}()
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	return handler(ctx, req)
}
