// SPDX-License-Identifier: MIT OR Apache-2.0
//! Tests of the fake tree builder itself (tests/common/mod.rs), so binder tests can trust it.

mod common;

use common::{Dev, FakeTree, Modprobe};
use std::fs;
use std::process::Command;

fn gpu(t: &FakeTree) {
    t.device(
        Dev::new("01:00.0", 0x1234, 0x1111, 0x030000)
            .subsys(0x1af4, 0x1100)
            .group(7)
            .bar(0, 0xfd00_0000, 0xfdff_ffff, 0x40200),
    )
    .device(
        Dev::new("0000:01:00.1", 0x8086, 0x293e, 0x040300)
            .group(7)
            .driver("snd_hda_intel"),
    );
}

#[test]
fn skeleton_exists() {
    let t = FakeTree::new();
    for f in [
        "proc/cmdline",
        "proc/iomem",
        "proc/sys/kernel/printk_devkmsg",
        "etc/initrd-release",
        "sys/bus/pci/drivers_probe",
        "dev/kmsg",
    ] {
        assert!(t.path(f).is_file(), "{f}");
    }
    for d in [
        "sys/bus/pci/devices",
        "sys/bus/pci/drivers",
        "sys/kernel/iommu_groups",
        "run",
    ] {
        assert!(t.path(d).is_dir(), "{d}");
    }
    assert_eq!(t.read("proc/cmdline"), "\n");
    assert_eq!(t.read("proc/sys/kernel/printk_devkmsg"), "ratelimit\n");
    assert_eq!(t.read("no/such/file"), "");
    t.cmdline("quiet vfio-early.devices=01:00.0");
    assert_eq!(t.read("proc/cmdline"), "quiet vfio-early.devices=01:00.0\n");
}

#[test]
fn device_layout_matches_kernel() {
    let t = FakeTree::new();
    gpu(&t);
    let d = "sys/bus/pci/devices/0000:01:00.0";
    assert!(t.path(d).symlink_metadata().unwrap().is_symlink());
    assert_eq!(
        fs::read_link(t.path(d)).unwrap().to_str(),
        Some("../../../devices/pci0000:01/0000:01:00.0")
    );
    assert_eq!(
        t.read(&format!("{d}/uevent")),
        "PCI_CLASS=30000\nPCI_ID=1234:1111\nPCI_SUBSYS_ID=1AF4:1100\n\
         PCI_SLOT_NAME=0000:01:00.0\n\
         MODALIAS=pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00\n"
    );
    assert_eq!(t.read(&format!("{d}/vendor")), "0x1234\n");
    assert_eq!(t.read(&format!("{d}/device")), "0x1111\n");
    assert_eq!(t.read(&format!("{d}/class")), "0x030000\n");
    assert_eq!(t.read(&format!("{d}/driver_override")), "(null)\n");
    assert_eq!(t.read(&format!("{d}/enable")), "0\n");
    assert_eq!(t.read(&format!("{d}/boot_vga")), "0\n");
    assert!(!t.exists("sys/bus/pci/devices/0000:01:00.1/boot_vga"));
    let res = t.read(&format!("{d}/resource"));
    let lines: Vec<&str> = res.lines().collect();
    assert_eq!(lines.len(), 13);
    assert_eq!(
        lines[0],
        "0x00000000fd000000 0x00000000fdffffff 0x0000000000040200"
    );
    assert_eq!(
        lines[6],
        "0x0000000000000000 0x0000000000000000 0x0000000000000000"
    );
    let bridge = Dev::new("00:1c.0", 0x8086, 0x2918, 0x060400);
    t.device(bridge);
    assert_eq!(
        t.read("sys/bus/pci/devices/0000:00:1c.0/resource")
            .lines()
            .count(),
        17
    );
    assert_eq!(
        t.devices(),
        ["0000:00:1c.0", "0000:01:00.0", "0000:01:00.1"]
    );
}

#[test]
fn symlinks_resolve() {
    let t = FakeTree::new();
    gpu(&t);
    let dev = fs::canonicalize(t.path("sys/devices/pci0000:01/0000:01:00.0")).unwrap();
    let via_bus = fs::canonicalize(t.path("sys/bus/pci/devices/0000:01:00.0")).unwrap();
    assert_eq!(dev, via_bus);
    let grp = fs::canonicalize(t.path("sys/bus/pci/devices/0000:01:00.0/iommu_group")).unwrap();
    assert_eq!(
        grp,
        fs::canonicalize(t.path("sys/kernel/iommu_groups/7")).unwrap()
    );
    let mut members: Vec<String> = fs::read_dir(grp.join("devices"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["0000:01:00.0", "0000:01:00.1"]);
    for m in &members {
        let back = fs::canonicalize(grp.join("devices").join(m)).unwrap();
        assert_eq!(
            back,
            fs::canonicalize(t.path(&FakeTree::dev_rel(m))).unwrap()
        );
    }
    let sub = fs::canonicalize(t.path("sys/bus/pci/devices/0000:01:00.0/subsystem")).unwrap();
    assert_eq!(sub, fs::canonicalize(t.path("sys/bus/pci")).unwrap());
    // Bound at creation: driver link resolves to the driver directory, which links back.
    let drv = fs::canonicalize(t.path("sys/bus/pci/devices/0000:01:00.1/driver")).unwrap();
    assert_eq!(
        drv,
        fs::canonicalize(t.path("sys/bus/pci/drivers/snd_hda_intel")).unwrap()
    );
    assert!(drv.join("unbind").is_file() && drv.join("bind").is_file());
    assert_eq!(
        fs::canonicalize(drv.join("0000:01:00.1")).unwrap(),
        fs::canonicalize(t.path("sys/bus/pci/devices/0000:01:00.1")).unwrap()
    );
    // No group, no link.
    t.device(Dev::new("02:00.0", 0x10de, 0x1c03, 0x030000));
    assert!(!t.exists("sys/bus/pci/devices/0000:02:00.0/iommu_group"));
}

#[test]
fn set_driver_updates_link_and_uevent() {
    let t = FakeTree::new();
    gpu(&t);
    let b = "0000:01:00.1";
    assert_eq!(t.driver_of(b).as_deref(), Some("snd_hda_intel"));
    let ue = t.read(&format!("sys/bus/pci/devices/{b}/uevent"));
    assert!(
        ue.starts_with("DRIVER=snd_hda_intel\nPCI_CLASS=40300\n"),
        "{ue}"
    );

    t.set_driver(b, Some("vfio-pci"));
    assert_eq!(t.driver_of("01:00.1").as_deref(), Some("vfio-pci"));
    let ue = t.read(&format!("sys/bus/pci/devices/{b}/uevent"));
    assert_eq!(ue.matches("DRIVER=").count(), 1);
    assert!(ue.starts_with("DRIVER=vfio-pci\n"), "{ue}");
    assert!(!t.exists(&format!("sys/bus/pci/drivers/snd_hda_intel/{b}")));
    assert!(t.exists(&format!("sys/bus/pci/drivers/vfio-pci/{b}")));

    t.set_driver(b, None);
    assert_eq!(t.driver_of(b), None);
    assert!(!t
        .read(&format!("sys/bus/pci/devices/{b}/uevent"))
        .contains("DRIVER="));
    assert!(!t.exists(&format!("sys/bus/pci/drivers/vfio-pci/{b}")));
    t.driver_registered("vfio-pci");
    assert!(t.path("sys/bus/pci/drivers/vfio-pci/bind").is_file());
}

#[test]
fn modprobe_logs_and_fails_on_demand() {
    let t = FakeTree::new();
    let mp = t.path("sbin/modprobe");
    let st = Command::new(&mp).args(["-i", "vfio-pci"]).status().unwrap();
    assert!(st.success());
    t.modprobe_exit(Some(1));
    let st = Command::new(&mp).arg("vfio-pci").status().unwrap();
    assert_eq!(st.code(), Some(1));
    assert_eq!(t.modprobe_log(), "-i vfio-pci\nvfio-pci\n");
    // Called by a relative path from the root, as with `--root .`.
    t.modprobe_exit(None);
    let st = Command::new("./sbin/modprobe")
        .arg("x")
        .current_dir(&t.root)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(t.modprobe_log(), "-i vfio-pci\nvfio-pci\nx\n");
}

#[test]
fn binding_modprobe_imitates_vfio_pci_init() {
    let t = FakeTree::new();
    gpu(&t);
    t.modprobe(Modprobe::Bind, "/bin/sh")
        .device(Dev::new("00:01.0", 0x8086, 0x1901, 0x060400).group(7))
        .device(Dev::new("02:00.0", 0x10de, 0x1c03, 0x030000));
    for b in ["01:00.0", "01:00.1", "00:01.0", "02:00.0"] {
        t.file(
            &format!("sys/bus/pci/devices/0000:{b}/driver_override"),
            "vfio-pci",
        );
    }
    let st = Command::new(t.path("sbin/modprobe"))
        .arg("vfio-pci")
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
    let ue = t.read("sys/bus/pci/devices/0000:01:00.0/uevent");
    assert!(ue.starts_with("DRIVER=vfio-pci\nPCI_CLASS=30000\n"), "{ue}");
    assert!(t.path("sys/bus/pci/drivers/vfio-pci/0000:01:00.0").is_dir());
    // Bound elsewhere, a bridge, no IOMMU group: left alone.
    assert_eq!(t.driver_of("01:00.1").as_deref(), Some("snd_hda_intel"));
    assert_eq!(t.driver_of("00:01.0"), None);
    assert_eq!(t.driver_of("02:00.0"), None);
    // Already registered: a second load binds nothing (module init does not run again).
    t.file(
        "sys/bus/pci/devices/0000:02:00.0/driver_override",
        "vfio-pci\n",
    );
    t.device(Dev::new("03:00.0", 0x10de, 0x1c03, 0x030000).group(9));
    t.file(
        "sys/bus/pci/devices/0000:03:00.0/driver_override",
        "vfio-pci\n",
    );
    Command::new(t.path("sbin/modprobe"))
        .arg("vfio-pci")
        .status()
        .unwrap();
    assert_eq!(t.driver_of("03:00.0"), None);
}

#[test]
fn at_keeps_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    {
        let t = FakeTree::at(&dir);
        t.device(Dev::new("01:00.0", 0x1234, 0x1111, 0x030000).group(1));
    }
    assert!(dir
        .join("sys/bus/pci/devices/0000:01:00.0/uevent")
        .is_file());
    assert!(dir.join("sbin/modprobe").is_file());
}

/// The Rust imitation of vfio-pci's module init (used by the bench's fake modprobe) and the
/// shell one (`Modprobe::Bind`) leave the same tree behind.
#[test]
fn vfio_pci_init_matches_the_shell_imitation() {
    let build = || {
        let t = FakeTree::new();
        gpu(&t);
        t.device(Dev::new("00:01.0", 0x8086, 0x1901, 0x060400).group(7))
            .device(Dev::new("02:00.0", 0x10de, 0x1c03, 0x030000))
            .device(Dev::new("03:00.0", 0x10de, 0x1c03, 0x030000).group(9))
            .device(Dev::new("03:00.1", 0x10de, 0x10f1, 0x040300).group(9));
        for b in ["01:00.0", "01:00.1", "00:01.0", "02:00.0", "03:00.0"] {
            t.file(
                &format!("sys/bus/pci/devices/0000:{b}/driver_override"),
                "vfio-pci\n",
            );
        }
        t
    };
    let (rust, shell) = (build(), build());
    assert_eq!(rust.vfio_pci_init(), ["0000:01:00.0", "0000:03:00.0"]);
    assert!(
        rust.vfio_pci_init().is_empty(),
        "registered: init runs once"
    );
    shell.modprobe_binds();
    Command::new(shell.path("sbin/modprobe"))
        .arg("vfio_pci")
        .status()
        .unwrap();
    for b in shell.devices() {
        assert_eq!(rust.driver_of(&b), shell.driver_of(&b), "{b}");
        let ue = format!("sys/bus/pci/devices/{b}/uevent");
        assert_eq!(rust.read(&ue), shell.read(&ue), "{b}");
        let back = format!("sys/bus/pci/drivers/vfio-pci/{b}");
        assert_eq!(
            fs::read_link(rust.path(&back)).ok(),
            fs::read_link(shell.path(&back)).ok(),
            "{b}"
        );
    }
}
