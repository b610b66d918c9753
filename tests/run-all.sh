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
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

stage "host setup (Debian packages, rustup components, Debian kernel)"
if ! tests/setup-host.sh; then
    echo "run-all: host setup failed: nothing else can run" >&2
    echo "total: 0 passed, 1 failed"
    exit 1
fi

stage "format and lint"
check fmt cargo fmt --all -- --check
check clippy cargo clippy --workspace --all-targets -- -D warnings

stage "unit, property and fake-tree tests"
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

stage "the build: static binary, size budget, source tarball, hooks' config reading, add-on kernel hooks, the rdinit shim as PID 1"
check "make (static musl, stable)" make
tests/size-budget.sh 2>&1 | tee tests/out/size-budget.log
count_suite "size budget" "${PIPESTATUS[0]}" tests/out/size-budget.log
tests/build/dist.sh 2>&1 | tee tests/out/dist.log
count_suite "dist tarball builds" "${PIPESTATUS[0]}" tests/out/dist.log
tests/hooks/strict-agree.sh 2>&1 | tee tests/out/strict-agree.log
count_suite "build-strict readers agree" "${PIPESTATUS[0]}" tests/out/strict-agree.log
tests/hooks/addon-hooks.sh 2>&1 | tee tests/out/addon-hooks.log
count_suite "add-on kernel hooks" "${PIPESTATUS[0]}" tests/out/addon-hooks.log
tests/shim/pid1.sh 2>&1 | tee tests/out/shim-pid1.log
count_suite "rdinit shim as PID 1" "${PIPESTATUS[0]}" tests/out/shim-pid1.log

stage "expansion ROMs: real fixtures from Debian's packages, goldens, crafted findings, clean round trips, persist under faults"
tests/roms/run.sh 2>&1 | tee tests/out/roms.log
count_suite "rom checks" "${PIPESTATUS[0]}" tests/out/roms.log
check "fuzz (ROM parser, bounded)" env FUZZ_SECONDS="${FUZZ_SECONDS:-30}" tests/roms/fuzz.sh
tests/roms/persist-faults.sh 2>&1 | tee tests/out/persist-faults.log
count_suite "rom persist under faults" "${PIPESTATUS[0]}" tests/out/persist-faults.log

stage "mkinitcpio hooks under a recording stand-in of its build API"
tests/mkinitcpio/standin-test.sh 2>&1 | tee tests/out/mkinitcpio.log
count_suite "mkinitcpio stand-in" "${PIPESTATUS[0]}" tests/out/mkinitcpio.log

stage "benchmarks (numbers, not tests; the issues' budgets on them are checked after the generator suite)"
check "benchmark runs" tests/bench/bench.sh
check "ROM capture benchmark runs" tests/bench/rom-capture.sh

stage "real kernel under QEMU"
tests/qemu/run.sh 2>&1 | tee tests/out/qemu.log
count_suite "qemu boots" "${PIPESTATUS[0]}" tests/out/qemu.log

stage "images built by the real generators (initramfs-tools, dracut systemd and shell) under QEMU"
tests/generators/run.sh 2>&1 | tee tests/out/generators.log
count_suite "generator boots" "${PIPESTATUS[0]}" tests/out/generators.log
tests/generators/rom-persist.sh 2>&1 | tee tests/out/rom-persist.log
count_suite "ROM capture across switch_root and a rebuild" "${PIPESTATUS[0]}" tests/out/rom-persist.log

stage "the issues' budgets on the benchmark's and the generator suite's figures"
tests/bench/budget.sh 2>&1 | tee tests/out/bench-budget.log
count_suite "benchmark budgets" "${PIPESTATUS[0]}" tests/out/bench-budget.log

stage "the .deb: contents, lintian, install / purge / upgrade in initramfs-tools and dracut roots, boots"
tests/packaging/deb.sh 2>&1 | tee tests/out/deb.log
count_suite "deb package" "${PIPESTATUS[0]}" tests/out/deb.log
stage "the Arch and RPM packages: makepkg, rpmbuild, rpm into the dracut root, boot"
tests/packaging/arch-rpm.sh 2>&1 | tee tests/out/arch-rpm.log
count_suite "Arch and RPM packages" "${PIPESTATUS[0]}" tests/out/arch-rpm.log

stage "result"
[ "${#failures[@]}" -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
# Skipped checks are counted apart, never as passed.
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
