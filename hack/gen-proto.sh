#!/usr/bin/env bash
# Generates the Go code of the cluster-autoscaler externalgrpc protocol from proto/ with Debian's
# protoc and the generators pinned in hack/tools/protoc-gen/go.mod.
#
# Usage: hack/gen-proto.sh [OUTPUT_ROOT]
# OUTPUT_ROOT defaults to the repository root; hack/verify-proto.sh passes a scratch folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
module=github.com/homelab-autoscaler/homelab-autoscaler
# The generated files name the protoc version in their header, so a different protoc makes
# verify-proto.sh report stale code: pin Debian bookworm's.
want_protoc="libprotoc 3.21.12"

if ! command -v protoc >/dev/null || [ ! -f /usr/include/google/protobuf/duration.proto ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing protoc (Debian: protobuf-compiler, libprotobuf-dev)" >&2
		apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null ||
			{ apt-get update -qq && apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null; }
	else
		echo "protoc is missing: apt-get install -y protobuf-compiler libprotobuf-dev" >&2
		exit 1
	fi
fi
have=$(protoc --version)
if [ "$have" != "$want_protoc" ]; then
	echo "protoc is '$have', want '$want_protoc' (Debian's protobuf-compiler)" >&2
	exit 1
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$root/hack/tools/protoc-gen" &&
	go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc)

mkdir -p "$out"
cd "$root/proto"
mapfile -t protos < <(find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
protoc -I . -I /usr/include \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
	--go_out="$out" --go_opt=module="$module" \
	--go-grpc_out="$out" --go-grpc_opt=module="$module" \
	"${protos[@]}"
