#!/bin/sh
# Runs every side-by-side benchmark (closurefs against the reference tools on
# the same ~700 MB bench closure) and prints their ratios.
set -eu
cd "$(dirname "$0")/.."
for s in scripts/bench-*.sh; do
	echo "=== $s"
	sh "$s" || echo "$s failed (exit $?)"
done
