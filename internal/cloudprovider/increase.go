package cloudprovider

import (
	"context"

	"google.golang.org/grpc/codes"

	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

const methodIncreaseSize = "NodeGroupIncreaseSize"

// NodeGroupIncreaseSize powers on delta machines of the group, all or none: it fails with
// ResourceExhausted, changing nothing, when the target would pass the group's maxSize or when
// fewer than delta machines can be powered on (desired off, not Failed, not being deleted). The
// machines are chosen by rankPowerOn. It returns once the target size shows the increase; the
// machines boot afterwards, driven by the lifecycle controller.
func (s *Server) NodeGroupIncreaseSize(ctx context.Context, req *pb.NodeGroupIncreaseSizeRequest) (*pb.NodeGroupIncreaseSizeResponse, error) {
	started := s.opts.Now()
	delta := int64(req.GetDelta())
	if delta <= 0 {
		return nil, errorf(codes.InvalidArgument, "delta must be positive, got %d", delta)
	}
	g, err := s.group(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	key := keyOf(g)
	ctx, cancel := s.writeContext(ctx)
	defer cancel()
	changes, err := s.transact(ctx, methodIncreaseSize, key, func(_ context.Context, v *view) ([]ledgerChange, error) {
		target, lim := v.size()
		if target+delta > int64(lim.Max) {
			return nil, errorf(codes.ResourceExhausted, "node group %s: target %d + %d would exceed its maxSize %d%s",
				req.GetId(), target, delta, lim.Max, v.setBy(lim))
		}
		chosen, err := v.choosePowerOns(int(delta))
		if err != nil {
			return nil, errorf(codes.ResourceExhausted, "node group %s: %v", req.GetId(), err)
		}
		return chosen, nil
	})
	s.logWrite(methodIncreaseSize, key, delta, changes, started, err)
	if err != nil {
		return nil, err
	}
	return &pb.NodeGroupIncreaseSizeResponse{}, nil
}
