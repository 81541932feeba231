# The manager image: a static build on a distroless base, running as an unprivileged user.
#   docker build -t REGISTRY/homelab-autoscaler:TAG .
# homelabctl is included, for `kubectl exec ... -- /homelabctl` checks from inside the cluster, and
# homelab-agent, which the agent DaemonSets run from this image (command /homelab-agent).
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so a code change reuses the module download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
ARG TARGETOS=linux
ARG TARGETARCH
# Static (no cgo: distroless/static has no libc), reproducible paths, no symbol tables.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/homelab-autoscaler ./cmd/homelabctl ./cmd/homelab-agent

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/homelab-autoscaler /out/homelabctl /out/homelab-agent /
USER 65532:65532
ENTRYPOINT ["/homelab-autoscaler"]
