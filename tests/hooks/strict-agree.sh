#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# build-strict has two readers: the binary (`vfio-early config`, what the hooks ask) and
# hook-lib.sh's shell fallback (used only when the binary is missing or cannot run). They must
# agree on every file. Each case runs the fallback under dash and bash and compares it with the
# binary; then ve_strict_value is run with a working binary (its answer), a missing one and a
# broken one (the fallback). Ends with "N passed, M failed".
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${VFIO_EARLY_BIN:-$repo/target/x86_64-unknown-linux-musl/release/vfio-early}
[ -x "$bin" ] || make -s -C "$repo" >/dev/null || { echo "strict-agree: build failed"; echo "0 passed, 1 failed"; exit 1; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/etc" "$t/bin"
sed -e "s|@BINDIR@|$t/bin|g" -e "s|@SYSCONFDIR@|$t/etc|g" "$repo/hooks-common/hook-lib.sh" >"$t/hook-lib.sh"
# The hooks' binary, as installed: hook-lib names the file (--file @SYSCONFDIR@/vfio-early.conf).
printf '#!/bin/sh\nexec %s "$@"\n' "$bin" >"$t/real"
chmod 755 "$t/real"
passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'PASS %s\n' "$1"; }
ko() { failed=$((failed + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }

cases=(
    ''
    'build-strict = yes'
    'build-strict'
    'build_strict=YES'
    'build-strict = On # the admin wants it'
    '  build-strict   =   true  '
    'build-strict = no'
    'build-strict = ture'
    $'build-strict = yes\nbuild-strict = ture'
    $'build-strict = yes\nbuild-strict = 0'
    $'build-strict = n\nbuild-strict'
    'build-strict = yes no'
    'build-strict ='
    'Build-Strict = yes'
    'build strict = yes'
    '# build-strict = yes'
    'devices = 01:00.0 # build-strict = yes'
    $'\xef\xbb\xbfbuild-strict = yes'
    $'devices = 01:00.0\n\xef\xbb\xbfbuild-strict = yes'
    $'build-strict = yes\r'
    'build-strict = Y'
    'build-strict=1'
    $'devices = zz\nbuild-strict = yes'
    'build-strict = "yes"'
)
for i in "${!cases[@]}"; do
    printf '%s' "${cases[i]}" >"$t/etc/vfio-early.conf"
    want=$("$bin" config --root "$t" 2>/dev/null | sed -n 's/^build-strict = //p')
    for sh in dash bash; do
        got=$("$sh" -c '. "$1"; ve_strict_file' sh "$t/hook-lib.sh")
        name="case $i ($sh): $(printf '%q' "${cases[i]}")"
        if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "$name -> $got"; else ko "$name" "binary says '$want', shell says '$got'"; fi
    done
done

# ve_strict_value: the binary's answer when it runs, the fallback when it is missing or broken.
printf 'build-strict = yes\nbogus-key = 1\n' >"$t/etc/vfio-early.conf"
run_value() { dash -c '. "$1"; ve_strict_value' sh "$t/hook-lib.sh" 2>"$t/err"; }
cp "$t/real" "$t/bin/vfio-early"
got=$(run_value)
if [ "$got" = yes ] && grep -q 'unknown key "bogus-key"' "$t/err"; then ok "value from the binary, its problems on stderr"; else ko "value from the binary" "got '$got', stderr: $(cat "$t/err")"; fi
rm -f "$t/bin/vfio-early"
got=$(run_value)
if [ "$got" = yes ]; then ok "binary missing: the shell reading"; else ko "binary missing" "got '$got'"; fi
printf '#!/bin/sh\nexit 127\n' >"$t/bin/vfio-early"
chmod 755 "$t/bin/vfio-early"
got=$(run_value)
if [ "$got" = yes ]; then ok "binary cannot run: the shell reading"; else ko "binary cannot run" "got '$got'"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
