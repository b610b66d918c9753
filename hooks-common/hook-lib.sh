# SPDX-License-Identifier: MIT OR Apache-2.0
# Build-time helpers shared by vfio-early's dracut, initramfs-tools and mkinitcpio hooks.
# Sourced by all three: POSIX sh, functions and variables only, never `exit`.
# `make install` replaces @BINDIR@, @BOOTBIN@ and @SYSCONFDIR@.

# The host build answers the hooks' questions (`config`, `rom known`); the boot build (bind only)
# is what goes into the image, as /usr/bin/vfio-early.
VE_BIN=@BINDIR@/vfio-early
VE_BOOT_BIN=@BOOTBIN@
VE_CONF=@SYSCONFDIR@/vfio-early.conf
# What vfio-pci needs; each generator's own module API adds the dependencies.
VE_MODULES_REQUIRED="vfio vfio_pci"
VE_MODULES_OPTIONAL="vfio_iommu_type1"

# Prints "module" or "builtin" for module $2 of kernel $1; fails when the kernel has neither.
# VE_MODROOT: the generator's module root when it is not / (mkinitcpio -r).
ve_module_state() {
    _ve_f=$(modinfo ${VE_MODROOT:+-b "$VE_MODROOT"} -k "$1" -F filename "$2" 2>/dev/null | head -n 1)
    case $_ve_f in
        "") return 1 ;;
        *builtin*) echo builtin ;;
        *) echo module ;;
    esac
}

# Prints what an image for kernel $1 would lack to run vfio-early; nothing when all is there.
ve_missing() {
    _ve_miss=""
    [ -x "$VE_BOOT_BIN" ] || _ve_miss="$VE_BOOT_BIN"
    for _ve_m in $VE_MODULES_REQUIRED; do
        ve_module_state "$1" "$_ve_m" >/dev/null || _ve_miss="$_ve_miss module:$_ve_m"
    done
    echo $_ve_miss
}

# Prints the modules (not built in) that an image for kernel $1 must carry: vfio-pci's, and
# vendor-reset when an entry asks for a device_specific reset (the boot loads it before writing
# that reset method) and kernel $1 has it (it comes from a dkms package, not the kernel).
ve_modules() {
    for _ve_m in $VE_MODULES_REQUIRED $VE_MODULES_OPTIONAL; do
        [ "$(ve_module_state "$1" "$_ve_m")" = module ] && printf '%s\n' "$_ve_m"
    done
    if ve_wants_vendor_reset; then
        case $(ve_module_state "$1" vendor-reset) in
            module) echo vendor-reset ;;
            builtin) ;;
            *) echo "vfio-early: an entry asks for +reset=device_specific, but kernel $1 has no vendor-reset module: the boot will say so; install vendor-reset (its dkms package) for this kernel" >&2 ;;
        esac
    fi
    return 0
}

# True when an entry asks for a device_specific reset: in the configuration as the binary reads
# it (comments and bad lines dropped), or on the kernel command line the images are built for
# (/etc/kernel/cmdline) or this boot's.
ve_wants_vendor_reset() {
    "$VE_BIN" config --file "$VE_CONF" 2>/dev/null | grep -q '^devices = .*+reset=device_specific' && return 0
    for _ve_f in ${VE_CMDLINE_FILES-/etc/kernel/cmdline /proc/cmdline}; do
        [ -r "$_ve_f" ] || continue
        tr ' ' '\n' <"$_ve_f" | grep -q '^vfio[-_]early\.devices=.*+reset=device_specific' && return 0
    done
    return 1
}

# Prints the admin's modprobe.d lines about vfio, for /etc/modprobe.d/vfio-early-host.conf.
ve_modprobe_lines() {
    for _ve_d in /etc/modprobe.d /run/modprobe.d /usr/local/lib/modprobe.d /usr/lib/modprobe.d /lib/modprobe.d; do
        for _ve_f in "$_ve_d"/*.conf; do
            [ -f "$_ve_f" ] || continue
            # modprobe.d has no trailing comments: the origin goes on a line of its own.
            _ve_l=$(grep -E '^[[:space:]]*(options|install|remove|softdep|blacklist|alias)[[:space:]]+[^[:space:]]*vfio' "$_ve_f") || continue
            printf '# from %s\n%s\n' "$_ve_f" "$_ve_l"
        done
    done
    return 0
}

# Writes the generated files of an image rooted at $1: the admin's vfio modprobe.d lines, and the
# ROM captures already stored under /var/lib (a boot reads a card's ROM only when the image does
# not know a capture of it).
ve_write_image_files() {
    mkdir -p "$1/etc/modprobe.d" "$1/etc/vfio-early"
    ve_modprobe_lines >"$1/etc/modprobe.d/vfio-early-host.conf"
    # A list cut short (a full disk) is dropped: knowing nothing only means a boot reads a ROM
    # again, which `rom persist` then drops as already stored.
    "$VE_BIN" rom known >"$1/etc/vfio-early/roms.known" 2>/dev/null ||
        rm -f "$1/etc/vfio-early/roms.known"
}

# Prints "yes" or "no": does the admin want a missing piece to fail the image build
# (`build-strict = yes`)? The host build's own parser decides (`vfio-early config`, exit 0 or 1; its
# stderr names any bad line of the file in the build output). Only when the binary is missing or
# cannot run, one of the cases build-strict exists for, does the shell read the file.
ve_strict_value() {
    if [ -x "$VE_BIN" ]; then
        _ve_s=$("$VE_BIN" config --file "$VE_CONF")
        if [ "$?" -le 1 ]; then
            printf '%s\n' "$_ve_s" | sed -n 's/^build-strict = //p'
            return 0
        fi
    fi
    ve_strict_file
}

# The shell reading of build-strict, with the binary's rules: key names exact but `-` = `_`,
# values in any case, a bare key means yes, a bad value changes nothing, the last line wins.
ve_strict_file() {
    _ve_v=no
    # A UTF-8 byte order mark before the first line is dropped, as the binary drops it.
    _ve_bom=$(printf '\357\273\277') _ve_first=1
    if [ -f "$VE_CONF" ]; then
        while IFS= read -r _ve_l || [ -n "$_ve_l" ]; do
            [ -n "$_ve_first" ] && _ve_l=${_ve_l#"$_ve_bom"} _ve_first=
            _ve_l=${_ve_l%%#*}
            case $_ve_l in
                *=*) _ve_k=${_ve_l%%=*} _ve_x=${_ve_l#*=} ;;
                *) _ve_k=$_ve_l _ve_x=yes ;;
            esac
            # Trimmed by word splitting (CR too, as the binary trims it); a second word makes the
            # key or value invalid.
            _ve_ifs=$IFS
            IFS=$(printf ' \t\r')
            set -f
            # shellcheck disable=SC2086
            set -- $_ve_k
            _ve_k=${1:-}${2:+ -}
            # shellcheck disable=SC2086
            set -- $_ve_x
            _ve_x=${1:-}${2:+ -}
            set +f
            IFS=$_ve_ifs
            case $_ve_k in build-strict | build_strict) ;; *) continue ;; esac
            case $(printf '%s' "$_ve_x" | tr 'A-Z' 'a-z') in
                1 | y | yes | on | true) _ve_v=yes ;;
                0 | n | no | off | false) _ve_v=no ;;
            esac
        done <"$VE_CONF"
    fi
    echo "$_ve_v"
}

# True when build-strict is on; asked once per build.
ve_strict() {
    [ -n "${VE_STRICT:-}" ] || VE_STRICT=$(ve_strict_value)
    [ "$VE_STRICT" = yes ]
}

# The one message every generator prints when vfio-early cannot go into the image.
ve_missing_message() {
    if ve_strict; then
        echo "vfio-early: missing $1: the image build fails (build-strict = yes in $VE_CONF)"
    else
        echo "vfio-early: missing $1: the image is built without vfio-early (devices stay with their native drivers)"
    fi
}
