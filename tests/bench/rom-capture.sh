#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Benchmark (prints numbers, asserts nothing): the binder's boot-time ROM capture against
# `dd bs=64k` of the same sysfs `rom` file, read in the same boot just before the binder runs
# (tests/qemu/init, test.romdd=). QEMU TCG boots of the tests/qemu harness: card1's display
# 01:00.0 gets a valid generated ROM chain (tests/roms/make-test-rom.py: 1 KiB legacy image +
# EFI image) of 1 MiB (QEMU sizes the ROM BAR to exactly 1 MiB), and, as the control that
# measures everything but the read, of 4 KiB.
#
# Times come from the kernel clock (printk timestamps, microseconds): the init writes
# "romtest: dd start/end" and "romtest: binder start" records; the binder's "ROM captured"
# record ends its capture. So:
#   dd        = dd end - dd start                     (read only)
#   capture   = ROM captured - binder start           (exec, scan, fence, enable, read, sha256,
#                                                      two fsync'd writes: an upper bound)
#   net       = capture(1 MiB) - capture(4 KiB)       (what the extra 1020 KiB cost the binder)
# Ratios > 1 mean the binder is faster than dd.
#
#   tests/bench/rom-capture.sh
# Environment: RUNS (boots per ROM size, default 3), VFIO_EARLY_BIN, BOOT_TIMEOUT.
set -u
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "$0")/../qemu/lib.sh"
RUNS=${RUNS:-3}
BENCH_DIR="$OUT_DIR/bench/rom-capture"
# Its own generated ROMs: tests/qemu/run.sh remakes the shared ones when it starts.
ROM_GEN_DIR="$BENCH_DIR/roms"

ensure_host || exit 1
build_binder || exit 1
IMAGES["test"]="$BENCH_DIR/test-initrd.img"
build_image "${IMAGES["test"]}" || exit 1
big=$(ensure_test_rom valid-1m) && small=$(ensure_test_rom valid-4k) || exit 1
echo "rom-capture: kernel $(kernel_version), $RUNS boots per size, ROMs $big ($(stat -c %s "$big") bytes), $small ($(stat -c %s "$small") bytes)"

# boot_numbers DIR ROMFILE: "dd_bytes dd_s capture_s captured_bytes same" or a reason.
boot_numbers() {
    local dir=$1 rom=$2 problem
    problem=$(boot_problem "$dir")
    [ -z "$problem" ] || { echo "n/a ($problem)"; return 1; }
    report_text "$dir" | awk -v want="$(sha256sum <"$rom" | cut -d' ' -f1)" '
        function ts(line) { sub(/^KTEST \[ */, "", line); sub(/^KLOG \[ */, "", line); sub(/\].*/, "", line); return line + 0 }
        $1 == "KTEST" && / romtest: dd start/    { d0 = ts($0) }
        $1 == "KTEST" && / romtest: dd end/      { d1 = ts($0) }
        $1 == "KTEST" && / romtest: binder start/ { b0 = ts($0) }
        $1 == "KLOG" && /\] vfio-early: .*ROM captured: / { c1 = ts($0) }
        $1 == "ROMDD"   { for (i = 2; i <= NF; i++) { if ($i ~ /^bytes=/) ddb = substr($i, 7) + 0; if ($i ~ /^records=/) recs = substr($i, 9) } }
        $1 == "ROMFILE" { got = $2; size = $3 }
        END {
            if (d0 == "" || d1 == "" || b0 == "" || c1 == "") { print "n/a (markers or ROM captured record missing)"; exit 1 }
            printf "%d %.6f %.6f %d %s %s\n", ddb, d1 - d0, c1 - b0, size, (got == want ? "identical" : "DIFFERENT"), (recs == "" ? "?" : recs)
        }'
}

declare -a BIG SMALL
for ((r = 1; r <= RUNS; r++)); do
    for size in big small; do
        rom=$big spec=valid-1m
        [ "$size" = small ] && rom=$small spec=valid-4k
        dir="$BENCH_DIR/$size-$r"
        boot_scenario "$dir" "card1 card1rom=$spec" \
            "vfio-early.devices=01:00.0 vfio-early.rom=01:00.0 test.romdd=01:00.0" "" >/dev/null 2>&1
        if nums=$(boot_numbers "$dir" "$rom"); then
            read -r ddb dds caps capb same recs <<<"$nums"
            printf 'run %d %-5s: dd %7d bytes (%s reads) in %8.2f ms (%7.2f MiB/s); capture %7d bytes (%s to the romfile) in %8.2f ms (%7.2f MiB/s upper bound)\n' \
                "$r" "$size" "$ddb" "$recs" "$(awk -v s="$dds" 'BEGIN { print s * 1000 }')" \
                "$(awk -v b="$ddb" -v s="$dds" 'BEGIN { print (s > 0 ? b / s / 1048576 : 0) }')" \
                "$capb" "$same" "$(awk -v s="$caps" 'BEGIN { print s * 1000 }')" \
                "$(awk -v b="$capb" -v s="$caps" 'BEGIN { print (s > 0 ? b / s / 1048576 : 0) }')"
            if [ "$size" = big ]; then BIG+=("$ddb $dds $caps $capb"); else SMALL+=("$ddb $dds $caps $capb"); fi
        else
            echo "run $r $size: $nums (see $dir)"
        fi
    done
done

# Medians and ratios.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ "${#BIG[@]}" -eq 0 ] || [ "${#SMALL[@]}" -eq 0 ]; then
    echo "rom-capture: not enough boots measured (big ${#BIG[@]}, small ${#SMALL[@]})"
    exit 1
fi
dd_big=$(printf '%s\n' "${BIG[@]}" | awk '{ print $2 }' | median)
cap_big=$(printf '%s\n' "${BIG[@]}" | awk '{ print $3 }' | median)
cap_small=$(printf '%s\n' "${SMALL[@]}" | awk '{ print $3 }' | median)
bytes_big=$(printf '%s\n' "${BIG[@]}" | awk '{ print $4 }' | median)
bytes_small=$(printf '%s\n' "${SMALL[@]}" | awk '{ print $4 }' | median)
dd_bytes=$(printf '%s\n' "${BIG[@]}" | awk '{ print $1 }' | median)
awk -v ddb="$dd_bytes" -v dds="$dd_big" -v cb="$cap_big" -v cs="$cap_small" -v bb="$bytes_big" -v bs="$bytes_small" -v n="${#BIG[@]}" 'BEGIN {
    mib = 1048576
    dd_t = ddb / dds / mib; up_t = bb / cb / mib
    net = cb - cs; net_t = (net > 0) ? (bb - bs) / net / mib : 0
    printf "median of %d boots, 1 MiB ROM:\n", n
    printf "  dd bs=64k of the sysfs rom file: %.2f ms, %.2f MiB/s\n", dds * 1000, dd_t
    printf "  binder, binder start -> ROM captured: %.2f ms, %.2f MiB/s (upper bound; 4 KiB control: %.2f ms)\n", cb * 1000, up_t, cs * 1000
    if (net > 0) printf "  binder, net of the control: %.2f ms for %d bytes, %.2f MiB/s\n", net * 1000, bb - bs, net_t
    else printf "  binder, net of the control: n/a (1 MiB capture not slower than 4 KiB)\n"
    printf "ratio capture/dd throughput: %.2f (whole capture step), %s (net)\n", up_t / dd_t, (net > 0) ? sprintf("%.2f", net_t / dd_t) : "n/a"
}'
