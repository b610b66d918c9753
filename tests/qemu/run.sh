#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Real-kernel tests: checks the host, builds the binder and the test
# initramfs, runs the harness self-test, then boots every scenario of
# scenarios.tbl under QEMU (TCG) and ends with "N passed, M failed".
#
#   tests/qemu/run.sh [NAME-GLOB...]     e.g. tests/qemu/run.sh '0[12]-*'
# Environment: JOBS (parallel boots, default 2), VFIO_EARLY_BIN (prebuilt
# binder), BOOT_TIMEOUT (host hang guard per boot, default 240 s).
set -eu
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "$0")/lib.sh"

ensure_host
build_binder
IMAGES[test]="$OUT_DIR/qemu/test-initrd.img"
build_image "${IMAGES[test]}"
IMAGES[shimlink]="$OUT_DIR/qemu/test-initrd-shimlink.img"
build_shimlink_image "${IMAGES[test]}" "${IMAGES[shimlink]}"
h_say "kernel $(kernel_version), binder $BINDER_BIN, image ${IMAGES[test]}"
h_say "image modules: $(sed 's|.*/||; s|\.ko$||' <<<"$MODULE_FILES" | tr '\n' ' ')"

# A harness that cannot fail is worthless: prove it rejects bad reports first.
"$QEMU_DIR/selftest.sh"

read_scenarios "$QEMU_DIR/scenarios.tbl" "$@"
[ "${#S_NAME[@]}" -gt 0 ] || { h_err "no scenario matches: $*"; exit 2; }
t0=$(date +%s)
run_scenarios "$OUT_DIR/qemu/runs"
h_say "suite took $(($(date +%s) - t0)) s for ${#S_NAME[@]} boots (JOBS=${JOBS:-2})"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
