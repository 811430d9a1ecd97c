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

# median CMD...: runs CMD $RUNS times, prints the median wall time in seconds.
median() {
	local times=() i t0 t1
	for ((i = 0; i < RUNS; i++)); do
		t0=$EPOCHREALTIME
		"$@" >/dev/null
		t1=$EPOCHREALTIME
		times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f", b - a}')")
	done
	printf '%s\n' "${times[@]}" | sort -g | awk '{t[NR] = $1} END {print t[int((NR + 1) / 2)]}'
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

reg_nix=$(median nix_registration)
reg_ours=$(median ours_registration)
hash_ref=$(median openssl_hash)
hash_ours=$(median ours_hash)

echo "bench fixture: ${#paths[@]} store paths, $narsize NAR bytes; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); median of $RUNS runs"
awk -v rn="$reg_nix" -v ro="$reg_ours" -v hr="$hash_ref" -v ho="$hash_ours" -v bytes="$narsize" 'BEGIN {
	printf "%-44s %12s %12s %8s\n", "task", "reference", "closurefs", "ratio"
	printf "%-44s %10.3f s %10.3f s %7.2fx\n", "registration (nix-store -qR + --dump-db)", rn, ro, rn / ro
	printf "%-44s %10.3f s %10.3f s %7.2fx\n", "NAR SHA-256 of the closure (openssl dgst)", hr, ho, hr / ho
	printf "%-44s %8.0f MB/s %8.0f MB/s\n", "NAR hashing throughput", bytes / hr / 1e6, bytes / ho / 1e6
}'
