#!/usr/bin/env bash
# bench-fuse.sh: the FUSE file systems of closurefs side by side with their
# references on the bench fixture closure (~700 MB), one run each:
#
#   closure view (closurefs mount, passthrough and plain reads) vs the
#     native store directory;
#   squashfs image: closurefs mount-image vs squashfuse vs the kernel;
#   erofs image: closurefs mount-image vs erofsfuse (if installed) vs the
#     kernel.
#
# For each: a full-tree read (cat every file), a read of the 20 largest
# files (the data path, few opens) and a metadata walk (find -printf with
# lstat of every entry), cold (echo 3 > drop_caches before the
# run) and warm (the same run again). The closure view also times its
# data path alone (the largest files with dentries and inodes cached, cold
# and warm) and a small file's open, read and close one at a time: the two
# costs a full-tree read mixes. Prints seconds, the CPU time the FUSE
# daemon used (a figure a busy machine disturbs less than wall time), its
# peak resident memory over all the runs, and the ratio reference time /
# closurefs time (above 1: closurefs is faster).
#
#   scripts/bench-fuse.sh [ROOT]        (default: the bench fixture's root)
#   STRESS=30s scripts/bench-fuse.sh    also run the FUSE stress tests for 30s
#   SECTIONS="view squashfs erofs"       the sections to run (default: all)
#   REPEAT=3 scripts/bench-fuse.sh      measure each 3 times, keep the best
#                                       (a busy machine slows round trips)
#   INTERLEAVE=7 scripts/bench-fuse.sh  also time the cold reads of each
#                                       image mount and its reference in
#                                       turn, 7 times each, both mounted at
#                                       once, and compare the medians: a
#                                       drifting machine (a VM's disk cache)
#                                       then favours neither
# Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
	echo "bench-fuse.sh: needs root and /dev/fuse" >&2
	exit 1
fi
root=${1:-}
if [ -z "$root" ]; then
	root=$(go run ./integration/cmd/mkfixture -size bench -json | sed -n 's/.*"root": "\(.*\)".*/\1/p' | head -1)
fi
work=$(mktemp -d /var/tmp/bench-fuse.XXXXXX)
cleanup() {
	local m
	for m in "$work"/mnt.*; do
		if mountpoint -q "$m"; then
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		fi
	done
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT

go build -o "$work/closurefs" ./cmd/closurefs
cf=$work/closurefs

mapfile -t paths < <(nix-store -qR "$root")
names=()
for p in "${paths[@]}"; do names+=("$(basename "$p")"); done
bytes=$(du -scb --apparent-size "${paths[@]}" | tail -1 | cut -f1)
files=$(find "${paths[@]}" -type f | wc -l)
echo "closure: $root"
echo "  ${#paths[@]} store paths, $files files, $((bytes / 1048576)) MiB; $(nproc) CPUs; kernel $(uname -r)"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (FUSE round trips suffer most from a busy machine)"
echo

# timeit CMD...: prints the wall time of CMD in seconds.
timeit() {
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	e=$(date +%s.%N)
	echo "$e - $s" | bc -l | xargs printf '%.3f'
}
# The 20 largest files: sequential reads with few opens, the data path alone.
mapfile -t bigfiles < <(cd /nix/store && find "${names[@]}" -type f -printf '%s %p\n' | sort -rn | head -20 | cut -d' ' -f2-)
readbig() { (cd "$1" && cat "${bigfiles[@]}" >/dev/null); }
readall() { (cd "$1" && find "${names[@]}" -type f -print0 | xargs -0 -n 256 -P 4 cat >/dev/null); }
walk() { (cd "$1" && find "${names[@]}" -printf '%s %m %n %i %l\n' >/dev/null); }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# The closure view's two costs apart: its data path (the 20 largest files
# with the page cache dropped but dentries and inodes kept, and five
# passes over them warm), and the price of one open (a single cat over
# 2000 small files, warm).
mapfile -t smallfiles < <(cd /nix/store && find "${names[@]}" -type f -size -8k | head -2000)
dropdata() { sync; echo 1 >/proc/sys/vm/drop_caches; }
readbig5() { (cd "$1" && cat "${bigfiles[@]}" "${bigfiles[@]}" "${bigfiles[@]}" "${bigfiles[@]}" "${bigfiles[@]}" >/dev/null); }
opensmall() { (cd "$1" && cat "${smallfiles[@]}" >/dev/null); }

declare -A T C
# dcpu: CPU seconds (user+system) the daemon serving the mount under
# measurement has used so far (0 without a daemon: native, kernel mounts).
dcpu() {
	if [ -n "${DPID:-}" ] && [ -r "/proc/$DPID/stat" ]; then
		awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$DPID/stat"
	else
		echo 0
	fi
}
# run KEY.M FUNC DIR: times FUNC DIR into T and the daemon's CPU into C,
# keeping the fastest run of those made.
run() {
	local c0 t c
	c0=$(dcpu)
	t=$(timeit "$2" "$3")
	c=$(echo "$(dcpu) - $c0" | bc -l | xargs printf '%.2f')
	if [ -z "${T[$1]:-}" ] || [ "$(echo "$t < ${T[$1]}" | bc -l)" = 1 ]; then
		T[$1]=$t
		C[$1]=$c
	fi
}
# measure KEY DIR: cold and warm read and walk over DIR, REPEAT times
# (default 1), keeping the best of each.
measure() {
	local key=$1 dir=$2 m line="" i
	for ((i = 0; i < ${REPEAT:-1}; i++)); do
		drop
		run "$key.walk.cold" walk "$dir"
		run "$key.walk.warm" walk "$dir"
		drop
		run "$key.read.cold" readall "$dir"
		run "$key.read.warm" readall "$dir"
		drop
		run "$key.big.cold" readbig "$dir"
		run "$key.big.warm" readbig "$dir"
		if [ -n "${SPLIT:-}" ]; then
			dropdata
			run "$key.data.cold" readbig "$dir"
			run "$key.data.warm" readbig5 "$dir"
			opensmall "$dir"
			run "$key.open" opensmall "$dir"
		fi
	done
	printf '  %-24s read cold %7ss warm %7ss  big cold %7ss warm %7ss  walk cold %7ss warm %7ss\n' "$key" \
		"${T[$key.read.cold]}" "${T[$key.read.warm]}" "${T[$key.big.cold]}" "${T[$key.big.warm]}" "${T[$key.walk.cold]}" "${T[$key.walk.warm]}"
	if [ -n "${DPID:-}" ]; then
		for m in read.cold read.warm big.cold big.warm walk.cold walk.warm; do
			line+=$(printf ' %s %5ss' "$m" "${C[$key.$m]}")
		done
		printf '  %-24s daemon CPU:%s; peak RSS %s\n' "" "$line" "$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$DPID/status")"
	fi
	if [ -n "${SPLIT:-}" ]; then
		printf '  %-24s data path: cold %ss, warm %ss (5 passes); one small file: %.0f us (open, read, close; %d files, one cat)\n' "" \
			"${T[$key.data.cold]}" "${T[$key.data.warm]}" "$(echo "${T[$key.open]} * 1000000 / ${#smallfiles[@]}" | bc -l)" "${#smallfiles[@]}"
	fi
}
# ratios REF KEY: reference time / closurefs time for every measurement.
ratios() {
	local ref=$1 key=$2 line="" m
	for m in read.cold read.warm big.cold big.warm walk.cold walk.warm; do
		line+=$(printf ' %s %6.2f' "$m" "$(echo "${T[$ref.$m]} / ${T[$key.$m]}" | bc -l)")
	done
	if [ -n "${SPLIT:-}" ]; then
		for m in data.cold data.warm open; do
			line+=$(printf ' %s %6.2f' "$m" "$(echo "${T[$ref.$m]} / ${T[$key.$m]}" | bc -l)")
		done
	fi
	printf '  %-24s vs %-16s%s\n' "$key" "$ref" "$line"
}
mnt() {
	local d=$work/mnt.$1
	mkdir -p "$d"
	echo "$d"
}
# mounted KEY CMD...: mounts with CMD... MOUNTPOINT, measures it as KEY and
# unmounts it.
mounted() {
	local key=$1 m
	shift
	m=$(mnt "$key")
	"$@" "$m"
	DPID=$(pgrep -n -f -- "$m" || true)
	measure "$key" "$m"
	DPID=
	umount "$m"
}

# median X...: the median of the numbers given.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# interleave FUNC KEY DIR REF REFDIR: with both mounted, times FUNC cold
# over DIR and REFDIR in turn, INTERLEAVE times each, and prints the
# medians and their ratio (REF median / KEY median).
interleave() {
	local f=$1 key=$2 dir=$3 ref=$4 rdir=$5 i a=() b=()
	for ((i = 0; i < INTERLEAVE; i++)); do
		drop
		a+=("$(timeit "$f" "$dir")")
		drop
		b+=("$(timeit "$f" "$rdir")")
	done
	printf '  %-24s %s cold, %d runs in turn: median %ss, %s median %ss, ratio %.2f\n' "$key" "$f" "$INTERLEAVE" \
		"$(median "${a[@]}")" "$ref" "$(median "${b[@]}")" "$(echo "$(median "${b[@]}") / $(median "${a[@]}")" | bc -l)"
}
# interleaved KEY CMD REF REFCMD IMAGE: mounts IMAGE with both and
# interleaves their cold reads (see interleave).
interleaved() {
	local key=$1 cmd=$2 ref=$3 rcmd=$4 img=$5 a b f
	[ -n "${INTERLEAVE:-}" ] || return 0
	a=$(mnt "$key.i")
	b=$(mnt "$ref.i")
	$cmd "$img" "$a"
	$rcmd "$img" "$b"
	for f in readall readbig; do
		interleave $f "$key" "$a" "$ref" "$b"
	done
	umount "$a"
	umount "$b"
}

sections=${SECTIONS:-view squashfs erofs}
if [[ " $sections " == *" view "* ]]; then
echo "== closure view (closurefs mount) vs the native store"
SPLIT=1
measure native /nix/store
mounted view-passthrough "$cf" mount --background --log "$work/view-pt.log" "$root"
grep -o 'file reads: [^;]*' "$work/view-pt.log" | sed 's/^/  /'
mounted view-plain "$cf" mount --background --no-passthrough "$root"
mounted view-kernel-cache "$cf" mount --background --kernel-cache "$root"
ratios native view-passthrough
ratios native view-plain
ratios native view-kernel-cache
echo "  (ratio native/closurefs: 1.00 = native speed; target >= 0.90 for passthrough reads;"
echo "   --kernel-cache opens files without the daemon and reads through the mount's page cache;"
echo "   data: the data path alone, with dentries and inodes cached; open: a small file's open, read and close, one at a time)"
echo
SPLIT=
fi

if [[ " $sections " == *" squashfs "* ]]; then
echo "== squashfs image: closurefs mount-image vs squashfuse vs the kernel"
sq=$work/closure.sqfs
"$cf" snapshot -q -t squashfs -o "$sq" "$root"
echo "  image: $(stat -c %s "$sq") bytes (closurefs snapshot -t squashfs)"
mounted sq-closurefs "$cf" mount-image --background "$sq"
sqfuse=squashfuse_ll # the faster, low-level squashfuse
command -v $sqfuse >/dev/null || sqfuse=squashfuse
echo "  squashfuse: $sqfuse"
mounted sq-squashfuse $sqfuse "$sq"
mounted sq-kernel mount -t squashfs -o ro,loop "$sq"
ratios sq-squashfuse sq-closurefs
ratios sq-kernel sq-closurefs
interleaved sq-closurefs "$cf mount-image --background" sq-squashfuse $sqfuse "$sq"
echo
fi

if [[ " $sections " == *" erofs "* ]]; then
echo "== erofs image: closurefs mount-image vs erofsfuse vs the kernel"
er=$work/closure.erofs
"$cf" snapshot -q -t erofs -o "$er" "$root"
echo "  image: $(stat -c %s "$er") bytes (closurefs snapshot -t erofs)"
mounted er-closurefs "$cf" mount-image --background "$er"
if command -v erofsfuse >/dev/null; then
	mounted er-erofsfuse erofsfuse "$er"
	ratios er-erofsfuse er-closurefs
	interleaved er-closurefs "$cf mount-image --background" er-erofsfuse erofsfuse "$er"
else
	echo "  erofsfuse: not installed, skipped"
fi
mounted er-kernel mount -t erofs -o ro,loop "$er"
ratios er-kernel er-closurefs
echo
fi
echo "ratio: reference time / closurefs time (above 1: closurefs is faster)"

if [ -n "${STRESS:-}" ]; then
	echo
	echo "== stress: 16 readers for $STRESS per mount"
	CLOSUREFS_FUSE_STRESS=$STRESS go test -count=1 -run 'TestFuseViewStress|TestFuseImageMount' -v ./integration/ 2>&1 |
		grep -E 'files read|^(---|ok|FAIL)'
fi
