#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The .deb, installed the way a user installs it, into real Debian roots, and the images the
# package manager rebuilt, booted under QEMU. Two roots, each an overlay over the generator
# suite's cached bookworm chroot (tests/generators/lib.sh), so nothing is debootstrapped twice:
#   its     initramfs-tools (the chroot as it is, plus the image a Debian system has)
#   dracut  Debian's `dracut` package installed (it replaces initramfs-tools)
# In each, with no manual image command anywhere:
#   1. apt install ./vfio-early_*.deb   -> the trigger rebuilt /boot/initrd.img-* with vfio-early;
#      boot with vfio-early.devices=01:00.0: card A on vfio-pci, its twin and the boot VGA native
#   2. apt purge vfio-early              -> image rebuilt without it, every package file gone;
#      boot with the same argument: all native
#   3. apt install the previous build, write /etc/vfio-early.conf, apt install the current one
#      -> the file untouched, the image rebuilt; boot with no argument: card A from the file
#   4. apt remove with the add-on enabled -> the kernel hooks it leaves (conffiles) are silent
# Plus the package itself: contents, no conffile but the add-on's kernel hooks, the trigger, no update-initramfs call in a
# maintainer script, lintian (no errors, every warning listed in docs/building.md).
# Ends with "N passed, M failed".
#
#   tests/packaging/deb.sh        (as root; JOBS boots at a time, default 2)
set -u
# shellcheck source=tests/packaging/lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { h_err "must run as root (chroot, overlay mounts)"; exit 2; }
SUITE_OUT="$PKG_OUT/deb"

# ---------------------------------------------------------------- one flavour's session
# session FLAVOUR: the install, purge and upgrade steps in a fresh overlay; copies the images to
# boot into $SUITE_OUT/FLAVOUR/ and prints check lines "NAME|OK or FAIL|detail|reasons".
session() {
    local f=$1 root out img marker files reasons
    out="$SUITE_OUT/$f"
    root="$out/root"
    rm -rf "$out"
    mkdir -p "$out"
    ovl_mount "$root" "$out/upper" "$(layer_dir "$f")/upper" "$GEN_ROOT" || return 1
    gen_mount_root "$root" || return 1
    cp "$DEB" "$DEB_PREV" "$root/var/tmp/" || return 1
    img="$root/boot/initrd.img-$GEN_KVER"
    marker="$out/marker"
    apt_do() { # LOG ARGS...: apt-get in the root, output in LOG
        local log=$1
        shift
        touch "$marker"
        sleep 1 # the image must be strictly newer than the marker
        gen_chroot "$root" DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$out/$log" 2>&1
    }
    # image_check NAME WANT(yes|no) LOG COPY: the image rebuilt by the command logged in LOG,
    # with or without vfio-early; copied to COPY for its boot.
    image_check() {
        local name=$1 want=$2 log=$3 copy=$4 r="" list
        [ "$img" -nt "$marker" ] || r+="the image was not rebuilt (see $out/$log)"$'\n'
        if [ "$f" = its ]; then
            grep -q "Processing triggers for initramfs-tools" "$out/$log" || r+="no initramfs-tools trigger in $out/$log"$'\n'
        else
            grep -q "Processing triggers for dracut" "$out/$log" || r+="no dracut trigger in $out/$log"$'\n'
        fi
        cp "$img" "$out/$copy"
        list=$(gen_image_listing "$out/$copy" | awk '{ print $2 }')
        if [ "$want" = yes ]; then
            grep -qx 'usr/bin/vfio-early' <<<"$list" || r+="usr/bin/vfio-early not in the rebuilt image"$'\n'
            grep -qE '/vfio-pci\.ko' <<<"$list" || r+="vfio-pci.ko not in the rebuilt image"$'\n'
        else
            ! grep -q 'vfio-early' <<<"$list" || r+="the rebuilt image still has: $(grep 'vfio-early' <<<"$list" | tr '\n' ' ')"$'\n'
        fi
        printf '%s|%s|%s|%s\n' "$name" "$([ -z "$r" ] && echo OK || echo FAIL)" \
            "image $(stat -c %s "$img") bytes, $(grep -c . <<<"$list") entries" "$(tr '\n' ';' <<<"$r")"
    }
    local unit=etc/systemd/system/sysinit.target.wants/vfio-early-rom-persist.service

    # 1. install
    apt_do install.log install -y -q "/var/tmp/${DEB##*/}"
    image_check "$f-install-image" yes install.log install.img
    reasons=""
    [ -L "$root/$unit" ] || reasons+="the ROM persist unit is not enabled ($unit)"$'\n'
    [ ! -e "$root/etc/vfio-early.conf" ] || reasons+="/etc/vfio-early.conf was shipped"$'\n'
    files=$(gen_chroot "$root" dpkg -L vfio-early)
    printf '%s|%s|%s|%s\n' "$f-install-state" "$([ -z "$reasons" ] && echo OK || echo FAIL)" \
        "$(grep -c . <<<"$files") paths from dpkg -L; persist unit enabled" "$(tr '\n' ';' <<<"$reasons")"

    # 2. purge
    apt_do purge.log purge -y -q vfio-early
    image_check "$f-purge-image" no purge.log purge.img
    reasons=""
    while IFS= read -r p; do
        [ -n "$p" ] && [ "$p" != /. ] || continue
        if [ -d "$root$p" ]; then
            # A directory is the package's own when nothing else is in it.
            case $p in */vfio-early | */50vfio-early) reasons+="directory left: $p"$'\n' ;; esac
        elif [ -e "$root$p" ] || [ -L "$root$p" ]; then
            reasons+="file left: $p"$'\n'
        fi
    done <<<"$files"
    [ ! -e "$root/$unit" ] && [ ! -L "$root/$unit" ] || reasons+="the persist unit link is left"$'\n'
    printf '%s|%s|%s|%s\n' "$f-purge-files" "$([ -z "$reasons" ] && echo OK || echo FAIL)" \
        "every file of dpkg -L gone" "$(tr '\n' ';' <<<"$reasons")"

    # 3. upgrade from the previous build with the admin's configuration
    apt_do prev.log install -y -q "/var/tmp/${DEB_PREV##*/}"
    printf '# the admin'"'"'s file\ndevices = 01:00.0   # card A\n' >"$root/etc/vfio-early.conf"
    local before after
    before=$(sha256sum <"$root/etc/vfio-early.conf")
    apt_do upgrade.log install -y -q "/var/tmp/${DEB##*/}"
    image_check "$f-upgrade-image" yes upgrade.log upgrade.img
    after=$(sha256sum <"$root/etc/vfio-early.conf")
    reasons=""
    [ "$before" = "$after" ] || reasons+="/etc/vfio-early.conf changed by the upgrade"$'\n'
    grep -q "Unpacking vfio-early (${DEB_VERSION}) over (${DEB_PREV_VERSION})" "$out/upgrade.log" ||
        reasons+="not an upgrade from $DEB_PREV_VERSION (see $out/upgrade.log)"$'\n'
    ! grep -qiE 'conffile|\*\*\* vfio-early.conf' "$out/upgrade.log" || reasons+="dpkg asked about a conffile"$'\n'
    gen_chroot "$root" vfio-early config >"$out/config.txt" 2>&1 || reasons+="vfio-early config failed: $(cat "$out/config.txt")"$'\n'
    printf '%s|%s|%s|%s\n' "$f-upgrade-conf" "$([ -z "$reasons" ] && echo OK || echo FAIL)" \
        "$DEB_PREV_VERSION -> $DEB_VERSION, /etc/vfio-early.conf untouched" "$(tr '\n' ';' <<<"$reasons")"

    # 4. remove (not purge) with the add-on enabled: the kernel hooks are conffiles and stay; the
    #    next kernel's hooks must say nothing and exit 0 (they printed "vfio-early: not found").
    mkdir -p "$root/etc/vfio-early" && touch "$root/etc/vfio-early/addon.enabled"
    apt_do remove.log remove -y -q vfio-early
    reasons=""
    local hook out_hook rc_hook
    for hook in /etc/kernel/postinst.d/zz-vfio-early-addon /etc/kernel/postrm.d/zz-vfio-early-addon; do
        if [ ! -x "$root$hook" ]; then
            reasons+="$hook is gone after remove (a conffile should stay until purge)"$'\n'
            continue
        fi
        out_hook=$(gen_chroot "$root" "$hook" "$GEN_KVER" "/boot/vmlinuz-$GEN_KVER" 2>&1)
        rc_hook=$?
        [ "$rc_hook" -eq 0 ] && [ -z "$out_hook" ] || reasons+="$hook after remove: exit $rc_hook, said: $out_hook"$'\n'
    done
    printf '%s|%s|%s|%s\n' "$f-removed-hooks" "$([ -z "$reasons" ] && echo OK || echo FAIL)" \
        "apt remove, then the kernel hooks left behind: silent, exit 0" "$(tr '\n' ';' <<<"$reasons")"
    ovl_umount_all
    rm -rf "$out/upper" "$out/upper.work"
}

# ---------------------------------------------------------------- main
trap 'ovl_umount_all' EXIT
trap 'exit 130' INT TERM
mkdir -p "$SUITE_OUT" "$PKG_CACHE"
phase "host, root and package"
ensure_host || exit 1
gen_root_ensure || exit 1
(cd "$REPO_DIR" && make -s static) >"$SUITE_OUT/make.log" 2>&1 || { h_err "make failed (see $SUITE_OUT/make.log)"; exit 1; }
gen_rootfs_ensure || exit 1
# The chroot as a user has it before installing: no `make install` leftovers of other suites.
gen_set_root_state "$GEN_ROOT" bare || exit 1
(cd "$REPO_DIR" && make deb) >"$SUITE_OUT/make-deb.log" 2>&1 || { h_err "make deb failed (see $SUITE_OUT/make-deb.log)"; exit 1; }
DEB=$(ls "$REPO_DIR"/target/debian/vfio-early_*.deb)
DEB_VERSION=$(dpkg-deb -f "$DEB" Version)
# The previous build: the same package one version back (what dpkg sees in an upgrade).
DEB_PREV_VERSION="${DEB_VERSION%-*}~prev-1"
DEB_PREV="$SUITE_OUT/vfio-early_${DEB_PREV_VERSION}_amd64.deb"
rm -rf "$SUITE_OUT/repack"
dpkg-deb -R "$DEB" "$SUITE_OUT/repack" &&
    sed -i "s/^Version: .*/Version: $DEB_PREV_VERSION/" "$SUITE_OUT/repack/DEBIAN/control" &&
    dpkg-deb -b "$SUITE_OUT/repack" "$DEB_PREV" >/dev/null || { h_err "repacking the previous build failed"; exit 1; }
h_say "package $DEB ($DEB_VERSION), previous build $DEB_PREV_VERSION"

# ---------------------------------------------------------------- the package itself
ctl="$SUITE_OUT/control"
rm -rf "$ctl"
dpkg-deb -e "$DEB" "$ctl"
contents=$(dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|')
reasons=""
for p in /usr/bin/vfio-early /usr/lib/vfio-early/vfio-early-boot /usr/lib/vfio-early/init /usr/lib/vfio-early/hook-lib.sh /usr/share/initramfs-tools/hooks/vfio-early \
    /usr/share/initramfs-tools/scripts/init-top/00-vfio-early /usr/share/initramfs-tools/scripts/init-bottom/vfio-early \
    /usr/lib/dracut/modules.d/50vfio-early/module-setup.sh /usr/lib/dracut/modules.d/50vfio-early/vfio-early.sh \
    /usr/lib/dracut/modules.d/50vfio-early/vfio-early-wait.sh /lib/systemd/system/vfio-early.service \
    /lib/systemd/system/vfio-early-finish.service \
    /lib/systemd/system/vfio-early-rom-persist.service /usr/share/man/man8/vfio-early.8.gz \
    /usr/share/doc/vfio-early/vfio-early.conf.example /usr/share/doc/vfio-early/copyright \
    /usr/lib/kernel/install.d/85-vfio-early-addon.install; do
    grep -qxF "$p" <<<"$contents" || reasons+="missing $p"$'\n'
done
# In /etc only the kernel hooks that rebuild the initrd add-on (Debian runs /etc/kernel/*.d
# only; conffiles, as every package's kernel hooks are), never a vfio-early.conf.
hooks=$'/etc/kernel/postinst.d/zz-vfio-early-addon\n/etc/kernel/postrm.d/zz-vfio-early-addon'
etc=$(grep '^/etc/.*[^/]$' <<<"$contents" | LC_ALL=C sort)
[ "$etc" = "$hooks" ] || reasons+="files in /etc other than the two kernel hooks: $(tr '\n' ' ' <<<"$etc")"$'\n'
[ "$(LC_ALL=C sort "$ctl/conffiles" 2>/dev/null)" = "$hooks" ] || reasons+="conffiles are not the two kernel hooks: $(cat "$ctl/conffiles" 2>/dev/null)"$'\n'
grep -qx 'activate-noawait update-initramfs' "$ctl/triggers" || reasons+="no 'activate-noawait update-initramfs' trigger"$'\n'
for s in preinst postinst prerm postrm; do
    [ ! -f "$ctl/$s" ] || ! grep -q 'update-initramfs\|dracut ' "$ctl/$s" || reasons+="$s calls an image generator"$'\n'
done
for b in usr/bin/vfio-early usr/lib/vfio-early/vfio-early-boot usr/lib/vfio-early/init; do
    readelf -lW "$REPO_DIR/target/debian/vfio-early-${DEB_VERSION%-*}/debian/vfio-early/$b" | grep -q INTERP &&
        reasons+="the packaged $b is dynamic"$'\n'
done
verdict deb-contents "$(grep -c . <<<"$contents") paths, trigger, conffiles only the add-on's kernel hooks, static binaries (host and boot build, rdinit shim)" "$reasons"

lintian --pedantic -I "$REPO_DIR"/target/debian/vfio-early_*.changes >"$SUITE_OUT/lintian.txt" 2>&1
reasons=""
grep -q '^E: ' "$SUITE_OUT/lintian.txt" && reasons+="errors: $(grep '^E: ' "$SUITE_OUT/lintian.txt" | tr '\n' ' ')"$'\n'
for tag in $(sed -n 's/^[WI]: vfio-early: \([^ ]*\).*/\1/p' "$SUITE_OUT/lintian.txt" | sort -u); do
    grep -qF "\`$tag\`" "$REPO_DIR/docs/building.md" || reasons+="warning $tag is not listed in docs/building.md"$'\n'
done
verdict deb-lintian "$(grep -c '^[EWI]: ' "$SUITE_OUT/lintian.txt") tags: $(sed -n 's/^\([EWI]\): vfio-early: \([^ ]*\).*/\1:\2/p' "$SUITE_OUT/lintian.txt" | sort -u | tr '\n' ' ')" "$reasons"

# ---------------------------------------------------------------- install, purge, upgrade
phase "layers"
layer_ensure its || exit 1
layer_ensure dracut || exit 1
phase "install, purge, upgrade, remove (both roots at once)"
pids=()
for f in its dracut; do
    session "$f" >"$SUITE_OUT/$f.checks" 2>"$SUITE_OUT/$f.session.log" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
for f in its dracut; do
    n=0
    while IFS='|' read -r name st detail why; do
        [ -n "$name" ] || continue
        n=$((n + 1))
        result "$name" "$st" "$detail" "$(tr ';' '\n' <<<"$why")"
    done <"$SUITE_OUT/$f.checks"
    [ "$n" -eq 7 ] || result "$f-session" FAIL "$n of 7 checks ran" "see $SUITE_OUT/$f.session.log: $(tail -n 3 "$SUITE_OUT/$f.session.log" | tr '\n' ' ')"
done

# ---------------------------------------------------------------- boots
phase "boots"
# name | image | kernel arguments | expect | binder log substrings
BOOTS="
install | install.img | vfio-early.devices=01:00.0 | $CARD1_VFIO $NATIVE                   | (entry 01:00.0): bound to vfio-pci; summary: 2 bound
purge   | purge.img   | vfio-early.devices=01:00.0 | $CARD1_NATIVE $NATIVE *!=vfio-pci     |
upgrade | upgrade.img |                            | $CARD1_VFIO $NATIVE                   | (entry 01:00.0): bound to vfio-pci; summary: 2 bound
"
N=() IMG=() ARGS=() EXPECT=() LOGS=()
for f in its dracut; do
    while IFS='|' read -r name image args expect logs; do
        name=$(trim "$name")
        [ -n "$name" ] || continue
        N+=("$f-$name-boot") IMG+=("$SUITE_OUT/$f/$(trim "$image")") ARGS+=("$(trim "$args")")
        EXPECT+=("$(trim "$expect")") LOGS+=("$(trim "$logs")")
    done <<<"$BOOTS"
done
pkg_boots
h_say "package suite took $((SECONDS - T_START)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
