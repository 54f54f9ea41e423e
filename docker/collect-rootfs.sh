#!/bin/sh
# Lays out the root filesystem of the scratch-based runtime image: the
# binary, the shared libraries it links (per ldd), and the directories the
# daemon writes. Used by the Dockerfile's build stage and by the tests, so the
# image a test builds is the image users get.
#
#   docker/collect-rootfs.sh path/to/tradingbot OUT_DIR
set -eu
binary=$1
out=$2

mkdir -p "$out/usr/local/bin" "$out/tmp" "$out/var/lib/tradingbot"
cp "$binary" "$out/usr/local/bin/tradingbot"
# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and the loader's
# own "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r lib; do
        mkdir -p "$out$(dirname "$lib")"
        cp -L "$lib" "$out$lib"
    done
# The default health file lives in /tmp; world-writable like any /tmp.
chmod 1777 "$out/tmp"
