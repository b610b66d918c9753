# SPDX-License-Identifier: MIT OR Apache-2.0
# shellcheck shell=bash
# shellcheck disable=SC2034 # settings and results are used by run.sh
#
# Library of the generator tests (tests/generators/run.sh): images built by the
# REAL initramfs generators (initramfs-tools' mkinitramfs, dracut in its
# systemd and its shell flavour) inside a Debian bookworm chroot, booted under
# QEMU into a small real root that runs udev coldplug and reports.
# It sources tests/qemu/lib.sh and reuses its machine description, its QEMU
# launch (boot_vm) and its report parsing and checks.
#
# Pieces:
#   gen_root_ensure                  cached debootstrap root; sets GEN_ROOT, GEN_KVER
#   gen_mount_root / gen_umount_all  proc, sys, /run and a private /dev, only while building
#   gen_install_test_pieces          test-only hooks (tests/generators/chroot/) into the root
#   gen_set_root_state VARIANT       bare | main | conf | nobin | strict (see there)
#   gen_build_image FLAVOUR VARIANT  one image (cached by a key of all its inputs)
#   gen_rootfs_ensure                the real root's ext4 image; sets GEN_ROOTFS
#   gen_boot DIR IMAGE ARGS          one boot into the real root
#   gen_check DIR EXPECT LOGS        check_report of tests/qemu/lib.sh for these boots
# Nothing here exits: functions return non-zero and callers decide.

GEN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/qemu/lib.sh
. "$GEN_DIR/../qemu/lib.sh"

GEN_CACHE="$CACHE_DIR/generators"
GEN_OUT="$OUT_DIR/generators"
GEN_SUITE=bookworm
GEN_MIRROR="${GEN_MIRROR:-http://deb.debian.org/debian}"
# What the chroot holds: both generators, what dracut's systemd flavour takes
# from the root (systemd, udev; systemd-sysv for poweroff/reboot/halt), busybox
# for initramfs-tools, a compressor.
GEN_BASE_PACKAGES="initramfs-tools dracut-core systemd systemd-sysv udev kmod busybox cpio zstd"
# Installed in a second step with INITRD=No: its postinst would build an image.
GEN_KERNEL_PACKAGES="linux-image-amd64"
# Bump when the way the root is made changes in a way the function text
# below does not show (the text of gen_make_root is hashed too).
GEN_RECIPE_VERSION=1
# Native drivers every image must carry so that udev in the image races the binder.
GEN_NATIVE_DRIVERS="bochs snd-hda-intel"
# Test instrumentation on every boot's command line: udevd and systemd log to
# the kernel log, so its timestamps order udevd's start against the binder's
# records. systemd (PID 1) reads systemd.log_target= from the command line; a
# udevd started by a shell init (initramfs-tools, dracut's shell flavour) reads
# only its environment, which the kernel fills from unknown undotted arguments.
GEN_LOG_ARGS="systemd.log_target=kmsg SYSTEMD_LOG_TARGET=kmsg"

# Result lines of the suites built on this library: "PASS|FAIL NAME DETAIL", reasons below.
PASSED=0 FAILED=0
result() { # NAME OK|FAIL DETAIL [REASONS]
    if [ "$2" = OK ]; then
        PASSED=$((PASSED + 1))
        printf 'PASS %-24s %s\n' "$1" "$3"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL %-24s %s\n' "$1" "$3"
        [ -z "${4:-}" ] || printf '%s\n' "$4" | sed '/^$/d; s/^/       reason: /'
    fi
}
# verdict NAME DETAIL REASONS: OK when REASONS (lines) is empty.
verdict() {
    if [ -z "$(sed '/^$/d' <<<"$3")" ]; then result "$1" OK "$2"; else result "$1" FAIL "$2" "$3"; fi
}

gen_flavour_name() {
    case $1 in
        its) echo "initramfs-tools" ;;
        dsd) echo "dracut-systemd" ;;
        dsh) echo "dracut-shell" ;;
        dho) echo "dracut-hostonly" ;;
        *) echo "$1" ;;
    esac
}

gen_sha() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- mounts
GEN_MOUNTS=()

# True when something is mounted at or below $1 (never rm -rf through it); with "below", only
# strictly below (a root that is itself a mount point, an overlay, may be mounted into).
gen_has_mounts() {
    local d
    d=$(readlink -f "$1")
    awk -v d="$d" -v below="${2:-}" '(below == "" && $2 == d) || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts
}

# Modules the hostonly build sees as loaded (see gen_mount_root): those of a
# machine booted from virtio-blk and ext4, without vfio and without the card's
# native drivers.
GEN_FAKE_LOADED="ext4 jbd2 mbcache crc16 virtio_blk virtio_pci virtio_pci_modern_dev virtio_ring virtio ahci libahci libata scsi_mod i2c_i801 lpc_ich"

# gen_mount_root ROOT [fake-modules]: proc, sysfs, a tmpfs /run and a private
# /dev (a tmpfs with a few nodes; never the host's). With fake-modules, /proc is a tmpfs
# whose entries link to a real procfs mounted beside it, except /proc/modules,
# which lists GEN_FAKE_LOADED: dracut --hostonly keeps only loaded modules
# (dracut-install reads /proc/modules) and a build host without loadable
# modules, or with vfio loaded, could not show that the vfio modules survive.
gen_mount_root() {
    local r=$1 fake=${2:-} e m
    gen_has_mounts "$r" below && { h_err "something is already mounted under $r"; return 1; }
    if [ "$fake" = fake-modules ]; then
        mkdir -p "$r/.vfiotest-proc" || return 1
        mount -t proc proc "$r/.vfiotest-proc" || return 1
        GEN_MOUNTS+=("$r/.vfiotest-proc")
        mount -t tmpfs -o mode=755,size=1m vfiotest-proc "$r/proc" || return 1
        GEN_MOUNTS+=("$r/proc")
        for e in "$r/.vfiotest-proc"/*; do
            e=${e##*/}
            case $e in modules | [0-9]*) continue ;; esac
            ln -s "/.vfiotest-proc/$e" "$r/proc/$e" || return 1
        done
        for m in $GEN_FAKE_LOADED; do
            printf '%s 16384 0 - Live 0x0000000000000000\n' "$m"
        done >"$r/proc/modules"
    else
        mount -t proc proc "$r/proc" || return 1
        GEN_MOUNTS+=("$r/proc")
    fi
    mount -t sysfs sysfs "$r/sys" || return 1
    GEN_MOUNTS+=("$r/sys")
    # dracut turns hostonly mode off unless /run is a mount point too.
    mount -t tmpfs -o mode=755,size=16m vfiotest-run "$r/run" || return 1
    GEN_MOUNTS+=("$r/run")
    mount -t tmpfs -o mode=755,size=16m vfiotest-dev "$r/dev" || return 1
    GEN_MOUNTS+=("$r/dev")
    mknod -m 666 "$r/dev/null" c 1 3 &&
        mknod -m 666 "$r/dev/zero" c 1 5 &&
        mknod -m 666 "$r/dev/full" c 1 7 &&
        mknod -m 666 "$r/dev/random" c 1 8 &&
        mknod -m 666 "$r/dev/urandom" c 1 9 &&
        mknod -m 666 "$r/dev/tty" c 5 0 &&
        ln -s /proc/self/fd "$r/dev/fd" &&
        ln -s /proc/self/fd/0 "$r/dev/stdin" &&
        ln -s /proc/self/fd/1 "$r/dev/stdout" &&
        ln -s /proc/self/fd/2 "$r/dev/stderr" &&
        mkdir -p "$r/dev/pts" "$r/dev/shm" || return 1
}

# Unmounts everything gen_mount_root mounted, last first. Safe to call twice.
gen_umount_all() {
    local i m rc=0
    for ((i = ${#GEN_MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${GEN_MOUNTS[i]}
        if ! umount "$m" 2>/dev/null; then
            umount -l "$m" 2>/dev/null || { h_err "cannot unmount $m"; rc=1; }
        fi
    done
    GEN_MOUNTS=()
    return "$rc"
}

# Unmounts what an earlier run killed before its trap left mounted below the
# cache (deepest first); nothing outside tests/.cache/generators is touched.
gen_clean_stale_mounts() {
    local d m
    [ -d "$GEN_CACHE" ] || return 0
    d=$(readlink -f "$GEN_CACHE")
    awk -v d="$d" 'index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while IFS= read -r m; do
            h_say "unmounting $m (left by an interrupted run)"
            umount "$m" 2>/dev/null || umount -l "$m"
        done
}

# gen_chroot ROOT CMD...: a command in the root with a clean environment.
gen_chroot() {
    local r=$1
    shift
    chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
        TMPDIR=/var/tmp "$@"
}

# ---------------------------------------------------------------- the root
# The key of the root: everything that decides its content.
gen_root_key() {
    {
        echo "$GEN_RECIPE_VERSION $GEN_SUITE $GEN_MIRROR"
        echo "$GEN_BASE_PACKAGES | $GEN_KERNEL_PACKAGES"
        declare -f gen_make_root
    } | gen_sha
}

# Removes a cache directory, refusing if anything is mounted below it.
gen_rm_tree() {
    [ -e "$1" ] || return 0
    if gen_has_mounts "$1"; then
        h_err "refusing to remove $1: something is mounted below it"
        return 1
    fi
    rm -rf "$1"
}

# gen_make_root DIR LOG: debootstrap, then the kernel without an image build.
gen_make_root() {
    local dir=$1 log=$2 include
    include=$(tr ' ' ',' <<<"$GEN_BASE_PACKAGES")
    debootstrap --variant=minbase --include="$include" "$GEN_SUITE" "$dir" "$GEN_MIRROR" >>"$log" 2>&1 ||
        { h_err "debootstrap failed (see $log)"; return 1; }
    # No daemon may start inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" && chmod 755 "$dir/usr/sbin/policy-rc.d" || return 1
    gen_mount_root "$dir" || { gen_umount_all; return 1; }
    # INITRD=No: the kernel's postinst hooks skip their own image build.
    # shellcheck disable=SC2086
    gen_chroot "$dir" DEBIAN_FRONTEND=noninteractive INITRD=No \
        apt-get install -y -q --no-install-recommends $GEN_KERNEL_PACKAGES >>"$log" 2>&1
    local rc=$?
    gen_chroot "$dir" apt-get clean >>"$log" 2>&1
    gen_umount_all || return 1
    [ "$rc" -eq 0 ] || { h_err "installing $GEN_KERNEL_PACKAGES in the root failed (see $log)"; return 1; }
}

# Sets GEN_ROOT and GEN_KVER; builds the root when its key changed.
gen_root_ensure() {
    local key dir log old n
    key=$(gen_root_key)
    dir="$GEN_CACHE/root-$key"
    mkdir -p "$GEN_CACHE" "$GEN_OUT"
    gen_clean_stale_mounts
    if [ ! -f "$dir/.vfiotest-root-complete" ]; then
        # Old roots (other keys) and half-built ones go.
        for old in "$GEN_CACHE"/root-*; do
            [ -e "$old" ] || continue
            gen_rm_tree "$old" || return 1
        done
        log="$GEN_OUT/root-build.log"
        : >"$log"
        h_say "building the chroot root $dir (debootstrap $GEN_SUITE minbase + $GEN_KERNEL_PACKAGES; log $log)"
        local t0=$SECONDS
        gen_make_root "$dir" "$log" || return 1
        echo "$key" >"$dir/.vfiotest-root-complete"
        h_say "root built in $((SECONDS - t0)) s"
    fi
    GEN_ROOT=$dir
    n=$(find "$GEN_ROOT/lib/modules" -mindepth 1 -maxdepth 1 -type d | wc -l)
    [ "$n" -eq 1 ] || { h_err "expected one kernel in $GEN_ROOT/lib/modules, found $n"; return 1; }
    GEN_KVER=$(basename "$(find "$GEN_ROOT/lib/modules" -mindepth 1 -maxdepth 1 -type d)")
    GEN_KERNEL="$GEN_ROOT/boot/vmlinuz-$GEN_KVER"
    [ -f "$GEN_KERNEL" ] || { h_err "no $GEN_KERNEL"; return 1; }
}

# The boots use the root's own kernel (its modules are the ones in the images);
# tests/qemu/lib.sh's boot_vm asks kernel_image for it.
kernel_image() { printf '%s\n' "$GEN_KERNEL"; }

# ---------------------------------------------------------------- what goes into the root
GEN_STATE_DIR=/var/lib/vfiotest

# Test-only pieces (tests/generators/chroot/ mirrors their paths in the root):
# a build hook adding the native drivers (initramfs-tools), and hooks that
# load vfio-pci before the binder when the kernel command line has
# test.preload=vfio-pci (initramfs-tools, dracut shell, dracut systemd), and
# initramfs-tools' compression level (conf.d/vfiotest-compress).
gen_install_test_pieces() {
    local r=$1 f m
    rm -rf "$r/usr/lib/dracut/modules.d/49vfiotest"
    rm -f "$r/etc/initramfs-tools/hooks/vfiotest-"* "$r/etc/initramfs-tools/scripts/init-top/"*vfiotest* \
        "$r/etc/initramfs-tools/conf.d/vfiotest-"*
    (cd "$GEN_DIR/chroot" && find . -type f) | while IFS= read -r f; do
        case $f in *.service) m=644 ;; *) m=755 ;; esac
        install -D -m "$m" "$GEN_DIR/chroot/$f" "$r/$f" || exit 1
    done
}

gen_test_pieces_key() {
    (cd "$GEN_DIR/chroot" && find . -type f | LC_ALL=C sort | xargs sha256sum) | gen_sha
}

# Stages `make install` once: GEN_STAGE holds the tree, GEN_INSTALL_KEY its hash.
gen_stage_install() {
    GEN_STAGE="$GEN_OUT/install-stage"
    rm -rf "$GEN_STAGE"
    mkdir -p "$GEN_STAGE"
    make -s -C "$REPO_DIR" install DESTDIR="$GEN_STAGE" >"$GEN_OUT/make-install-stage.log" 2>&1 ||
        { h_err "make install DESTDIR=$GEN_STAGE failed (see $GEN_OUT/make-install-stage.log)"; return 1; }
    GEN_INSTALL_FILES=$(cd "$GEN_STAGE" && find . ! -type d | sed 's|^\./|/|' | LC_ALL=C sort)
    GEN_INSTALL_KEY=$(cd "$GEN_STAGE" && find . ! -type d | LC_ALL=C sort | xargs sha256sum | gen_sha)
}

# Removes what a previous `make install` put into the root (its manifest).
gen_uninstall() {
    local r=$1 f
    [ -f "$r$GEN_STATE_DIR/manifest" ] || return 0
    while IFS= read -r f; do
        [ -n "$f" ] && rm -f "$r$f"
    done <"$r$GEN_STATE_DIR/manifest"
    rm -rf "$r/usr/lib/dracut/modules.d/50vfio-early" "$r/usr/lib/vfio-early" "$r$GEN_STATE_DIR/vfio-early.aside" \
        "$r$GEN_STATE_DIR/vfio-early-host.aside"
    rm -f "$r$GEN_STATE_DIR/manifest"
}

# gen_set_root_state ROOT VARIANT: puts the root into the state an image variant needs.
#   bare   vfio-early not installed (size baseline)
#   main   `make install DESTDIR=ROOT`, no /etc/vfio-early.conf
#   conf   main plus /etc/vfio-early.conf with "devices = 01:00.0"
#   nobin  main without the boot build /usr/lib/vfio-early/vfio-early-boot (the hooks must say so
#          and still build)
#   strict nobin, the host build moved aside too (the hooks' shell reading of the file decides),
#          plus "build-strict = yes" in /etc/vfio-early.conf (the build must fail)
#   dyn    main with the native glibc build (`make TARGET=`, dynamically linked) as the binary
#   longd  main plus a dracut kernel_cmdline of 9 KiB ending in vfio-early.off (dracut writes it
#          to the image's /etc/cmdline.d/01-default.conf, over the binder's 8 KiB cap)
gen_set_root_state() {
    local r=$1 v=$2
    gen_uninstall "$r"
    rm -f "$r/etc/vfio-early.conf" "$r/etc/dracut.conf.d/90-vfiotest-long.conf"
    mkdir -p "$r$GEN_STATE_DIR"
    [ "$v" = bare ] && return 0
    printf '%s\n' "$GEN_INSTALL_FILES" >"$r$GEN_STATE_DIR/manifest"
    # shellcheck disable=SC2046 # no word or one: TARGET= for the native build
    make -s -C "$REPO_DIR" install DESTDIR="$r" $([ "$v" != dyn ] || echo TARGET=) >"$GEN_OUT/make-install-root.log" 2>&1 ||
        { h_err "make install DESTDIR=$r failed (see $GEN_OUT/make-install-root.log)"; return 1; }
    case $v in
        main | dyn) ;;
        longd)
            mkdir -p "$r/etc/dracut.conf.d" &&
                printf 'kernel_cmdline="test.pad=%s vfio-early.off"\n' "$(printf '%9000s' '' | tr ' ' x)" \
                    >"$r/etc/dracut.conf.d/90-vfiotest-long.conf"
            ;;
        conf) printf '# written by tests/generators\ndevices = 01:00.0\n' >"$r/etc/vfio-early.conf" ;;
        nobin) mv "$r/usr/lib/vfio-early/vfio-early-boot" "$r$GEN_STATE_DIR/vfio-early.aside" ;;
        strict)
            mv "$r/usr/lib/vfio-early/vfio-early-boot" "$r$GEN_STATE_DIR/vfio-early.aside" &&
                mv "$r/usr/bin/vfio-early" "$r$GEN_STATE_DIR/vfio-early-host.aside" &&
                printf '# written by tests/generators\nbuild-strict = yes\n' >"$r/etc/vfio-early.conf"
            ;;
        *) h_err "unknown root state $v"; return 1 ;;
    esac
}

# ---------------------------------------------------------------- images
# The generator's command line for a flavour (run inside the root).
# dracut's own choice here is gzip -9, which alone took 45 of a build's 56 s
# (135 MB of cpio); zstd changes nothing inside the image and saves minutes
# (initramfs-tools uses zstd by default anyway). dracut's `--compress zstd` is
# `zstd -15`, still 15-30 s of a build's 20-34 s: these images are not about
# compression, so level 1 (4-5 s builds, the same boot times, still zstd for
# check --image); initramfs-tools gets level 1 from the test root's conf.d.
gen_build_cmd() {
    local flavour=$1 out=$2 d
    d="dracut --compress 'zstd -1 -q -T0' --add vfiotest --add-drivers '$GEN_NATIVE_DRIVERS' --force"
    case $flavour in
        its) echo "mkinitramfs -o $out $GEN_KVER" ;;
        dsd) echo "$d --no-hostonly $out $GEN_KVER" ;;
        dsh) echo "$d --no-hostonly --omit systemd $out $GEN_KVER" ;;
        dho) echo "$d --hostonly $out $GEN_KVER" ;;
        *) return 1 ;;
    esac
}

gen_image_path() { printf '%s\n' "$GEN_CACHE/images/$1-$2.img"; }

# Everything an image depends on.
gen_image_key() {
    local flavour=$1 variant=$2
    {
        echo "$(gen_root_key) $flavour $variant $(gen_test_pieces_key)"
        [ "$variant" = bare ] || echo "$GEN_INSTALL_KEY"
        [ "$variant" != dyn ] || sha256sum <"$REPO_DIR/target/release/vfio-early-boot"
        gen_build_cmd "$flavour" OUT
        [ "$flavour" != dho ] || echo "$GEN_FAKE_LOADED"
        declare -f gen_set_root_state gen_build_image gen_build_cmd gen_mount_root
    } | gen_sha
}

# True when the cached image for FLAVOUR VARIANT is current. A strict build
# is meant to fail: its log and key are what is kept.
gen_image_current() {
    local img
    img=$(gen_image_path "$1" "$2")
    { [ -f "$img" ] || [ "$2" = strict ]; } && [ -f "$img.log" ] &&
        [ "$(cat "$img.key" 2>/dev/null)" = "$(gen_image_key "$1" "$2")" ]
}

# The generator's exit status recorded in an image's build log.
gen_build_status() { sed -n 's/^# exit status \([0-9]*\),.*/\1/p' "$1.log" 2>/dev/null; }

# gen_build_image FLAVOUR VARIANT: builds with the root already in VARIANT's
# state and mounted. Writes IMG, IMG.log (the generator's output, its exit
# status on the last line), IMG.key; returns the generator's status.
gen_build_image() {
    local flavour=$1 variant=$2 img tmp cmd rc t0
    img=$(gen_image_path "$flavour" "$variant")
    mkdir -p "$(dirname "$img")"
    rm -f "$img" "$img.key" "$img.log"
    tmp="/var/tmp/vfiotest-$flavour-$variant.img"
    cmd=$(gen_build_cmd "$flavour" "$tmp") || return 1
    t0=$(date +%s.%N)
    rc=0
    {
        echo "# $cmd"
        gen_chroot "$GEN_ROOT" /bin/sh -c "$cmd" 2>&1 || rc=$?
        echo "# exit status $rc, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    } >"$img.log" 2>&1
    if [ "$rc" -eq 0 ] && [ -s "$GEN_ROOT$tmp" ]; then
        mv "$GEN_ROOT$tmp" "$img"
        gen_image_key "$flavour" "$variant" >"$img.key"
    elif [ "$variant" = strict ]; then
        # The result (a failure, the test hopes) is the product of this build.
        rm -f "$GEN_ROOT$tmp"
        gen_image_key "$flavour" "$variant" >"$img.key"
        return 0
    else
        rm -f "$GEN_ROOT$tmp"
        [ "$rc" -ne 0 ] || rc=1
    fi
    return "$rc"
}

# gen_build_phase VARIANT FLAVOUR...: sets the root's state, then builds the
# images that are not current, JOBS at a time. Prints one line per image.
# GEN_PHASE_MOUNT=fake-modules mounts the root with a made-up /proc/modules.
gen_build_phase() {
    local variant=$1 f todo=() pids=() i rc bad=0 img
    shift
    for f in "$@"; do
        gen_image_current "$f" "$variant" || todo+=("$f")
    done
    for f in "$@"; do
        [[ " ${todo[*]} " == *" $f "* ]] || h_say "  image $(gen_flavour_name "$f")/$variant: cached"
    done
    [ "${#todo[@]}" -gt 0 ] || return 0
    gen_set_root_state "$GEN_ROOT" "$variant" || return 1
    # Leftovers of an interrupted build (no build runs now).
    rm -rf "$GEN_ROOT"/var/tmp/vfiotest-*.img "$GEN_ROOT"/var/tmp/dracut.* "$GEN_ROOT"/var/tmp/mkinitramfs*
    gen_mount_root "$GEN_ROOT" ${GEN_PHASE_MOUNT:+"$GEN_PHASE_MOUNT"} || { gen_umount_all; return 1; }
    local jobs=${JOBS:-2} running=0
    # Each build in its own process group (gen_stop_builds ends it whole).
    set -m
    for ((i = 0; i < ${#todo[@]}; i++)); do
        if [ "$running" -ge "$jobs" ]; then
            wait -n || true
            running=$((running - 1))
        fi
        gen_build_image "${todo[i]}" "$variant" </dev/null &
        pids[i]=$!
        GEN_BUILD_PIDS+=("$!")
        running=$((running + 1))
    done
    set +m
    for ((i = 0; i < ${#todo[@]}; i++)); do
        rc=0
        wait "${pids[i]}" || rc=$?
        img=$(gen_image_path "${todo[i]}" "$variant")
        if [ "$variant" = strict ] && [ "$rc" -eq 0 ]; then
            h_say "  image $(gen_flavour_name "${todo[i]}")/$variant: generator exit status $(gen_build_status "$img") (expected to fail)"
        elif [ "$rc" -eq 0 ]; then
            h_say "  image $(gen_flavour_name "${todo[i]}")/$variant: built in $(sed -n 's/^# exit status 0, \(.*\) s$/\1/p' "$img.log") s"
        else
            h_say "  image $(gen_flavour_name "${todo[i]}")/$variant: BUILD FAILED (status $rc), see $img.log"
            bad=1
        fi
    done
    GEN_BUILD_PIDS=()
    gen_umount_all || bad=1
    return "$bad"
}

GEN_BUILD_PIDS=()
# Ends the builds a phase started (each is its own process group).
gen_stop_builds() {
    local p
    for p in "${GEN_BUILD_PIDS[@]}"; do
        kill -- -"$p" 2>/dev/null || true
    done
    for p in "${GEN_BUILD_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    GEN_BUILD_PIDS=()
}

# The first 6 bytes of a file, in hex.
gen_magic() { head -c 6 "$1" | od -An -tx1 | tr -d ' \n'; }
# "070701"/"070702": an uncompressed newc cpio.
gen_is_cpio() { case $(gen_magic "$1") in 303730373031 | 303730373032) return 0 ;; esac; return 1; }

# gen_image_main IMG: the image's main (compressed) archive, decompressed, on
# stdout. An uncompressed early cpio in front (microcode) is skipped with
# dracut's skipcpio.
gen_image_main() {
    local img=$1 rest=$1 rc
    if gen_is_cpio "$img"; then
        rest=$(mktemp)
        "$GEN_ROOT/usr/lib/dracut/skipcpio" "$img" >"$rest" || { rm -f "$rest"; return 1; }
        # Nothing after the first archive: the image is one uncompressed cpio.
        [ -s "$rest" ] || { rm -f "$rest"; rest=$img; cat "$img"; return; }
    fi
    case $(gen_magic "$rest") in
        1f8b*) gzip -dc "$rest" ;;
        28b52ffd*) zstd -dc "$rest" ;;
        fd377a585a00) xz -dc "$rest" ;;
        02214c18*) lz4 -dc "$rest" ;;
        303730373031 | 303730373032) cat "$rest" ;;
        *) h_err "unknown compression of $img (magic $(gen_magic "$rest"))"; false ;;
    esac
    rc=$?
    [ "$rest" = "$img" ] || rm -f "$rest"
    return "$rc"
}

# ---------------------------------------------------------------- the initrd add-on
GEN_ADDON_OTHER_KVER=6.1.0-0-other-amd64
# gen_addon_images: builds the add-on in the root as a user would (the packaged host build and
# its boot build, `vfio-early addon --kver KVER`), and the two images the add-on rows boot, both
# the dracut systemd image built without vfio-early plus an add-on, padded to 4 bytes between
# them as boot loaders pad each initrd: dsd-addon (this one) and dsd-addon-other (the same
# add-on, its manifest saying another kernel: an add-on left over from the previous kernel);
# and the initramfs-tools image built without vfio-early plus the add-on, which carries the
# rdinit shim: its-shim, its-shim-nobinder (no binder in it), its-shim-hang (a binder that
# never ends). Writes GEN_OUT/addon.log (the command's output, then "build_ms N").
gen_addon_images() {
    local base images=$GEN_CACHE/images a=/var/tmp/vfiotest-addon.img t0 t1 x
    base=$(gen_image_path dsd bare)
    [ -f "$base" ] || { h_err "no dracut systemd image without vfio-early ($base)"; return 1; }
    rm -f "$GEN_ROOT$a" "$images"/dsd-addon*.img "$images"/its-shim*.img "$images"/addon*.cpio
    t0=$(date +%s%N)
    gen_chroot "$GEN_ROOT" vfio-early addon --kver "$GEN_KVER" -o "$a" >"$GEN_OUT/addon.log" 2>&1 ||
        { h_err "vfio-early addon failed in the root (see $GEN_OUT/addon.log)"; return 1; }
    t1=$(date +%s%N)
    echo "build_ms $(((t1 - t0) / 1000000))" >>"$GEN_OUT/addon.log"
    mv "$GEN_ROOT$a" "$images/addon.cpio"
    x=$(mktemp -d)
    (cd "$x" && cpio -idm --quiet <"$images/addon.cpio" &&
        sed -i "s/^kernel .*/kernel $GEN_ADDON_OTHER_KVER/" usr/lib/vfio-early/addon/manifest &&
        cpio -it --quiet <"$images/addon.cpio" | cpio -o -H newc -R 0:0 --quiet >"$images/addon-other.cpio") ||
        { rm -rf "$x"; h_err "repacking the add-on for another kernel failed"; return 1; }
    rm -rf "$x"
    # The rdinit shim's broken cases (issue 17): the add-on without its binder, and with a
    # binder that never ends (a shell stand-in sleeping past every deadline).
    x=$(mktemp -d)
    (cd "$x" && cpio -idm --quiet <"$images/addon.cpio" && [ -x usr/lib/vfio-early/init ] &&
        rm usr/lib/vfio-early/addon/vfio-early &&
        cpio -it --quiet <"$images/addon.cpio" | grep -vx usr/lib/vfio-early/addon/vfio-early |
        cpio -o -H newc -R 0:0 --quiet >"$images/addon-nobinder.cpio" &&
        printf '#!/bin/sh\n# vfiotest: a binder that hangs after telling the shim a 1 s deadline, as the real one tells its timeout\n[ "$VFIO_EARLY_DEADLINE_FD" = 3 ] && echo 1000 >&3\nsleep 600 || while :; do :; done\n' >usr/lib/vfio-early/addon/vfio-early &&
        chmod 755 usr/lib/vfio-early/addon/vfio-early &&
        cpio -it --quiet <"$images/addon.cpio" | cpio -o -H newc -R 0:0 --quiet >"$images/addon-hang.cpio") ||
        { rm -rf "$x"; h_err "repacking the add-on for the shim's broken cases failed (no usr/lib/vfio-early/init in it?)"; return 1; }
    rm -rf "$x"
    gen_append "$base" "$images/addon.cpio" "$images/dsd-addon.img" &&
        gen_append "$base" "$images/addon-other.cpio" "$images/dsd-addon-other.img" || return 1
    base=$(gen_image_path its bare)
    [ -f "$base" ] || { h_err "no initramfs-tools image without vfio-early ($base)"; return 1; }
    for x in addon addon-nobinder addon-hang; do
        gen_append "$base" "$images/$x.cpio" "$images/its-shim${x#addon}.img" || return 1
    done
}

# The kernel-install plugin with the root's real kernel-install and 90-loaderentry.install
# (systemd 252), the main image (the dracut systemd image built without vfio-early) delivered
# each way a generator does it, by stand-in plugins: written into the entry directory
# (mkinitcpio's and dracut 059's plugins), staged as initrd (mkinitcpio v37+, dracut 102+),
# staged by Debian's own 85-initrd.install (a link named initrd.img-KVER), or passed to
# kernel-install as an argument. GEN_KI_WAYS lists them; for each way, GEN_OUT/ki-WAY.entry is
# the loader entry and GEN_OUT/ki-WAY.log kernel-install's output. The entry-directory way's
# initrds, concatenated in the entry's order (4-byte aligned, as a boot loader loads them), are
# the image dsd-ki-entry.img the row dsd-ki-entry boots.
GEN_KI_WAYS="entry staged debian argument"
GEN_KI_MID=0123456789abcdef0123456789abcdef
GEN_KI_DIR=/var/tmp/vfiotest-ki
gen_kernel_install_entries() {
    local r=$GEN_ROOT k=$GEN_KI_DIR way plugins esp rc=0 f img prev d=/usr/lib/kernel/install.d
    local main
    main=$(gen_image_path dsd bare)
    [ -f "$main" ] || { h_err "no dracut systemd image without vfio-early ($main)"; return 1; }
    rm -rf "${r:?}$k" "$GEN_CACHE/images/dsd-ki-entry.img" "$GEN_OUT"/ki-*
    mkdir -p "$r$k/conf" "$r$k/plugins" "$r/etc/vfio-early" || return 1
    cp "$main" "$r$k/main.img" || return 1
    printf 'layout=bls\n' >"$r$k/conf/install.conf"
    printf 'root=/dev/vda ro\n' >"$r$k/conf/cmdline"
    printf '#!/bin/sh\n[ "$1" = add ] || exit 0\ncp %s/main.img "$3/initrd"\n' "$k" >"$r$k/plugins/50-standin-entry.install"
    printf '#!/bin/sh\n[ "$1" = add ] || exit 0\ncp %s/main.img "$KERNEL_INSTALL_STAGING_AREA/initrd"\n' "$k" >"$r$k/plugins/50-standin-staged.install"
    chmod 755 "$r$k/plugins"/*
    touch "$r/etc/vfio-early/addon.enabled"
    gen_mount_root "$r" || { gen_umount_all; return 1; }
    for way in $GEN_KI_WAYS; do
        esp=$k/esp-$way
        mkdir -p "$r$esp"
        plugins="$d/85-vfio-early-addon.install $d/90-loaderentry.install"
        set --
        case $way in
            entry | staged) plugins="$k/plugins/50-standin-$way.install $plugins" ;;
            debian)
                cp "$r$k/main.img" "$r/boot/initrd.img-$GEN_KVER"
                plugins="$d/85-initrd.install $plugins"
                ;;
            argument)
                plugins="$d/85-initrd.install $plugins"
                set -- "$k/main.img"
                ;;
        esac
        gen_chroot "$r" KERNEL_INSTALL_CONF_ROOT="$k/conf" BOOT_ROOT="$esp" MACHINE_ID="$GEN_KI_MID" \
            KERNEL_INSTALL_PLUGINS="$plugins" KERNEL_INSTALL_VERBOSE=1 \
            kernel-install add "$GEN_KVER" "/boot/vmlinuz-$GEN_KVER" "$@" >"$GEN_OUT/ki-$way.log" 2>&1 || rc=1
        rm -f "$r/boot/initrd.img-$GEN_KVER"
        cp "$r$esp/loader/entries/$GEN_KI_MID-$GEN_KVER.conf" "$GEN_OUT/ki-$way.entry" 2>/dev/null
    done
    gen_umount_all || rc=1
    rm -f "$r/etc/vfio-early/addon.enabled"
    # The entry-directory way, as a boot loader loads it.
    img=$GEN_CACHE/images/dsd-ki-entry.img
    for f in $(awk '$1 == "initrd" { print $2 }' "$GEN_OUT/ki-entry.entry" 2>/dev/null); do
        f=$r$k/esp-entry/$GEN_KI_MID/$GEN_KVER/${f##*/}
        if [ -f "$img" ]; then
            prev=$img.prev
            mv "$img" "$prev" && gen_append "$prev" "$f" "$img" && rm -f "$prev" || rc=1
        else
            cp "$f" "$img" || rc=1
        fi
    done
    return "$rc"
}

# gen_ki_check WAY: what is wrong with that way's entry (nothing: it is right): exactly two
# initrd lines, the main image byte for byte first, the add-on last; /init comes from the main
# image alone (the add-on carries none).
gen_ki_check() {
    local way=$1 entry=$GEN_OUT/ki-$1.entry dir=$GEN_ROOT$GEN_KI_DIR/esp-$1/$GEN_KI_MID/$GEN_KVER
    local lines first last
    [ -s "$entry" ] || { echo "no loader entry (kernel-install: $(tail -n 3 "$GEN_OUT/ki-$way.log" | tr '\n' ' '))"; return; }
    lines=$(awk '$1 == "initrd" { print $2 }' "$entry")
    [ "$(wc -l <<<"$lines")" -eq 2 ] || echo "initrd lines: $(tr '\n' ' ' <<<"$lines") (want the main image, then the add-on)"
    first=$(head -n 1 <<<"$lines") last=$(tail -n 1 <<<"$lines")
    cmp -s "$dir/${first##*/}" "$GEN_ROOT$GEN_KI_DIR/main.img" || echo "the first initrd ($first) is not the main image"
    [ "${last##*/}" = "initrd~vfio-early" ] || echo "the last initrd is $last, not the add-on"
    if cpio -it --quiet <"$dir/${last##*/}" 2>/dev/null | grep -qxE '\.?/?init'; then
        echo "the add-on carries an /init: it would replace the main image's"
    fi
    cpio -it --quiet <"$dir/${last##*/}" 2>/dev/null | grep -qx 'usr/lib/vfio-early/addon/vfio-early' ||
        echo "the last initrd is not vfio-early's add-on"
}

# gen_append BASE ADDON OUT: BASE, zeros to a 4-byte boundary (as boot loaders pad each
# initrd), then ADDON.
gen_append() {
    local pad=$(((4 - $(stat -c %s "$1") % 4) % 4))
    { cat "$1" && head -c "$pad" /dev/zero && cat "$2"; } >"$3"
}

# Raw (uncompressed) size of the whole image: early cpio plus decompressed main.
gen_image_raw_size() {
    local img=$1 main_bytes early=0 rest
    main_bytes=$(gen_image_main "$img" | wc -c)
    if gen_is_cpio "$img"; then
        rest=$("$GEN_ROOT/usr/lib/dracut/skipcpio" "$img" | wc -c)
        [ "$rest" -eq 0 ] || early=$(($(stat -c %s "$img") - rest))
    fi
    echo $((main_bytes + early))
}

# "size path" for every entry of the image's main archive (cached beside it).
gen_image_listing() {
    local img=$1
    if [ ! -f "$img.list" ] || [ "$img.list" -ot "$img" ]; then
        gen_image_main "$img" | cpio -itv --quiet 2>/dev/null |
            awk '/^d/ { next } # directories
                 { s = $5; f = 9 }
                 /^[bc]/ { s = 0; f = 10 } # device nodes: "major, minor" instead of a size
                 { n = $f; for (i = f + 1; i <= NF; i++) n = n " " $i; sub(/ -> .*/, "", n); sub(/^\.\//, "", n); print s, n }' |
            LC_ALL=C sort -k2 >"$img.list.tmp" && mv "$img.list.tmp" "$img.list"
    fi
    cat "$img.list"
}

# gen_image_file IMG PATH: one file of the image's main archive on stdout.
gen_image_file() {
    gen_image_main "$1" | cpio -i --quiet --to-stdout "$2" "./$2" 2>/dev/null
}

# ---------------------------------------------------------------- the real root
gen_rootfs_key() {
    {
        gen_root_key
        sha256sum "$GEN_DIR/root-init" "$(command -v busybox)" "$REPO_DIR/target/x86_64-unknown-linux-musl/release/vfio-early"
        declare -f gen_make_rootfs
    } | gen_sha
}

# gen_make_rootfs DIR: the real root's tree, taken from the chroot: busybox
# (static, the host's busybox-static), udevd and udevadm with their libraries,
# udev's rules, kmod, the kernel's modules, os-release (systemd's switch-root
# wants an OS tree), passwd and group (udev's rules name groups).
gen_make_rootfs() {
    local d=$1 r=$GEN_ROOT p lib applet
    rm -rf "$d"
    mkdir -p "$d"/usr/{bin,sbin,lib,lib64} "$d"/{etc,proc,sys,dev,run,tmp,root} || return 1
    ln -s usr/bin "$d/bin" && ln -s usr/sbin "$d/sbin" && ln -s usr/lib "$d/lib" && ln -s usr/lib64 "$d/lib64" || return 1
    install -m 755 "$(command -v busybox)" "$d/usr/bin/busybox" || return 1
    for applet in $(busybox --list); do
        case $applet in
            busybox | modprobe | insmod | rmmod | lsmod | depmod | modinfo) ;;
            *) [ -e "$d/usr/bin/$applet" ] || ln -s busybox "$d/usr/bin/$applet" ;;
        esac
    done
    for p in /usr/bin/udevadm /usr/bin/kmod; do
        install -m 755 "$r$p" "$d$p" || return 1
        for lib in $(gen_chroot "$r" ldd "$p" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
            [ -e "$d$lib" ] || install -D -m 755 "$(readlink -f "$r$lib")" "$d$lib" || return 1
        done
    done
    mkdir -p "$d/usr/lib/systemd"
    ln -s /usr/bin/udevadm "$d/usr/lib/systemd/systemd-udevd" || return 1
    for p in modprobe insmod rmmod lsmod depmod modinfo; do
        ln -sf /usr/bin/kmod "$d/usr/sbin/$p" || return 1
    done
    cp -a "$r/usr/lib/udev" "$d/usr/lib/udev" || return 1
    mkdir -p "$d/usr/lib/modules" && cp -a "$r/usr/lib/modules/$GEN_KVER" "$d/usr/lib/modules/" || return 1
    cp "$r/usr/lib/os-release" "$d/usr/lib/os-release" && ln -s ../usr/lib/os-release "$d/etc/os-release" || return 1
    cp "$r/etc/passwd" "$r/etc/group" "$d/etc/" || return 1
    # Coldplug here loads every platform driver the guest matches; these few
    # take seconds under TCG and have nothing to do with the test.
    mkdir -p "$d/etc/modprobe.d" &&
        printf 'blacklist %s\n' kvm kvm_amd kvm_intel iTCO_wdt iTCO_vendor_support pcspkr powernow_k8 \
            >"$d/etc/modprobe.d/vfiotest-quick.conf" || return 1
    install -m 755 "$GEN_DIR/root-init" "$d/usr/sbin/init" || return 1
    # The installed system's vfio-early: `rom persist` runs in the real root.
    install -m 755 "$REPO_DIR/target/x86_64-unknown-linux-musl/release/vfio-early" "$d/usr/bin/vfio-early" || return 1
}

# Sets GEN_ROOTFS (a raw ext4 image the boots open with snapshot=on).
gen_rootfs_ensure() {
    local key img dir mb
    key=$(gen_rootfs_key)
    img="$GEN_CACHE/rootfs-$key.ext4"
    if [ ! -f "$img" ]; then
        rm -f "$GEN_CACHE"/rootfs-*.ext4
        dir="$GEN_CACHE/rootfs-tree"
        gen_make_rootfs "$dir" || { h_err "assembling the real root failed"; return 1; }
        mb=$(($(du -sm "$dir" | cut -f1) * 5 / 4 + 64))
        mkfs.ext4 -q -F -L vfiotest-root -d "$dir" "$img.tmp" "${mb}M" >"$GEN_OUT/mkfs.log" 2>&1 ||
            { h_err "mkfs.ext4 -d failed"; rm -f "$img.tmp"; return 1; }
        mv "$img.tmp" "$img"
        rm -rf "$dir"
    fi
    GEN_ROOTFS=$img
}

# ---------------------------------------------------------------- boots
# gen_boot DIR IMAGE ARGS [PIECES]: the two-card machine of tests/qemu/lib.sh (PIECES: its
# machine_args, default "card2"), plus the real root on a virtio disk (QEMU writes go to a
# throw-away overlay).
gen_boot() {
    local dir=$1 img=$2 args=$3
    machine_args "${4:-card2}" || return 1
    # shellcheck disable=SC2054 # the commas are QEMU's option syntax
    boot_vm "$dir" "$img" "$MACHINE_APPEND root=/dev/vda ro rootfstype=ext4 rd.shell=0 rd.emergency=poweroff $GEN_LOG_ARGS${args:+ $args}" \
        "${MACHINE_QEMU[@]}" -m 1024 \
        -drive "file=$GEN_ROOTFS,if=none,id=rootdisk,format=raw,snapshot=on" \
        -device virtio-blk-pci,drive=rootdisk,bus=pcie.0,addr=06.0
}

GEN_BOOT_PIDS=()
# gen_boot_all RUNS [PIECES]: boots every image of the index-aligned arrays N (names), IMG and
# ARGS (and PIECES, where set: that boot's machine pieces), JOBS at a time (default 2), each in RUNS/NAME and its own process group (an interrupt
# ends it whole: kill -- -PID for each of GEN_BOOT_PIDS). A missing image leaves an empty run
# directory, so its checks fail.
gen_boot_all() {
    local runs=$1 pieces=${2:-card2} i running=0
    mkdir -p "$runs"
    set -m
    for ((i = 0; i < ${#N[@]}; i++)); do
        if [ "$running" -ge "${JOBS:-2}" ]; then
            wait -n 2>/dev/null || true
            running=$((running - 1))
        fi
        if [ -f "${IMG[i]}" ]; then
            gen_boot "$runs/${N[i]}" "${IMG[i]}" "${ARGS[i]}" "${PIECES[i]:-$pieces}" >/dev/null 2>&1 </dev/null &
        else
            (rm -rf "${runs:?}/${N[i]}" && mkdir -p "$runs/${N[i]}") &
        fi
        GEN_BOOT_PIDS+=($!)
        running=$((running + 1))
    done
    for i in "${GEN_BOOT_PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
    set +m
    GEN_BOOT_PIDS=()
}

# Kernel records other than the binder's (udev, systemd, native drivers), "ts text".
gen_kevents() {
    report_text "$1" | sed -n 's/^KEVT \[ *\([0-9.]*\)\] /\1 /p'
}

# Timestamp of the binder's first and last (summary) record, "first last", or nothing.
gen_binder_span() {
    report_klog "$1" | sed -n 's/^\[ *\([0-9.]*\)\] vfio-early: .*/\1/p' | sed -n '1p;$p' | tr '\n' ' '
}

# The earliest kernel record of udevd starting (its own first record, or
# systemd starting its service; not the sockets systemd listens on early), "ts text".
gen_first_udev() {
    gen_kevents "$1" | grep -E 'systemd-udevd\[[0-9]+\]: |systemd\[1\]: Start(ing|ed) systemd-udevd\.service' | head -n 1
}

# The earliest native-driver record for a card (bochs-drm or snd_hda_intel on 01:/02:).
gen_first_native() {
    gen_kevents "$1" | grep -E 'bochs-drm|snd_hda_intel 0000:0[12]|\[drm\] Found bochs' | head -n 1
}

# gen_record DIR fenced|summary: "TS MS" of the binder's fence record ("fenced N devices in M
# ms", a split run's) or its summary ("summary: ... in M ms"): the kernel timestamp and the
# binder's own figure; nothing when the boot has none.
gen_record() {
    report_klog "$1" | sed -n "s/^\[ *\([0-9.]*\)\] vfio-early: \(fence: \|finish: \)\{0,1\}$2 .* in \([0-9]*\) ms.*/\1 \3/p" | tail -n 1
}

# Timestamp of the real root's first record (after switch_root), or nothing.
gen_root_ts() {
    report_text "$1" | sed -n 's/^KLOG \[ *\([0-9.]*\)\] vfio-early generator test: real root init.*/\1/p' | head -n 1
}

# gen_order DIR: "before", "after" or "unknown: why": did the binder's fence (a
# split run's fence record, else its last record) come before udevd's first?
gen_order() {
    local dir=$1 span last udev uts fence
    span=$(gen_binder_span "$dir")
    last=${span#* }
    last=${last% }
    fence=$(gen_record "$dir" fenced)
    [ -z "$fence" ] || last=${fence% *}
    [ -n "$last" ] || { echo "unknown: no binder records"; return; }
    udev=$(gen_first_udev "$dir")
    [ -n "$udev" ] || { echo "unknown: no udevd record in the kernel log"; return; }
    uts=${udev%% *}
    if awk -v a="$last" -v b="$uts" 'BEGIN { exit !(a < b) }'; then
        echo "before"
    else
        echo "after"
    fi
}

# gen_figures DIR: "RETURN UDEV ROOT" in ms for one boot: the binder's start to its return to
# the init system (the fence record's own "in N ms", or a whole run's summary), and its start
# (that record's timestamp less its own figure) to udevd's first record and to the real root's
# first record; "-" for what the boot does not show.
gen_figures() {
    local dir=$1 rec ts own udev root
    rec=$(gen_record "$dir" fenced)
    [ -n "$rec" ] || rec=$(gen_record "$dir" summary:)
    ts=${rec% *} own=${rec#* }
    udev=$(gen_first_udev "$dir") root=$(gen_root_ts "$dir")
    awk -v ts="$ts" -v own="$own" -v udev="${udev%% *}" -v root="$root" 'BEGIN {
        if (ts == "" || own == "") { print "- - -"; exit }
        start = ts - own / 1000
        printf "%d %s %s\n", own, (udev == "" ? "-" : sprintf("%.0f", (udev - start) * 1000)),
            (root == "" ? "-" : sprintf("%.0f", (root - start) * 1000))
    }'
}

# gen_spread V...: "median M (min A, max B)" of the numbers given ("-" skipped), or "n/a".
gen_spread() {
    printf '%s\n' "$@" | grep -E '^[0-9]+$' | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "median %g (min %d, max %d, n %d)\n", m, v[1], v[NR], NR
    }'
}

# gen_timing DIR: tests/qemu/lib.sh's timing line (its /proc/uptime figure
# needs the test init's markers: dropped), then for a systemd image the span
# from "Starting vfio-early.service" to "Finished", and the gap from the
# binder's last record to udevd's first.
gen_timing() {
    local dir=$1 line span last udev what fence
    line=$(timing_line "$dir" | sed 's/, binder time n\/a//')
    span=$(gen_kevents "$dir" | awk '
        / systemd\[1\]: Starting vfio-early\.service/ { a = $1 }
        / systemd\[1\]: Finished vfio-early\.service/ { b = $1 }
        END { if (a != "" && b != "") printf "%.0f", (b - a) * 1000 }')
    [ -z "$span" ] || line+=", unit Starting->Finished $span ms"
    last=$(gen_binder_span "$dir")
    last=${last#* }
    last=${last% }
    what="the summary"
    fence=$(gen_record "$dir" fenced)
    if [ -n "$fence" ]; then
        last=${fence% *} what="the fence"
        line+=", fence ${fence#* } ms"
    fi
    udev=$(gen_first_udev "$dir")
    if [ -n "$last" ] && [ -n "$udev" ]; then
        line+=", udevd starts $(awk -v a="$last" -v b="${udev%% *}" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms after $what"
    fi
    printf '%s\n' "$line"
}

# gen_check DIR EXPECT LOGS: tests/qemu/lib.sh's check_report, less its
# binder exit status check: in these images the generator's own wrapper runs
# the binder and the status reaches no report (the binder's records and its
# state file in /run are the evidence it ran).
gen_check() {
    local out rc=0
    out=$(check_report "$@") || rc=$?
    [ "$rc" -eq 0 ] && return 0
    out=$(grep -v '^binder exit status unknown, boot mode must exit 0$' <<<"$out")
    [ -n "$out" ] || return 0
    printf '%s\n' "$out"
    return 1
}
