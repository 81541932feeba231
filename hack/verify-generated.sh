#!/usr/bin/env bash
# Regenerates deepcopy code, CRDs, RBAC and the configuration reference in a scratch copy of
# the tree and fails if they differ from what is checked in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
# Copy the tracked and untracked-but-not-ignored files, as they are in the work tree.
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$tmp" 2>/dev/null || true
cd "$tmp"
make -s --no-print-directory generate manifests >/dev/null
status=0
for d in api config docs; do
	if ! diff -r -q "$root/$d" "$tmp/$d" >/dev/null; then
		echo "generated files in $d/ are out of date; run 'make generate manifests':" >&2
		diff -r -u "$root/$d" "$tmp/$d" | head -40 >&2 || true
		status=1
	fi
done
[ "$status" = 0 ] && echo "generated files: up to date"
exit "$status"
