// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capacity edges and odd sysfs on the real binary: what the scan cannot hold whole is refused
//! with its reason, never acted on from a partial view; an unreadable driver name is a driver.

mod common;
#[path = "common/exe.rs"]
mod exe;

use common::{assert_logged, Dev, FakeTree};

const DISPLAY: u32 = 0x030000;
const AUDIO: u32 = 0x040300;
const USB: u32 = 0x0c0330;

/// Boot mode without the kernel log's record budget: every line is kept.
fn boot(t: &FakeTree) -> Vec<String> {
    t.file("proc/sys/kernel/printk_devkmsg", "on\n");
    exe::boot(t)
}

/// A display and its audio in `group`, plus `others` USB endpoints in the same group on buses
/// numbered before the card (so a directory-order read meets them first).
fn crowded(t: &FakeTree, group: u32, others: usize) {
    t.device(Dev::new("f0:00.0", 0x10de, 0x1c03, DISPLAY).group(group))
        .device(Dev::new("f0:00.1", 0x10de, 0x10f1, AUDIO).group(group));
    for n in 0..others {
        let bdf = format!("{:02x}:{:02x}.{}", 0x10 + n / 256, (n / 8) % 32, n % 8);
        t.device(Dev::new(&bdf, 0x1b36, 0x000d, USB).group(group));
    }
    t.modprobe_binds();
}

#[test]
fn a_strict_group_larger_than_the_scan_is_refused_whole() {
    let t = FakeTree::new();
    crowded(&t, 1, 98);
    t.cmdline("vfio-early.devices=f0:00.0 vfio-early.group=strict");
    let log = boot(&t);
    assert_logged(&log, "0000:f0:00.0 [10de:1c03] display controller (entry f0:00.0): refused: not every member of IOMMU group 1 could be read");
    assert_logged(&log, "more than 64 devices in one IOMMU group");
    assert_eq!(t.override_of("f0:00.0"), "(null)\n", "nothing written");
    assert_eq!(t.override_of("10:00.0"), "(null)\n", "nothing written");
    assert_eq!(t.modprobe_log(), "", "nothing loaded");
}

#[test]
fn a_companion_past_the_cap_is_not_missed_in_silence() {
    let t = FakeTree::new();
    crowded(&t, 1, 498);
    t.cmdline("vfio-early.devices=f0:00.0");
    let log = boot(&t);
    assert_logged(
        &log,
        "refused: not every member of IOMMU group 1 could be read",
    );
    assert_eq!(t.override_of("f0:00.0"), "(null)\n");
    assert_eq!(t.override_of("f0:00.1"), "(null)\n");
}

#[test]
fn an_id_entry_matching_more_than_the_scan_takes_none() {
    let t = FakeTree::new();
    for n in 0..70u32 {
        t.device(Dev::new(&format!("{:02x}:00.0", n + 1), 0x1b36, 0x000d, USB).group(n + 1));
    }
    t.modprobe_binds().cmdline("vfio-early.devices=1b36:000d");
    let log = boot(&t);
    assert_logged(&log, "its ID entry matches more than 64 devices");
    assert_logged(&log, "summary: 0 bound, 64 refused");
    assert!(t.devices().iter().all(|b| t.override_of(b) == "(null)\n"));
}

#[test]
fn every_group_warning_is_kept() {
    let t = FakeTree::new();
    let mut entries = Vec::new();
    for n in 0..20u32 {
        let bus = n + 1;
        t.device(Dev::new(&format!("{bus:02x}:00.0"), 0x10de, 0x1c03, DISPLAY).group(bus))
            // Another vendor's xHCI on the slot: not the card's, so left and named.
            .device(Dev::new(&format!("{bus:02x}:00.2"), 0x1b21, 0x2142, USB).group(bus));
        entries.push(format!("{bus:02x}:00.0"));
    }
    t.modprobe_binds()
        .cmdline(&format!("vfio-early.devices={}", entries.join(",")));
    boot(&t);
    let state: serde_json::Value =
        serde_json::from_str(&t.read("run/vfio-early/state.json")).expect("state.json");
    let warnings = state["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 20, "{warnings:#?}");
}

#[test]
fn a_driver_name_that_does_not_fit_still_holds_the_device() {
    let t = FakeTree::new();
    let long = "a_driver_whose_name_is_longer_than_32_bytes";
    t.device(
        Dev::new("01:00.0", 0x10de, 0x1c03, DISPLAY)
            .group(1)
            .driver(long),
    )
    .file("sys/bus/pci/devices/0000:01:00.0/rom", "not a rom")
    .modprobe_binds()
    .cmdline("vfio-early.devices=01:00.0 vfio-early.rom=01:00.0");
    let log = boot(&t);
    assert_logged(
        &log,
        "refused: bound to a_driver_whose_name_is_longer...; hint: add +unbind",
    );
    assert_logged(&log, "ROM not read");
    assert_eq!(t.override_of("01:00.0"), "(null)\n");
    assert_eq!(
        t.read("sys/bus/pci/devices/0000:01:00.0/enable"),
        "0\n",
        "ROM BAR never enabled"
    );
}

/// ID entries look at the addresses /proc/bus/pci/devices names for their vendor:device; the
/// file has no domain, so a device at the same bus address in another domain is checked by its
/// uevent. Without the file, every device is read: the same plan either way.
#[test]
fn id_entries_prefilter_with_proc_bus_pci_and_fall_back_without_it() {
    let build = || {
        let t = FakeTree::new();
        t.device(Dev::new("0000:03:00.0", 0x10de, 0x1c03, DISPLAY).group(1))
            .device(
                Dev::new("0001:03:00.0", 0x10de, 0x1c03, DISPLAY)
                    .subsys(0x1043, 0x85f4)
                    .group(2),
            )
            .device(Dev::new("0000:04:00.0", 0x1002, 0x73bf, DISPLAY).group(3))
            .device(
                Dev::new("0002:04:00.0", 0x10de, 0x1c03, DISPLAY)
                    .subsys(0x1043, 0x85f4)
                    .group(4),
            )
            .modprobe_binds()
            .cmdline("vfio-early.devices=10de:1c03:1043:85f4");
        t
    };
    let proc = build();
    assert!(proc.read("proc/bus/pci/devices").contains("0300\t10de1c03"));
    let plain = build();
    plain.remove("proc/bus/pci/devices");
    for t in [&proc, &plain] {
        let log = boot(t);
        assert_logged(&log, "summary: 2 bound, 0 refused");
        assert_eq!(t.driver_of("0001:03:00.0").as_deref(), Some("vfio-pci"));
        assert_eq!(t.driver_of("0002:04:00.0").as_deref(), Some("vfio-pci"));
        assert_eq!(t.driver_of("0000:03:00.0"), None, "other subsystem IDs");
        assert_eq!(t.driver_of("0000:04:00.0"), None);
    }
}

/// Files that grow with the bus are read whole however large, through a bounded buffer: a
/// 4096-device machine's /proc/bus/pci/devices (over 1 MiB in the kernel's format) still
/// pre-filters, its matching line last; a framebuffer at the end of a 17 MiB /proc/iomem is
/// found.
#[test]
fn bus_sized_files_are_read_whole() {
    let t = FakeTree::new();
    t.device(Dev::new("f3:00.0", 0x10de, 0x1c03, DISPLAY).group(1))
        .modprobe_binds()
        .cmdline("vfio-early.devices=10de:1c03");
    let pad = "\t0\t".to_string() + &"0".repeat(240) + "\n";
    let mut devices: String = (0..4096)
        .map(|n| format!("{:02x}{:02x}\t80860001{pad}", n / 256, n % 256))
        .collect();
    devices += &format!("f300\t10de1c03{pad}");
    assert!(devices.len() > 1 << 20);
    t.file("proc/bus/pci/devices", &devices);
    let log = boot(&t);
    assert_logged(&log, "summary: 1 bound");

    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x10de, 0x1c03, DISPLAY).group(1))
        .modprobe_binds()
        .cmdline("vfio-early.devices=01:00.0");
    let mut iomem = "00000000-00000fff : Reserved\n".repeat((16 << 20) / 29 + 1);
    iomem += "c0000000-cfffffff : 0000:01:00.0\n  c0000000-c07fffff : BOOTFB\n";
    t.file("proc/iomem", &iomem);
    let log = boot(&t);
    assert_logged(
        &log,
        "refused: boot display (a firmware framebuffer lies in its BAR)",
    );
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
}
