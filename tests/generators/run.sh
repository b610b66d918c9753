#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# vfio-early in images built by the REAL initramfs generators: initramfs-tools
# (mkinitramfs), dracut with systemd (its default) and dracut's shell init
# (--omit systemd), all run inside a cached Debian bookworm chroot that holds
# the Debian kernel and `make install` of vfio-early. Each image boots under
# QEMU (TCG, q35, intel-iommu, two identical stand-in cards) into a small real
# root that runs udev coldplug, so native drivers race the binder twice (in
# the image and after switch_root); the report says who holds each device.
# Ends with "N passed, M failed"; exits non-zero if M > 0.
#
#   tests/generators/run.sh [--rebuild] [GLOB...]   GLOB selects checks by name, e.g. 'dsd-*'
#
# Idempotent and self-installing (as root): host packages through
# tests/setup-host.sh, then debootstrap and e2fsprogs. Caches (the chroot,
# images, the real root) in tests/.cache/generators; boots and logs in
# tests/out/generators. Environment: JOBS (parallel builds and boots, default
# 2), BOOT_TIMEOUT (host hang guard per boot, tests/qemu/lib.sh's default), GEN_MIRROR.
set -u
# shellcheck source=tests/generators/lib.sh
. "$(dirname "$0")/lib.sh"

rebuild=0
globs=()
for a in "$@"; do
    case $a in
        --rebuild) rebuild=1 ;;
        -h | --help) sed -n '3,19p' "$0"; exit 0 ;;
        -*) h_err "unknown option $a"; exit 2 ;;
        *) globs+=("$a") ;;
    esac
done

[ "$(id -u)" -eq 0 ] || { h_err "must run as root (debootstrap, chroot, mounts)"; exit 2; }
# Boots (GEN_BOOT_PIDS) and builds (GEN_BUILD_PIDS) run in their own process groups:
# an interrupt ends them whole before the chroot's mounts go.
stop_boots() {
    local p
    for p in "${GEN_BOOT_PIDS[@]}"; do kill -- -"$p" 2>/dev/null || true; done
}
trap 'stop_boots; gen_stop_builds; gen_umount_all' EXIT
trap 'exit 130' INT TERM
T_START=$SECONDS
phase() {
    h_say "[$((SECONDS - T_START)) s] $*"
}

# ---------------------------------------------------------------- host
phase "host setup"
ensure_host || exit 1
missing=""
for p in debootstrap e2fsprogs; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=" $p"
done
if [ -n "$missing" ]; then
    h_say "installing:$missing"
    # shellcheck disable=SC2086
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; } \
        >/dev/null || { h_err "apt-get install$missing failed"; exit 1; }
fi
export PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$GEN_OUT"
(cd "$REPO_DIR" && make static && make TARGET=) >"$GEN_OUT/make-static.log" 2>&1 ||
    { h_err "make (static and native) failed (see $GEN_OUT/make-static.log)"; exit 1; }

# ---------------------------------------------------------------- root and images
phase "chroot root"
gen_root_ensure || exit 1
h_say "root $GEN_ROOT, kernel $GEN_KVER"
gen_stage_install || exit 1
gen_install_test_pieces "$GEN_ROOT" || { h_err "installing the test pieces failed"; exit 1; }
[ "$rebuild" -eq 0 ] || rm -f "$GEN_CACHE"/images/*.key

phase "images (real generators in the chroot)"
build_failed=0
gen_build_phase bare its dsd dsh || build_failed=1
gen_build_phase main its dsd dsh || build_failed=1
GEN_PHASE_MOUNT=fake-modules gen_build_phase main dho || build_failed=1
gen_build_phase conf its dsd dsh || build_failed=1
# The nobin images are expected to build (the hooks must not fail the build).
gen_build_phase nobin its dsd dsh || build_failed=1
# build-strict = yes and no binary: these builds must fail (dracut's shell and
# systemd flavours share the module's code: one dracut build is enough).
gen_build_phase strict its dsd || build_failed=1
# The native glibc build (dynamic): the hooks must bring its libraries.
gen_build_phase dyn its dsd || build_failed=1
# A 9 KiB cmdline.d file in the image, ending in the kill switch (over the binder's cap).
gen_build_phase longd dsd || build_failed=1
# Leave the root as a user would have it: vfio-early installed, no config.
gen_set_root_state "$GEN_ROOT" main || exit 1

phase "real root"
gen_rootfs_ensure || exit 1
h_say "real root image $GEN_ROOTFS"

phase "initrd add-on (vfio-early addon in the root, appended to the dracut systemd image without vfio-early)"
if gen_addon_images; then
    sed -n '1p' "$GEN_OUT/addon.log" | sed 's/^/  /'
else
    build_failed=1
fi
phase "kernel-install entries (the root's kernel-install and 90-loaderentry.install, the main image delivered each way)"
gen_kernel_install_entries || { h_err "kernel-install in the root failed for some way (see $GEN_OUT/ki-*.log)"; build_failed=1; }

# ---------------------------------------------------------------- sizes
phase "image sizes (raw = uncompressed cpio)"
printf '  %-16s %-6s %12s %12s %12s\n' flavour image compressed raw "raw vs bare"
for f in its dsd dsh; do
    bare=$(gen_image_path "$f" bare)
    [ -f "$bare" ] || continue
    bare_raw=$(gen_image_raw_size "$bare")
    printf '  %-16s %-6s %12s %12s %12s\n' "$(gen_flavour_name "$f")" bare "$(stat -c %s "$bare")" "$bare_raw" -
    for v in main conf nobin; do
        img=$(gen_image_path "$f" "$v")
        [ -f "$img" ] || continue
        raw=$(gen_image_raw_size "$img")
        printf '  %-16s %-6s %12s %12s %+12d\n' "$(gen_flavour_name "$f")" "$v" "$(stat -c %s "$img")" "$raw" $((raw - bare_raw))
    done
    main=$(gen_image_path "$f" main)
    [ -f "$main" ] || continue
    h_say "  files the vfio-early hook adds to the $(gen_flavour_name "$f") image (bytes, path):"
    join -1 2 -2 2 -v 2 <(gen_image_listing "$bare") <(gen_image_listing "$main") |
        awk '{ printf "    %8d %s\n", $2, $1; t += $2 } END { printf "    %8d total file bytes\n", t }'
    changed=$(join -1 2 -2 2 <(gen_image_listing "$bare") <(gen_image_listing "$main") | awk '$2 != $3 && $1 !~ /\/$/ { printf "%s (%+d) ", $1, $3 - $2 }')
    [ -z "$changed" ] || h_say "    changed: $changed"
done

# ---------------------------------------------------------------- checks
# name | flavours | image | kernel arguments | expect (tests/qemu/lib.sh syntax) | binder log substrings | extra checks
#   extra: ran (state file in /run), notran (no state file, no records), before-udev (binder's
#   fence, or its summary in a whole run, precedes udevd's first record), preloaded (the test
#   hook loaded vfio-pci before the binder's first record), buildmsg (the build output names the
#   missing binary), split (shell inits: a fence record, then the rest reported before the real
#   root: state stage done), whole (one phase: no fence record), beside-udev (the summary
#   follows udevd's first record: the rest ran beside udev, and the waiter held the switch).
#   test.vfio=slow|fail-native|fail: the test hooks make loading vfio-pci take 7 s (dracut
#   systemd starts udevd up to ~5 s after the fence under TCG: the load must outlast that; the
#   row's timeout=20 keeps it within the deadline), load the
#   native drivers and fail (the release then binds them at once), or fail at once (the host's
#   udev binds them later) (an install line in the image's modprobe.d); test.hide-native: the
#   native drivers are not in the image (removed before udev; the real root binds the cards).
#   native-in-initrd: a card's native driver record precedes the real root's (the image's own
#   modules loaded in it); vga: the machine has a boot VGA at 00:02.0 too. shim: the rdinit
#   shim's record says it starts /init; passthrough: the real root's init got the arguments
#   after -- and the environment the kernel gave the shim; kernel-fallback: no report, the
#   console shows the kernel skipped the image's init and could not mount root= itself.
#   killed: the test unit SIGKILLed the finish (test.killfinish; test.vfio=hang keeps it loading)
#   and the settle rewrote state.json (stage settled). cmdlined: the test hook wrote another
#   module's /etc/cmdline.d file after the fence (systemd: before the finish unit starts; dracut's
#   shell init: the next cmdline hook, while the finish the fence started runs) and before the
#   finish reported; its ordering against the finish's read is shown in the row's detail.
CARD1_VFIO="01:00.0=vfio-pci 01:00.1=vfio-pci"
CARD2_NATIVE="02:00.0=bochs-drm 02:00.1=snd_hda_intel"
CARD1_NATIVE="01:00.0=bochs-drm 01:00.1=snd_hda_intel"
TABLE="
control       | its dsd dsh | main  |                                                   | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | nothing configured                            | ran
cmdline       | its dsd dsh | main  | vfio-early.devices=01:00.0                        | $CARD1_VFIO $CARD2_NATIVE               | fenced 2 devices (0000:01:00.0, 0000:01:00.1) in; (entry 01:00.0): bound to vfio-pci via modprobe; summary: 2 bound, 0 refused, 0 failed | ran before-udev split
sync          | its dsd dsh | main  | vfio-early.devices=01:00.0 vfio-early.sync        | $CARD1_VFIO $CARD2_NATIVE               | (entry 01:00.0): bound to vfio-pci via modprobe; summary: 2 bound, 0 refused, 0 failed | ran before-udev whole
slow          | its dsd dsh | main  | vfio-early.devices=01:00.0 test.vfio=slow vfio-early.timeout=20 | $CARD1_VFIO $CARD2_NATIVE               | fenced 2 devices (0000:01:00.0, 0000:01:00.1) in; (entry 01:00.0): bound to vfio-pci via modprobe; summary: 2 bound | ran before-udev split beside-udev
fail-native   | its dsd dsh | main  | vfio-early.devices=01:00.0 test.vfio=fail-native  | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | loading vfio-pci failed; override cleared and re-probed so the host keeps it; now on bochs-drm; now on snd_hda_intel; summary: 0 bound, 0 refused, 2 failed | ran split
fail          | its dsd dsh | main  | vfio-early.devices=01:00.0 test.vfio=fail         | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | loading vfio-pci failed; override cleared and re-probed so the host keeps it; summary: 0 bound, 0 refused, 2 failed | ran split
fail-nonative | its dsd dsh | main  | vfio-early.devices=01:00.0 test.vfio=fail test.hide-native | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | loading vfio-pci failed; override cleared and re-probed so the host keeps it; now with no driver; summary: 0 bound, 0 refused, 2 failed | ran split
conf          | its dsd dsh | conf  |                                                   | $CARD1_VFIO $CARD2_NATIVE               | (entry 01:00.0): bound to vfio-pci via modprobe; summary: 2 bound | ran before-udev
preload       | its dsd dsh | main  | vfio-early.devices=01:00.0 test.preload=vfio-pci  | $CARD1_VFIO $CARD2_NATIVE               | bound to vfio-pci via drivers_probe; summary: 2 bound | ran before-udev preloaded
rd-driver-pre | dsd dsh     | main  | vfio-early.devices=01:00.0 rd.driver.pre=vfio-pci | $CARD1_VFIO $CARD2_NATIVE               | bound to vfio-pci via; summary: 2 bound       | ran
nobin         | its dsd dsh | nobin | vfio-early.devices=01:00.0                        | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci |                                               | notran buildmsg
longd         | dsd         | longd | vfio-early.devices=01:00.0                        | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | /etc/cmdline.d/01-default.conf: longer than 8192 bytes (the cap); nothing is bound | ran
addon         | dsd         | addon | vfio-early.devices=01:00.0                        | 00:02.0=bochs-drm $CARD1_VFIO $CARD2_NATIVE | fenced 2 devices (0000:01:00.0, 0000:01:00.1) in; (entry 01:00.0): bound to vfio-pci via the add-on's modules; summary: 2 bound, 0 refused, 0 failed | ran before-udev split native-in-initrd vga
addon-none    | dsd         | bare  | vfio-early.devices=01:00.0                        | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci |                                               | notran native-in-initrd
addon-other   | dsd         | addon-other | vfio-early.devices=01:00.0                  | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | the add-on was built for kernel 6.1.0-0-other-amd64, this is; override cleared and re-probed so the host keeps it; summary: 0 bound, 0 refused, 2 failed | ran split native-in-initrd
ki-entry      | dsd         | ki-entry | vfio-early.devices=01:00.0                     | $CARD1_VFIO $CARD2_NATIVE               | fenced 2 devices (0000:01:00.0, 0000:01:00.1) in; (entry 01:00.0): bound to vfio-pci via the add-on's modules; summary: 2 bound, 0 refused, 0 failed | ran before-udev split native-in-initrd
shim          | its         | shim  | rdinit=/usr/lib/vfio-early/init vfio-early.devices=01:00.0 vfiotestenv=kept -- rootarg1 | 00:02.0=bochs-drm $CARD1_VFIO $CARD2_NATIVE | (entry 01:00.0): bound to vfio-pci via the add-on's modules; summary: 2 bound, 0 refused, 0 failed; shim: the binder /usr/lib/vfio-early/addon/vfio-early ended after | before-udev shim passthrough vga
shim-garbage  | its         | shim  | rdinit=/usr/lib/vfio-early/init vfio-early.devices=01:00.0,zz:zz.9,../../x vfio-early.init=../../x vfio-early.bogus=1 | $CARD1_VFIO $CARD2_NATIVE | zz:zz.9; ../../x; bogus; summary: 2 bound, 0 refused, 0 failed, 2 bad entries, 1 other input problem in; is not an absolute path of at most 255 bytes: ignored | before-udev shim
shim-noinit   | its         | shim  | rdinit=/usr/lib/vfio-early/init vfio-early.devices=01:00.0 vfio-early.init=/sbin/no-such-init | $CARD1_VFIO $CARD2_NATIVE | summary: 2 bound; starting /sbin/no-such-init; shim: cannot start /sbin/no-such-init: No such file or directory (os error 2); starting /init | before-udev
shim-nobinder | its         | shim-nobinder | rdinit=/usr/lib/vfio-early/init vfio-early.devices=01:00.0 | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | shim: no binder in this image (looked for /usr/bin/vfio-early, /usr/lib/vfio-early/addon/vfio-early, /usr/lib/vfio-early/vfio-early-boot); nothing is bound; starting /init | shim
shim-hang     | its         | shim-hang | rdinit=/usr/lib/vfio-early/init vfio-early.devices=01:00.0 vfio-early.timeout=1 | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | was still running 2000 ms after its 1 s deadline (as it told): killed after; starting /init | shim
rdinit-noshim | its         | bare  | rdinit=/usr/lib/vfio-early/init vfio-early.devices=01:00.0 | | | kernel-fallback
killfinish    | dsd         | main  | vfio-early.devices=01:00.0 test.vfio=hang test.killfinish vfio-early.timeout=30 | $CARD1_NATIVE $CARD2_NATIVE *!=vfio-pci | settle: the finish unit ended without reporting (systemd: signal, KILL); settle: the rest of this boot's run did not report: settling the 2 devices the fence took (0000:01:00.0, 0000:01:00.1, on-fail=release); override cleared and re-probed so the host keeps it | ran killed
killfinish-fence | dsd      | main  | vfio-early.devices=01:00.0 vfio-early.on-fail=fence test.vfio=hang test.killfinish vfio-early.timeout=30 | 01:00.0=none 01:00.1=none $CARD2_NATIVE *!=vfio-pci | settle: the finish unit ended without reporting (systemd: signal, KILL); left fenced (vfio-early.on-fail=fence); settle: fenced devices at the end of the run: 0000:01:00.0 no driver, 0000:01:00.1 no driver | ran killed
cmdlined      | dsd dsh     | main  | vfio-early.devices=01:00.0 test.cmdlined          | $CARD1_VFIO $CARD2_NATIVE               | finish: summary: 2 bound, 0 refused, 0 failed; settle: fenced devices at the end of the run: 0000:01:00.0 on vfio-pci, 0000:01:00.1 on vfio-pci | ran split cmdlined
dyn           | its dsd     | dyn   | vfio-early.devices=01:00.0                        | $CARD1_VFIO $CARD2_NATIVE               | (entry 01:00.0): bound to vfio-pci via modprobe; summary: 2 bound | ran before-udev dynlibs
"

selected() {
    local g
    [ "${#globs[@]}" -eq 0 ] && return 0
    for g in "${globs[@]}"; do
        # shellcheck disable=SC2254 # the argument is a glob on purpose
        case $1 in $g) return 0 ;; esac
    done
    return 1
}

N=() IMG=() ARGS=() EXPECT=() LOGS=() EXTRA=() FL=() PIECES=()
while IFS='|' read -r name flavours variant args expect logs extra; do
    name=$(trim "$name")
    [ -n "$name" ] || continue
    for f in $flavours; do
        selected "$f-$name" || continue
        N+=("$f-$name") FL+=("$f") IMG+=("$(gen_image_path "$f" "$(trim "$variant")")")
        ARGS+=("$(trim "$args")") EXPECT+=("$(trim "$expect")") LOGS+=("$(trim "$logs")") EXTRA+=("$(trim "$extra")")
        # "vga" in the extra checks: the machine has a boot VGA (00:02.0) too.
        if [[ " $extra " == *" vga "* ]]; then PIECES+=("vga card2"); else PIECES+=(""); fi
    done
done <<<"$TABLE"

# The suite's figures for tests/bench/budget.sh, written anew by each run.
rm -f "$REPO_DIR/tests/out/bench/results.generators"
RUNS="$GEN_OUT/runs"
phase "boots (${#N[@]}, JOBS=${JOBS:-2})"
gen_boot_all "$RUNS"

declare -A SPAN=()
for ((i = 0; i < ${#N[@]}; i++)); do
    dir="$RUNS/${N[i]}"
    if [ ! -f "${IMG[i]}" ]; then
        result "${N[i]}" FAIL "" "image ${IMG[i]} was not built (see ${IMG[i]}.log)"
        continue
    fi
    if [[ " ${EXTRA[i]} " == *" kernel-fallback "* ]]; then
        # rdinit= naming a file the image lacks: the kernel skips the image's /init and mounts
        # root= itself, which needs the modules in the image it skipped: it panics.
        reasons=""
        grep -q 'VFS: Unable to mount root fs' "$dir/console.log" 2>/dev/null ||
            reasons="no \"VFS: Unable to mount root fs\" on the console: the kernel did not skip the image's init"
        ! grep -q 'Run /init as init process' "$dir/console.log" 2>/dev/null ||
            reasons+=$'\n'"the kernel ran /init"
        reasons=$(sed '/^$/d' <<<"$reasons")
        if [ -z "$reasons" ]; then
            result "${N[i]}" OK "the kernel skipped /init, mounted root= itself and panicked: $(grep -o 'Kernel panic - not syncing: .*' "$dir/console.log" | head -n 1 | tr -d '\r')"
        else
            result "${N[i]}" FAIL "" "$reasons"
            printf '       see: %s/console.log\n' "$dir"
        fi
        continue
    fi
    reasons=$(gen_check "$dir" "${EXPECT[i]}" "${LOGS[i]}")
    state=$(report_text "$dir" | sed -n 's/^STATE //p')
    order=$(gen_order "$dir")
    for x in ${EXTRA[i]}; do
        case $x in
            ran) [ -n "$state" ] && [ "$state" != none ] || reasons+=$'\n'"no /run/vfio-early/state.json: the binder did not run" ;;
            notran)
                [ "$state" = none ] || reasons+=$'\n'"a state file exists, the binder ran: $state"
                [ -z "$(report_klog "$dir")" ] || reasons+=$'\n'"binder records in the kernel log"
                ;;
            before-udev) [ "$order" = before ] || reasons+=$'\n'"binder not shown to run before udevd ($order)" ;;
            preloaded)
                pre=$(gen_kevents "$dir" | grep -F 'vfiotest: preloaded vfio-pci' | head -n 1)
                first=$(gen_binder_span "$dir")
                first=${first%% *}
                if [ -z "$pre" ]; then
                    reasons+=$'\n'"the test hook did not preload vfio-pci"
                elif [[ $pre != *"rc=0" ]]; then
                    reasons+=$'\n'"preload failed: $pre"
                elif [ -n "$first" ] && ! awk -v a="${pre%% *}" -v b="$first" 'BEGIN { exit !(a < b) }'; then
                    reasons+=$'\n'"preload at ${pre%% *} not before the binder's first record at $first"
                fi
                ;;
            split)
                fence=$(gen_record "$dir" fenced) summary=$(gen_record "$dir" summary:) rootts=$(gen_root_ts "$dir")
                summary=${summary% *}
                if [ -z "$fence" ]; then
                    reasons+=$'\n'"no fence record: the run did not split"
                elif [ -z "$summary" ] || [ -z "$rootts" ] || ! awk -v a="$summary" -v b="$rootts" 'BEGIN { exit !(a < b) }'; then
                    reasons+=$'\n'"the summary (${summary:-none}) does not precede the real root's first record (${rootts:-none}): the rest of the run was not waited for"
                fi
                grep -q '"stage":"done"' <<<"$state" || reasons+=$'\n'"state.json does not say stage done: ${state:0:120}"
                ;;
            whole)
                [ -z "$(gen_record "$dir" fenced)" ] || reasons+=$'\n'"a fence record: the run split although it should run whole"
                grep -q '"stage":"done"' <<<"$state" || reasons+=$'\n'"state.json does not say stage done: ${state:0:120}"
                ;;
            beside-udev)
                summary=$(gen_record "$dir" summary:) udev=$(gen_first_udev "$dir")
                summary=${summary% *}
                if [ -z "$summary" ] || [ -z "$udev" ] || ! awk -v a="${udev%% *}" -v b="$summary" 'BEGIN { exit !(a < b) }'; then
                    reasons+=$'\n'"the summary (${summary:-none}) does not follow udevd's first record (${udev%% *}): the rest did not run beside udev"
                fi
                ;;
            killed)
                grep -qF 'vfiotest: killed vfio-early finish' <<<"$(gen_kevents "$dir")" ||
                    reasons+=$'\n'"the test unit killed no finish: $(gen_kevents "$dir" | grep -F vfiotest)"
                grep -q '"stage":"settled"' <<<"$state" || reasons+=$'\n'"state.json does not say stage settled: ${state:0:120}"
                ;;
            cmdlined)
                wrote=$(gen_kevents "$dir" | grep -F 'vfiotest: wrote /etc/cmdline.d/99-other.conf' | head -n 1)
                summary=$(gen_record "$dir" summary:)
                if [ -z "$wrote" ]; then
                    reasons+=$'\n'"the test hook wrote no /etc/cmdline.d file"
                elif [ -z "$summary" ] || ! awk -v a="${wrote%% *}" -v b="${summary%% *}" 'BEGIN { exit !(a < b) }'; then
                    reasons+=$'\n'"the cmdline.d file (${wrote%% *}) was not written before the finish reported (${summary%% *})"
                fi
                ;;
            vga) ;;
            shim)
                # The shim said it starts the image's /init (that the real root was reached is
                # the report's existence, checked by the expect column).
                shimrec=$(report_klog "$dir" | grep -F 'vfio-early: shim: ' | grep -F 'starting /init' | head -n 1)
                [ -n "$shimrec" ] || reasons+=$'\n'"no shim record \"shim: ... starting /init\""
                ;;
            passthrough)
                # The kernel's arguments for init (after --) and its environment (vfiotestenv=)
                # reach the real root's init through the shim, /init and run-init.
                grep -qx 'ROOT-ARGS rootarg1' <<<"$(report_text "$dir")" ||
                    reasons+=$'\n'"the real root's init did not get rootarg1: $(report_text "$dir" | grep '^ROOT-ARGS')"
                grep -qx 'ROOT-ENV kept' <<<"$(report_text "$dir")" ||
                    reasons+=$'\n'"the real root's init did not get vfiotestenv=kept: $(report_text "$dir" | grep '^ROOT-ENV')"
                ;;
            native-in-initrd)
                # The base image's own modules load beside the add-on: a card's native driver
                # binds before the real root's first record.
                native=$(gen_first_native "$dir") rootts=$(gen_root_ts "$dir")
                if [ -z "$native" ] || [ -z "$rootts" ] || ! awk -v a="${native%% *}" -v b="$rootts" 'BEGIN { exit !(a < b) }'; then
                    reasons+=$'\n'"no native driver record (${native%% *}) before the real root (${rootts:-none}): the image's own modules did not load in it"
                fi
                ;;
            dynlibs)
                # The image's binary is the dynamic one, and every library it needs is in the image.
                list=$(gen_image_listing "${IMG[i]}" | awk '{ print $2 }')
                gen_image_file "${IMG[i]}" usr/bin/vfio-early >"$dir/vfio-early.bin"
                if ! readelf -lW "$dir/vfio-early.bin" 2>/dev/null | grep -q INTERP; then
                    reasons+=$'\n'"the image's usr/bin/vfio-early is not the dynamic build"
                fi
                for lib in $(ldd "$REPO_DIR/target/release/vfio-early-boot" | awk '$2 == "=>" { print $1 } $1 ~ /^\// { print $1 }'); do
                    grep -qE "(^|/)${lib##*/}\$" <<<"$list" || reasons+=$'\n'"the image lacks ${lib##*/}, which the binary needs"
                done
                ;;
            buildmsg) grep -qF 'vfio-early: missing /usr/lib/vfio-early/vfio-early-boot' "${IMG[i]}.log" ||
                reasons+=$'\n'"the build output does not name the missing /usr/lib/vfio-early/vfio-early-boot (see ${IMG[i]}.log)" ;;
        esac
    done
    reasons=$(sed '/^$/d' <<<"$reasons")
    detail="binder before udevd: $order; $(gen_timing "$dir")"
    if [ -z "$reasons" ]; then
        result "${N[i]}" OK "$detail"
    else
        result "${N[i]}" FAIL "$detail" "$reasons"
        report_klog "$dir" | sed 's/^/       log: /'
        line=$(report_drivers "$dir" | sed 's/^0000://' | tr ' \n' '= ')
        [ -z "$line" ] || printf '       devices: %s\n' "$line"
        printf '       see: %s/{report.txt,console.log,cmdline}\n' "$dir"
    fi
    [[ ${N[i]} != *-cmdline ]] || SPAN[${FL[i]}]=$(gen_timing "$dir")
done

# ---------------------------------------------------------------- boot timing
# Numbers, not tests: per flavour, TIMING_PAIRS (default 5) rounds of three boots of the main
# image with vfio-early.devices=01:00.0: the split run (the default), vfio-early.sync (the whole
# run in the fence) and the whole run with vfio-pci already loaded (test.preload=vfio-pci: what
# the fence alone had to be as fast as), booted two at a time so each sees the same load. Per
# boot (gen_figures): the binder's start to its return to the init system, to udevd's first
# record, to the real root's first record (test.noudev: the real root then reports at once,
# without a coldplug of its own that the figures do not measure). The medians, and how much
# later the split run reaches the real root than the sync run beyond the sync run's own
# spread, go to the bench results
# (tests/bench/budgets holds issue 15's figures). TIMING_PAIRS and TIMING_FLAVOURS (default
# "its dsd dsh") change what is booted, QEMU_SMP (default 1) the guest's CPUs.
if selected timing; then
    phase "boot timing (${TIMING_PAIRS:-5} rounds per flavour: split, sync, preloaded)"
    N=() IMG=() ARGS=() PIECES=()
    for f in ${TIMING_FLAVOURS:-its dsd dsh}; do
        for ((p = 1; p <= ${TIMING_PAIRS:-5}; p++)); do
            for mode in split sync preload; do
                a="vfio-early.devices=01:00.0 test.noudev"
                case $mode in
                    sync) a+=" vfio-early.sync" ;;
                    preload) a+=" vfio-early.sync test.preload=vfio-pci" ;;
                esac
                N+=("$f-$mode-$p") IMG+=("$(gen_image_path "$f" main)") ARGS+=("$a")
            done
        done
    done
    gen_boot_all "$GEN_OUT/timing"
    mkdir -p "$REPO_DIR/tests/out/bench"
    h_say "binder start -> return to the init / -> udevd's first record / -> the real root (ms, kernel timestamps):"
    for f in ${TIMING_FLAVOURS:-its dsd dsh}; do
        for mode in split sync preload; do
            ret=() udev=() root=() bad=0
            for ((p = 1; p <= ${TIMING_PAIRS:-5}; p++)); do
                read -r a b c < <(gen_figures "$GEN_OUT/timing/$f-$mode-$p")
                [ "$a" != - ] || bad=$((bad + 1))
                ret+=("$a") udev+=("$b") root+=("$c")
            done
            extra=""
            [ "$bad" -eq 0 ] || extra="; $bad boots without figures"
            h_say "  $(gen_flavour_name "$f") $mode: return $(gen_spread "${ret[@]}"); udevd $(gen_spread "${udev[@]}"); root $(gen_spread "${root[@]}")$extra"
            for k in ret udev root; do
                declare -n arr=$k
                m=$(gen_spread "${arr[@]}" | sed -n 's/^median \([0-9.]*\) (min \([0-9]*\), max \([0-9]*\).*/\1 \2 \3/p')
                if [ -n "$m" ]; then
                    read -r med lo hi <<<"$m"
                    echo "boot.$f.$mode.$k.median $med" >>"$REPO_DIR/tests/out/bench/results.generators"
                    echo "boot.$f.$mode.$k.spread $((hi - lo))" >>"$REPO_DIR/tests/out/bench/results.generators"
                fi
                unset -n arr
            done
        done
        # X_beyond_spread: how much the split run's median is above the other run's median
        # beyond that run's own spread (<= 0: within run-to-run noise or better).
        awk -v f="$f" '{ v[$1] = $2 }
            function beyond(name, a, b,   k) {
                k = "boot." f "." b
                if (("boot." f "." a ".median") in v && (k ".median") in v && (k ".spread") in v)
                    printf "boot.%s.%s_beyond_spread %g\n", f, name, v["boot." f "." a ".median"] - v[k ".median"] - v[k ".spread"]
            }
            END { beyond("split_root_later", "split.root", "sync.root"); beyond("split_ret_over_preload", "split.ret", "preload.ret") }' \
            "$REPO_DIR/tests/out/bench/results.generators" >>"$REPO_DIR/tests/out/bench/results.generators"
    done
fi

# Where each generator put the binder, read from the main images (no boot): the
# runtime order above is shown by timestamps; this is the order the image encodes.
if selected its-image-order; then
    img=$(gen_image_path its main)
    order=$(gen_image_file "$img" scripts/init-top/ORDER | sed -n 's|^/scripts/init-top/\([^ ]*\) .*|\1|p')
    pos_v=$(grep -nx '00-vfio-early' <<<"$order" | cut -d: -f1)
    pos_u=$(grep -nx 'udev' <<<"$order" | cut -d: -f1)
    detail="init-top ORDER: $(tr '\n' ' ' <<<"$order")"
    bottom=$(gen_image_file "$img" scripts/init-bottom/ORDER | sed -n 's|^/scripts/init-bottom/\([^ ]*\) .*|\1|p')
    detail+="; init-bottom ORDER: $(tr '\n' ' ' <<<"$bottom")"
    if [ -z "$pos_v" ] || [ -z "$pos_u" ] || [ "$pos_v" -ge "$pos_u" ]; then
        result its-image-order FAIL "$detail" "00-vfio-early does not run before udev in scripts/init-top/ORDER"
    elif ! grep -qx 'vfio-early' <<<"$bottom"; then
        result its-image-order FAIL "$detail" "no vfio-early (the wait) in scripts/init-bottom/ORDER"
    else
        result its-image-order OK "$detail"
    fi
fi
if selected dsh-image-hook; then
    hooks=$(gen_image_listing "$(gen_image_path dsh main)" | awk '{ print $2 }' | sed -n 's|^usr/lib/dracut/hooks/cmdline/||p' | LC_ALL=C sort)
    first=$(grep -v vfiotest <<<"$hooks" | head -n 1)
    pivot=$(gen_image_listing "$(gen_image_path dsh main)" | awk '{ print $2 }' | sed -n 's|^usr/lib/dracut/hooks/pre-pivot/||p' | LC_ALL=C sort)
    detail="cmdline hooks: $(tr '\n' ' ' <<<"$hooks"); pre-pivot hooks: $(tr '\n' ' ' <<<"$pivot")"
    if [ "$first" != 00-vfio-early.sh ]; then
        result dsh-image-hook FAIL "$detail" "00-vfio-early.sh is not the first cmdline hook (first: ${first:-none})"
    elif ! grep -qx '99-vfio-early-wait.sh' <<<"$pivot"; then
        result dsh-image-hook FAIL "$detail" "no pre-pivot hook 99-vfio-early-wait.sh (the wait)"
    else
        result dsh-image-hook OK "$detail"
    fi
fi
if selected dsd-image-unit; then
    img=$(gen_image_path dsd main)
    list=$(gen_image_listing "$img" | awk '{ print $2 }')
    unit=$(gen_image_file "$img" usr/lib/systemd/system/vfio-early.service)
    reasons=""
    grep -qx 'usr/lib/systemd/system/sysinit.target.wants/vfio-early.service' <<<"$list" ||
        reasons+="no sysinit.target.wants/vfio-early.service link"$'\n'
    for u in systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service dracut-pre-udev.service; do
        grep -Eq "^Before=.*\b$u\b" <<<"$unit" || reasons+="the unit in the image is not Before=$u"$'\n'
    done
    grep -qx 'DefaultDependencies=no' <<<"$unit" || reasons+="the unit in the image lacks DefaultDependencies=no"$'\n'
    grep -qx 'ExecStart=/usr/bin/vfio-early fence --unit' <<<"$unit" || reasons+="the unit in the image does not run the fence (--unit)"$'\n'
    grep -qx 'Wants=vfio-early-finish.service' <<<"$unit" || reasons+="the unit in the image does not pull in vfio-early-finish.service"$'\n'
    finish=$(gen_image_file "$img" usr/lib/systemd/system/vfio-early-finish.service)
    for want in 'DefaultDependencies=no' 'Type=oneshot' 'After=vfio-early.service' 'ExecStart=/usr/bin/vfio-early finish' 'ExecStopPost=/usr/bin/vfio-early settle' 'KillMode=process' 'ConditionPathExists=/run/vfio-early/handoff'; do
        grep -qx "$want" <<<"$finish" || reasons+="vfio-early-finish.service in the image lacks $want"$'\n'
    done
    grep -Eq '^Before=.*\binitrd\.target\b' <<<"$finish" || reasons+="vfio-early-finish.service in the image is not Before=initrd.target"$'\n'
    # The settle must run right after the finish, not at the switch to the real root.
    ! grep -q '^RemainAfterExit=yes' <<<"$finish" || reasons+="vfio-early-finish.service in the image has RemainAfterExit=yes: its ExecStopPost= would wait for the switch"$'\n'
    tmo=$(sed -n 's/^TimeoutStartSec=//p' <<<"$finish")
    [ "${tmo:-0}" -gt 600 ] 2>/dev/null || reasons+="vfio-early-finish.service's TimeoutStartSec (${tmo:-none}) is not above the longest deadline (600 s)"$'\n'
    reasons=$(sed '/^$/d' <<<"$reasons")
    if [ -z "$reasons" ]; then
        result dsd-image-unit OK "the fence unit, its sysinit.target.wants link and the finish unit in the image"
    else
        result dsd-image-unit FAIL "" "$reasons"
    fi
fi

# The add-on as an archive (issue 16): nothing under bin, sbin, lib or lib64 (the unpacker would
# replace a merged-/usr link), every directory root's and 0755 as the base image has it, no
# file the base image has, the modules byte for byte the kernel's, the base image without
# vfio-pci (else the add-on rows would not prove its modules), and its size and build time.
if selected dsd-addon-archive; then
    a=$GEN_CACHE/images/addon.cpio base=$(gen_image_path dsd bare)
    reasons=""
    if [ ! -f "$a" ] || [ ! -f "$base" ]; then
        reasons="no add-on ($a) or no base image ($base)"
    else
        entries=$(cpio -itv --quiet <"$a" | awk '{ n = $9; for (i = 10; i <= NF; i++) n = n " " $i; sub(/ -> .*/, "", n); print $1, $2 ":" $3 ":" $4, n }')
        base_dirs=$(gen_image_main "$base" | cpio -itv --quiet 2>/dev/null | awk '/^d/ { n = $9; sub(/^\.\//, "", n); print $1, $2 ":" $3 ":" $4, n }')
        base_files=$(gen_image_listing "$base" | awk '{ print $2 }')
        while read -r mode own path; do
            case $path in
                bin | sbin | lib | lib64 | bin/* | sbin/* | lib/* | lib64/*) reasons+="an entry $path (only usr/ and etc/cmdline.d may be written)"$'\n' ;;
            esac
            if [[ $mode == d* ]]; then
                [ "$mode $own" = "drwxr-xr-x 2:root:root" ] || reasons+="directory $path is $mode $own, not root's 0755"$'\n'
                b=$(awk -v p="$path" '$3 == p { print $1, $2 }' <<<"$base_dirs")
                [ -z "$b" ] || [[ $b == "drwxr-xr-x "*":root:root" ]] ||
                    reasons+="the base image's $path is $b, the add-on's drwxr-xr-x root root"$'\n'
            elif grep -qxF "$path" <<<"$base_files"; then
                reasons+="the add-on's $path is in the base image too: it would overwrite it"$'\n'
            fi
        done <<<"$entries"
        x=$(mktemp -d)
        (cd "$x" && cpio -idm --quiet <"$a")
        n=0
        for m in "$x"/usr/lib/vfio-early/addon/modules/*; do
            k=$(find "$GEN_ROOT/lib/modules/$GEN_KVER/kernel" -name "${m##*/}" | head -n 1)
            if [ -z "$k" ] || ! cmp -s "$m" "$k"; then
                reasons+="the add-on's ${m##*/} is not the kernel's ${k:-(none found)} byte for byte"$'\n'
            fi
            n=$((n + 1))
        done
        [ "$n" -ge 4 ] || reasons+="only $n modules in the add-on"$'\n'
        [ -x "$x/usr/lib/vfio-early/addon/vfio-early" ] && ! readelf -lW "$x/usr/lib/vfio-early/addon/vfio-early" | grep -q INTERP ||
            reasons+="the add-on's binary is not a static executable"$'\n'
        rm -rf "$x"
        ! grep -Eq '(^|/)vfio-pci\.ko' <<<"$base_files" || reasons+="the base image has vfio-pci.ko: the add-on rows would not prove its modules"$'\n'
        rest=$(sed -n 's/.*, the rest \([0-9]*\)).*/\1/p' "$GEN_OUT/addon.log")
        ms=$(sed -n 's/^build_ms //p' "$GEN_OUT/addon.log")
        mkdir -p "$REPO_DIR/tests/out/bench"
        [ -z "$rest" ] || echo "addon.overhead_bytes $rest" >>"$REPO_DIR/tests/out/bench/results.generators"
        [ -z "$ms" ] || echo "addon.build_ms $ms" >>"$REPO_DIR/tests/out/bench/results.generators"
    fi
    reasons=$(sed '/^$/d' <<<"$reasons")
    if [ -z "$reasons" ]; then
        result dsd-addon-archive OK "$(wc -l <<<"$entries") entries, $n modules byte for byte, $(stat -c %s "$a") bytes, the rest beyond binary and modules ${rest:-?} bytes, built in ${ms:-?} ms"
    else
        result dsd-addon-archive FAIL "" "$reasons"
    fi
fi

# The kernel-install plugin (issue 25): every way a generator delivers the main image gives an
# entry that lists it first and the add-on after it (the entry-directory way is booted: row
# dsd-ki-entry).
for way in $GEN_KI_WAYS; do
    selected "dsd-kernel-install-$way" || continue
    reasons=$(gen_ki_check "$way")
    if [ -z "$reasons" ]; then
        result "dsd-kernel-install-$way" OK "initrd lines: $(awk '$1 == "initrd" { printf "%s ", $2 }' "$GEN_OUT/ki-$way.entry" | sed "s|[^ ]*/||g")"
    else
        result "dsd-kernel-install-$way" FAIL "" "$reasons"
    fi
done

# build-strict = yes with the binary missing: the generator must fail and say why.
for f in its dsd; do
    selected "$f-strict-build" || continue
    img=$(gen_image_path "$f" strict)
    st=$(gen_build_status "$img")
    reasons=""
    if [ -z "$st" ]; then
        reasons+="no build log ($img.log)"$'\n'
    elif [ "$st" -eq 0 ]; then
        reasons+="the generator exited 0 and wrote an image although build-strict = yes and no vfio-early binary is installed"$'\n'
    fi
    grep -qF 'vfio-early: missing /usr/lib/vfio-early/vfio-early-boot: the image build fails (build-strict = yes' "$img.log" ||
        reasons+="the build output lacks the build-strict message"$'\n'
    reasons=$(sed '/^$/d' <<<"$reasons")
    if [ -z "$reasons" ]; then
        result "$f-strict-build" OK "generator exit status $st; $(grep -F 'build-strict = yes' "$img.log" | head -n 1)"
    else
        result "$f-strict-build" FAIL "generator exit status ${st:-?} (see $img.log)" "$reasons"
    fi
done

# The initramfs-tools build hook under dash (initramfs-tools runs hooks with /bin/sh) with
# hook-lib.sh missing: it must say so and let the image build go on (exit 0). dash exits at
# once when `.` cannot read its file, so sourcing without a test first would kill the hook.
if selected its-nolib-dash; then
    lib="$GEN_ROOT/usr/lib/vfio-early/hook-lib.sh"
    reasons=""
    if [ ! -f "$lib" ]; then
        reasons="$lib is not installed (root state main expected)"
    else
        mv "$lib" "$lib.aside"
        out=$(gen_chroot "$GEN_ROOT" DESTDIR=/var/tmp/vfiotest-nolib version="$GEN_KVER" verbose=n \
            dash /usr/share/initramfs-tools/hooks/vfio-early 2>&1)
        rc=$?
        mv "$lib.aside" "$lib"
        rm -rf "$GEN_ROOT/var/tmp/vfiotest-nolib"
        [ "$rc" -eq 0 ] || reasons+="the hook exited $rc under dash (the image build would fail)"$'\n'
        grep -qF 'hook-lib.sh is missing: the image is built without vfio-early' <<<"$out" ||
            reasons+="the hook did not say what is missing: $out"$'\n'
    fi
    reasons=$(sed '/^$/d' <<<"$reasons")
    if [ -z "$reasons" ]; then
        result its-nolib-dash OK "exit $rc: $out"
    else
        result its-nolib-dash FAIL "" "$reasons"
    fi
fi

# Every image carries the boot build (bind only), not the host build: byte for byte.
boot_bin="$REPO_DIR/target/x86_64-unknown-linux-musl/release/vfio-early-boot"
for f in its dsd dsh; do
    selected "$f-boot-build" || continue
    img=$(gen_image_path "$f" main)
    got=$(gen_image_file "$img" usr/bin/vfio-early | sha256sum | cut -d' ' -f1)
    want=$(sha256sum <"$boot_bin" | cut -d' ' -f1)
    host=$(sha256sum <"$REPO_DIR/target/x86_64-unknown-linux-musl/release/vfio-early" | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then
        result "$f-boot-build" OK "usr/bin/vfio-early is vfio-early-boot ($(stat -c %s "$boot_bin") bytes)"
    elif [ "$got" = "$host" ]; then
        result "$f-boot-build" FAIL "" "the image carries the host build, not vfio-early-boot"
    else
        result "$f-boot-build" FAIL "" "the image's usr/bin/vfio-early ($got) is not vfio-early-boot ($want)"
    fi
done

# `vfio-early check --image` (the host build's own image reader) on the real generators' images:
# main images carry vfio-early, its hook and the vfio modules; nobin images lack the binary.
host_bin="$REPO_DIR/target/x86_64-unknown-linux-musl/release/vfio-early"
for f in its dsd dsh; do
    for v in main nobin; do
        selected "$f-check-$v" || continue
        img=$(gen_image_path "$f" "$v")
        if [ ! -f "$img" ]; then
            result "$f-check-$v" FAIL "" "image $img was not built"
            continue
        fi
        t0=$(date +%s%N)
        json=$("$host_bin" --root "$GEN_ROOT" check --json --image "$img" 2>"$GEN_OUT/check-$f-$v.err")
        ms=$((($(date +%s%N) - t0) / 1000000))
        want="carries vfio-early, its hook and the vfio modules" level=ok
        [ "$v" = main ] || { want="lacks usr/bin/vfio-early" level=error; }
        line=$(python3 -c '
import json, sys
j = json.loads(sys.argv[1])
for f in j["findings"]:
    if f["topic"] == "image" and f["level"] == sys.argv[2] and sys.argv[3] in f["text"]:
        print(f["text"])
        break
' "$json" "$level" "$want" 2>&1)
        if [ -n "$line" ]; then
            result "$f-check-$v" OK "$level: ${line##*/} (read in $ms ms)"
        else
            result "$f-check-$v" FAIL "" "no $level image finding with '$want': $(head -c 600 <<<"$json") $(head -c 300 "$GEN_OUT/check-$f-$v.err")"
        fi
    done
done

# Benchmark (numbers, not a test): check's image read against initramfs-tools' own lister on
# the same real image, `lsinitramfs IMAGE >/dev/null` run in the root, alternating, CPU time of
# each with its children (tests/bench/cputime.c). The median ratio goes to the bench results,
# which tests/bench/budget.sh checks against tests/bench/budgets.
img=$(gen_image_path its main)
if selected its-image-read-bench && [ -f "$img" ] && cc -O2 -o "$GEN_OUT/cputime" "$REPO_DIR/tests/bench/cputime.c" 2>/dev/null; then
    cp "$img" "$GEN_ROOT/var/tmp/vfiotest-bench.img"
    ratios=()
    for i in 1 2 3 4 5 6 7; do
        "$GEN_OUT/cputime" "$GEN_OUT/ct.ours" "$host_bin" --root "$GEN_ROOT" check --image "$GEN_ROOT/var/tmp/vfiotest-bench.img" >/dev/null 2>&1
        "$GEN_OUT/cputime" "$GEN_OUT/ct.lsi" chroot "$GEN_ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            lsinitramfs /var/tmp/vfiotest-bench.img >/dev/null 2>&1
        ours=$(cut -d' ' -f1 "$GEN_OUT/ct.ours") lsi=$(cut -d' ' -f1 "$GEN_OUT/ct.lsi")
        ratios+=("$(awk -v a="$ours" -v b="$lsi" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 99) }')")
        h_say "  image read, pair $i: vfio-early check --image $ours us, lsinitramfs $lsi us"
    done
    rm -f "$GEN_ROOT/var/tmp/vfiotest-bench.img"
    med=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 4p)
    h_say "image read ($(stat -c %s "$img") bytes, $(gen_flavour_name its)): CPU ratio check --image / lsinitramfs median $med (min $(printf '%s\n' "${ratios[@]}" | sort -n | head -n 1), max $(printf '%s\n' "${ratios[@]}" | sort -n | tail -n 1))"
    mkdir -p "$REPO_DIR/tests/out/bench"
    echo "image_read.cpu_ratio_vs_lsinitramfs.median $med" >>"$REPO_DIR/tests/out/bench/results.generators"
fi

# Scenario 5: the hostonly dracut image keeps the vfio modules (listing, no boot).
if selected dho-hostonly-modules; then
    img=$(gen_image_path dho main)
    if [ ! -f "$img" ]; then
        result dho-hostonly-modules FAIL "" "hostonly image not built (see $img.log)"
    else
        list=$(gen_image_listing "$img" | awk '{ print $2 }')
        reasons=""
        for m in vfio vfio-pci vfio-pci-core vfio_iommu_type1; do
            grep -qE "/$m\.ko(\.[a-z]+)?$" <<<"$list" || reasons+="no $m.ko* in the hostonly image"$'\n'
        done
        grep -qx 'usr/bin/vfio-early' <<<"$list" || reasons+="no usr/bin/vfio-early in the hostonly image"$'\n'
        reasons=$(sed '/^$/d' <<<"$reasons")
        found=$(grep -E '/vfio[^/]*\.ko' <<<"$list" | sed 's|.*/||' | tr '\n' ' ')
        # Only a build that really was hostonly proves anything: dracut turns the
        # mode off by itself (a missing mount), dracut-install without /proc/modules.
        if grep -qE 'Turning off host-only mode|Switching to non-hostonly mode' "$img.log"; then
            reasons+=$'\n'"hostonly mode was not in effect (see $img.log)"
        fi
        n_ho=$(grep -c '\.ko' <<<"$list")
        n_all=$(gen_image_listing "$(gen_image_path dsd main)" | grep -c '\.ko')
        [ "$n_ho" -lt "$n_all" ] || reasons+=$'\n'"the hostonly image has as many modules ($n_ho) as the no-hostonly one ($n_all): no filter"
        found+="; $n_ho modules vs $n_all without hostonly"
        reasons=$(sed '/^$/d' <<<"$reasons")
        if [ -z "$reasons" ]; then
            result dho-hostonly-modules OK "has: $found"
        else
            result dho-hostonly-modules FAIL "has: ${found:-none}" "$reasons"
        fi
    fi
fi

h_say ""
h_say "binder guest time per flavour (the cmdline boots; kernel timestamps, and the summary's own figure):"
for f in its dsd dsh; do
    [ -n "${SPAN[$f]:-}" ] && h_say "  $(gen_flavour_name "$f"): ${SPAN[$f]}"
done
[ "$build_failed" -eq 0 ] || h_say "some image builds failed (see the lines above)"
h_say "generator suite took $((SECONDS - T_START)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
