#!/bin/sh
# Benchmarks `closurefs verify` against `nix-store --verify-path` on the
# bench fixture (400+ store paths): closurefs reads an erofs image
# (mkfs.erofs -zlz4hc) and a squashfs image (mksquashfs -comp zstd)
# directly, and the store directory; nix-store checks the same paths in the
# real store. Every timing is the best of $RUNS runs, the tools taking turns,
# with a warm page cache. Prints the times and the ratios (nix-store time /
# closurefs time: above 1 means closurefs is faster).
#
#	sh scripts/bench-verify.sh   # RUNS=3, JOBS=0 (all CPUs), BENCH_DIR= (temp)
set -eu
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
JOBS=${JOBS:-0}
# BENCH_DIR keeps the images between runs (they take minutes to make).
if [ -n "${BENCH_DIR:-}" ]; then
	work=$BENCH_DIR
	mkdir -p "$work"
else
	work=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-verify.XXXXXX")
	trap 'rm -rf "$work"' EXIT INT TERM
fi

go build -trimpath -o "$work/closurefs" ./cmd/closurefs
cfs="$work/closurefs"
echo "bench-verify: building the bench fixture (nix-build, cached)" >&2
root=$(go run ./integration/cmd/mkfixture -size bench)
nix-store -qR "$root" >"$work/paths"
npaths=$(wc -l <"$work/paths")
# shellcheck disable=SC2046
nix-store --dump-db $(cat "$work/paths") >"$work/registration"
# Sum the NAR sizes: records are path, hash, size, deriver, count, refs.
narbytes=$(awk '{ if (st==0) st=1; else if (st==1) st=2; else if (st==2) { s+=$0; st=3 } else if (st==3) st=4; else if (st==4) { n=$0; st=(n>0?5:0) } else if (--n==0) st=0 } END { printf "%d", s }' "$work/registration")

# Stage the closure (hard links, no copy) and make the two images.
if [ ! -s "$work/squashfs.img" ] || [ ! -s "$work/erofs.img" ]; then
rm -rf "$work/stage"
mkdir "$work/stage"
while read -r p; do cp -a --link "$p" "$work/stage/"; done <"$work/paths"
echo "bench-verify: mkfs.erofs -zlz4hc and mksquashfs -comp zstd of $npaths paths" >&2
mkfs.erofs -zlz4hc -T0 --all-root "$work/erofs.img" "$work/stage" >/dev/null 2>&1
mksquashfs "$work/stage" "$work/squashfs.img" -comp zstd -Xcompression-level 6 -all-root -noappend -quiet -no-progress >/dev/null
rm -rf "$work/stage"
fi

# time_once CMD...: prints "WALL CPU" (seconds; CPU = user + system) of
# one run. CPU time is also printed because on a busy machine wall times
# say more about the other load than about the tools.
time_once() {
	case $1 in
	nix) set -- nix-store --verify-path $(cat "$work/paths") ;;
	erofs) set -- "$cfs" verify -q -j "$JOBS" --registration "$work/registration" "$work/erofs.img" ;;
	squashfs) set -- "$cfs" verify -q -j "$JOBS" --registration "$work/registration" "$work/squashfs.img" ;;
	store) set -- "$cfs" verify -q -j "$JOBS" --registration "$work/registration" /nix/store ;;
	esac
	/usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/err" ||
		{ echo "bench-verify: failed: $*" >&2; cat "$work/err" >&2; exit 1; }
	awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$work/time"
}

# Warm the page cache for every input once (and check that all pass).
for t in nix erofs squashfs store; do time_once $t >/dev/null; done

# Keep the best wall and the best CPU time of each tool.
best() { # best NAME "WALL CPU"
	set -- "$1" $2
	eval "w=\${w_$1:-} c=\${c_$1:-}"
	if [ -z "$w" ] || [ "$(echo "$2 < $w" | bc -l)" = 1 ]; then eval "w_$1=$2"; fi
	if [ -z "$c" ] || [ "$(echo "$3 < $c" | bc -l)" = 1 ]; then eval "c_$1=$3"; fi
}
i=0
while [ "$i" -lt "$RUNS" ]; do
	best nix "$(time_once nix)"
	best erofs "$(time_once erofs)"
	best squashfs "$(time_once squashfs)"
	best store "$(time_once store)"
	i=$((i + 1))
done

mib() { echo "scale=1; $1 / 1048576" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf 'bench-verify: %d store paths, %s MiB of NAR, %d CPUs, best of %d runs, load %s\n' \
	"$npaths" "$(mib "$narbytes")" "$(nproc)" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'erofs image %s MiB (mkfs.erofs -zlz4hc), squashfs image %s MiB (mksquashfs zstd 6)\n' \
	"$(mib "$(stat -c %s "$work/erofs.img")")" "$(mib "$(stat -c %s "$work/squashfs.img")")"
printf '%-38s %9s %9s %12s %11s\n' "" "wall s" "CPU s" "wall ratio" "CPU ratio"
row() { # row LABEL NAME
	eval "w=\$w_$2 c=\$c_$2"
	printf '%-38s %9.2f %9.2f %12s %11s\n' "$1" "$w" "$c" "$(ratio "$w_nix" "$w")" "$(ratio "$c_nix" "$c")"
}
row "nix-store --verify-path (real store)" nix
row "closurefs verify erofs image" erofs
row "closurefs verify squashfs image" squashfs
row "closurefs verify /nix/store" store
echo "(ratio = nix-store time / closurefs time: above 1, closurefs is faster)"
