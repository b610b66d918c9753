# SPDX-License-Identifier: MIT OR Apache-2.0
# shellcheck shell=bash
# shellcheck disable=SC2034 # settings and results are used by the suites
#
# Shared by the package suites (deb.sh, arch-rpm.sh): result lines, overlay roots over the
# generator suite's cached chroot (tests/generators/lib.sh), and the cached layers that turn it
# into an initramfs-tools system with an image, or a dracut system.
# shellcheck source=tests/generators/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../generators/lib.sh"

export PATH="$PATH:/usr/sbin:/sbin"
PKG_OUT="$OUT_DIR/packaging"
PKG_CACHE="$GEN_CACHE/packaging"
T_START=$SECONDS
phase() { h_say "[$((SECONDS - T_START)) s] $*"; }

# ---------------------------------------------------------------- overlays
OVL_MOUNTS=()
# ovl_mount MERGED UPPER LOWER...: an overlay whose writes land in UPPER.
ovl_mount() {
    local merged=$1 upper=$2 lowers
    shift 2
    lowers=$(IFS=:; echo "$*")
    mkdir -p "$merged" "$upper" "$upper.work" || return 1
    mount -t overlay overlay -o "lowerdir=$lowers,upperdir=$upper,workdir=$upper.work" "$merged" || return 1
    OVL_MOUNTS+=("$merged")
}
ovl_umount_all() {
    local i
    gen_umount_all
    for ((i = ${#OVL_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${OVL_MOUNTS[i]}" 2>/dev/null || umount -l "${OVL_MOUNTS[i]}"
    done
    OVL_MOUNTS=()
}

# The cached layer a flavour's root adds to the chroot, and how it is made (the function text is
# part of the cache key).
layer_its() {
    # A Debian system has an image before any package triggers a rebuild (`update-initramfs -u`
    # updates existing images only).
    gen_chroot "$1" update-initramfs -c -k "$GEN_KVER"
}
layer_dracut() {
    # zstd and no hostonly: a quick, deterministic build (an admin's ordinary dracut.conf.d).
    mkdir -p "$1/etc/dracut.conf.d" &&
        printf 'compress="zstd"\nhostonly="no"\n' >"$1/etc/dracut.conf.d/90-vfiotest.conf" || return 1
    gen_chroot "$1" DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dracut &&
        gen_chroot "$1" apt-get clean || return 1
    # Its postinst builds an image when the kernel has none yet.
    [ -f "$1/boot/initrd.img-$GEN_KVER" ] || gen_chroot "$1" dracut -f --kver "$GEN_KVER"
}
layer_dir() { printf '%s/%s-%s\n' "$PKG_CACHE" "$1" "$({ gen_root_key; declare -f "layer_$1"; } | gen_sha)"; }

# layer_ensure FLAVOUR: builds the flavour's layer once (an overlay's upper directory).
layer_ensure() {
    local f=$1 dir log
    dir=$(layer_dir "$f")
    [ -f "$dir/.complete" ] && return 0
    rm -rf "$PKG_CACHE/$f"-*
    log="$PKG_OUT/layer-$f.log"
    h_say "building the $f layer (log $log)"
    ovl_mount "$PKG_OUT/layer-$f" "$dir/upper" "$GEN_ROOT" || return 1
    gen_mount_root "$PKG_OUT/layer-$f" || { ovl_umount_all; return 1; }
    local rc=0
    "layer_$f" "$PKG_OUT/layer-$f" >"$log" 2>&1 || rc=$?
    ovl_umount_all
    rm -rf "$dir/upper.work"
    [ "$rc" -eq 0 ] || { h_err "the $f layer failed (see $log)"; return 1; }
    touch "$dir/.complete"
}

# pkg_boots: boots the images the caller lists in the arrays N, IMG, ARGS, EXPECT, LOGS (runs in
# $SUITE_OUT/runs), JOBS at a time, on the two-card machine with a boot VGA, and checks them.
pkg_boots() {
    local i dir reasons detail
    gen_boot_all "$SUITE_OUT/runs" "vga card2"
    for ((i = 0; i < ${#N[@]}; i++)); do
        dir="$SUITE_OUT/runs/${N[i]}"
        if [ ! -f "${IMG[i]}" ]; then
            result "${N[i]}" FAIL "" "no image ${IMG[i]} (see the lines above)"
            continue
        fi
        reasons=$(gen_check "$dir" "${EXPECT[i]}" "${LOGS[i]}")
        detail=$(report_drivers "$dir" | sed 's/^0000://' | awk '$1 ~ /^(00:02\.0|0[12]:)/ { printf "%s=%s ", $1, $2 }')
        if [ -z "$reasons" ]; then
            result "${N[i]}" OK "$detail"
        else
            result "${N[i]}" FAIL "$detail" "$reasons"
            report_klog "$dir" | sed 's/^/       log: /'
            printf '       see: %s/{report.txt,console.log,cmdline}\n' "$dir"
        fi
    done
}

# What the boots expect: card A on vfio-pci, or native; its twin and the boot VGA native.
CARD1_VFIO="01:00.0=vfio-pci 01:00.1=vfio-pci"
CARD1_NATIVE="01:00.0=bochs-drm 01:00.1=snd_hda_intel"
NATIVE="00:02.0=bochs-drm 02:00.0=bochs-drm 02:00.1=snd_hda_intel"
