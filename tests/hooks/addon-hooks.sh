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
    sed -i -e "s|\"/bin/vfio-early\"|\"$t/bin/vfio-early\"|" -e "s|\"/etc/vfio-early|\"$t/etc/vfio-early|g" "$f"
done
mkdir -p "$t/bin" "$t/boot" "$t/stage"
# The stand-in: records its arguments; writes the -o file, or fails when $t/fail exists.
cat >"$t/bin/vfio-early" <<STUB
#!/bin/sh
echo "\$*" >>"$t/calls"
[ ! -e "$t/fail" ] || { echo "vfio-early: addon for \$3: refused (stand-in)" >&2; exit 1; }
while [ \$# -gt 0 ]; do [ "\$1" = -o ] && printf 'addon' >"\$2"; shift; done
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

KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K; rc=$?
c=$(calls)
[ "$rc" -eq 0 ] && [ "$c" = "addon --kver $K -o $t/stage/initrd-vfio-early --conf $t/etc/vfio-early.conf" ] && [ -s "$t/stage/initrd-vfio-early" ]
check kernel-install-bls $? "exit $rc, called: $c"

err=$(KERNEL_INSTALL_LAYOUT=uki KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>&1); rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ] && grep -q 'is not bls' <<<"$err"
check kernel-install-uki-skipped $? "exit $rc: $err"

err=$(KERNEL_INSTALL_LAYOUT=bls sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>&1); rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ] && grep -q 'no staging area' <<<"$err"
check kernel-install-no-staging $? "exit $rc: $err"

touch "$t/fail"
err=$(KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K 2>&1); rc=$?
calls >/dev/null
[ "$rc" -eq 0 ] && grep -q 'was not built' <<<"$err"
check kernel-install-failure-exits-0 $? "exit $rc: $(tail -n 1 <<<"$err")"
rm -f "$t/fail"

KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" remove "$K" "$t/entry"; rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ]
check kernel-install-remove $? "exit $rc (kernel-install removes the entry's directory itself)"

rm -f "$t/etc/vfio-early/addon.enabled"
KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA=$t/stage sh "$plugin" add "$K" "$t/entry" /boot/vmlinuz-$K; rc=$?
[ "$rc" -eq 0 ] && [ -z "$(calls)" ]
check kernel-install-not-enabled $? "exit $rc"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
