#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each. `go test -fuzz` takes one target per
# run and relinks the test binary every time, so each package's binary is built once,
# instrumented for fuzzing, and run once per target from the package's folder, where its corpus
# (testdata/fuzz) lives. New interesting inputs go to the cache `go test -fuzz` uses, or, with
# FUZZCACHE=fresh, to a scratch folder: a short run then spends its time on the committed corpus
# and on new inputs rather than on replaying everything earlier runs found. A failing input is
# written to the package's testdata/fuzz and fails the run.
set -euo pipefail

go=${GO:-go}
fuzztime=${FUZZTIME:-3s}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cache=${FUZZCACHE:-$($go env GOCACHE)/fuzz}
if [[ $cache == fresh ]]; then
	cache="$bin/cache"
fi

start=$(date +%s)
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	pkg=$(cd "$dir" && $go list .)
	$go test -c -fuzz . -o "$bin/pkg.test" "$dir"
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | cut -d' ' -f2 | sort); do
		echo "fuzz: $pkg $target for $fuzztime"
		# One worker: the machine is shared, and targets with a control plane are bound by it.
		# Minimizing is capped so a slow target spends its time fuzzing.
		(cd "$dir" && "$bin/pkg.test" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime "$fuzztime" \
			-test.fuzzminimizetime 100x -test.parallel 1 -test.fuzzcachedir "$cache/$pkg") |
			grep -v 'gathering baseline coverage' || { echo "fuzz: $target failed"; exit 1; }
	done
done
echo "fuzz: done after $(($(date +%s) - start))s"
