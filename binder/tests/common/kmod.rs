// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hosts for the host commands' tests: drivers as loadable modules or built into the kernel, the
//! way sysfs and the kernel's module lists show them (the "held at boot" judgement), and the QEMU
//! test machine. Include with `#[path = "common/kmod.rs"] mod kmod;`.
#![allow(dead_code)]

use crate::common::{Dev, FakeTree};

/// tests/qemu's `card2 vga` machine: the boot VGA at 00:02.0 (group 1), card A at 01:00.0 (display,
/// 0x038000) + 01:00.1 (HDMI audio) in group 5, its identical twin at 02:00.x in group 6; nothing
/// bound, vfio-pci's module init imitated.
pub fn qemu_machine() -> FakeTree {
    let t = FakeTree::new();
    t.device(
        Dev::new("00:02.0", 0x1234, 0x1111, 0x030000)
            .group(1)
            .boot_vga(true),
    );
    for bus in [1u8, 2] {
        let g = u32::from(bus) + 4;
        t.device(
            Dev::new(&format!("{bus:02x}:00.0"), 0x1234, 0x1111, 0x038000)
                .subsys(0x1af4, 0x1100)
                .group(g),
        )
        .device(
            Dev::new(&format!("{bus:02x}:00.1"), 0x8086, 0x293e, 0x040300)
                .subsys(0x1af4, 0x1100)
                .group(g),
        );
    }
    t.modprobe_binds();
    t
}

/// `driver` as a loadable module `module` (`/sys/module/M/initstate`) or built into kernel
/// `release` (listed in its modules.builtin): `drivers/NAME/module -> .../module/M` either way.
pub fn driver_module(t: &FakeTree, release: &str, driver: &str, module: &str, builtin: bool) {
    t.driver_registered(driver)
        .file("proc/sys/kernel/osrelease", &format!("{release}\n"))
        .symlink(
            &format!("sys/bus/pci/drivers/{driver}/module"),
            &format!("../../../../module/{module}"),
        )
        .mkdir(&format!("sys/module/{module}"));
    let list = format!("lib/modules/{release}/modules.builtin");
    if builtin {
        let mut all = t.read(&list);
        all += &format!("kernel/drivers/test/{}.ko\n", module.replace('_', "-"));
        t.file(&list, &all);
    } else {
        t.file(&format!("sys/module/{module}/initstate"), "live\n");
        if !t.exists(&list) {
            t.file(&list, "kernel/drivers/other/thing.ko\n");
        }
    }
}
