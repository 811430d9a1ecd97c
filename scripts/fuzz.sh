#!/bin/sh
# fuzz.sh: runs every go test -fuzz target of the module in turn, each
# for FUZZTIME (default 30s), and fails if any finds an input that
# crashes, hangs or fails its checks (Go then saves it under the
# package's testdata/fuzz/, where `go test` replays it from then on).
#
#   scripts/fuzz.sh                  every target, 30s each
#   FUZZTIME=5m scripts/fuzz.sh      longer
#   scripts/fuzz.sh ./image/erofs    the targets of some packages only
#
# Minimizing a new input is capped (FUZZMINIMIZE, default 100 runs): Go's
# default of 60 seconds per new input would spend most of a short run
# shrinking the multi-kilobyte images the image readers start from,
# with no executions counted meanwhile.
set -eu
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
minimize=${FUZZMINIMIZE:-100x}
if [ $# -eq 0 ]; then
	set -- ./...
fi
failed=""
targets=$(go list -f '{{.Dir}}' "$@" | while read -r dir; do
	grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null |
		sed "s|^func |$dir |" || true
done)
if [ -z "$targets" ]; then
	echo "fuzz.sh: no fuzz targets in $*" >&2
	exit 2
fi
echo "$targets" | {
	while read -r dir name; do
		pkg=./$(realpath --relative-to=. "$dir")
		printf '%-22s %-28s ' "$pkg" "$name"
		if out=$(go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" -parallel "${FUZZPARALLEL:-1}" 2>&1); then
			echo "ok   $(echo "$out" | grep -o 'execs: [0-9]*' | tail -1)"
		else
			echo "FAIL"
			echo "$out" | sed 's/^/    /'
			failed="$failed $pkg:$name"
		fi
	done
	if [ -n "$failed" ]; then
		echo "fuzz.sh: failures:$failed" >&2
		exit 1
	fi
}
