// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drivers as loadable modules or built into the kernel, the way sysfs and the kernel's module
//! lists show them (for the host commands' "held at boot" judgement). Include with
//! `#[path = "common/kmod.rs"] mod kmod;`.
#![allow(dead_code)]

use crate::common::FakeTree;

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
