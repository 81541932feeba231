// Tools module: pinned protobuf code generators for the cluster-autoscaler externalgrpc service
// (hack/gen-proto.sh runs them with Debian's protoc).
module github.com/homelab-autoscaler/homelab-autoscaler/hack/tools/protoc-gen

go 1.26.0

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
