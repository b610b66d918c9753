#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Fuzzes the parsers for a bounded time: cargo-fuzz (nightly, libFuzzer) targets in
# fuzz/fuzz_targets/: the expansion-ROM parser (inspect, clean_range), seeded with the real ROMs
# (fetch-fixtures.sh) and every make-test-rom.py variant; the command-line tokenizer against a
# reference model of the kernel's next_arg() (cmdline), the settings parsers (config) and the
# entry parser (entry), seeded with a few command lines and config files. Prints each target's
# execution count and any crash (the input is kept under tests/out/fuzz/<target>/); exits 1 on
# a crash or a failed build.
#
#   tests/roms/fuzz.sh [TARGET...]          default: inspect clean_range cmdline config entry shim
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_JOBS (libFuzzer -fork workers,
# default 1), FUZZ_ARGS (more libFuzzer flags). Needs `cargo install cargo-fuzz` and a
# nightly toolchain; the corpus grows in tests/.cache/fuzz/corpus/<target>.
set -u
ROMS_DIR=$(cd "$(dirname "$0")" && pwd)
TESTS_DIR=$(dirname "$ROMS_DIR")
REPO_DIR=$(dirname "$TESTS_DIR")
SECONDS_EACH=${FUZZ_SECONDS:-60}
CACHE=$TESTS_DIR/.cache/fuzz
OUT=${VFIO_EARLY_TEST_OUT:-$TESTS_DIR/out}/fuzz
TRIPLE=$(rustc +nightly -vV | sed -n 's/^host: //p')
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(inspect clean_range cmdline config entry shim)

command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }
cd "$REPO_DIR" || exit 1
mkdir -p "$CACHE"
echo "fuzz: building (cargo +nightly fuzz build -O, log $CACHE/build.log)"
if ! cargo +nightly fuzz build -O >"$CACHE/build.log" 2>&1; then
    tail -n 20 "$CACHE/build.log"
    echo "fuzz: build failed" >&2
    exit 1
fi

# Seeds: the fixtures (fetched; a missing fetch is an error, as in run.sh) and the variants.
"$ROMS_DIR/fetch-fixtures.sh" >/dev/null 2>&1 || { echo "fuzz: fetching the fixtures failed (tests/roms/fetch-fixtures.sh)" >&2; exit 1; }
SEEDS=$CACHE/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS"
fixtures=${ROM_FIXTURES_DIR:-$TESTS_DIR/.cache/roms}
while read -r kind pkg rel; do
    [ "$kind" = rom ] && cp "$fixtures/$pkg/$rel" "$SEEDS/$pkg-$(basename "$rel")"
done <"$ROMS_DIR/fixtures.lst"
for v in $(python3 "$ROMS_DIR/make-test-rom.py" --list | awk '{ print $1 }'); do
    case $v in huge | large | slow-clean) continue ;; esac # 2 GiB, 16 MiB, 1 MiB: too slow as seeds
    python3 "$ROMS_DIR/make-test-rom.py" --variant "$v" --size 4096 --legacy-blocks 2 "$SEEDS/gen-$v.rom" ||
        { echo "fuzz: make-test-rom.py --variant $v failed" >&2; exit 1; }
done
# Seeds of the input parsers: command lines, config files and entries as people write them.
TEXT_SEEDS=$CACHE/text-seeds
rm -rf "$TEXT_SEEDS"
mkdir -p "$TEXT_SEEDS"
i=0
while IFS= read -r seed; do
    i=$((i + 1))
    printf '%b' "$seed" >"$TEXT_SEEDS/seed-$i"
done <<'SEEDS'
BOOT_IMAGE=/vmlinuz root=UUID=0 ro quiet intel_iommu=on vfio-early.devices=0000:01:00.0@10de:1c03
vfio-early.devices=01:00.0,10de:1c03:1043:85f4+unbind vfio-early.group=strict vfio-early.off=0
"vfio-early.devices=01:00.0 02:00.0" a="b c" d=\"e -- init args
\001devices = 01:00.0\ngroup = whole # comment\noff = ture\nrom = display\nbuild-strict\n
\357\273\277devices = 01:00.0, ,02:00.0+guarded\ntimeout = 600\non-fail = fence\n
\002vfio-early.off\240quiet vfio-early.devices=,,,
01:00.9+boot-vga
0000:ff:1f.7@ffff:ffff:ffff:ffff+unbind+guarded+boot-vga
rdinit=/usr/lib/vfio-early/init vfio-early.init=//usr/lib/../lib/vfio-early/init -- vfio-early.init=/x
10000\n
SEEDS
echo "fuzz: $(find "$SEEDS" -type f | wc -l) ROM seeds, $i text seeds, ${SECONDS_EACH}s per target"

crashed=0
total=0
for t in "${targets[@]}"; do
    bin=$REPO_DIR/fuzz/target/$TRIPLE/release/$t
    corpus=$CACHE/corpus/$t
    art=$OUT/$t
    rm -rf "$art"
    mkdir -p "$corpus" "$art"
    log=$art/fuzz.log
    # Fork mode with -ignore_crashes: a crash is recorded (artifact) and fuzzing goes on, so
    # the count covers the whole time and every distinct crash is kept. -timeout: a unit
    # slower than 10 s is a finding too. The largest seed sets max_len.
    seeds=$SEEDS
    case $t in cmdline | config | entry | shim) seeds=$TEXT_SEEDS ;; esac
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin" "$corpus" "$seeds" -fork="${FUZZ_JOBS:-1}" -ignore_crashes=1 -max_total_time="$SECONDS_EACH" \
        -timeout=10 -rss_limit_mb=4096 -artifact_prefix="$art/" ${FUZZ_ARGS:-} >"$log" 2>&1
    rc=$?
    # Fork mode's progress lines: "#RUNS: cov: N ft: N corp: N exec/s: N oom/timeout/crash: a/b/c ...".
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1)
    runs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' <<<"$last")
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    total=$((total + ${runs:-0}))
    crashes=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
    echo "fuzz: $t: ${runs:-?} executions in ${SECONDS_EACH}s (${rate:-?}/s), coverage ${cov:-?} edges, corpus $(find "$corpus" -type f | wc -l) inputs, $(wc -w <<<"$crashes") crashes (libFuzzer exit $rc)"
    if [ -n "$crashes" ] || [ "$rc" -ne 0 ]; then
        crashed=1
        for c in $crashes; do
            echo "  CRASH input $c ($(stat -c %s "$c") bytes); replay: $bin $c"
            out=$("$bin" "$c" 2>&1)
            { grep -A1 'panicked at' <<<"$out" || grep -m 2 -E 'ERROR|SUMMARY' <<<"$out"; } | head -n 4 | sed 's/^/    /'
        done
        [ -n "$crashes" ] || { echo "  libFuzzer failed without an artifact:"; tail -n 5 "$log" | sed 's/^/    /'; }
    fi
done
echo "fuzz: total ${total} executions, $([ "$crashed" -eq 0 ] && echo "no crash" || echo "CRASHES (above)")"
exit "$crashed"
