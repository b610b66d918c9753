#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Size budget of the boot binary, which is copied into every initramfs.
#   the stable static build (`make`, what the packages ship): must be static (an interpreter
#     would be missing at early boot), at most LIMIT bytes; a warning above AIM
#   the size-tuned build (`make small`, nightly cargo + rust-src): its size is printed when that
#     toolchain is present, and the line says "skipped" when it is not (its budget is the lean
#     boot binary's)
# A native build (TARGET=) is dynamic on purpose: only the musl target must be static.
set -eu
export LC_ALL=C

LIMIT=655360 # 640 KiB: fail above
AIM=524288   # 512 KiB: warn above
TARGET=${TARGET-x86_64-unknown-linux-musl}

repo=$(cd "$(dirname "$0")/.." && pwd)
tdir=${CARGO_TARGET_DIR:-$repo/target}
bin=$tdir/${TARGET:+$TARGET/}release/vfio-early

make -s -C "$repo" TARGET="$TARGET"
command -v readelf >/dev/null || { echo "size-budget: readelf not found (binutils)" >&2; exit 1; }

# A static binary has no PT_INTERP program header (static-pie included).
linkage() {
	if readelf -lW "$1" | grep -q INTERP; then
		echo "dynamic ($(readelf -lW "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'))"
	else
		echo static
	fi
}
kib() { awk -v s="$1" 'BEGIN {printf "%.1f", s / 1024}'; }

size=$(stat -c %s "$bin")
link=$(linkage "$bin")
echo "size-budget: vfio-early ${TARGET:-native} $size bytes ($(kib "$size") KiB), $link; limit $LIMIT ($((LIMIT / 1024)) KiB), aim $AIM ($((AIM / 1024)) KiB)"

status=0
if [ "$TARGET" = x86_64-unknown-linux-musl ] && [ "$link" != static ]; then
	echo "size-budget: FAIL: the musl build is not static: it has a program interpreter" >&2
	status=1
fi
if [ "$size" -gt "$LIMIT" ]; then
	echo "size-budget: FAIL: $((size - LIMIT)) bytes over the limit" >&2
	status=1
elif [ "$size" -gt "$AIM" ]; then
	echo "size-budget: warning: $((size - AIM)) bytes over the aim" >&2
fi

sysroot=$(rustc +nightly --print sysroot 2>/dev/null || true)
if [ -n "$sysroot" ] && [ -d "$sysroot/lib/rustlib/src/rust/library" ] &&
	[ -d "$sysroot/lib/rustlib/x86_64-unknown-linux-musl" ]; then
	if make -s -C "$repo" small >/dev/null 2>&1; then
		small=$tdir/small/x86_64-unknown-linux-musl/release/vfio-early
		s=$(stat -c %s "$small")
		echo "size-budget: size-tuned (make small) $s bytes ($(kib "$s") KiB), $(linkage "$small"); $((size - s)) bytes less than the stable build"
	else
		echo "size-budget: FAIL: make small failed with nightly present" >&2
		status=1
	fi
else
	echo "size-budget: size-tuned build skipped: no nightly toolchain with rust-src and the musl target (rustup toolchain install nightly; rustup component add rust-src --toolchain nightly; rustup target add x86_64-unknown-linux-musl --toolchain nightly)"
fi
exit "$status"
