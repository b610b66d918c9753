#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The expansion-ROM checks that need no QEMU, through the shipped binary's CLI: real ROMs
# from Debian packages (fetched, never committed) against reviewed goldens, every error and
# warning kind of rom.rs from crafted inputs, `rom clean` round trips, `rom inspect BDF` on a
# fake sysfs tree, `rom persist/known/libvirt`. One PASS/FAIL line per check, then exactly
# "N passed, M failed"; exit 1 on any failure. A fixture that cannot be fetched is a failure,
# never a skip.
#
#   tests/roms/run.sh [GROUP...]           groups: fixtures goldens crafted clean device tooling defects
#   tests/roms/run.sh --update-goldens     rewrite tests/roms/golden/ (review by hand after!)
# Environment: VFIO_EARLY_BIN (prebuilt binary, default: make static), ROM_FIXTURES_DIR.
# The QEMU boots are in tests/qemu (rows 20-*), the fuzzing in tests/roms/fuzz.sh.
set -u
ROMS_DIR=$(cd "$(dirname "$0")" && pwd)
TESTS_DIR=$(dirname "$ROMS_DIR")
REPO_DIR=$(dirname "$TESTS_DIR")
OUT=${VFIO_EARLY_TEST_OUT:-$TESTS_DIR/out}/roms
FIXTURES=${ROM_FIXTURES_DIR:-$TESTS_DIR/.cache/roms}
export ROM_FIXTURES_DIR=$FIXTURES
mkdir -p "$OUT"

passed=0
failed=0
line() { # STATUS TEXT
    echo "$1 $2"
    if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

if [ -n "${VFIO_EARLY_BIN:-}" ]; then
    BIN=$VFIO_EARLY_BIN
elif make -s -C "$REPO_DIR" static >"$OUT/make.log" 2>&1; then
    BIN=$REPO_DIR/target/x86_64-unknown-linux-musl/release/vfio-early
else
    line FAIL "build: make static failed (see $OUT/make.log)"
    finish
fi
if [ -x "$BIN" ]; then
    line PASS "build: $BIN"
else
    line FAIL "build: $BIN not executable"
    finish
fi

if "$ROMS_DIR/fetch-fixtures.sh" >"$OUT/fetch.log" 2>&1; then
    line PASS "fetch: Debian packages ipxe-qemu seabios vgabios qemu-system-data into $FIXTURES"
else
    grep '^FETCH-FAIL' "$OUT/fetch.log" | while IFS= read -r l; do echo "  $l"; done
    line FAIL "fetch: fixtures could not be fetched (see $OUT/fetch.log): no check runs without them"
    finish
fi

args=(--bin "$BIN" --fixtures "$FIXTURES" --out "$OUT")
if [ "${1:-}" = --update-goldens ]; then
    python3 "$ROMS_DIR/checks.py" "${args[@]}" --update-goldens
    echo "goldens rewritten: review every changed file against the bytes (tests/roms/golden/REVIEW.md), then git diff"
    exit
fi
[ "$#" -eq 0 ] || args+=(--only "$@")
rc=missing
while IFS= read -r l; do
    case $l in
        PASS\ *) line PASS "${l#PASS }" ;;
        FAIL\ *) line FAIL "${l#FAIL }" ;;
        CHECKS-EXIT\ *) rc=${l#CHECKS-EXIT } ;;
        *) echo "$l" ;;
    esac
done < <(python3 "$ROMS_DIR/checks.py" "${args[@]}" 2>&1; echo "CHECKS-EXIT $?")
# A checks.py that died half way (a traceback) must not pass for a short all-PASS list.
if [ "$rc" != 0 ] && [ "$failed" -eq 0 ]; then
    line FAIL "checks.py exited $rc without a FAIL line"
fi
finish
