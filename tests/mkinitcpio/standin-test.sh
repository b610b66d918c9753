#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# vfio-early's mkinitcpio hooks under a stand-in of mkinitcpio's build API.
#
# The project is installed (make install) into a temporary prefix; the installed install hook is
# sourced by bash the way mkinitcpio's run_build_hook does it, with add_binary, add_file,
# add_module, add_runscript, add_symlink, add_systemd_unit (systemd flavour only), error, warning,
# plain, msg and die replaced by functions that record their arguments. Module lookups use the
# real modules of a real kernel: the Debian kernel that tests/setup-host.sh extracts into
# tests/.cache/kernel (or VE_KERNEL_ROOT=DIR holding lib/modules/<kver>, VE_KERNEL_VERSION=<kver>).
# The runtime hook is checked under busybox ash.
#
# Usage: tests/mkinitcpio/standin-test.sh          (as root for the modprobe.d content case)
#        VE_KEEP=1 keeps the temporary directory (recorded calls in case-*/calls).
#        VE_CASES="destdir ..." runs only these cases; VE_DESTDIR_TREE=DIR makes the layout case
#        check an installed tree (a package's files) instead of `make install DESTDIR`.
# Prints one PASS/FAIL/SKIP line per case and "N passed, M failed"; exits 1 when any case failed.
# Upstream mkinitcpio itself is not needed (see tests/mkinitcpio/README.md for a real build).
set -eu

# ---------------------------------------------------------------------------------------------
# Child mode: one run of the install hook's build() under the stand-in. Reads its setup from the
# environment (VE_T_*), writes the recorded calls to $VE_T_OUT/calls and build()'s return code to
# $VE_T_OUT/rc (no rc file: build() left the shell, e.g. through `exit` or die).
# shellcheck disable=SC2317 # the stand-in functions are called by the sourced hook
if [ "${1:-}" = __run ]; then
    set +eu # mkinitcpio runs hooks without errexit or nounset
    out=$VE_T_OUT
    : >"$out/calls"
    record() { printf '%s\n' "$*" >>"$out/calls"; }
    # mkinitcpio's message functions take a printf format first, like these.
    # shellcheck disable=SC2059
    msgf() { local m=$1; shift; printf "$m" "$@"; }
    error() { record "error $(msgf "$@")"; return 1; } # upstream's error returns 1
    warning() { record "warning $(msgf "$@")"; }
    plain() { record "plain $(msgf "$@")"; }
    msg() { record "msg $(msgf "$@")"; }
    msg2() { record "msg2 $(msgf "$@")"; }
    quiet() { :; }
    die() { record "die $(msgf "$@")"; exit 1; } # upstream: error, then cleanup exits 1
    add_binary() { record "add_binary $*"; }
    add_file() { record "add_file $*"; }
    add_module() { record "add_module $*"; }
    add_symlink() { record "add_symlink $*"; }
    add_dir() { record "add_dir $*"; }
    add_full_dir() { record "add_full_dir $*"; }
    add_udev_rule() { record "add_udev_rule $*"; }
    add_firmware() { record "add_firmware $*"; }
    add_all_modules() { record "add_all_modules $*"; }
    add_checked_modules() { record "add_checked_modules $*"; }
    map() { local f=$1 a; shift; for a; do "$f" "$a"; done; }
    # Upstream's add_runscript names the runtime hook after the file that called it
    # (BASH_SOURCE[1]) and looks it up in the hooks directories.
    add_runscript() {
        local name="${BASH_SOURCE[1]##*/}"
        record "add_runscript $*"
        record "runscript-name $name"
        [ -f "$VE_T_HOOKSDIR/$name" ] || record "runscript-not-found $VE_T_HOOKSDIR/$name"
    }
    if [ "$VE_T_FLAVOUR" = systemd ]; then
        add_systemd_unit() { record "add_systemd_unit $*"; }
    fi
    # hook-lib runs `modinfo -k KVER`; the kernel here is not under /lib/modules, so the real
    # modinfo reads it from VE_T_MODROOT. Modules named in VE_T_BUILTIN are reported the way
    # kmod reports a built-in module.
    [ "${VE_T_NOWRAP:-0}" = 1 ] || modinfo() {
        local last
        for last; do :; done
        case " ${VE_T_BUILTIN:-} " in
            *" $last "*) echo "(builtin)"; return 0 ;;
        esac
        command modinfo -b "$VE_T_MODROOT" "$@"
    }
    KERNELVERSION=$VE_T_KVER
    # shellcheck disable=SC2034 # read by the sourced hook
    BUILDROOT=$VE_T_BUILDROOT
    # what mkinitcpio sets for `-r DIR` (--moduleroot); add_module runs modinfo -b "$_optmoduleroot"
    _optmoduleroot=$VE_T_MODROOT
    _d_kmoduledir="${_optmoduleroot%/}/lib/modules/$KERNELVERSION"
    unset -f build
    # shellcheck source=/dev/null
    . "$VE_T_HOOK" || { record "source-failed"; exit 97; }
    declare -F build >/dev/null || { record "no-build-function"; exit 98; }
    build
    rc=$?
    echo "$rc" >"$out/rc"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
repo=$(cd "$here/../.." && pwd)
bin="$repo/target/x86_64-unknown-linux-musl/release/vfio-early"
passed=0
failed=0
skipped=0
pass() { printf 'PASS %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failed=$((failed + 1)); }
skip() { printf 'SKIP %s: %s\n' "$1" "$2"; skipped=$((skipped + 1)); }
finish() {
    printf '%s passed, %s failed\n' "$passed" "$failed"
    if [ "$failed" -eq 0 ]; then exit 0; fi
    exit 1
}

T=$(mktemp -d /tmp/vfio-early-mkinitcpio.XXXXXX)
if [ "${VE_KEEP:-0}" = 1 ]; then echo "keeping $T"; else trap 'rm -rf "$T"' EXIT; fi

# --- the kernel whose modules the hook looks up
kroot=${VE_KERNEL_ROOT:-$repo/tests/.cache/kernel}
kver=${VE_KERNEL_VERSION:-}
if [ -z "$kver" ] && [ -d "$kroot/lib/modules" ]; then
    kver=$(find "$kroot/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1)
fi
if [ -z "$kver" ] || [ ! -f "$kroot/lib/modules/$kver/modules.dep" ]; then
    fail setup "no kernel modules in $kroot/lib/modules (run tests/setup-host.sh, or set VE_KERNEL_ROOT and VE_KERNEL_VERSION)"
    finish
fi
modstate() { # NAME: module, builtin or missing, as the real modinfo sees the kernel
    local f
    f=$(modinfo -b "$kroot" -k "$kver" -F filename "$1" 2>/dev/null | head -n 1) || true
    case $f in
        /*) echo module ;;
        *builtin*) echo builtin ;;
        *) echo missing ;;
    esac
}
expected_modules=()
for m in vfio vfio_pci vfio_iommu_type1; do
    [ "$(modstate "$m")" = module ] && expected_modules+=("$m")
done
for m in vfio vfio_pci; do
    if [ "$(modstate "$m")" = missing ]; then
        fail setup "kernel $kver in $kroot has no $m: pick a kernel with vfio"
        finish
    fi
done
echo "kernel: $kver ($kroot); vfio modules that are modules: ${expected_modules[*]:-none}"

# --- build (only when missing) and install into a temporary prefix
if [ ! -x "$bin" ]; then
    make -C "$repo" static >"$T/make-static.log" 2>&1 || {
        fail setup "make static failed (see below)"
        tail -n 20 "$T/make-static.log"
        finish
    }
fi
# The hook sources @HOOKLIBDIR@/hook-lib.sh and hook-lib names @BINDIR@/vfio-early and
# @SYSCONFDIR@/vfio-early.conf by absolute path, so the stand-in runs need an install whose
# paths are real paths: a temporary PREFIX (no DESTDIR). The DESTDIR layout is checked apart.
P=$T/prefix
mkdir -p "$P/etc"
# The generator and unit directories do not follow PREFIX (the generators only search /usr/lib):
# point every one of them into the prefix, so nothing lands on the host.
if ! make -s -C "$repo" install PREFIX="$P/usr" SYSCONFDIR="$P/etc" \
    SYSTEMDUNITDIR="$P/usr/lib/systemd/system" DRACUTDIR="$P/usr/lib/dracut/modules.d" \
    INITRAMFSTOOLSDIR="$P/usr/share/initramfs-tools" INITCPIODIR="$P/usr/lib/initcpio" \
    >"$T/make-install.log" 2>&1; then
    fail setup "make install PREFIX=$P/usr failed: $(tail -n 3 "$T/make-install.log")"
    finish
fi
hook="$P/usr/lib/initcpio/install/vfio-early"
runtime="$P/usr/lib/initcpio/hooks/vfio-early"
# The boot build: what goes into the image (the host build only answers `config`/`rom known`).
ve_bin="$P/usr/lib/vfio-early/vfio-early-boot"
ve_conf="$P/etc/vfio-early.conf"
# Every image gets the runtime hook and the unit with its wants link, so the place in HOOKS
# cannot disable vfio-early; only how the unit is added differs between the flavours.
wants="add_symlink /usr/lib/systemd/system/sysinit.target.wants/vfio-early.service ../vfio-early.service"
busybox_adds=("add_runscript " "runscript-name vfio-early" "$wants"
    "add_file $P/usr/lib/systemd/system/vfio-early.service /usr/lib/systemd/system/vfio-early.service"
    "add_file $P/usr/lib/systemd/system/vfio-early-finish.service /usr/lib/systemd/system/vfio-early-finish.service")
# The systemd flavour adds the unit the same way: add_systemd_unit would add_binary the unit's
# ExecStart from the host, putting the host build over the boot build (upstream v41's add_file
# overwrites).
systemd_adds=("${busybox_adds[@]}")

# --- running one case
# run_case NAME FLAVOUR [VAR=VALUE...]: runs build() in a child; sets $out (its directory).
run_case() {
    local name=$1 flavour=$2
    shift 2
    out="$T/case-$name"
    mkdir -p "$out/buildroot"
    env VE_T_OUT="$out" VE_T_FLAVOUR="$flavour" VE_T_HOOK="$hook" \
        VE_T_HOOKSDIR="$P/usr/lib/initcpio/hooks" VE_T_MODROOT="$kroot" VE_T_KVER="$kver" \
        VE_T_BUILDROOT="$out/buildroot" "$@" bash "$self" __run >"$out/stdout" 2>"$out/stderr" || true
}
# The recorded add_* calls (and add_runscript's lookup), sorted, one per line.
adds() { grep -E '^(add_|runscript-)' "$out/calls" | LC_ALL=C sort || true; }
rc_of() { if [ -f "$out/rc" ]; then cat "$out/rc"; else echo exited; fi; }
# expect_adds NAME LINE...: the sorted set of add_* calls must be exactly these lines.
expect_adds() {
    local name=$1 want got
    shift
    want=$(printf '%s\n' "$@" | sed '/^$/d' | LC_ALL=C sort)
    got=$(adds)
    if [ "$want" = "$got" ]; then return 0; fi
    fail "$name" "recorded add_* calls differ (- expected, + recorded):
$(diff <(printf '%s\n' "$want" | sed '/^$/d') <(printf '%s\n' "$got" | sed '/^$/d') | grep '^[<>]' | sed 's/^</  -/; s/^>/  +/')
  other calls: $(grep -vE '^(add_|runscript-)' "$out/calls" | tr '\n' ' ')"
    return 1
}
no_messages() { # no error/warning/die recorded
    ! grep -qE '^(error|warning|die|source-failed|no-build-function) ' "$out/calls"
}
module_lines() { local m; for m in "${expected_modules[@]}"; do echo "add_module $m"; done; }

# --- 1. install layout with DESTDIR (what a package or `make install` puts on the system)
# VE_DESTDIR_TREE=DIR checks an already installed tree instead (a package's files, extracted).
case_destdir() {
    local n=destdir-layout D="${VE_DESTDIR_TREE:-$T/destdir}" f why=""
    if [ -n "${VE_DESTDIR_TREE:-}" ]; then
        n="destdir-layout ($D)"
    elif ! make -s -C "$repo" install DESTDIR="$D" >"$T/make-destdir.log" 2>&1; then
        fail $n "make install DESTDIR failed: $(tail -n 3 "$T/make-destdir.log")"
        return
    fi
    for f in usr/bin/vfio-early usr/lib/vfio-early/vfio-early-boot usr/lib/vfio-early/hook-lib.sh usr/lib/initcpio/install/vfio-early \
        usr/lib/initcpio/hooks/vfio-early usr/lib/systemd/system/vfio-early.service \
        usr/lib/systemd/system/vfio-early-finish.service; do
        [ -f "$D/$f" ] || why="$why missing $f;"
    done
    if [ -z "$why" ]; then
        grep -q '^VE_BIN=/usr/bin/vfio-early$' "$D/usr/lib/vfio-early/hook-lib.sh" || why="$why VE_BIN is not /usr/bin/vfio-early;"
        grep -q '^VE_BOOT_BIN=/usr/lib/vfio-early/vfio-early-boot$' "$D/usr/lib/vfio-early/hook-lib.sh" || why="$why VE_BOOT_BIN is not /usr/lib/vfio-early/vfio-early-boot;"
        grep -q '^VE_CONF=/etc/vfio-early.conf$' "$D/usr/lib/vfio-early/hook-lib.sh" || why="$why VE_CONF is not /etc/vfio-early.conf;"
        grep -q '\. /usr/lib/vfio-early/hook-lib\.sh' "$D/usr/lib/initcpio/install/vfio-early" || why="$why install hook does not source /usr/lib/vfio-early/hook-lib.sh;"
        if grep -l '@[A-Z]*@' "$D/usr/lib/vfio-early/hook-lib.sh" "$D/usr/lib/initcpio/install/vfio-early" "$D/usr/lib/initcpio/hooks/vfio-early" >/dev/null; then
            why="$why unsubstituted @...@ left;"
        fi
        # ExecStart names the image's path, where the hook puts the boot build: the fence, then
        # the rest in a unit of its own
        grep -q '^ExecStart=/usr/bin/vfio-early fence --unit$' "$D/usr/lib/systemd/system/vfio-early.service" || why="$why unit ExecStart is not /usr/bin/vfio-early fence --unit;"
        grep -q '^ExecStart=/usr/bin/vfio-early finish$' "$D/usr/lib/systemd/system/vfio-early-finish.service" || why="$why finish unit ExecStart is not /usr/bin/vfio-early finish;"
        grep -q '^ExecStopPost=/usr/bin/vfio-early settle$' "$D/usr/lib/systemd/system/vfio-early-finish.service" || why="$why finish unit has no ExecStopPost=/usr/bin/vfio-early settle;"
        # shellcheck disable=SC2016 # a literal $VE_BOOT_BIN
        grep -q 'add_binary "\$VE_BOOT_BIN" /usr/bin/vfio-early' "$D/usr/lib/initcpio/install/vfio-early" || why="$why install hook does not put the boot build at /usr/bin/vfio-early;"
    fi
    if [ -z "$why" ]; then pass $n; else fail $n "$why"; fi
}

# --- 2. syntax of the installed files as their shells read them
case_syntax() {
    local n=syntax why=""
    bash -n "$hook" 2>"$T/syntax.err" || why="$why bash -n install hook: $(cat "$T/syntax.err");"
    busybox ash -n "$runtime" 2>"$T/syntax.err" || why="$why ash -n runtime hook: $(cat "$T/syntax.err");"
    busybox ash -n "$P/usr/lib/vfio-early/hook-lib.sh" 2>"$T/syntax.err" || why="$why ash -n hook-lib: $(cat "$T/syntax.err");"
    if [ -z "$why" ]; then pass $n; else fail $n "$why"; fi
}

# --- 3. busybox flavour, config present
case_busybox() {
    local n=busybox-with-config
    printf 'devices = 01:00.0\n' >"$ve_conf"
    run_case $n busybox
    rm -f "$ve_conf"
    expect_adds $n "add_binary $ve_bin /usr/bin/vfio-early" \
        "add_file $ve_conf /etc/vfio-early.conf" "$(module_lines)" \
        "${busybox_adds[@]}" || return 0
    [ "$(rc_of)" = 0 ] || { fail $n "build() returned $(rc_of)"; return; }
    no_messages || { fail $n "unexpected messages: $(grep -vE '^(add_|runscript-)' "$out/calls")"; return; }
    [ -f "$out/buildroot/etc/modprobe.d/vfio-early-host.conf" ] || { fail $n "no \$BUILDROOT/etc/modprobe.d/vfio-early-host.conf"; return; }
    pass $n
}

# --- 4. busybox flavour, no config: no add_file
case_busybox_noconf() {
    local n=busybox-without-config
    rm -f "$ve_conf"
    run_case $n busybox
    expect_adds $n "add_binary $ve_bin /usr/bin/vfio-early" "$(module_lines)" \
        "${busybox_adds[@]}" || return 0
    if [ "$(rc_of)" != 0 ] || ! no_messages; then fail $n "rc $(rc_of), calls: $(cat "$out/calls")"; return; fi
    pass $n
}

# --- 5. systemd flavour: the unit by add_file (not add_systemd_unit), wants link, the (inert) runscript
case_systemd() {
    local n=systemd-with-config
    printf 'devices = 01:00.0\n' >"$ve_conf"
    run_case $n systemd
    rm -f "$ve_conf"
    expect_adds $n "add_binary $ve_bin /usr/bin/vfio-early" \
        "add_file $ve_conf /etc/vfio-early.conf" "$(module_lines)" \
        "${systemd_adds[@]}" || return 0
    if [ "$(rc_of)" != 0 ] || ! no_messages; then fail $n "rc $(rc_of), calls: $(cat "$out/calls")"; return; fi
    [ -f "$out/buildroot/etc/modprobe.d/vfio-early-host.conf" ] || { fail $n "no vfio-early-host.conf"; return; }
    # the link must name the unit installed (same directory, same name)
    grep -q '^WantedBy=sysinit.target$' "$P/usr/lib/systemd/system/vfio-early.service" || { fail $n "unit is not WantedBy=sysinit.target"; return; }
    pass $n
}

# --- 6. vfio_pci built in: not added, no error
case_builtin() {
    local n=busybox-vfio-pci-builtin want=()
    local m
    for m in "${expected_modules[@]}"; do [ "$m" = vfio_pci ] || want+=("add_module $m"); done
    run_case $n busybox VE_T_BUILTIN="vfio_pci"
    expect_adds $n "add_binary $ve_bin /usr/bin/vfio-early" "${want[@]}" \
        "${busybox_adds[@]}" || return 0
    if [ "$(rc_of)" != 0 ] || ! no_messages; then fail $n "rc $(rc_of), calls: $(cat "$out/calls")"; return; fi
    pass $n
}

# --- 7. binary missing: one error naming it, build() returns 0, nothing added
case_missing_bin() {
    local n=binary-missing
    mv "$ve_bin" "$ve_bin.away"
    printf 'devices = 01:00.0\n' >"$ve_conf"
    run_case $n busybox
    mv "$ve_bin.away" "$ve_bin"
    rm -f "$ve_conf"
    expect_adds $n "" || return 0
    [ "$(rc_of)" = 0 ] || { fail $n "build() returned $(rc_of), want 0"; return; }
    [ "$(grep -c '^error ' "$out/calls")" = 1 ] || { fail $n "want exactly one error, got: $(cat "$out/calls")"; return; }
    grep -q "^error .*$ve_bin" "$out/calls" || { fail $n "the error does not name $ve_bin: $(cat "$out/calls")"; return; }
    [ ! -e "$out/buildroot/etc/modprobe.d/vfio-early-host.conf" ] || { fail $n "vfio-early-host.conf written although nothing is added"; return; }
    pass $n
}

# --- 8. binary missing with build-strict = yes: the build must fail
case_missing_bin_strict() {
    local n=binary-missing-strict
    mv "$ve_bin" "$ve_bin.away"
    printf 'devices = 01:00.0\nbuild-strict = yes\n' >"$ve_conf"
    run_case $n busybox
    mv "$ve_bin.away" "$ve_bin"
    rm -f "$ve_conf"
    expect_adds $n "" || return 0
    # mkinitcpio's run_build_hook ignores build()'s status (it runs `build`, then `return 0`), and
    # error() alone does not count as a build error: only leaving mkinitcpio (die, or exit, which
    # runs its cleanup trap: no image, exit 1) fails the image. Measured with mkinitcpio v41.
    case $(rc_of) in
        exited) ;;
        0) fail $n "build() returned 0 with build-strict = yes"; return ;;
        *) fail $n "build() returned $(rc_of): mkinitcpio ignores build()'s status and still writes the image (use die)"; return ;;
    esac
    grep -qE "^(error|die) .*$ve_bin.*build-strict" "$out/calls" || { fail $n "no error naming $ve_bin and build-strict: $(cat "$out/calls")"; return; }
    pass $n
}

# --- 9. vfio modules missing (a kernel without them): error names them, nothing added
case_missing_modules() {
    local n=modules-missing
    mkdir -p "$T/emptykernel/lib/modules/0.0.0-none"
    : >"$T/emptykernel/lib/modules/0.0.0-none/modules.dep"
    run_case $n busybox VE_T_MODROOT="$T/emptykernel" VE_T_KVER=0.0.0-none
    expect_adds $n "" || return 0
    [ "$(rc_of)" = 0 ] || { fail $n "build() returned $(rc_of), want 0"; return; }
    grep -q '^error .*module:vfio .*module:vfio_pci' "$out/calls" || { fail $n "error does not name module:vfio and module:vfio_pci: $(cat "$out/calls")"; return; }
    pass $n
}

# --- 9b. mkinitcpio -r DIR (--moduleroot): the kernel's modules are under DIR only; mkinitcpio's
# own add_module finds them there (modinfo -b "$_optmoduleroot"), so must the hook.
case_moduleroot() {
    local n=moduleroot
    if [ -d "/lib/modules/$kver" ]; then
        skip $n "/lib/modules/$kver exists on this host: a module root cannot be told apart"
        return
    fi
    run_case $n busybox VE_T_NOWRAP=1
    expect_adds $n "add_binary $ve_bin /usr/bin/vfio-early" "$(module_lines)" \
        "${busybox_adds[@]}" || return 0
    if [ "$(rc_of)" != 0 ] || ! no_messages; then fail $n "rc $(rc_of), calls: $(cat "$out/calls")"; return; fi
    pass $n
}

# --- 10. hook-lib missing: error, return 0, nothing added
case_missing_lib() {
    local n=hook-lib-missing lib="$P/usr/lib/vfio-early/hook-lib.sh"
    mv "$lib" "$lib.away"
    run_case $n busybox
    mv "$lib.away" "$lib"
    expect_adds $n "" || return 0
    [ "$(rc_of)" = 0 ] || { fail $n "build() returned $(rc_of), want 0"; return; }
    grep -q "^error .*hook-lib.sh" "$out/calls" || { fail $n "no error naming hook-lib.sh: $(cat "$out/calls")"; return; }
    pass $n
}

# --- 11. modprobe.d vfio lines land in $BUILDROOT/etc/modprobe.d/vfio-early-host.conf
# hook-lib reads the fixed /etc/modprobe.d: a private mount namespace gives it a known one.
case_modprobe_lines() {
    local n=modprobe-d-lines f
    if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
        skip $n "needs root and unshare -m to give /etc/modprobe.d known content"
        return
    fi
    if [ ! -d /etc/modprobe.d ]; then
        skip $n "/etc/modprobe.d does not exist here"
        return
    fi
    mkdir -p "$T/modprobe.d"
    cat >"$T/modprobe.d/gpu.conf" <<'EOF'
options vfio-pci ids=10de:1c03 disable_vga=1
  softdep  vfio_pci pre: vfio_iommu_type1
blacklist nouveau
# options vfio-pci ids=dead:beef
options snd_hda_intel power_save=0
EOF
    out="$T/case-$n"
    mkdir -p "$out/buildroot"
    # shellcheck disable=SC2016 # positional parameters of the inner shell
    unshare -m --propagation private bash -c '
        mount -t tmpfs none /etc/modprobe.d && cp "$1"/gpu.conf /etc/modprobe.d/ &&
        env VE_T_OUT="$2" VE_T_FLAVOUR=busybox VE_T_HOOK="$3" VE_T_HOOKSDIR="$4" VE_T_MODROOT="$5" \
            VE_T_KVER="$6" VE_T_BUILDROOT="$2/buildroot" bash "$7" __run' _ \
        "$T/modprobe.d" "$out" "$hook" "$P/usr/lib/initcpio/hooks" "$kroot" "$kver" "$self" \
        >"$out/stdout" 2>"$out/stderr" || true
    f="$out/buildroot/etc/modprobe.d/vfio-early-host.conf"
    [ -f "$f" ] || { fail $n "no $f ($(cat "$out/stderr"))"; return; }
    # Judge the file the way kmod reads it in the image: modprobe.d has no trailing comments, so
    # anything after the line's own words would become module parameters or soft dependencies.
    local seen want
    seen=$(modprobe -C "$f" -c 2>/dev/null | grep -E '^(options|softdep|install|remove|blacklist|alias) ' | grep vfio || true)
    want=$(printf '%s\n' 'options vfio_pci ids=10de:1c03 disable_vga=1' 'softdep vfio_pci pre: vfio_iommu_type1')
    if [ "$seen" != "$want" ]; then
        fail $n "kmod reads $f as:
$(printf '%s\n' "$seen" | sed 's/^/  /')
  want:
$(printf '%s\n' "$want" | sed 's/^/  /')"
        return
    fi
    grep -q '/etc/modprobe.d/gpu.conf' "$f" || { fail $n "the file does not say where its lines came from"; return; }
    pass $n
}

# --- 12. runtime hook: run_earlyhook (fence) and run_cleanuphook (wait), each returns 0 with the
# binary absent, present or failing
case_runtime() {
    local n=runtime-hook why="" fns copy stub fn want
    fns=$(awk '/^[[:space:]]*[[:alnum:]_]+[[:space:]]*\([[:space:]]*\)/ { print $1 }' "$runtime" | sed 's/().*//' | tr '\n' ' ')
    [ "$fns" = "run_earlyhook run_cleanuphook " ] || why="$why functions are \"$fns\", want run_earlyhook run_cleanuphook;"
    grep -q '/usr/bin/vfio-early' "$runtime" || why="$why does not run /usr/bin/vfio-early;"
    # The path is absolute: run a copy with the path pointed at a stub, then the file itself.
    copy="$T/runtime-copy"
    stub="$T/stub/vfio-early"
    mkdir -p "$T/stub"
    sed "s|/usr/bin/vfio-early|$stub|g" "$runtime" >"$copy"
    for fn in run_earlyhook run_cleanuphook; do
        want=fence
        [ "$fn" = run_earlyhook ] || want=wait
        rm -f "$stub" "$T/stub/ran"
        # shellcheck disable=SC2016 # $1 belongs to the inner shell
        busybox ash -c '. "$1" && "$2"' _ "$copy" "$fn" || why="$why $fn returns $? with the binary absent;"
        printf '#!/bin/sh\necho "$*" >"%s"\nexit 3\n' "$T/stub/ran" >"$stub"
        chmod 755 "$stub"
        # shellcheck disable=SC2016
        busybox ash -c '. "$1" && "$2"' _ "$copy" "$fn" || why="$why $fn returns $? when the binary fails;"
        [ "$(cat "$T/stub/ran" 2>/dev/null)" = "$want" ] || why="$why $fn did not run \`vfio-early $want\`;"
        if [ -e /usr/bin/vfio-early ]; then
            skip "runtime-hook-real-path-$fn" "/usr/bin/vfio-early exists on this host: not run"
        else
            # shellcheck disable=SC2016
            busybox ash -c '. "$1" && "$2"' _ "$runtime" "$fn" || why="$why the installed $fn returns $? with /usr/bin/vfio-early absent;"
        fi
    done
    if [ -z "$why" ]; then pass $n; else fail $n "$why"; fi
}

# VE_CASES="destdir runtime ...": only these cases (the function names without case_).
for c in ${VE_CASES:-destdir syntax busybox busybox_noconf systemd builtin missing_bin missing_bin_strict \
    missing_modules moduleroot missing_lib modprobe_lines runtime}; do
    "case_$c"
done
[ "$skipped" -eq 0 ] || echo "($skipped skipped)"
finish
