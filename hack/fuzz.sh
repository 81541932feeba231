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

# run_target fuzzes one target with one worker: the machine is shared, and targets with a control
# plane are bound by it. Minimizing is capped so a slow target spends its time fuzzing.
run_target() {
	local dir=$1 pkg=$2 target=$3 time=$4
	(cd "$dir" && "$bin/pkg.test" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime "$time" \
		-test.fuzzminimizetime 100x -test.parallel 1 -test.fuzzcachedir "$cache/$pkg") |
		grep -v 'gathering baseline coverage'
}
retrytime=${FUZZRETRYTIME:-30s}

start=$(date +%s)
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	pkg=$(cd "$dir" && $go list .)
	$go test -c -fuzz . -o "$bin/pkg.test" "$dir"
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | cut -d' ' -f2 | sort); do
		echo "fuzz: $pkg $target for $fuzztime"
		if ! run_target "$dir" "$pkg" "$target" "$fuzztime" >"$bin/out"; then
			cat "$bin/out"
			# A target whose worker (which starts a control plane client and a manager) did not
			# get through its corpus within a short budget on a loaded machine ends with a bare
			# "context deadline exceeded" and no failing input: that is run once more, longer. A
			# real failure writes its input to testdata/fuzz and fails at once.
			if grep -qx '    context deadline exceeded' "$bin/out" && [[ -z $(git -C "$dir" status --porcelain -- testdata/fuzz) ]]; then
				echo "fuzz: $target ran out of time before fuzzing; once more for $retrytime"
				run_target "$dir" "$pkg" "$target" "$retrytime" || { echo "fuzz: $target failed"; exit 1; }
			else
				echo "fuzz: $target failed"
				exit 1
			fi
		else
			cat "$bin/out"
		fi
	done
done
echo "fuzz: done after $(($(date +%s) - start))s"
