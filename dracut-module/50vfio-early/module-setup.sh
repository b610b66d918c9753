#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# dracut module: both init flavours. A missing piece never costs the machine its initramfs:
# install() reports it; only with build-strict does installkernel() fail the build.

check() {
    return 0
}

depends() {
    return 0
}

# Sources hook-lib and sets `missing` (what this kernel's image would lack); fails without hook-lib.
_vfio_early_ready() {
    if [ ! -r @HOOKLIBDIR@/hook-lib.sh ]; then
        derror "vfio-early: @HOOKLIBDIR@/hook-lib.sh is missing: the image is built without vfio-early"
        return 1
    fi
    # shellcheck source=/dev/null
    . @HOOKLIBDIR@/hook-lib.sh
    missing=$(ve_missing "$kernel")
}

installkernel() {
    local missing
    _vfio_early_ready || return 0
    if [ -n "$missing" ]; then
        # dracut ignores install()'s status; a failing installkernel() is what stops the build.
        if ve_strict; then
            derror "$(ve_missing_message "$missing")"
            return 1
        fi
        return 0
    fi
    # Hostonly mode drops modules the running system does not use unless asked this way.
    # shellcheck disable=SC2046
    hostonly='' instmods $(ve_modules "$kernel")
    return 0
}

install() {
    local missing
    _vfio_early_ready || return 0
    if [ -n "$missing" ]; then
        derror "$(ve_missing_message "$missing")"
        return 0
    fi
    # inst_binary: a dynamic build brings its libraries (inst_simple would copy the file alone).
    inst_binary "$VE_BOOT_BIN" /usr/bin/vfio-early
    [ -f "$VE_CONF" ] && inst_simple "$VE_CONF" /etc/vfio-early.conf
    ve_write_image_files "$initdir"
    if dracut_module_included systemd; then
        inst_simple "$systemdsystemunitdir/vfio-early.service"
        inst_simple "$systemdsystemunitdir/vfio-early-finish.service"
        mkdir -p "$initdir$systemdsystemunitdir/sysinit.target.wants"
        ln_r "$systemdsystemunitdir/vfio-early.service" \
            "$systemdsystemunitdir/sysinit.target.wants/vfio-early.service"
    else
        # cmdline 00: before rd.driver.pre's modprobes (cmdline 01) and before udevd. The rest
        # of the run goes on beside udev; pre-pivot 99 waits for it before switch_root.
        inst_hook cmdline 00 "$moddir/vfio-early.sh"
        inst_hook pre-pivot 99 "$moddir/vfio-early-wait.sh"
    fi
    return 0
}
