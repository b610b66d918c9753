#!/bin/bash
# vfio-early generator tests only (added with --add vfiotest): /usr/bin/vfiotest-early
# (test.preload=vfio-pci, test.vfio=...) before the binder: a cmdline 00 hook whose
# name sorts before 00-vfio-early.sh (shell flavour) or a unit ordered before
# vfio-early.service (systemd flavour); /usr/bin/vfiotest-after-fence (test.cmdlined,
# test.killfinish) after the fence: a cmdline 00 hook sorting after it, or units after it.
# shellcheck disable=SC2154 # dracut sets moddir, initdir and systemdsystemunitdir
check() { return 255; }
depends() { return 0; }
install() {
    if dracut_module_included systemd; then
        inst_simple "$moddir/vfiotest-preload.service" "$systemdsystemunitdir/vfiotest-preload.service"
        mkdir -p "$initdir$systemdsystemunitdir/sysinit.target.wants"
        ln_r "$systemdsystemunitdir/vfiotest-preload.service" \
            "$systemdsystemunitdir/sysinit.target.wants/vfiotest-preload.service"
        for u in vfiotest-cmdlined.service vfiotest-killfinish.service; do
            inst_simple "$moddir/$u" "$systemdsystemunitdir/$u"
            ln_r "$systemdsystemunitdir/$u" "$systemdsystemunitdir/sysinit.target.wants/$u"
        done
    else
        inst_hook cmdline 00 "$moddir/aa-vfiotest-preload.sh"
        inst_hook cmdline 00 "$moddir/zz-vfiotest-after-fence.sh"
    fi
    inst_simple "$moddir/vfiotest-early" /usr/bin/vfiotest-early
    inst_simple "$moddir/vfiotest-after-fence" /usr/bin/vfiotest-after-fence
    inst_multiple modprobe sleep false tr
}
