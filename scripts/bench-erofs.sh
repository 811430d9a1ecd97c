#!/usr/bin/env bash
# bench-erofs.sh: closurefs snapshot -t erofs side by side with mkfs.erofs on
# the bench fixture closure, same settings, one run. Prints wall time, CPU
# time (user+sys), peak memory, image size and the ratios
# closurefs/mkfs.erofs for each reference.
#
#   scripts/bench-erofs.sh [ROOT]      (default: the bench fixture's root)
#   MKFS=/path/to/mkfs.erofs           (default: mkfs.erofs on PATH, Debian's)
#   MKFS_NEW=/path/to/mkfs.erofs       a newer mkfs.erofs (>= 1.8, built with
#                                      multithreading): also run it with
#                                      --workers=1 and --workers=$(nproc), and
#                                      add zstd and deflate rows
#   JOBS=N                             (closurefs -j, default all CPUs)
#   ROWS=REGEX                         run only the rows whose settings match
#                                      (grep -E), e.g. ROWS='microvm|zstd'
set -euo pipefail
cd "$(dirname "$0")/.."

root=${1:-}
if [ -z "$root" ]; then
	root=$(go run ./integration/cmd/mkfixture -size bench -json | sed -n 's/.*"root": "\(.*\)".*/\1/p' | head -1)
fi
mkfs=${MKFS:-mkfs.erofs}
new=${MKFS_NEW:-}
jobs=${JOBS:-0}
ncpu=$(nproc)
work=$(mktemp -d /var/tmp/bench-erofs.XXXXXX)
trap 'rm -rf "$work"' EXIT

go build -o "$work/closurefs" ./cmd/closurefs
# mkfs.erofs (1.5 and 1.9.3) never fsyncs its output, while closurefs
# fsyncs the image before renaming it into place: each reference run is
# timed together with a `sync IMAGE` (fsync of that file) afterwards, so
# that both times include getting the image to disk.
cat >"$work/then-sync" <<'SH'
#!/bin/sh
img=$1
shift
"$@" && sync -- "$img"
SH
chmod +x "$work/then-sync"

# mkfs.erofs needs the closure staged in one directory (what nixpkgs does).
mkdir -p "$work/stage"
nix-store -qR "$root" | xargs cp -a -t "$work/stage"
# The copy's writeback must not land in the first timed run.
sync
paths=$(nix-store -qR "$root" | wc -l)
bytes=$(du -sb --apparent-size "$work/stage" | cut -f1)
echo "closure: $root"
echo "  $paths store paths, $((bytes / 1048576)) MiB apparent; $ncpu CPUs"
if [ -z "${MKFS:-}" ]; then
	echo "  mkfs.erofs: $mkfs $(dpkg-query -W -f '${Version}' erofs-utils 2>/dev/null || echo "?")"
else
	echo "  mkfs.erofs: $mkfs $("$mkfs" -V 2>&1 | head -1)"
fi
if [ -n "$new" ]; then
	echo "  newest: $new $("$new" -V 2>&1 | head -1)"
fi
echo

# measure CMD...: runs CMD, prints wall seconds, CPU seconds and peak RSS (MiB).
measure() {
	/usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
	read -r secs user sys kb <"$work/time"
	echo "$secs $(echo "$user + $sys" | bc -l) $((kb / 1024))"
}

printf '%-26s %-22s %8s %8s %8s %11s %8s %8s %8s\n' settings tool wall-s cpu-s peakMiB bytes t-ratio cpu-rat s-ratio
# run NAME CFFLAGS [TOOL MKFSBIN MKFSFLAGS]...: runs closurefs and each
# reference tool, then prints one row per tool with closurefs/tool ratios.
run() {
	local name=$1 cf=$2
	shift 2
	read -r cs cc cm < <(measure "$work/closurefs" snapshot -q -j "$jobs" $cf -o "$work/cf.img" "$root")
	local csz
	csz=$(stat -c %s "$work/cf.img")
	rm -f "$work/cf.img"
	local first=1
	while [ $# -gt 0 ]; do
		local tool=$1 bin=$2 flags=$3
		shift 3
		local ms mc mm msz
		read -r ms mc mm < <(measure "$work/then-sync" "$work/mkfs.img" "$bin" $flags "$work/mkfs.img" "$work/stage")
		msz=$(stat -c %s "$work/mkfs.img")
		rm -f "$work/mkfs.img"
		printf '%-26s %-22s %8s %8.2f %8s %11s %8.3f %8.3f %8.4f\n' "$([ $first = 1 ] && echo "$name")" "$tool" "$ms" "$mc" "$mm" "$msz" \
			"$(echo "$cs / $ms" | bc -l)" "$(echo "$cc / $mc" | bc -l)" "$(echo "$csz / $msz" | bc -l)"
		first=0
	done
	printf '%-26s %-22s %8s %8.2f %8s %11s\n' "" "closurefs -j $jobs" "$cs" "$cc" "$cm" "$csz"
}

# Debian's mkfs.erofs 1.5 has no -L: the label is closurefs-only.
common="-T 0 --all-root"
cfcommon="-T 0 --all-root -L nix-store"
# refs FLAGS [NEWFLAGS]: the reference tools' arguments to run for FLAGS
# (NEWFLAGS for the newest mkfs.erofs, default FLAGS).
refs() {
	local deb=$1 nf=${2:-$1}
	if [ -n "$deb" ]; then
		printf '%s\n%s\n%s\n' "mkfs.erofs (Debian)" "$mkfs" "$deb $common"
	fi
	if [ -n "$new" ]; then
		printf '%s\n%s\n%s\n' "newest --workers=1" "$new" "--quiet --workers=1 $nf $cfcommon"
		printf '%s\n%s\n%s\n' "newest --workers=$ncpu" "$new" "--quiet --workers=$ncpu $nf $cfcommon"
	fi
}
# row NAME CFFLAGS DEBFLAGS [NEWFLAGS]
row() {
	local name=$1 cf=$2
	if [ -n "${ROWS:-}" ] && ! grep -Eq -- "$ROWS" <<<"$name"; then
		return
	fi
	local -a a
	mapfile -t a < <(refs "$3" "${4:-$3}")
	run "$name" "$cf $cfcommon" "${a[@]}"
}

row "uncompressed" "" " "
row "-zlz4hc" "-zlz4hc" "-zlz4hc"
row "-zlz4hc -Eztailpacking" "-zlz4hc -Eztailpacking" "-zlz4hc -Eztailpacking"
# microvm.nix's flags add -Efragments, which Debian's mkfs.erofs 1.5 lacks:
# it runs without.
frag=""
if "$mkfs" --help 2>&1 | grep -q fragments; then frag="-Efragments"; fi
row "microvm (Debian: no frags)" "-zlz4hc -Eztailpacking -Efragments" "-zlz4hc -Eztailpacking $frag" "-zlz4hc -Eztailpacking -Efragments"
row "-zlz4hc -Eztail -C65536" "-zlz4hc -Eztailpacking -C65536" "-zlz4hc -Eztailpacking -C65536"
if [ -n "$new" ]; then
	# Debian's mkfs.erofs 1.5 has neither zstd nor deflate.
	row "-zzstd" "-zzstd" "" "-zzstd"
	row "-zdeflate" "-zdeflate" "" "-zdeflate"
fi
echo
echo "ratios: closurefs / that tool for wall time, CPU time (user+sys) and image size (lower is better)"
echo "mkfs.erofs times include a final 'sync IMAGE' (fsync): closurefs fsyncs the image before rename, mkfs.erofs does not."
echo "uncompressed: closurefs stores identical files once; mkfs.erofs does not (its -Ededupe without compression makes chunk-based files instead)."
