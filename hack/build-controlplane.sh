#!/usr/bin/env bash
# Builds the control-plane binaries (etcd, kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl) and kwok/kwokctl from the tools modules into a
# version-keyed folder outside the work tree, so every clone on this machine reuses them.
# A cold build takes 6-15 minutes on 2 cores; a warm Go build cache relinks in seconds.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
: "${K8S_VERSION:?}" "${KWOK_VERSION:?}" "${TOOLS_BIN:?}"
minor=$(echo "$K8S_VERSION" | cut -d. -f2)

ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
	ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$TOOLS_BIN"
stamp="$TOOLS_BIN/.stamp"
want=$(cat "$root"/hack/tools/controlplane/go.{mod,sum} "$root"/hack/tools/kwok/go.{mod,sum} \
	"$root"/hack/tools/kwok/kwokstages/*.go "$0" | sha256sum | cut -d' ' -f1)
bins="etcd kube-apiserver kube-scheduler kube-controller-manager kubectl kwok kwokctl kwok-stages.yaml"
ok=1
for b in $bins; do [ -s "$TOOLS_BIN/$b" ] || ok=0; done
if [ "$ok" = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
	echo "control plane: up to date in $TOOLS_BIN"
	exit 0
fi

start=$(date +%s)
echo "control plane: building Kubernetes v$K8S_VERSION binaries into $TOOLS_BIN"
echo "control plane: a cold build takes 6-15 minutes on 2 cores; later runs reuse the result"
( cd "$root/hack/tools/controlplane" && GOBIN="$TOOLS_BIN" go install -ldflags "$ld" tool )
mv -f "$TOOLS_BIN/server" "$TOOLS_BIN/etcd"
echo "control plane: Kubernetes binaries done after $(( $(date +%s) - start ))s"

echo "control plane: building kwok v$KWOK_VERSION"
( cd "$root/hack/tools/kwok" && GOBIN="$TOOLS_BIN" go install -ldflags "-s -w" tool )
( cd "$root/hack/tools/kwok" && go run ./kwokstages ) > "$TOOLS_BIN/kwok-stages.yaml.tmp"
mv -f "$TOOLS_BIN/kwok-stages.yaml.tmp" "$TOOLS_BIN/kwok-stages.yaml"
echo "$want" > "$stamp"
echo "control plane: all binaries done after $(( $(date +%s) - start ))s"
