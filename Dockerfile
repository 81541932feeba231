# The manager image: a static build on a distroless base, running as an unprivileged user.
#   docker build -t REGISTRY/homelab-autoscaler:TAG .
# homelabctl is included, for `kubectl exec ... -- /homelabctl` checks from inside the cluster, and
# homelab-agent, which the agent DaemonSets run from this image (command /homelab-agent).
# Multi-arch with BuildKit: docker buildx build --platform linux/amd64,linux/arm64 ...
# The build stage runs on the builder's own platform and Go cross-compiles for each target, which
# is much faster than building under emulation; only the final stage is per target platform.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so a code change reuses the module download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
# BuildKit, docker build's builder, sets both from --platform (default: the builder's own).
ARG TARGETOS=linux
ARG TARGETARCH
# The release (--build-arg VERSION=1.2.3), reported by the binaries; empty for other builds.
ARG VERSION=
# Static (no cgo: distroless/static has no libc), reproducible paths, no symbol tables.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags="-s -w -X github.com/homelab-autoscaler/homelab-autoscaler/internal/version.Version=$VERSION" \
	-o /out/ ./cmd/homelab-autoscaler ./cmd/homelabctl ./cmd/homelab-agent

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/homelab-autoscaler /out/homelabctl /out/homelab-agent /
USER 65532:65532
ENTRYPOINT ["/homelab-autoscaler"]
