#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Self-test of the report checks in lib.sh, on made-up boot directories (no
# QEMU): a good report must pass, and every broken one (missing, truncated,
# hung boot, wrong or absent driver, missing log phrase, binder failing, a
# device wrongly on vfio-pci, log text only in the kernel command line, a
# failed preload) must fail.
set -eu
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "$0")/lib.sh"

ST="$OUT_DIR/qemu/selftest"
rm -rf "$ST"
bad=0
checks=0

# make_boot NAME RC: a boot directory holding the report read from stdin.
make_boot() {
    mkdir -p "$ST/$1"
    echo "$2" >"$ST/$1/qemu.rc"
    echo 9.0 >"$ST/$1/wall"
    # The tty adds CRs; the parser must cope.
    sed 's/$/\r/' >"$ST/$1/report.txt"
}

good_report() {
    cat <<'R'
UPTIME-BEFORE 2.40 0.00
BINDER-EXIT 0
UPTIME-AFTER 2.45 0.00
REPORT 0000:00:04.0 1b36:000c 0x060400 pcieport
REPORT 0000:01:00.0 1234:1111 0x038000 vfio-pci
REPORT 0000:01:00.1 8086:293e 0x040300 vfio-pci
KLOG [    0.080000] Kernel command line: console=ttyS0 vfio-early.devices=01:00.0 class guard
KLOG [    2.410000] vfio-early: 0000:01:00.0 [1234:1111] bound to vfio-pci via modprobe
KLOG [    2.440000] vfio-early: summary: 2 bound, 0 refused, 0 failed, 0 bad entries in 30 ms
REPORT-END
R
}

EXPECT="01:00.0=vfio-pci 0000:01:00.1=vfio-pci 00:04.0=pcieport 00:04.0!=vfio-pci"
LOGS="bound to vfio-pci via modprobe; summary:"

# expect_check NAME want(pass|fail) EXPECT LOGS
expect_check() {
    local got=pass out
    out=$(check_report "$ST/$1" "$3" "$4") || got=fail
    checks=$((checks + 1))
    if [ "$got" = "$2" ]; then
        # Quiet unless asked: run.sh prints one line for the whole self-test.
        [ -z "${SELFTEST_VERBOSE:-}" ] ||
            printf 'selftest ok   %-18s %s%s\n' "$1" "$got" "${out:+: $(tr '\n' ';' <<<"$out")}"
    else
        printf 'selftest BAD  %-18s expected %s, got %s %s\n' "$1" "$2" "$got" "$out"
        bad=1
    fi
}

good_report | make_boot good 0
expect_check good pass "$EXPECT" "$LOGS"

make_boot empty 0 </dev/null
expect_check empty fail "$EXPECT" "$LOGS"

mkdir -p "$ST/no-file"
echo 0 >"$ST/no-file/qemu.rc"
expect_check no-file fail "$EXPECT" "$LOGS"

good_report | grep -v REPORT-END | make_boot truncated 0
expect_check truncated fail "$EXPECT" "$LOGS"

good_report | make_boot hung 124
expect_check hung fail "$EXPECT" "$LOGS"

good_report | grep -v '^REPORT ' | make_boot no-devices 0
expect_check no-devices fail "" ""

good_report | sed 's/0x040300 vfio-pci/0x040300 snd_hda_intel/' | make_boot wrong-driver 0
expect_check wrong-driver fail "$EXPECT" "$LOGS"

good_report | grep -v '01:00.1' | make_boot absent-device 0
expect_check absent-device fail "$EXPECT" "$LOGS"

good_report | make_boot missing-phrase 0
expect_check missing-phrase fail "$EXPECT" "does not match"

# A phrase seen only in the kernel command line is not the binder's record.
good_report | make_boot cmdline-phrase 0
expect_check cmdline-phrase fail "$EXPECT" "class guard"

good_report | sed 's/BINDER-EXIT 0/BINDER-EXIT 1/' | make_boot binder-exit 0
expect_check binder-exit fail "$EXPECT" "$LOGS"

good_report | make_boot on-vfio 0
expect_check on-vfio fail "*!=vfio-pci" ""
good_report | make_boot not-vfio 0
expect_check not-vfio fail "01:00.0!=vfio-pci" ""

{ echo "PRELOAD vfio-pci rc=1"; good_report; } | make_boot preload-failed 0
expect_check preload-failed fail "$EXPECT" "$LOGS"

[ "$bad" -eq 0 ] || { h_err "harness self-test failed"; exit 1; }
echo "selftest: $checks report checks behave (a good report passes, every broken one fails)"
