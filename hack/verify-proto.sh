#!/usr/bin/env bash
# Regenerates the protocol's Go code into a scratch folder and fails if the checked-in code
# differs (stale, or edited by hand).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/hack/gen-proto.sh" "$tmp"
status=0
while IFS= read -r -d '' f; do
	rel=${f#"$tmp"/}
	if ! diff -u "$root/$rel" "$f" >"$tmp.diff" 2>&1; then
		echo "generated $rel is out of date; run hack/gen-proto.sh:" >&2
		head -40 "$tmp.diff" >&2
		status=1
	fi
done < <(find "$tmp" -name '*.go' -print0)
rm -f "$tmp.diff"
# A generated file whose .proto was removed is stale too.
while IFS= read -r -d '' f; do
	rel=${f#"$root"/}
	if [ ! -f "$tmp/$rel" ]; then
		echo "generated $rel has no .proto any more; delete it" >&2
		status=1
	fi
done < <(find "$root/internal/cloudprovider/externalgrpc" -name '*.pb.go' -print0 2>/dev/null)
[ "$status" = 0 ] && echo "protocol code: up to date"
exit "$status"
