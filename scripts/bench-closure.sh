#!/bin/bash
# bench-closure.sh: closurefs closure and NAR hashing side by side with the
# reference tools, on the bench fixture (400+ store paths, ~700 MB), printing
# median wall times over several runs and the ratios.
#
#   1. `closurefs closure --format registration ROOT` (Nix database) against
#      `nix-store -qR ROOT` followed by `nix-store --dump-db PATHS...`.
#   2. `closurefs nar-hash PATHS...` (read the store, serialise, hash, all
#      cores) against `openssl dgst -sha256` over the same NAR bytes already
#      serialised into one file (one core: the hashing limit).
#
# Usage: scripts/bench-closure.sh [RUNS]   (default 7; caches are warmed first)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
RUNS=${1:-7}

for tool in nix-store openssl go; do
	command -v "$tool" >/dev/null || { echo "bench-closure: $tool not found" >&2; exit 1; }
done

tmp=$(mktemp -d /var/tmp/bench-closure.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
go build -trimpath -o "$tmp/closurefs" ./cmd/closurefs
root=$(go run ./integration/cmd/mkfixture -size bench)
nix-store -qR "$root" | sort >"$tmp/paths"
mapfile -t paths <"$tmp/paths"
narsize=$(nix-store -q --size "${paths[@]}" | awk '{s += $1} END {print s}')

# The reference NAR file: every path's `nix-store --dump`, concatenated.
for p in "${paths[@]}"; do nix-store --dump "$p"; done >"$tmp/closure.nar"
# Warm the page cache for both sides.
cat "$tmp/closure.nar" >/dev/null
"$tmp/closurefs" nar-hash -q "${paths[@]}" >/dev/null

# measure CMD...: runs CMD $RUNS times and prints the median wall time and
# the median CPU time (user + system, children included) in seconds. CPU time
# is the fairer figure on a busy machine; wall time is what a user waits.
measure() {
	local i out=$tmp/times TIMEFORMAT='%R %U %S'
	: >"$out"
	for ((i = 0; i < RUNS; i++)); do
		{ time "$@" >/dev/null; } 2>>"$out"
	done
	local wall cpu
	wall=$(awk '{print $1}' "$out" | sort -g | awk '{t[NR] = $1} END {print t[int((NR + 1) / 2)]}')
	cpu=$(awk '{print $2 + $3}' "$out" | sort -g | awk '{t[NR] = $1} END {print t[int((NR + 1) / 2)]}')
	echo "$wall $cpu"
}

nix_registration() {
	nix-store -qR "$root" >"$tmp/qr"
	xargs nix-store --dump-db <"$tmp/qr"
}
ours_registration() { "$tmp/closurefs" closure -q --format registration "$root"; }
openssl_hash() { openssl dgst -sha256 "$tmp/closure.nar"; }
ours_hash() { "$tmp/closurefs" nar-hash -q "${paths[@]}"; }

# Sanity: the registration must hold what Nix says (every path, every hash).
ours_registration >"$tmp/reg"
if [ "$(grep -c '^sha256:' "$tmp/reg")" != "${#paths[@]}" ]; then
	echo "bench-closure: registration does not list ${#paths[@]} paths" >&2
	exit 1
fi

read -r reg_nix reg_nix_cpu < <(measure nix_registration)
read -r reg_ours reg_ours_cpu < <(measure ours_registration)
read -r hash_ref hash_ref_cpu < <(measure openssl_hash)
read -r hash_ours hash_ours_cpu < <(measure ours_hash)

echo "bench fixture: ${#paths[@]} store paths, $narsize NAR bytes; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); median of $RUNS runs"
awk -v rn="$reg_nix" -v ro="$reg_ours" -v hr="$hash_ref" -v ho="$hash_ours" \
	-v rnc="$reg_nix_cpu" -v roc="$reg_ours_cpu" -v hrc="$hash_ref_cpu" -v hoc="$hash_ours_cpu" -v bytes="$narsize" 'BEGIN {
	f = "%-42s %-5s %9.3f s %9.3f s %7.2fx\n"
	printf "%-42s %-5s %11s %11s %8s\n", "task", "time", "reference", "closurefs", "ratio"
	printf f, "registration (nix-store -qR + --dump-db)", "wall", rn, ro, rn / ro
	printf f, "", "cpu", rnc, roc, rnc / (roc > 0 ? roc : 0.001)
	printf f, "NAR SHA-256 of the closure (openssl dgst)", "wall", hr, ho, hr / ho
	printf f, "", "cpu", hrc, hoc, hrc / hoc
	printf "%-42s %-5s %7.0f MB/s %7.0f MB/s\n", "NAR hashing throughput", "wall", bytes / hr / 1e6, bytes / ho / 1e6
}'
