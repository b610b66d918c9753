#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# hook-lib.sh's ve_modules under dash and bash: vendor-reset goes into an image exactly when an
# entry asks for a device_specific reset (in the configuration as the binary reads it, or on the
# kernel command line) and the kernel has the module; asked for and missing, the build says so
# and goes on. A modinfo stand-in plays the kernel's modules. Ends with "N passed, M failed".
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${VFIO_EARLY_BIN:-$repo/target/x86_64-unknown-linux-musl/release/vfio-early}
[ -x "$bin" ] || make -s -C "$repo" >/dev/null || { echo "vendor-reset: build failed"; echo "0 passed, 1 failed"; exit 1; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/etc" "$t/bin" "$t/path"
sed -e "s|@BINDIR@|$t/bin|g" -e "s|@SYSCONFDIR@|$t/etc|g" "$repo/hooks-common/hook-lib.sh" >"$t/hook-lib.sh"
ln -s "$bin" "$t/bin/vfio-early"
# modinfo -k KERNEL -F filename MODULE: vfio and vfio_pci are modules of every kernel here,
# vendor-reset only of kernel "with-vr".
cat >"$t/path/modinfo" <<'EOS'
#!/bin/sh
k="" m=""
while [ $# -gt 0 ]; do
    case $1 in -k) k=$2; shift ;; -F | -b) shift ;; *) m=$1 ;; esac
    shift
done
case $m in
    vfio | vfio_pci | vfio_iommu_type1) echo "/lib/modules/$k/kernel/drivers/vfio/$m.ko" ;;
    vendor-reset) [ "$k" = with-vr ] && echo "/lib/modules/$k/updates/dkms/vendor-reset.ko" ;;
esac
EOS
chmod 755 "$t/path/modinfo"
passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'PASS %s\n' "$1"; }
ko() { failed=$((failed + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }

# name | config file | kernel command line | kernel | want vendor-reset (yes/no) | want a note (yes/no)
while IFS='|' read -r name conf cmdline kernel want note; do
    printf '%b' "$conf" >"$t/etc/vfio-early.conf"
    printf '%s\n' "$cmdline" >"$t/cmdline"
    for sh in dash bash; do
        command -v "$sh" >/dev/null || { ko "$name ($sh)" "$sh missing"; continue; }
        out=$(PATH="$t/path:$PATH" VE_CMDLINE_FILES="$t/cmdline" "$sh" -c ". '$t/hook-lib.sh'; ve_modules $kernel" 2>"$t/err")
        got=no
        grep -qx vendor-reset <<<"$out" && got=yes
        said=no
        grep -q "no vendor-reset module" "$t/err" && said=yes
        if [ "$got" = "$want" ] && [ "$said" = "$note" ] && grep -qx vfio_pci <<<"$out"; then
            ok "$name ($sh)"
        else
            ko "$name ($sh)" "vendor-reset in image: $got (want $want), note: $said (want $note); modules: $(tr '\n' ' ' <<<"$out")"
        fi
    done
done <<'EOT'
nothing asked|devices = 01:00.0\n||with-vr|no|no
config asks|devices = 01:00.0+reset=device_specific\n||with-vr|yes|no
config asks another method|devices = 01:00.0+reset=flr\n||with-vr|no|no
a comment is not an entry|# devices = 01:00.0+reset=device_specific\n||with-vr|no|no
a bad entry is not an entry|devices = 01:00.0+reset=device_specific,zz\ncolour = 1\n||with-vr|yes|no
command line asks|| quiet vfio-early.devices=01:00.0+reset=device_specific|with-vr|yes|no
asked, kernel without it|devices = 01:00.0+reset=device_specific\n||plain|no|yes
EOT
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
