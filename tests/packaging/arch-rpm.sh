#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The Arch and RPM packages, built here with each ecosystem's own tool from the `make dist`
# tarball, and checked the way their users would meet them.
#   Arch  makepkg (Debian's pacman 6.0.2) as an unprivileged user with --nodeps; the package's
#         file list and .PKGINFO; the mkinitcpio stand-in test's layout case on the packaged
#         files, and the packaged hooks byte-identical to `make install`'s (whose behaviour the
#         stand-in test checks). mkinitcpio's own pacman hook (the rebuild on install) cannot run
#         here: there is no pacman database or mkinitcpio in a Debian root.
#   RPM   rpmbuild (Debian's rpm 4.18, without systemd macros: the spec's fallbacks) builds it;
#         `rpm -i --root --nodeps` into the dracut root (an overlay of the deb suite's layer),
#         no image rebuilt by a scriptlet but the rebuild command printed; `dracut -f` there;
#         the image booted with vfio-early.devices=01:00.0 (card A on vfio-pci, its twin and the
#         boot VGA native); `rpm -e` prints the rebuild command and removes every file.
# Ends with "N passed, M failed".
set -u
# shellcheck source=tests/packaging/lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { h_err "must run as root (chroot, overlay mounts, a build user)"; exit 2; }
SUITE_OUT="$PKG_OUT/arch-rpm"
BUILD_USER=vfio-early-build
MOUNTS=()
cleanup() {
    local i
    ovl_umount_all
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$SUITE_OUT"
mkdir -p "$SUITE_OUT" "$PKG_CACHE"

phase "host, root and the dist tarball"
ensure_host || exit 1
for p in makepkg pacman-package-manager rpm fakeroot libarchive-tools zstd; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=" $p"
done
if [ -n "${missing:-}" ]; then
    h_say "installing:$missing"
    # shellcheck disable=SC2086
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; } \
        >"$SUITE_OUT/apt.log" 2>&1 || { h_err "apt-get install$missing failed (see $SUITE_OUT/apt.log)"; exit 1; }
fi
gen_root_ensure || exit 1
gen_set_root_state "$GEN_ROOT" bare || exit 1
(cd "$REPO_DIR" && make -s static && make -s dist) >"$SUITE_OUT/make.log" 2>&1 ||
    { h_err "make, make dist failed (see $SUITE_OUT/make.log)"; exit 1; }
gen_rootfs_ensure || exit 1
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_DIR/Cargo.toml" | head -n 1)
TARBALL="$REPO_DIR/target/dist/vfio-early-$VERSION.tar.gz"
# What `make install` puts down by default, to compare packaged files with.
REF="$SUITE_OUT/make-install"
make -s -C "$REPO_DIR" install DESTDIR="$REF" >"$SUITE_OUT/make-install.log" 2>&1 ||
    { h_err "make install DESTDIR=$REF failed"; exit 1; }

# ---------------------------------------------------------------- Arch
phase "Arch: makepkg as $BUILD_USER"
id "$BUILD_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$BUILD_USER" ||
    { h_err "useradd $BUILD_USER failed"; exit 1; }
A="$SUITE_OUT/arch"
mkdir -p "$A/build" "$A/cargo-home" "$A/toolchain"
cp "$REPO_DIR/packaging/arch/PKGBUILD" "$REPO_DIR/packaging/arch/vfio-early.install" "$TARBALL" "$A/build/"
chown -R "$BUILD_USER" "$A"
chmod 755 "$SUITE_OUT" "$PKG_OUT" "$OUT_DIR"
# The build user needs a Rust toolchain with the musl target: rustup's, read-only, at a path it
# can reach (root's home is closed).
toolchain=$(rustc --print sysroot)
mount --bind "$toolchain" "$A/toolchain" && mount -o remount,bind,ro "$A/toolchain" && MOUNTS+=("$A/toolchain") ||
    { h_err "cannot bind the toolchain $toolchain"; exit 1; }
if (cd "$A/build" && setpriv --reuid="$BUILD_USER" --regid="$(id -g "$BUILD_USER")" --clear-groups \
    env -i HOME="$A/build" PATH="$A/toolchain/bin:/usr/bin:/bin" CARGO_HOME="$A/cargo-home" \
    PKGDEST="$A" SRCDEST="$A/build" makepkg --nodeps --noconfirm -f) >"$A/makepkg.log" 2>&1; then
    PKG=$(ls "$A"/vfio-early-"$VERSION"-*-x86_64.pkg.tar.* 2>/dev/null | head -n 1)
else
    PKG=""
fi
if [ -z "$PKG" ]; then
    result arch-makepkg FAIL "" "makepkg failed (see $A/makepkg.log): $(tail -n 5 "$A/makepkg.log" | tr '\n' ' ')"
else
    result arch-makepkg OK "$(basename "$PKG"), $(stat -c %s "$PKG") bytes, built by $BUILD_USER"
    mkdir -p "$A/pkg"
    bsdtar -xf "$PKG" -C "$A/pkg"
    list=$(bsdtar -tf "$PKG" | grep -v '/$' | LC_ALL=C sort)
    reasons=""
    for p in usr/bin/vfio-early usr/lib/vfio-early/vfio-early-boot usr/lib/vfio-early/init usr/lib/vfio-early/hook-lib.sh usr/lib/initcpio/install/vfio-early \
        usr/lib/initcpio/hooks/vfio-early usr/share/vfio-early/mkinitcpio.conf usr/lib/dracut/modules.d/50vfio-early/module-setup.sh \
        usr/lib/systemd/system/vfio-early.service usr/lib/systemd/system/vfio-early-finish.service \
        usr/lib/systemd/system/vfio-early-rom-persist.service usr/share/man/man8/vfio-early.8.gz usr/share/licenses/vfio-early/LICENSE-MIT .PKGINFO .INSTALL .MTREE; do
        grep -qxF "$p" <<<"$list" || reasons+="missing $p"$'\n'
    done
    ! grep -qE '^etc/' <<<"$list" || reasons+="ships files in /etc: $(grep -E '^etc/' <<<"$list" | tr '\n' ' ')"$'\n'
    grep -qx 'HOOKS+=(vfio-early)' "$A/pkg/usr/share/vfio-early/mkinitcpio.conf" || reasons+="the drop-in does not add the hook"$'\n'
    for b in usr/bin/vfio-early usr/lib/vfio-early/vfio-early-boot usr/lib/vfio-early/init; do
        readelf -lW "$A/pkg/$b" | grep -q INTERP && reasons+="the packaged $b is dynamic"$'\n'
    done
    verdict arch-files "$(grep -c . <<<"$list") files" "$reasons"
    info="$A/pkg/.PKGINFO"
    reasons=""
    for kv in "pkgname = vfio-early" "pkgver = $VERSION-1" "arch = x86_64" "license = MIT OR Apache-2.0" \
        "makedepend = rust-musl" "optdepend = mkinitcpio: the vfio-early hook (enable it: see /usr/share/vfio-early/mkinitcpio.conf)"; do
        grep -qxF "$kv" "$info" || reasons+=".PKGINFO lacks \"$kv\""$'\n'
    done
    ! grep -q '^backup = ' "$info" || reasons+="declares a backup (config) file: $(grep '^backup = ' "$info")"$'\n'
    grep -q 'cp /usr/share/vfio-early/mkinitcpio.conf /etc/mkinitcpio.conf.d/' "$A/pkg/.INSTALL" &&
        grep -q 'fallback_options="-S autodetect,vfio-early"' "$A/pkg/.INSTALL" || reasons+="the install message lacks the enable or fallback step"$'\n'
    verdict arch-pkginfo "$(grep -cE '^[a-z]+ = ' "$info") fields, install message" "$reasons"
    # The packaged hooks are `make install`'s, byte for byte (the stand-in test checks those).
    reasons=""
    for p in usr/lib/initcpio/install/vfio-early usr/lib/initcpio/hooks/vfio-early usr/lib/vfio-early/hook-lib.sh \
        usr/lib/systemd/system/vfio-early.service; do
        cmp -s "$A/pkg/$p" "$REF/$p" || reasons+="$p differs from make install's"$'\n'
    done
    VE_DESTDIR_TREE="$A/pkg" VE_CASES=destdir "$REPO_DIR/tests/mkinitcpio/standin-test.sh" >"$A/standin.log" 2>&1 ||
        reasons+="stand-in test on the packaged files: $(grep -E '^FAIL' "$A/standin.log" | tr '\n' ' ')"$'\n'
    grep -q '^PASS destdir-layout' "$A/standin.log" || reasons+="the stand-in layout case did not run (see $A/standin.log)"$'\n'
    verdict arch-hooks "identical to make install's; stand-in layout case on the package: $(grep -c '^PASS' "$A/standin.log") passed" "$reasons"
fi

# ---------------------------------------------------------------- RPM
phase "RPM: rpmbuild"
R="$SUITE_OUT/rpm"
mkdir -p "$R/top/SOURCES"
cp "$TARBALL" "$R/top/SOURCES/"
# --nodeps: the build requirements name Fedora's packages (cargo, gcc, make), which dpkg, not
# rpm, installed here.
if rpmbuild -bb --nodeps --define "_topdir $R/top" "$REPO_DIR/packaging/rpm/vfio-early.spec" >"$R/rpmbuild.log" 2>&1; then
    RPM=$(ls "$R"/top/RPMS/x86_64/vfio-early-"$VERSION"-1*.x86_64.rpm 2>/dev/null | head -n 1)
else
    RPM=""
fi
if [ -z "$RPM" ]; then
    result rpm-build FAIL "" "rpmbuild failed (see $R/rpmbuild.log): $(tail -n 5 "$R/rpmbuild.log" | tr '\n' ' ')"
else
    result rpm-build OK "$(basename "$RPM"), $(stat -c %s "$RPM") bytes"
    list=$(rpm -qlp "$RPM" 2>/dev/null)
    reasons=""
    for p in /usr/bin/vfio-early /usr/lib/vfio-early/vfio-early-boot /usr/lib/vfio-early/init /usr/lib/vfio-early/hook-lib.sh /usr/lib/dracut/modules.d/50vfio-early/module-setup.sh \
        /usr/lib/systemd/system/vfio-early.service /usr/lib/systemd/system/vfio-early-finish.service \
        /usr/lib/systemd/system/vfio-early-rom-persist.service; do
        grep -qxF "$p" <<<"$list" || reasons+="missing $p"$'\n'
    done
    ! grep -q '^/etc/' <<<"$list" || reasons+="ships files in /etc"$'\n'
    [ -z "$(rpm -qp --configfiles "$RPM" 2>/dev/null)" ] || reasons+="config files: $(rpm -qp --configfiles "$RPM" | tr '\n' ' ')"$'\n'
    ! rpm -qp --scripts "$RPM" 2>/dev/null | grep -qE '^[^#]*\b(dracut|kernel-install|update-initramfs)\b[^"]*$' ||
        reasons+="a scriptlet runs an image generator"$'\n'
    verdict rpm-files "$(grep -c . <<<"$list") paths, no config file, no rebuild in scriptlets" "$reasons"

    phase "RPM: install into the dracut root, dracut -f, remove"
    layer_ensure dracut || exit 1
    root="$R/root"
    ovl_mount "$root" "$R/upper" "$(layer_dir dracut)/upper" "$GEN_ROOT" || exit 1
    gen_mount_root "$root" || exit 1
    rpm --root "$root" --initdb
    reasons=""
    rpm --root "$root" -i --nodeps "$RPM" >"$R/install.log" 2>&1 || reasons+="rpm -i failed: $(cat "$R/install.log")"$'\n'
    grep -qxF "  dracut -f --kver $GEN_KVER" "$R/install.log" || reasons+="no rebuild command for $GEN_KVER printed: $(cat "$R/install.log")"$'\n'
    files=$(rpm --root "$root" -ql vfio-early 2>/dev/null)
    verdict rpm-install "$(grep -c . <<<"$files") paths; said: $(grep -F 'dracut -f --kver' "$R/install.log" | tr -s ' ' | tr '\n' ';')" "$reasons"
    img="$root/boot/initrd.img-$GEN_KVER"
    before=$(stat -c %Y "$img" 2>/dev/null)
    gen_chroot "$root" dracut -f --kver "$GEN_KVER" >"$R/dracut.log" 2>&1
    rc=$?
    cp "$img" "$R/rpm.img" 2>/dev/null
    listing=$(gen_image_listing "$R/rpm.img" | awk '{ print $2 }')
    reasons=""
    [ "$rc" -eq 0 ] || reasons+="dracut -f exited $rc (see $R/dracut.log)"$'\n'
    grep -qx 'usr/bin/vfio-early' <<<"$listing" || reasons+="usr/bin/vfio-early not in the image"$'\n'
    grep -qE '/vfio-pci\.ko' <<<"$listing" || reasons+="vfio-pci.ko not in the image"$'\n'
    [ "$(stat -c %Y "$img" 2>/dev/null)" != "$before" ] || reasons+="dracut -f did not write $img"$'\n'
    verdict rpm-dracut "image $(stat -c %s "$R/rpm.img" 2>/dev/null) bytes, with vfio-early and vfio-pci.ko" "$reasons"
    rpm --root "$root" -e vfio-early >"$R/erase.log" 2>&1
    rc=$?
    reasons=""
    [ "$rc" -eq 0 ] || reasons+="rpm -e exited $rc: $(cat "$R/erase.log")"$'\n'
    grep -qxF "  dracut -f --kver $GEN_KVER" "$R/erase.log" || reasons+="no rebuild command printed on erase: $(cat "$R/erase.log")"$'\n'
    while IFS= read -r p; do
        [ -n "$p" ] || continue
        [ ! -e "$root$p" ] && [ ! -L "$root$p" ] || reasons+="left: $p"$'\n'
    done <<<"$files"
    verdict rpm-erase "every installed path gone, rebuild command printed" "$reasons"
    ovl_umount_all
    rm -rf "$R/upper" "$R/upper.work"
fi

phase "boot"
N=(rpm-dracut-boot) IMG=("$R/rpm.img") ARGS=("vfio-early.devices=01:00.0")
EXPECT=("$CARD1_VFIO $NATIVE") LOGS=("(entry 01:00.0): bound to vfio-pci; summary: 2 bound")
pkg_boots
h_say "Arch and RPM suite took $((SECONDS - T_START)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
