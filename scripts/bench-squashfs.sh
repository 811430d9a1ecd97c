#!/usr/bin/env bash
# bench-squashfs.sh: closurefs snapshot -t squashfs side by side with
# gensquashfs and mksquashfs on the same tree, same compressor, level and
# block size. Prints wall time, CPU time (user+sys: the fairer figure on a
# busy machine), peak memory, image size and ratios.
#
#   scripts/bench-squashfs.sh [DIR]
#
# DIR is the tree to pack. Without it, the bench fixture is built
# (go run ./integration/cmd/mkfixture -size bench) and its closure is
# staged into a directory once (not timed), as a store image holds it.
# Env: COMPS="zstd gzip" (which runs), JOBS (default nproc), WORK (scratch dir),
# MKSQ_ZSTD=0 skips the mksquashfs zstd run (the zstd target is against
# gensquashfs; mksquashfs is the gzip reference), LEVELS="16 17 18" also
# runs closurefs at those zstd levels and compares them with gensquashfs
# at its default level 15 (what each level buys in size and costs in time).
set -euo pipefail
cd "$(dirname "$0")/.."

COMPS=${COMPS:-"zstd gzip"}
JOBS=${JOBS:-$(nproc)}
WORK=${WORK:-$(mktemp -d /tmp/bench-squashfs.XXXXXX)}
mkdir -p "$WORK"
BIN=$WORK/closurefs
go build -o "$BIN" ./cmd/closurefs

DIR=${1:-}
if [ -z "$DIR" ]; then
	if [ ! -d integration/cmd/mkfixture ]; then
		echo "no DIR given and no bench fixture in this tree" >&2
		exit 2
	fi
	json=$(go run ./integration/cmd/mkfixture -size bench -json)
	DIR=$WORK/stage
	if [ ! -d "$DIR" ]; then
		mkdir -p "$DIR.tmp"
		python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["paths"]))' <<<"$json" |
			while read -r p; do cp -a "$p" "$DIR.tmp/"; done
		mv "$DIR.tmp" "$DIR"
	fi
fi
for t in gensquashfs mksquashfs; do
	command -v $t >/dev/null || { echo "$t not found" >&2; exit 2; }
done
sync
# Warm the page cache so every tool reads from memory.
find "$DIR" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true

IN=$(du -sb --apparent-size "$DIR" | cut -f1)
NF=$(find "$DIR" | wc -l)
echo "tree: $DIR ($NF entries, $((IN / 1048576)) MiB), jobs $JOBS, block 128 KiB"

# run NAME IMG CMD...: runs CMD under /usr/bin/time -v, records time, peak
# RSS and image size.
declare -A T C M S
run() {
	local name=$1 img=$2
	shift 2
	rm -f "$img"
	/usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.log" 2>&1 || {
		echo "$name failed:" >&2
		cat "$WORK/$name.log" >&2
		exit 1
	}
	T[$name]=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/$name.time")
	C[$name]=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$WORK/$name.time")
	M[$name]=$(awk -F': ' '/Maximum resident set size/ {print int($2/1024)}' "$WORK/$name.time")
	S[$name]=$(stat -c %s "$img")
	printf "  %-22s %8.2f s wall %8.2f s cpu  %6d MiB RSS  %12d bytes\n" "$name" "${T[$name]}" "${C[$name]}" "${M[$name]}" "${S[$name]}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }

for c in $COMPS; do
	echo "== $c"
	case $c in
	zstd)
		run closurefs-zstd "$WORK/c-zstd.img" "$BIN" snapshot -q -t squashfs --dir "$DIR" -o "$WORK/c-zstd.img" -c zstd,15 -b 128K -j "$JOBS" --all-root
		run gensquashfs-zstd "$WORK/g-zstd.img" gensquashfs -q -c zstd -X level=15 -b 131072 -j "$JOBS" --all-root -D "$DIR" "$WORK/g-zstd.img"
		[ "${MKSQ_ZSTD:-1}" = 0 ] || run mksquashfs-zstd "$WORK/m-zstd.img" mksquashfs "$DIR" "$WORK/m-zstd.img" -comp zstd -Xcompression-level 15 -b 131072 -processors "$JOBS" -all-root -noappend -reproducible -no-progress
		;;
	gzip)
		run closurefs-gzip "$WORK/c-gzip.img" "$BIN" snapshot -q -t squashfs --dir "$DIR" -o "$WORK/c-gzip.img" -c gzip,9 -b 128K -j "$JOBS" --all-root
		run gensquashfs-gzip "$WORK/g-gzip.img" gensquashfs -q -c gzip -X level=9 -b 131072 -j "$JOBS" --all-root -D "$DIR" "$WORK/g-gzip.img"
		run mksquashfs-gzip "$WORK/m-gzip.img" mksquashfs "$DIR" "$WORK/m-gzip.img" -comp gzip -Xcompression-level 9 -b 131072 -processors "$JOBS" -all-root -noappend -reproducible -no-progress
		;;
	*)
		echo "unknown compressor $c" >&2
		exit 2
		;;
	esac
	if ! sqfsdiff -a "$WORK/g-$c.img" -b "$WORK/c-$c.img" >"$WORK/sqfsdiff-$c.log"; then
		echo "  sqfsdiff: images differ (see $WORK/sqfsdiff-$c.log)" >&2
	fi
	echo "  closurefs/gensquashfs: time $(ratio "${T[closurefs-$c]}" "${T[gensquashfs-$c]}")  cpu $(ratio "${C[closurefs-$c]}" "${C[gensquashfs-$c]}")  size $(ratio "${S[closurefs-$c]}" "${S[gensquashfs-$c]}")"
	if [ "$c" = zstd ]; then
		for l in ${LEVELS:-}; do
			run "closurefs-zstd$l" "$WORK/l-zstd.img" "$BIN" snapshot -q -t squashfs --dir "$DIR" -o "$WORK/l-zstd.img" -c "zstd,$l" -b 128K -j "$JOBS" --all-root
			echo "  closurefs zstd,$l / gensquashfs zstd,15: time $(ratio "${T[closurefs-zstd$l]}" "${T[gensquashfs-$c]}")  cpu $(ratio "${C[closurefs-zstd$l]}" "${C[gensquashfs-$c]}")  size $(ratio "${S[closurefs-zstd$l]}" "${S[gensquashfs-$c]}")"
		done
	fi
	[ -z "${S[mksquashfs-$c]:-}" ] || echo "  closurefs/mksquashfs:  time $(ratio "${T[closurefs-$c]}" "${T[mksquashfs-$c]}")  cpu $(ratio "${C[closurefs-$c]}" "${C[mksquashfs-$c]}")  size $(ratio "${S[closurefs-$c]}" "${S[mksquashfs-$c]}")"
	echo "  closurefs peak RSS: ${M[closurefs-$c]} MiB"
	rm -f "$WORK"/?-"$c".img
done
