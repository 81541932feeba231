package cloudprovider

import (
	"context"

	"google.golang.org/protobuf/types/known/anypb"

	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// GPULabel is empty: the project has no notion of GPU machines, and cluster-autoscaler takes ""
// as "no GPU nodes". (It caches the first successful answer for its lifetime.)
func (s *Server) GPULabel(context.Context, *pb.GPULabelRequest) (*pb.GPULabelResponse, error) {
	return &pb.GPULabelResponse{}, nil
}

// GetAvailableGPUTypes is empty, for the same reason.
func (s *Server) GetAvailableGPUTypes(context.Context, *pb.GetAvailableGPUTypesRequest) (*pb.GetAvailableGPUTypesResponse, error) {
	return &pb.GetAvailableGPUTypesResponse{GpuTypes: map[string]*anypb.Any{}}, nil
}

// Refresh does nothing and never fails: every answer already comes from the informer cache,
// which the watch keeps current, and a Refresh error would abort cluster-autoscaler's loop.
func (s *Server) Refresh(context.Context, *pb.RefreshRequest) (*pb.RefreshResponse, error) {
	return &pb.RefreshResponse{}, nil
}

// Cleanup does nothing: cluster-autoscaler calls it when it shuts down, and the server holds
// nothing on its behalf.
func (s *Server) Cleanup(context.Context, *pb.CleanupRequest) (*pb.CleanupResponse, error) {
	return &pb.CleanupResponse{}, nil
}
