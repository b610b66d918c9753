#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# `rom persist` under the faults that need root or strace (the kill -9 loop and concurrent runs
# are in binder/tests/persist.rs):
#   - a SIGKILL at every syscall of one run: strace -e inject=SYSCALL:signal=KILL:when=N for
#     every syscall name and every N up to its count in a clean run, each followed by a clean
#     run that must finish the job;
#   - a full store: /var/lib/vfio-early on a 160 KiB tmpfs, then room again;
#   - planted symlinks in place of the store and /run directories, and at final names.
# After each: every capture stored whole with its sidecar (or still in /run, never both lost),
# no temporary file left, nothing outside the root touched. Ends with "N passed, M failed".
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${VFIO_EARLY_BIN:-$repo/target/x86_64-unknown-linux-musl/release/vfio-early}
[ -x "$bin" ] || make -s -C "$repo" >/dev/null || { echo "persist-faults: build failed"; echo "0 passed, 1 failed"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
ko() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
for tool in strace python3 sha256sum mount; do
    command -v "$tool" >/dev/null || { ko "needs $tool (tests/setup-host.sh installs it)"; echo "$passed passed, $failed failed"; exit 1; }
done
[ "$(id -u)" = 0 ] || { ko "needs root (tmpfs mounts)"; echo "$passed passed, $failed failed"; exit 1; }

work=$(mktemp -d)
mounted=()
cleanup() {
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
RUN=run/vfio-early/roms
VAR=var/lib/vfio-early/roms

# Fixture: N valid captures (64 KiB each, distinct devices) with sidecars, made once.
fixture=$work/fixture
mkdir -p "$fixture/$RUN"
for k in 0 1 2 3; do
    dev=$(printf '%04x' $((0x1100 + k)))
    python3 "$repo/tests/roms/make-test-rom.py" --device "$dev" --size $((65536 + k * 512)) "$work/r$k.rom" >/dev/null
    sha=$(sha256sum <"$work/r$k.rom" | cut -d' ' -f1)
    name="1234-$dev-0000-0000-${sha:0:12}.rom"
    cp "$work/r$k.rom" "$fixture/$RUN/$name"
    printf '{"version":1,"file":"%s","sha256":"%s"}\n' "$name" "$sha" >"$fixture/$RUN/$name.json"
done
n_caps=$(find "$fixture/$RUN" -name '*.rom' | wc -l)

fresh() { rm -rf "$1" && mkdir -p "$1" && cp -a "$fixture/." "$1/"; }

# Every capture accounted for: stored whole with its sidecar, or still whole in /run (only
# when a fault stopped the run); no temporary file; prints the problem, if any.
verify() {
    local root=$1 allow_left=$2 name sha where bad=""
    for f in "$fixture/$RUN"/*.rom; do
        name=${f##*/}
        sha=$(sha256sum <"$f" | cut -d' ' -f1)
        where=""
        if [ -f "$root/$VAR/$name" ] && [ ! -L "$root/$VAR/$name" ] &&
            [ "$(sha256sum <"$root/$VAR/$name" | cut -d' ' -f1)" = "$sha" ] &&
            grep -q "\"sha256\":\"$sha\"" "$root/$VAR/$name.json" 2>/dev/null; then
            where=stored
        fi
        if [ -z "$where" ] && [ "$allow_left" = 1 ] && [ -f "$root/$RUN/$name" ] &&
            [ "$(sha256sum <"$root/$RUN/$name" | cut -d' ' -f1)" = "$sha" ] &&
            grep -q "$sha" "$root/$RUN/$name.json" 2>/dev/null; then
            where=run
        fi
        [ -n "$where" ] || bad+="$name lost; "
        if [ "$where" = stored ] && [ "$allow_left" = 0 ] && [ -e "$root/$RUN/$name" ]; then
            bad+="$name still in /run; "
        fi
    done
    if [ "$allow_left" = 0 ] && [ -n "$(find "$root" -name '*.vetmp' 2>/dev/null)" ]; then
        bad+="temporary files left: $(find "$root" -name '*.vetmp' | tr '\n' ' ')"
    fi
    printf '%s' "$bad"
}

# 1. SIGKILL at every syscall.
probe=$work/probe
fresh "$probe"
strace -f -c -o "$work/counts" "$bin" rom --root "$probe" persist >/dev/null 2>&1
problem=$(verify "$probe" 0)
[ -z "$problem" ] && ok "clean run under strace stores all $n_caps captures" || ko "clean run: $problem"
# "% time seconds usecs/call calls errors syscall": the name is the last field, calls the 4th
# (5 fields without errors, 6 with).
mapfile -t counts < <(awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { print $NF " " $4 }' "$work/counts")
total=0 kills=0 bad=0 cut=0
for line in "${counts[@]}"; do
    sc=${line% *} n=${line#* }
    total=$((total + n))
    for ((i = 1; i <= n; i++)); do
        r=$work/k
        fresh "$r"
        # In a subshell: bash would report the killed job on our stderr.
        (strace -f -o /dev/null -e trace=all -e "inject=$sc:signal=KILL:when=$i" \
            "$bin" rom --root "$r" persist >/dev/null 2>&1; :) 2>/dev/null
        kills=$((kills + 1))
        # The kill landed before the run finished: it left captures in /run.
        [ -z "$(find "$r/$RUN" -maxdepth 1 -name '*.rom' 2>/dev/null)" ] || cut=$((cut + 1))
        problem=$(verify "$r" 1)
        if [ -n "$problem" ]; then
            bad=$((bad + 1))
            [ "$bad" -le 5 ] && echo "  killed at $sc #$i: $problem"
            continue
        fi
        "$bin" rom --root "$r" persist >"$work/after.out" 2>&1
        problem=$(verify "$r" 0)
        if [ -n "$problem" ]; then
            bad=$((bad + 1))
            [ "$bad" -le 5 ] && echo "  killed at $sc #$i, then a clean run: $problem ($(head -c 300 "$work/after.out"))"
        fi
    done
done
if [ "$bad" -eq 0 ] && [ "$kills" -gt 50 ] && [ "$cut" -gt $((kills / 2)) ]; then
    ok "SIGKILL at each of the $total syscalls of a run ($kills kills, ${#counts[@]} syscall kinds, $cut cut it short): a clean run completes every one, nothing lost"
else
    ko "SIGKILL at every syscall: $bad of $kills runs lost or left something, $cut cut short (syscalls counted: $total)"
fi

# 2. A full store.
r=$work/full
fresh "$r"
mkdir -p "$r/var/lib/vfio-early"
mount -t tmpfs -o size=160k tmpfs "$r/var/lib/vfio-early" && mounted+=("$r/var/lib/vfio-early")
"$bin" rom --root "$r" persist >"$work/full.out" 2>&1
rc=$?
problem=$(verify "$r" 1)
temps=$(find "$r" -name '*.vetmp' | wc -l)
if [ "$rc" = 1 ] && grep -q "No space left on device" "$work/full.out" && [ -z "$problem" ] && [ "$temps" = 0 ]; then
    ok "ENOSPC: exit 1, named, every capture stored or still in /run, no temporary file"
else
    ko "ENOSPC: exit $rc, $problem, $temps temporary files: $(head -c 400 "$work/full.out")"
fi
umount "$r/var/lib/vfio-early" && mounted=()
mount -t tmpfs -o size=4m tmpfs "$r/var/lib/vfio-early" && mounted+=("$r/var/lib/vfio-early")
# What was stored on the small tmpfs is gone with it; the captures still in /run are not.
cp -a "$fixture/$RUN/." "$r/$RUN/"
"$bin" rom --root "$r" persist >"$work/room.out" 2>&1
problem=$(verify "$r" 0)
[ -z "$problem" ] && ok "with room again, a rerun stores everything" || ko "after ENOSPC: $problem $(head -c 300 "$work/room.out")"
umount "$r/var/lib/vfio-early" && mounted=()

# 3. Planted symlinks.
r=$work/links
outside=$work/outside
mkdir -p "$outside"
echo precious >"$outside/file"
fresh "$r"
mkdir -p "$r/var/lib/vfio-early"
ln -s "$outside" "$r/$VAR"
"$bin" rom --root "$r" persist >"$work/l1.out" 2>&1
rc=$?
problem=$(verify "$r" 1)
if [ "$rc" = 1 ] && grep -q "symlink is not followed" "$work/l1.out" && [ -z "$problem" ] &&
    [ "$(ls "$outside")" = file ]; then
    ok "the store directory is a symlink: refused, named, nothing written through it, /run kept"
else
    ko "symlinked store: exit $rc, $problem, outside holds: $(ls "$outside" | tr '\n' ' ') $(head -c 300 "$work/l1.out")"
fi
rm "$r/$VAR"
mkdir -p "$r/$VAR"
for f in "$fixture/$RUN"/*.rom; do
    ln -s "$outside/file" "$r/$VAR/${f##*/}"
    ln -s "$outside/file" "$r/$VAR/${f##*/}.json"
done
"$bin" rom --root "$r" persist >"$work/l2.out" 2>&1
rc=$?
problem=$(verify "$r" 0)
if [ "$rc" = 0 ] && [ -z "$problem" ] && [ "$(cat "$outside/file")" = precious ]; then
    ok "symlinks planted at every final name: replaced, their target untouched"
else
    ko "planted final names: exit $rc, $problem, target now: $(head -c 50 "$outside/file") $(head -c 300 "$work/l2.out")"
fi
fresh "$r"
rm -rf "${r:?}/run"
mkdir -p "$r/run"
ln -s "$outside" "$r/run/vfio-early"
"$bin" rom --root "$r" persist >"$work/l3.out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "symlink is not followed" "$work/l3.out" && [ "$(ls "$outside")" = file ]; then
    ok "/run/vfio-early is a symlink: refused, nothing read or removed through it"
else
    ko "symlinked /run/vfio-early: exit $rc, outside holds: $(ls "$outside" | tr '\n' ' ') $(head -c 300 "$work/l3.out")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
