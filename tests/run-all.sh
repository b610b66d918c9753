#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Every test of vfio-early, as CI runs it, on a fresh Debian 12 machine as root:
# host setup, fmt, clippy, unit and fake-tree tests, the build (static binary's
# size budget, the dist tarball offline and at the minimum Rust version), the
# benchmark (prints numbers, asserts nothing), the real-kernel QEMU boots, the
# real generators' images, and the .deb installed into real roots and booted. Every stage runs even if an earlier one failed; the last line counts
# them all: "total: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
mkdir -p tests/out
passed=0
failed=0
skipped=0
failures=()

stage() { printf '\n==== %s\n' "$1"; }
# Wall time of every step, printed as a table at the end (a slow addition shows).
STEP_NAMES=()
STEP_SECS=()
T_ALL=$SECONDS
timed() { # NAME SECONDS
    STEP_NAMES+=("$1")
    STEP_SECS+=("$2")
}
# count_suite NAME EXIT LOG: adds a suite's closing "N passed, M failed" line to the totals; a
# suite that failed without saying so counts as one failure.
count_suite() {
    local p f s
    read -r p f s < <(awk '/^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$/ {p = $1; f = $3 + 0; s = $5 + 0} END {print p + 0, f + 0, s + 0}' "$3")
    passed=$((passed + p))
    skipped=$((skipped + s))
    failed=$((failed + f))
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
        failed=$((failed + 1))
        failures+=("$1 (exit $2)")
    fi
    [ "$f" -eq 0 ] || failures+=("$1: $f failed")
}
check() { # NAME CMD...: one pass/fail unit
    local name=$1 t0=$SECONDS
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
    timed "$name" $((SECONDS - t0))
}
suite() { # NAME LOG CMD...: a suite that ends with "N passed, M failed", its output in tests/out/LOG
    local name=$1 log=tests/out/$2 t0=$SECONDS rc
    shift 2
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    count_suite "$name" "$rc" "$log"
    timed "$name" $((SECONDS - t0))
}

stage "host setup (Debian packages, rustup components, Debian kernel)"
t0=$SECONDS
if ! tests/setup-host.sh; then
    echo "run-all: host setup failed: nothing else can run" >&2
    echo "total: 0 passed, 1 failed"
    exit 1
fi
timed "host setup" $((SECONDS - t0))

stage "format and lint"
check fmt cargo fmt --all -- --check
check clippy cargo clippy --workspace --all-targets -- -D warnings

stage "unit, property and fake-tree tests"
t0=$SECONDS
cargo test --workspace 2>&1 | tee tests/out/cargo-test.log
cargo_rc=${PIPESTATUS[0]}
read -r p f < <(awk '/^test result:/ {p += $4; f += $6} END {print p + 0, f + 0}' tests/out/cargo-test.log)
passed=$((passed + p))
failed=$((failed + f))
if [ "$cargo_rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    failed=$((failed + 1)) # a build failure runs no test but must count
    failures+=("cargo test (exit $cargo_rc)")
fi
[ "$f" -eq 0 ] || failures+=("$f cargo tests")
timed "cargo test" $((SECONDS - t0))

stage "the build: static binary, size budget, source tarball, hooks' config reading, add-on kernel hooks, vendor-reset into images, the rdinit shim as PID 1"
check "make (static musl, stable)" make
suite "size budget" size-budget.log tests/size-budget.sh
suite "dist tarball builds" dist.log tests/build/dist.sh
suite "build-strict readers agree" strict-agree.log tests/hooks/strict-agree.sh
suite "add-on kernel hooks" addon-hooks.log tests/hooks/addon-hooks.sh
suite "vendor-reset into images" vendor-reset.log tests/hooks/vendor-reset.sh
suite "rdinit shim as PID 1" shim-pid1.log tests/shim/pid1.sh

stage "expansion ROMs: real fixtures from Debian's packages, goldens, crafted findings, clean round trips, persist under faults"
suite "rom checks" roms.log tests/roms/run.sh
check "fuzz (ROM parser, bounded)" env FUZZ_SECONDS="${FUZZ_SECONDS:-30}" tests/roms/fuzz.sh
suite "rom persist under faults" persist-faults.log tests/roms/persist-faults.sh

stage "mkinitcpio hooks under a recording stand-in of its build API"
suite "mkinitcpio stand-in" mkinitcpio.log tests/mkinitcpio/standin-test.sh

stage "benchmarks (numbers, not tests; the issues' budgets on them are checked after the generator suite)"
check "benchmark runs" tests/bench/bench.sh
check "ROM capture benchmark runs" tests/bench/rom-capture.sh

stage "real kernel under QEMU"
suite "qemu boots" qemu.log tests/qemu/run.sh

stage "images built by the real generators (initramfs-tools, dracut systemd and shell) under QEMU"
suite "generator boots" generators.log tests/generators/run.sh
suite "ROM capture across switch_root and a rebuild" rom-persist.log tests/generators/rom-persist.sh

stage "the issues' budgets on the benchmark's and the generator suite's figures"
suite "benchmark budgets" bench-budget.log tests/bench/budget.sh

stage "the .deb: contents, lintian, install / purge / upgrade in initramfs-tools and dracut roots, boots"
suite "deb package" deb.log tests/packaging/deb.sh
stage "the Arch and RPM packages: makepkg, rpmbuild, rpm into the dracut root, boot"
suite "Arch and RPM packages" arch-rpm.log tests/packaging/arch-rpm.sh

stage "time"
printf '%-48s %6s\n' step seconds
for i in "${!STEP_NAMES[@]}"; do
    printf '%-48s %6d\n' "${STEP_NAMES[i]}" "${STEP_SECS[i]}"
done
printf '%-48s %6d  (%d min)\n' "whole command" $((SECONDS - T_ALL)) $(((SECONDS - T_ALL + 59) / 60))
# The slowest boots of the QEMU suites (each boot directory's "wall": QEMU's own wall time).
echo "slowest boots (s, QEMU wall time):"
find tests/out -name wall -type f -newer tests/out/cargo-test.log 2>/dev/null |
    while read -r w; do printf '%s %s\n' "$(cat "$w")" "${w%/wall}"; done |
    sort -rn | head -n 10 | awk '{ printf "  %6.1f  %s\n", $1, $2 }'

stage "result"
[ "${#failures[@]}" -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
# Skipped checks are counted apart, never as passed.
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
