#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Size budget of the boot build (vfio-early-boot), which is copied into every initramfs:
#   the stable static build (`make`, what the packages ship): must be static (an interpreter
#     would be missing at early boot), at most LIMIT bytes; a warning above AIM; the figure is
#     printed either way (the smaller the better)
#   the size-tuned build (`make small`, nightly cargo + rust-src): at most SMALL_LIMIT bytes when
#     that toolchain is present; "skipped" (counted as such, never as passed) when it is not
#   (that the boot build reaches no host code is Cargo's: binder/tests/layers.rs)
# The host build (vfio-early) is measured and printed; it is not in any image. The rdinit shim
# (vfio-early-init) must be static; its size is printed.
# A native build (TARGET=) is dynamic on purpose: only the musl target must be static.
# Ends with "N passed, M failed, K skipped".
set -u
export LC_ALL=C

LIMIT=655360      # 640 KiB: fail above
AIM=524288        # 512 KiB: warn above
# 224 KiB: the size-tuned boot build. 200 KiB until issue 26 added the split run's settle, its
# lock and the state file's whole rewrite (+16 KiB measured: 202,304 -> 218,688 bytes).
SMALL_LIMIT=229376
TARGET=${TARGET-x86_64-unknown-linux-musl}

repo=$(cd "$(dirname "$0")/.." && pwd)
tdir=${CARGO_TARGET_DIR:-$repo/target}
dir=$tdir/${TARGET:+$TARGET/}release
passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); echo "PASS $1"; }
ko() { failed=$((failed + 1)); echo "FAIL $1" >&2; }
skip() { skipped=$((skipped + 1)); echo "SKIP $1"; }
finish() {
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit
}

make -s -C "$repo" TARGET="$TARGET" || { ko "make TARGET=$TARGET failed"; finish; }
command -v readelf >/dev/null || { ko "readelf not found (binutils)"; finish; }

# A static binary has no PT_INTERP program header (static-pie included).
linkage() {
	if readelf -lW "$1" | grep -q INTERP; then
		echo "dynamic ($(readelf -lW "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'))"
	else
		echo static
	fi
}
kib() { awk -v s="$1" 'BEGIN {printf "%.1f", s / 1024}'; }

boot=$dir/vfio-early-boot
host=$dir/vfio-early
size=$(stat -c %s "$boot")
link=$(linkage "$boot")
hsize=$(stat -c %s "$host")
echo "size-budget: vfio-early-boot ${TARGET:-native} $size bytes ($(kib "$size") KiB), $link; limit $LIMIT ($((LIMIT / 1024)) KiB), aim $AIM ($((AIM / 1024)) KiB)"
echo "size-budget: vfio-early (host build, in no image) $hsize bytes ($(kib "$hsize") KiB); the boot build is $((hsize - size)) bytes smaller"

# The rdinit shim (PID 1 before the image's init, also in the add-on): static, its size printed.
shim=$dir/vfio-early-init
ssize=$(stat -c %s "$shim")
slink=$(linkage "$shim")
echo "size-budget: vfio-early-init (the rdinit shim) $ssize bytes ($(kib "$ssize") KiB), $slink"

if [ "$TARGET" = x86_64-unknown-linux-musl ] && [ "$link" != static ]; then
	ko "the musl boot build is not static: it has a program interpreter"
else
	ok "boot build linkage: $link"
fi
if [ "$TARGET" = x86_64-unknown-linux-musl ] && [ "$slink" != static ]; then
	ko "the musl rdinit shim is not static: as PID 1 of any image it cannot count on a loader"
else
	ok "rdinit shim linkage: $slink"
fi
if [ "$size" -gt "$LIMIT" ]; then
	ko "the boot build is $((size - LIMIT)) bytes over the limit"
else
	ok "boot build $size <= $LIMIT bytes"
	[ "$size" -le "$AIM" ] || echo "size-budget: warning: $((size - AIM)) bytes over the aim" >&2
fi
# That the boot build reaches no host code is Cargo's to enforce (binder/tests/layers.rs: the
# boot build is vfio-early-engine's binary, and the engine cannot depend on the host crate).

sysroot=$(rustc +nightly --print sysroot 2>/dev/null || true)
if [ -n "$sysroot" ] && [ -d "$sysroot/lib/rustlib/src/rust/library" ] &&
	[ -d "$sysroot/lib/rustlib/x86_64-unknown-linux-musl" ]; then
	if make -s -C "$repo" small >/dev/null 2>&1; then
		small=$tdir/small/x86_64-unknown-linux-musl/release/vfio-early-boot
		s=$(stat -c %s "$small")
		echo "size-budget: size-tuned boot build (make small) $s bytes ($(kib "$s") KiB), $(linkage "$small"); $((size - s)) bytes less than the stable build; limit $SMALL_LIMIT"
		s2=$(stat -c %s "$tdir/small/x86_64-unknown-linux-musl/release/vfio-early-init")
		echo "size-budget: size-tuned rdinit shim (make small) $s2 bytes ($(kib "$s2") KiB)"
		if [ "$s" -le "$SMALL_LIMIT" ]; then
			ok "size-tuned boot build $s <= $SMALL_LIMIT bytes"
		else
			ko "the size-tuned boot build is $((s - SMALL_LIMIT)) bytes over $SMALL_LIMIT"
		fi
	else
		ko "make small failed with nightly present"
	fi
else
	skip "size-tuned boot build: no nightly toolchain with rust-src and the musl target (rustup toolchain install nightly; rustup component add rust-src --toolchain nightly; rustup target add x86_64-unknown-linux-musl --toolchain nightly)"
fi
finish
