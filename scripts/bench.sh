#!/bin/sh
# Runs every side-by-side benchmark (closurefs against the reference tools on
# the same ~700 MB bench closure) and prints their ratios. Each script runs
# under the shell its first line names; the exit status is 1 if any failed.
set -eu
cd "$(dirname "$0")/.."
failed=""
for s in scripts/bench-*.sh; do
	echo "=== $s"
	shell=$(sed -n '1s/^#! *//p' "$s")
	# shellcheck disable=SC2086 # "/usr/bin/env bash" is a command and its argument
	${shell:-sh} "$s" || { echo "$s failed (exit $?)"; failed="$failed $s"; }
done
if [ -n "$failed" ]; then
	echo "failed:$failed"
	exit 1
fi
