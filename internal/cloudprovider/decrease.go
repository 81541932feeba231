package cloudprovider

import (
	"context"

	"google.golang.org/grpc/codes"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

const methodDecreaseTargetSize = "NodeGroupDecreaseTargetSize"

// NodeGroupDecreaseTargetSize cancels -delta requested machines that have not registered a
// Node yet (booting, not started, or failed), chosen by rankCancel. It never touches a machine
// whose node registered: when fewer unregistered machines are desired on than asked, it fails
// with FailedPrecondition and changes nothing (cluster-autoscaler removes registered nodes with
// NodeGroupDeleteNodes).
func (s *Server) NodeGroupDecreaseTargetSize(ctx context.Context, req *pb.NodeGroupDecreaseTargetSizeRequest) (*pb.NodeGroupDecreaseTargetSizeResponse, error) {
	started := s.opts.Now()
	delta := int64(req.GetDelta())
	if delta >= 0 {
		return nil, errorf(codes.InvalidArgument, "delta must be negative, got %d", delta)
	}
	g, err := s.group(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	key := keyOf(g)
	ctx, cancel := s.writeContext(ctx)
	defer cancel()
	changes, err := s.transact(ctx, methodDecreaseTargetSize, key, func(ctx context.Context, v *view) ([]ledgerChange, error) {
		// The members desired on that have not registered, derived once per batch; a machine not
		// in flight is desired on exactly when its spec says so.
		unregistered, err := v.derive("unregistered-on", func() (any, error) {
			var out []*infrav1.Machine
			for _, m := range v.members() {
				if !m.Spec.Online || !m.DeletionTimestamp.IsZero() {
					continue
				}
				reg, err := s.registered(ctx, m)
				if err != nil {
					return nil, err
				}
				if !reg {
					out = append(out, m)
				}
			}
			return out, nil
		})
		if err != nil {
			return nil, err
		}
		var candidates []*infrav1.Machine
		for _, m := range unregistered.([]*infrav1.Machine) {
			if !v.inFlight(m.Name) {
				candidates = append(candidates, m)
			}
		}
		if int64(len(candidates)) < -delta {
			return nil, errorf(codes.FailedPrecondition, "node group %s: decreasing the target by %d needs as many requested machines "+
				"that have not registered, and only %d have not; registered nodes are removed with NodeGroupDeleteNodes",
				req.GetId(), -delta, len(candidates))
		}
		rankCancel(candidates)
		out := make([]ledgerChange, 0, -delta)
		for _, m := range candidates[:-delta] {
			out = append(out, ledgerChange{Name: m.Name, Generation: m.Generation, On: false})
		}
		return out, nil
	})
	s.logWrite(methodDecreaseTargetSize, key, delta, changes, started, err)
	if err != nil {
		return nil, err
	}
	return &pb.NodeGroupDecreaseTargetSizeResponse{}, nil
}
