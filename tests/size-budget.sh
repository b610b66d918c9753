#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Size budget of the boot binary, which is copied into every initramfs: build it (`make static`)
# print its size, fail if it is not static (an interpreter would be missing at early boot)
# or over the limit, warn over the aim.
set -eu
export LC_ALL=C

LIMIT=524288 # 512 KiB: fail above
AIM=430080   # 420 KiB: warn above

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-musl/release/vfio-early

make -s -C "$repo" static
command -v readelf >/dev/null || { echo "size-budget: readelf not found (binutils)" >&2; exit 1; }

size=$(stat -c %s "$bin")
kib=$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1024}')
# A static binary has no PT_INTERP program header (static-pie included).
if readelf -lW "$bin" | grep -q INTERP; then
	linkage="dynamic ($(readelf -lW "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'))"
else
	linkage=static
fi

echo "size-budget: vfio-early $size bytes ($kib KiB), $linkage; limit $LIMIT ($((LIMIT / 1024)) KiB), aim $AIM ($((AIM / 1024)) KiB)"

status=0
if [ "$linkage" != static ]; then
	echo "size-budget: FAIL: not static: it has a program interpreter" >&2
	status=1
fi
if [ "$size" -gt "$LIMIT" ]; then
	echo "size-budget: FAIL: $((size - LIMIT)) bytes over the limit" >&2
	status=1
elif [ "$size" -gt "$AIM" ]; then
	echo "size-budget: warning: $((size - AIM)) bytes over the aim" >&2
fi
exit "$status"
