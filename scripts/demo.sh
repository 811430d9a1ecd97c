#!/bin/sh
# Builds a small example closure with real Nix (offline) and runs closurefs's
# main job on it: closure -> closureInfo files -> erofs and squashfs images
# -> inspection -> verification against the NAR hashes.
set -eu
cd "$(dirname "$0")/.."
cfs=./bin/closurefs
# run prints a closurefs command line (as a user would type it), then runs it.
run() {
	echo "\$ closurefs $*"
	"$cfs" "$@"
}
out=${DEMO_DIR:-$(mktemp -d /tmp/closurefs-demo.XXXXXX)}
mkdir -p "$out"
echo "== building the example closure with nix-build (offline, no sandbox)"
root=$(go run ./integration/cmd/mkfixture -size demo)
echo "root: $root"
echo
echo "== closurefs closure: $(nix-store -qR "$root" | wc -l) paths per nix-store -qR"
run closure "$root" -o "$out/closure-info"
echo "closureInfo files in $out/closure-info: $(ls "$out/closure-info" | tr '\n' ' ')"
echo "total-nar-size: $(cat "$out/closure-info/total-nar-size")"
head -c 400 "$out/closure-info/registration"; echo "..."
echo
echo "== closurefs snapshot (erofs, microvm.nix's flags)"
run snapshot "$root" -q -o "$out/store.erofs" -zlz4hc -Eztailpacking -T 0 --all-root -L nix-store --include-registration
run info "$out/store.erofs"
echo
echo "== closurefs snapshot (squashfs, zstd)"
run snapshot "$root" -q -t squashfs -o "$out/store.squashfs" -c zstd --include-registration
run info "$out/store.squashfs"
echo
echo "== image sizes"
ls -l "$out/store.erofs" "$out/store.squashfs"
echo
echo "== closurefs ls (first entries of the erofs image)"
run ls "$out/store.erofs" | head -6
echo
echo "== closurefs verify (NAR hashes of every path against the registration inside each image)"
run verify "$out/store.erofs"
run verify "$out/store.squashfs"
echo
echo "demo output kept in $out"
