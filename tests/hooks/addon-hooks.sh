#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The scripts that rebuild the initrd add-on for each kernel (Debian's kernel hooks in
# /etc/kernel/postinst.d and postrm.d, the kernel-install plugin), installed by `make
# install-addon` into a scratch tree and run under /bin/sh with a recording stand-in for
# `vfio-early` (the add-on itself is built and booted by the generator suite): they act only
# with /etc/vfio-early/addon.enabled, pass the right arguments and the config when there is one,
# remove the add-on with its kernel, and exit 0 whatever the build did. Ends with "N passed, M failed".
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
make -s -C "$repo" install-addon DESTDIR="$t" BINDIR=/bin SYSCONFDIR=/etc LIBDIR=/lib >"$t/make.log" 2>&1 ||
    { cat "$t/make.log"; echo "0 passed, 1 failed"; exit 1; }
# The scripts name @BINDIR@/vfio-early and @SYSCONFDIR@ as absolute paths: point them into $t.
for f in "$t"/etc/kernel/postinst.d/* "$t"/etc/kernel/postrm.d/* "$t"/lib/kernel/install.d/*; do
    sed -i -e "s|\"/bin/vfio-early\"|\"$t/bin/vfio-early\"|" -e "s|\"/etc/vfio-early|\"$t/etc/vfio-early|g" \
        -e "s|\"/etc/kernel/postinst.d/zz-systemd-boot\"|\"$t/etc/kernel/postinst.d/zz-systemd-boot\"|" "$f"
done
mkdir -p "$t/bin" "$t/boot" "$t/stage"
# The stand-in: records its arguments; writes the -o file, or fails when $t/fail exists.
cat >"$t/bin/vfio-early" <<STUB
#!/bin/sh
echo "\$*" >>"$t/calls"
[ ! -e "$t/fail" ] || { echo "vfio-early: addon for \$3: refused (stand-in)" >&2; exit 1; }
while [ \$# -gt 0 ]; do [ "\$1" = -o ] && { printf 'addon'; head -c "\${ADDON_BYTES:-0}" /dev/zero; } >"\$2"; shift; done
STUB
chmod 755 "$t/bin/vfio-early"
passed=0 failed=0
check() { # NAME CONDITION-RESULT DETAIL
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); printf 'PASS %-28s %s\n' "$1" "$3"
    else failed=$((failed + 1)); printf 'FAIL %-28s %s\n' "$1" "$3"; fi
}
post=$t/etc/kernel/postinst.d/zz-vfio-early-addon
postrm=$t/etc/kernel/postrm.d/zz-vfio-early-addon
plugin=$t/lib/kernel/install.d/85-vfio-early-addon.install
K=6.1.0-50-amd64
export VFIO_EARLY_ADDON_DIR=$t/boot
calls() { cat "$t/calls" 2>/dev/null; rm -f "$t/calls"; }

sh "$post" "$K" /boot/vmlinuz-$K; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ -z "$c" ] && [ ! -e "$t/boot/vfio-early-addon-$K.img" ]
check postinst-not-enabled $? "exit $rc, calls: ${c:-none}"

mkdir -p "$t/etc/vfio-early" && touch "$t/etc/vfio-early/addon.enabled"
sh "$post" "$K" /boot/vmlinuz-$K; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ "$c" = "addon --kver $K -o $t/boot/vfio-early-addon-$K.img" ] && [ -s "$t/boot/vfio-early-addon-$K.img" ]
check postinst-builds $? "exit $rc, called: $c"

echo 'devices = 01:00.0' >"$t/etc/vfio-early.conf"
sh "$post" "$K" /boot/vmlinuz-$K; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ "$c" = "addon --kver $K -o $t/boot/vfio-early-addon-$K.img --conf $t/etc/vfio-early.conf" ]
check postinst-passes-the-config $? "exit $rc, called: $c"

touch "$t/fail"
err=$(sh "$post" "$K" /boot/vmlinuz-$K 2>&1); rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && grep -q "was not rebuilt" <<<"$err"
check postinst-failure-exits-0 $? "exit $rc: $(tail -n 1 <<<"$err")"
rm -f "$t/fail"

sh "$postrm" "$K" /boot/vmlinuz-$K; rc=$?
[ "$rc" -eq 0 ] && [ ! -e "$t/boot/vfio-early-addon-$K.img" ] && [ -z "$(calls)" ]
check postrm-removes $? "exit $rc"

# The kernel-install plugin (issue 25): never an entry without its main image. ki ARGS...: the
# plugin with a fresh staging area and entry directory; "$t/ki.err" holds what it said.
ki() {
    rm -rf "$t/stage" "$t/entry" && mkdir -p "$t/stage" "$t/entry"
    KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage KERNEL_INSTALL_BOOT_ROOT=$t/esp \
        sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K "$@" 2>"$t/ki.err"
}
staged() { (cd "$t/stage" && for f in initrd*; do [ -e "$f" ] && printf '%s ' "$f"; done); }
A="addon --kver $K -o $t/stage/.vfio-early-addon.tmp --conf $t/etc/vfio-early.conf"
printf 'main image' >"$t/boot/initrd.img-$K"

ki "$t/boot/initrd.img-$K"; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ "$c" = "$A" ] && [ "$(staged)" = "initrd~vfio-early " ] && [ "$(cat "$t/stage/initrd~vfio-early")" = addon ]
check ki-main-as-argument $? "exit $rc, staged: $(staged), called: $c"

rm -rf "$t/stage" && mkdir -p "$t/stage"
ki_staged() { # NAME: the main image staged as NAME (a link, as Debian's 85-initrd.install makes)
    rm -rf "$t/stage" "$t/entry" && mkdir -p "$t/stage" "$t/entry"
    ln -s "$t/boot/initrd.img-$K" "$t/stage/$1"
    KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>"$t/ki.err"
}
ki_staged "initrd.img-$K"; rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && [ "$(staged)" = "initrd.img-$K initrd~vfio-early " ]
check ki-main-staged-debian $? "exit $rc, staged in C order: $(staged)"
ki_staged initrd; rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && [ "$(staged)" = "initrd initrd~vfio-early " ]
check ki-main-staged-initrd $? "exit $rc, staged: $(staged)"
# A main image whose name would sort after the add-on's: nothing added, said.
ki_staged "initrd~zz"; rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && [ "$(staged)" = "initrd~zz " ] && grep -q 'sorts after initrd~vfio-early: no initrd add-on added' "$t/ki.err"
check ki-sorts-last-or-nothing $? "exit $rc, staged: $(staged); $(cat "$t/ki.err")"

# Written into the entry directory (mkinitcpio's and dracut 059's plugins): a real copy staged
# as initrd, never a link (90-loaderentry would install it onto itself and abort).
rm -rf "$t/stage" "$t/entry" && mkdir -p "$t/stage" "$t/entry" && printf 'entry main image' >"$t/entry/initrd"
KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>"$t/ki.err"; rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && [ "$(staged)" = "initrd initrd~vfio-early " ] && [ ! -L "$t/stage/initrd" ] &&
    cmp -s "$t/stage/initrd" "$t/entry/initrd" && ! [ "$t/stage/initrd" -ef "$t/entry/initrd" ]
check ki-main-in-entry-dir $? "exit $rc, staged: $(staged)"
# Again over the same entry directory (kernel-install add never empties it; the generator
# wrote a new image there): the new image is the one staged.
cp "$t/stage/initrd~vfio-early" "$t/entry/" && rm -rf "$t/stage" && mkdir -p "$t/stage" && printf 'rebuilt main image' >"$t/entry/initrd"
KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>"$t/ki.err"; rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && [ "$(staged)" = "initrd initrd~vfio-early " ] && [ "$(cat "$t/stage/initrd")" = "rebuilt main image" ]
check ki-entry-dir-again $? "exit $rc, staged: $(staged)"
# Only BOOT_ROOT/initramfs-KVER.img (90-loaderentry's last fallback): a copy in the entry
# directory would outlive that image's next rebuild, so nothing is added, and it is said.
mkdir -p "$t/esp" && printf 'esp main image' >"$t/esp/initramfs-$K.img"
ki; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ -z "$c" ] && [ -z "$(staged)" ] && grep -q "hide $t/esp/initramfs-$K.img" "$t/ki.err"
check ki-boot-root-fallback-untouched $? "exit $rc, staged: $(staged); $(cat "$t/ki.err")"
rm -f "$t/esp/initramfs-$K.img"

# No main image anywhere: the add-on alone would make an entry that cannot boot.
ki; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ -z "$c" ] && [ -z "$(staged)" ] && grep -q 'no initrd add-on added (it would be the entry.s only initrd, or hide' "$t/ki.err"
check ki-no-main-no-addon $? "exit $rc, staged: $(staged); $(cat "$t/ki.err")"

# Room on the boot partition for all 90-loaderentry copies: a 2 MiB partition holds an
# 800 KiB main image or a 600 KiB add-on with the 1 MiB margin, not both: nothing staged, said;
# with a 100 KiB add-on it is staged.
mkdir -p "$t/small"
head -c 819200 /dev/zero >"$t/boot/big-initrd"
if mount -t tmpfs -o size=2m vfiotest-small "$t/small" 2>/dev/null; then
    mkdir -p "$t/small/entry"
    for bytes in 614400 102400; do
        rm -rf "$t/stage" && mkdir -p "$t/stage"
        ADDON_BYTES=$bytes KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage \
            sh "$plugin" add "$K" "$t/small/entry" /boot/vmlinuz-$K "$t/boot/big-initrd" 2>"$t/ki.err"
        echo "$? $(staged)" >"$t/ki.$bytes"
    done
    calls >/dev/null
    umount "$t/small"
    [ "$(cat "$t/ki.614400")" = "0 " ] && [ "$(cat "$t/ki.102400")" = "0 initrd~vfio-early " ]
    check ki-no-room $? "600 KiB add-on: $(cat "$t/ki.614400"); 100 KiB: $(cat "$t/ki.102400")"
else
    check ki-no-room 1 "cannot mount a small tmpfs (needs root)"
fi

err=$(KERNEL_INSTALL_LAYOUT=uki KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>&1); rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ] && grep -q 'is not bls' <<<"$err"
check kernel-install-uki-skipped $? "exit $rc: $err"

err=$(KERNEL_INSTALL_LAYOUT=bls sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>&1); rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ] && grep -q 'no staging area' <<<"$err"
check kernel-install-no-staging $? "exit $rc: $err"

touch "$t/fail"
ki "$t/boot/initrd.img-$K"; rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && [ -z "$(staged)" ] && grep -q 'was not built' "$t/ki.err"
check kernel-install-failure-exits-0 $? "exit $rc: $(tail -n 1 "$t/ki.err")"
rm -f "$t/fail"

KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" remove "$K" "$t/entry"; rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ]
check kernel-install-remove $? "exit $rc (kernel-install removes the entry's directory itself)"

# Debian with systemd-boot: its postinst hook runs kernel-install (whose plugin adds the add-on
# to the entry), so vfio-early's own hook builds no second one in /boot.
mkdir -p "$t/sbin" && printf '#!/bin/sh\n[ "$1" = is-installed ] && exit "${BOOTCTL_RC:-0}"\n' >"$t/sbin/bootctl" && chmod 755 "$t/sbin/bootctl"
printf '#!/bin/sh\n[ "$1" = inspect ] && echo "KERNEL_INSTALL_LAYOUT: ${KI_LAYOUT:-bls}"\n' >"$t/sbin/kernel-install" && chmod 755 "$t/sbin/kernel-install"
touch "$t/etc/kernel/postinst.d/zz-systemd-boot"
PATH=$t/sbin:$PATH sh "$post" "$K" /boot/vmlinuz-$K; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ -z "$c" ]
check postinst-systemd-boot-leaves-it-to-kernel-install $? "exit $rc, calls: ${c:-none}"
BOOTCTL_RC=1 PATH=$t/sbin:$PATH sh "$post" "$K" /boot/vmlinuz-$K; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ -n "$c" ]
check postinst-systemd-boot-not-installed-builds $? "exit $rc, calls: ${c:-none}"
# systemd-boot, but kernel-install's layout is not bls (the plugin would add nothing): built.
KI_LAYOUT=other PATH=$t/sbin:$PATH sh "$post" "$K" /boot/vmlinuz-$K; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ -n "$c" ]
check postinst-systemd-boot-not-bls-builds $? "exit $rc, calls: ${c:-none}"
rm -f "$t/etc/kernel/postinst.d/zz-systemd-boot"

# The package removed, its conffiles left (Debian's `apt remove`): the next kernel's hooks and
# plugin say nothing and exit 0.
mv "$t/bin/vfio-early" "$t/bin/vfio-early.gone"
out=$(sh "$post" "$K" /boot/vmlinuz-$K 2>&1; echo "rc=$?"; sh "$postrm" "$K" /boot/vmlinuz-$K 2>&1; echo "rc=$?"
    KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K "$t/boot/initrd.img-$K" 2>&1; echo "rc=$?")
[ "$out" = "rc=0
rc=0
rc=0" ] && [ -z "$(calls)" ]
check hooks-after-package-removal $? "$(tr '\n' ' ' <<<"$out")"
mv "$t/bin/vfio-early.gone" "$t/bin/vfio-early"

rm -f "$t/etc/vfio-early/addon.enabled"
ki "$t/boot/initrd.img-$K"; rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ] && [ -z "$(staged)" ]
check kernel-install-not-enabled $? "exit $rc"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
