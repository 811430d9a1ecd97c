#!/usr/bin/env bash
# bench-erofs.sh: closurefs snapshot -t erofs side by side with mkfs.erofs on
# the bench fixture closure, same settings, one run. Prints wall time, peak
# memory, image size and the ratios closurefs/mkfs.erofs.
#
#   scripts/bench-erofs.sh [ROOT]      (default: the bench fixture's root)
#   MKFS=/path/to/mkfs.erofs           (default: mkfs.erofs on PATH)
#   JOBS=N                             (closurefs -j, default all CPUs)
set -euo pipefail
cd "$(dirname "$0")/.."

root=${1:-}
if [ -z "$root" ]; then
	root=$(go run ./integration/cmd/mkfixture -size bench -json | sed -n 's/.*"root": "\(.*\)".*/\1/p' | head -1)
fi
mkfs=${MKFS:-mkfs.erofs}
jobs=${JOBS:-0}
work=$(mktemp -d /var/tmp/bench-erofs.XXXXXX)
trap 'rm -rf "$work"' EXIT

go build -o "$work/closurefs" ./cmd/closurefs

# mkfs.erofs needs the closure staged in one directory (what nixpkgs does).
mkdir -p "$work/stage"
nix-store -qR "$root" | xargs cp -a -t "$work/stage"
paths=$(nix-store -qR "$root" | wc -l)
bytes=$(du -sb --apparent-size "$work/stage" | cut -f1)
echo "closure: $root"
echo "  $paths store paths, $((bytes / 1048576)) MiB apparent; $(nproc) CPUs; mkfs.erofs $(dpkg-query -W -f '${Version}' erofs-utils 2>/dev/null || echo "?")"
echo

# measure NAME CMD...: runs CMD, prints seconds and peak RSS (MiB).
measure() {
	local out=$work/time.$1
	shift
	/usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
	read -r secs kb <"$out"
	echo "$secs $((kb / 1024))"
}

printf '%-34s %9s %9s %8s %12s %8s %8s\n' settings tool seconds peakMiB bytes t-ratio s-ratio
run() {
	local name=$1 mk=$2 cf=$3
	read -r ms mm < <(measure mkfs $mkfs $mk "$work/mkfs.img" "$work/stage")
	read -r cs cm < <(measure cf "$work/closurefs" snapshot -q -j "$jobs" $cf -o "$work/cf.img" "$root")
	local msz csz
	msz=$(stat -c %s "$work/mkfs.img")
	csz=$(stat -c %s "$work/cf.img")
	printf '%-34s %9s %9s %8s %12s\n' "$name" mkfs.erofs "$ms" "$mm" "$msz"
	printf '%-34s %9s %9s %8s %12s %8.3f %8.4f\n' "" closurefs "$cs" "$cm" "$csz" \
		"$(echo "$cs / $ms" | bc -l)" "$(echo "$csz / $msz" | bc -l)"
	rm -f "$work/mkfs.img" "$work/cf.img"
}

# Debian's mkfs.erofs 1.5 has no -L: the label is closurefs-only.
common="-T 0 --all-root"
run "uncompressed" "$common" "-T 0 --all-root -L nix-store"
run "-zlz4hc" "-zlz4hc $common" "-zlz4hc -T 0 --all-root -L nix-store"
# microvm.nix uses -zlz4hc -Eztailpacking -Efragments; Debian's mkfs.erofs 1.5
# and closurefs both lack fragments, so both run without it.
run "-zlz4hc -Eztailpacking" "-zlz4hc -Eztailpacking $common" "-zlz4hc -Eztailpacking -T 0 --all-root -L nix-store"
run "-zlz4hc -Eztailpacking -C65536" "-zlz4hc -Eztailpacking -C65536 $common" "-zlz4hc -Eztailpacking -C65536 -T 0 --all-root -L nix-store"
echo
echo "t-ratio: closurefs time / mkfs.erofs time; s-ratio: closurefs size / mkfs.erofs size (lower is better)"
