#!/bin/sh
# Builds a small example closure with real Nix (offline) and runs closurefs
# on it.
set -eu
cd "$(dirname "$0")/.."
echo "== building the example closure with nix-build (offline)"
root=$(go run ./integration/cmd/mkfixture -size demo)
echo "root: $root"
echo "== closurefs closure $root"
./bin/closurefs closure "$root" | head -20
