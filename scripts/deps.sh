#!/bin/sh
# Installs what closurefs's demo and tests need on a Debian machine: the
# reference tools (Nix, erofs-utils, squashfs-tools, squashfs-tools-ng,
# squashfuse, fuse3) and the Go modules. Safe to run again.
set -eu
pkgs="nix-bin erofs-utils squashfs-tools squashfs-tools-ng fuse3 squashfuse attr rsync util-linux kmod jq openssl time zstd"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "deps: installing$missing" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
# Load the kernel modules the image tests mount with (ignore failures:
# they may be built in, or the tests skip with a reason).
if [ "$(id -u)" -eq 0 ]; then
	for m in loop erofs squashfs fuse; do modprobe "$m" 2>/dev/null || true; done
fi
export PATH="$PATH:/usr/local/go/bin"
go mod download
