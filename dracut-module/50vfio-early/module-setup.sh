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

_vfio_early_lib() {
    # shellcheck source=/dev/null
    . @HOOKLIBDIR@/hook-lib.sh 2>/dev/null && return 0
    derror "vfio-early: @HOOKLIBDIR@/hook-lib.sh is missing: the image is built without vfio-early"
    return 1
}

installkernel() {
    _vfio_early_lib || return 0
    local missing
    missing=$(ve_missing "$kernel")
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
    _vfio_early_lib || return 0
    local missing
    missing=$(ve_missing "$kernel")
    if [ -n "$missing" ]; then
        derror "$(ve_missing_message "$missing")"
        return 0
    fi
    inst_simple "$VE_BIN" /usr/bin/vfio-early
    [ -f "$VE_CONF" ] && inst_simple "$VE_CONF" /etc/vfio-early.conf
    ve_write_image_files "$initdir"
    if dracut_module_included systemd; then
        inst_simple "$systemdsystemunitdir/vfio-early.service"
        mkdir -p "$initdir$systemdsystemunitdir/sysinit.target.wants"
        ln_r "$systemdsystemunitdir/vfio-early.service" \
            "$systemdsystemunitdir/sysinit.target.wants/vfio-early.service"
    else
        # cmdline 00: before rd.driver.pre's modprobes (cmdline 01) and before udevd.
        inst_hook cmdline 00 "$moddir/vfio-early.sh"
    fi
    return 0
}
