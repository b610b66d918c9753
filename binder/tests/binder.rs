// SPDX-License-Identifier: MIT OR Apache-2.0
//! The real `vfio-early` binary on fake trees: selection, guards, writes, log and state file.
//!
//! A fake tree cannot reproduce the kernel's bind semantics; the binding `modprobe` of the tree
//! imitates vfio-pci's module init so the verify step has something to read. What the kernel
//! really does is proven by the QEMU boots in `tests/qemu`.

mod common;
#[path = "common/exe.rs"]
mod exe;

use common::{Dev, FakeTree};
use exe::{boot, has};

const DISPLAY: u32 = 0x030000;
const AUDIO: u32 = 0x040300;
const USB: u32 = 0x0c0330;
const BRIDGE: u32 = 0x060400;
const SATA: u32 = 0x010601;

/// Runs the host build on the tree; returns (exit code, stdout, stderr).
fn run(t: &FakeTree, args: &[&str]) -> (i32, String, String) {
    exe::run(exe::HOST, t, args)
}

/// A GPU card behind a root port: display, HDMI audio and a USB-C controller in one group.
fn card(t: &FakeTree, bus: u8, group: u32) {
    let bdf = |f: u8| format!("{bus:02x}:00.{f}");
    t.device(Dev::new(&format!("00:1{bus}.0"), 0x8086, 0x29c0 + bus as u16, BRIDGE).group(group))
        .device(Dev::new(&bdf(0), 0x10de, 0x1c03, DISPLAY).group(group))
        .device(Dev::new(&bdf(1), 0x10de, 0x10f1, AUDIO).group(group));
}

const UCSI: u32 = 0x0c8000;
const NVME: u32 = 0x010802;

/// An RTX 20-series card (display, HDMI audio, USB 3.1, USB-C UCSI; one vendor, one slot, one
/// group) behind a root port, with what else a slot may hold: another vendor's xHCI (as on APU
/// slots), the card vendor's storage function, and a function of the slot in another group.
fn whole_card(t: &FakeTree) {
    t.device(Dev::new("00:11.0", 0x8086, 0x29c1, BRIDGE).group(1))
        .device(Dev::new("01:00.0", 0x10de, 0x1e84, DISPLAY).group(1))
        .device(Dev::new("01:00.1", 0x10de, 0x10f8, AUDIO).group(1))
        .device(Dev::new("01:00.2", 0x10de, 0x1ad8, USB).group(1))
        .device(Dev::new("01:00.3", 0x10de, 0x1ad9, UCSI).group(1))
        .device(Dev::new("01:00.4", 0x1022, 0x15e0, USB).group(1))
        .device(Dev::new("01:00.5", 0x10de, 0x1234, NVME).group(1))
        .device(Dev::new("01:00.6", 0x10de, 0x1ad9, UCSI).group(7))
        .modprobe_binds();
}

#[test]
fn display_brings_its_whole_card_and_nothing_else() {
    for entry in ["01:00.0", "01:00.0@10de:1e84"] {
        let t = FakeTree::new();
        whole_card(&t);
        t.cmdline(&format!("quiet vfio-early.devices={entry}"));
        let log = boot(&t);
        for f in 0..4 {
            assert_eq!(
                t.driver_of(&format!("01:00.{f}")).as_deref(),
                Some("vfio-pci"),
                "{entry}: function {f}; {log:#?}"
            );
        }
        for f in 4..7 {
            let bdf = format!("01:00.{f}");
            assert_eq!(t.driver_of(&bdf), None, "{entry}: function {f}");
            assert_eq!(
                t.override_of(&bdf).trim(),
                "(null)",
                "{entry}: function {f}"
            );
        }
        assert_eq!(t.override_of("00:11.0").trim(), "(null)", "the root port");
        for (f, id, kind, part) in [
            (1, "10de:10f8", "audio device", "audio"),
            (2, "10de:1ad8", "USB controller", "USB"),
            (3, "10de:1ad9", "serial bus controller (UCSI)", "UCSI"),
        ] {
            let line = format!("0000:01:00.{f} [{id}] {kind} ({part} companion of 0000:01:00.0): bound to vfio-pci via modprobe");
            assert!(has(&log, &line), "{entry}: {line}\n{log:#?}");
        }
        // Another vendor's xHCI and the storage function stay, named with the way to take them;
        // the function in another group is not the card's concern.
        assert!(
            has(&log, "IOMMU group 1: 0000:01:00.4 [1022:15e0] (USB controller), 0000:01:00.5 [10de:1234] (storage controller) stay with the host, so a VM cannot use this group; to include them add 0000:01:00.4@1022:15e0+guarded,0000:01:00.5@10de:1234+guarded"),
            "{entry}: {log:#?}"
        );
        assert!(!has(&log, "01:00.6"), "{entry}: {log:#?}");
        assert!(log
            .last()
            .unwrap()
            .starts_with("vfio-early: summary: 4 bound, 0 refused, 0 failed, 0 bad entries in "));
    }
}

#[test]
fn cmdline_pins_every_function_of_the_card_and_the_boot_takes_them() {
    let t = whole_card_host();
    let (code, out, err) = run(&t, &["cmdline", "01:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "vfio-early.devices=0000:01:00.0@10de:1e84,0000:01:00.1@10de:10f8,0000:01:00.2@10de:1ad8+guarded,0000:01:00.3@10de:1ad9\n"
    );
    for f in 1..4 {
        assert!(
            err.contains(&format!("0000:01:00.{f} comes along")),
            "{err}"
        );
    }
    t.cmdline(out.trim());
    let log = boot(&t);
    for f in 0..4 {
        assert_eq!(
            t.driver_of(&format!("01:00.{f}")).as_deref(),
            Some("vfio-pci"),
            "{log:#?}"
        );
    }
}

#[test]
fn a_keyboard_on_the_card_s_usb_is_named_by_every_host_command() {
    let t = whole_card_host();
    let usb = "sys/devices/pci0000:01/0000:01:00.2/usb3";
    // A keyboard (HID, class 03) on a hub, and a disk (mass storage, 08) beside it.
    t.file(
        &format!("{usb}/3-1/3-1.2/3-1.2:1.0/bInterfaceClass"),
        "03\n",
    )
    .file(&format!("{usb}/3-1/3-1:1.0/bInterfaceClass"), "09\n")
    .file(&format!("{usb}/3-2/3-2:1.0/bInterfaceClass"), "08\n")
    .symlink(&format!("{usb}/3-2/port"), "../../../..")
    .file("etc/vfio-early.conf", "devices = 01:00.0\n");
    let said = "0000:01:00.2, a USB controller the next boot gives to vfio-pci, has a keyboard or mouse attached (3-1.2:1.0): it goes to the VM with the card";
    let (_, out, _) = run(&t, &["status"]);
    assert!(out.contains(said), "status: {out}");
    let (_, out, _) = run(&t, &["check"]);
    assert!(
        out.contains(said)
            && out.contains(
                "fix: plug the keyboard and mouse into a port of the machine's own USB controller"
            ),
        "check: {out}"
    );
    let (code, _, err) = run(&t, &["cmdline", "01:00.0"]);
    assert!(code == 0 && err.contains(said), "cmdline: {err}");
    t.remove("etc/vfio-early.conf");
    let (_, _, err) = run(&t, &["add", "--dry-run", "01:00.0"]);
    assert!(err.contains(said), "add: {err}");
    t.file("etc/vfio-early.conf", "devices = 01:00.0\n");
    // Without the card's USB controller in the plan, nothing is said.
    t.remove(&format!("{usb}/3-1/3-1.2/3-1.2:1.0/bInterfaceClass"));
    let (_, out, _) = run(&t, &["check"]);
    assert!(!out.contains("keyboard or mouse"), "{out}");
}

/// [`whole_card`] as the host sees it: what the kernel needs to judge the next boot.
fn whole_card_host() -> FakeTree {
    let t = FakeTree::new();
    whole_card(&t);
    t.file("proc/sys/kernel/osrelease", "6.1.0-test\n");
    t
}

#[test]
fn the_card_s_own_usb_needs_no_guard_under_any_group_policy() {
    let t = whole_card_host();
    let (_, out, _) = run(
        &t,
        &[
            "plan",
            "--cmdline",
            "vfio-early.devices=01:00.0 vfio-early.group=whole",
        ],
    );
    assert!(out.contains("0000:01:00.2 [10de:1ad8] USB controller (IOMMU group member of 0000:01:00.0): would bind to vfio-pci"), "{out}");
    // Another vendor's xHCI in the group is still the machine's: guarded.
    assert!(out.contains("0000:01:00.4 [1022:15e0] USB controller (IOMMU group member of 0000:01:00.0): refused: class guard"), "{out}");
}

#[test]
fn a_virtual_function_on_the_slot_is_not_the_card() {
    let t = FakeTree::new();
    whole_card(&t);
    t.symlink("sys/bus/pci/devices/0000:01:00.2/physfn", "../0000:01:00.0")
        .cmdline("vfio-early.devices=01:00.0");
    let log = boot(&t);
    assert_eq!(t.driver_of("01:00.2"), None, "{log:#?}");
    assert!(
        has(&log, "0000:01:00.2 [10de:1ad8] (USB controller)"),
        "named: {log:#?}"
    );
    assert_eq!(t.driver_of("01:00.3").as_deref(), Some("vfio-pci"));
}

#[test]
fn a_card_part_a_built_in_driver_holds_needs_unbind() {
    let t = FakeTree::new();
    whole_card(&t);
    t.set_driver("01:00.2", Some("xhci_hcd"));
    t.cmdline("vfio-early.devices=01:00.0");
    let (_, out, _) = run(&t, &["plan"]);
    assert!(
        out.contains("0000:01:00.2 [10de:1ad8] USB controller (USB companion of 0000:01:00.0): refused: bound to xhci_hcd; hint: add +unbind to its entry"),
        "{out}"
    );
    assert!(out.contains("0000:01:00.3 [10de:1ad9] serial bus controller (UCSI) (UCSI companion of 0000:01:00.0): would bind to vfio-pci"), "{out}");
    let (_, out, _) = run(
        &t,
        &["plan", "--cmdline", "vfio-early.devices=01:00.0+unbind"],
    );
    assert!(
        out.contains("0000:01:00.2 [10de:1ad8] USB controller (USB companion of 0000:01:00.0): would bind to vfio-pci after unbinding it from xhci_hcd"),
        "{out}"
    );
    // Asked for by itself, the card's USB controller is a USB controller like any: guarded.
    let (_, out, _) = run(
        &t,
        &["plan", "--cmdline", "vfio-early.devices=01:00.2+unbind"],
    );
    assert!(
        out.contains("(entry 01:00.2+unbind): refused: class guard: a USB controller"),
        "{out}"
    );
}

#[test]
fn a_reset_method_is_set_read_back_and_said_and_bad_ones_named() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    card(&t, 2, 2);
    t.file(
        "sys/devices/pci0000:01/0000:01:00.0/reset_method",
        "flr bus\n",
    )
    .modprobe_binds()
    .cmdline(
        "vfio-early.devices=01:00.0+reset=bus,02:00.0+reset=flr,03:00.0+reset=warm,04:00.0+reset=",
    );
    let log = boot(&t);
    assert_eq!(
        t.read("sys/bus/pci/devices/0000:01:00.0/reset_method"),
        "bus"
    );
    assert!(
        has(
            &log,
            "0000:01:00.0: reset method bus set; reset_method reads \"bus\""
        ),
        "{log:#?}"
    );
    // No attribute (a kernel before 5.15): said, and the card taken all the same.
    assert!(
        has(
            &log,
            "0000:02:00.0: reset method flr not set: there is no reset_method attribute"
        ),
        "{log:#?}"
    );
    assert!(!t.exists("sys/devices/pci0000:02/0000:02:00.0/reset_method"));
    assert_eq!(t.driver_of("02:00.0").as_deref(), Some("vfio-pci"));
    assert!(
        has(
            &log,
            "bad device entry \"03:00.0+reset=warm\": unknown reset method \"warm\""
        ),
        "{log:#?}"
    );
    assert!(
        has(
            &log,
            "bad device entry \"04:00.0+reset=\": +reset= needs a method"
        ),
        "{log:#?}"
    );
    assert!(
        log.last()
            .unwrap()
            .starts_with("vfio-early: summary: 4 bound, 0 refused, 0 failed, 2 bad entries"),
        "{log:#?}"
    );
}

#[test]
fn identical_twin_stays_with_the_host() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    card(&t, 2, 2);
    t.modprobe_binds().cmdline("vfio-early.devices=02:00.0");
    boot(&t);
    assert_eq!(t.driver_of("02:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(t.driver_of("02:00.1").as_deref(), Some("vfio-pci"));
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
    assert_eq!(t.override_of("01:00.1").trim(), "(null)");
}

#[test]
fn id_entries_take_every_match() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    card(&t, 2, 2);
    t.modprobe_binds().cmdline("vfio-early.devices=10de:1c03");
    let log = boot(&t);
    for b in ["01:00.0", "01:00.1", "02:00.0", "02:00.1"] {
        assert_eq!(t.driver_of(b).as_deref(), Some("vfio-pci"), "{b}: {log:#?}");
    }
}

#[test]
fn bad_tokens_are_named_and_the_valid_entry_applied() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.modprobe_binds()
        .file("etc/vfio-early.conf", "devices = 01:00.0\nwhat is this\n")
        .cmdline("vfio-early.devices=zz:00.0,../../x,/sys/bus vfio-early.bogus=1");
    let log = boot(&t);
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
    for needle in [
        "kernel command line: bad device entry \"zz:00.0\"",
        "bad device entry \"../../x\"",
        "bad device entry \"/sys/bus\"",
        "unknown key \"bogus\"",
        "/etc/vfio-early.conf line 2: \"what is this\" is not `key = value`",
    ] {
        assert!(has(&log, needle), "{needle} missing: {log:#?}");
    }
    assert!(
        !t.exists("x") && !t.exists("sys/bus/x"),
        "no token reaches a path"
    );
    // Only the device entries are bad entries; the bad key and line are counted apart.
    assert!(
        has(&log, "3 bad entries, 2 other input problems in "),
        "{log:#?}"
    );
}

#[test]
fn guarded_classes_need_a_pin_and_an_allow() {
    let t = FakeTree::new();
    t.device(Dev::new("00:1f.0", 0x8086, 0x2918, 0x060100).group(9))
        .device(Dev::new("00:1f.2", 0x8086, 0x2922, SATA).group(9))
        .device(Dev::new("00:1f.3", 0x8086, 0x2930, 0x0c0500).group(9))
        .modprobe_binds()
        .cmdline("vfio-early.devices=00:1f.2,00:1f.0");
    let log = boot(&t);
    assert!(
        has(
            &log,
            "0000:00:1f.2 [8086:2922] storage controller (entry 00:1f.2): refused: class guard"
        ),
        "{log:#?}"
    );
    assert!(has(&log, "0000:00:1f.0 [8086:2918] bridge (entry 00:1f.0): refused: class guard: bridges are never bound"));
    assert_eq!(t.override_of("00:1f.2").trim(), "(null)");
    assert_eq!(t.modprobe_log(), "", "nothing to bind, nothing loaded");

    t.cmdline("vfio-early.devices=00:1f.3@8086:2930+guarded");
    let log = boot(&t);
    assert_eq!(
        t.driver_of("00:1f.3").as_deref(),
        Some("vfio-pci"),
        "{log:#?}"
    );
    assert_eq!(t.driver_of("00:1f.2"), None, "no storage companion");
    assert_eq!(t.override_of("00:1f.2").trim(), "(null)");
    assert_eq!(t.override_of("00:1f.0").trim(), "(null)");
}

#[test]
fn boot_display_needs_permission() {
    let t = FakeTree::new();
    t.device(
        Dev::new("00:02.0", 0x1234, 0x1111, DISPLAY)
            .group(3)
            .boot_vga(true),
    )
    .modprobe_binds()
    .cmdline("vfio-early.devices=00:02.0");
    let log = boot(&t);
    assert!(has(&log, "refused: boot display (boot_vga=1)"), "{log:#?}");
    assert_eq!(t.override_of("00:02.0").trim(), "(null)");
    t.cmdline("vfio-early.devices=00:02.0+boot-vga");
    boot(&t);
    assert_eq!(t.driver_of("00:02.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn firmware_framebuffer_in_a_bar_marks_the_boot_display() {
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x10de, 0x1c03, DISPLAY).group(1).bar(
        1,
        0xc000_0000,
        0xcfff_ffff,
        0x0014_220c,
    ))
    .file(
        "proc/iomem",
        "c0000000-cfffffff : 0000:01:00.0\n  c0000000-c07fffff : BOOTFB\n",
    )
    .cmdline("vfio-early.devices=01:00.0");
    let log = boot(&t);
    assert!(
        has(
            &log,
            "boot display (a firmware framebuffer lies in its BAR)"
        ),
        "{log:#?}"
    );
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
    // Listed under no device (a BAR the PCI core did not claim): placed by the BARs instead.
    t.file(
        "proc/iomem",
        "c0000000-c07fffff : BOOTFB
",
    );
    let log = boot(&t);
    assert!(
        has(&log, "a firmware framebuffer lies in its BAR"),
        "{log:#?}"
    );
    // Listed under another device: not this display's, and its BARs are not even read.
    t.file(
        "proc/iomem",
        "c0000000-cfffffff : 0000:07:00.0\n  c0000000-c07fffff : BOOTFB\n",
    )
    .file(
        &format!("{}/resource", FakeTree::dev_rel("01:00.0")),
        "garbage",
    )
    .modprobe_binds();
    let log = boot(&t);
    assert!(has(&log, "bound to vfio-pci"), "{log:#?}");
}

#[test]
fn pinned_id_mismatch_is_refused() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.modprobe_binds()
        .cmdline("vfio-early.devices=01:00.0@1002:67df");
    let log = boot(&t);
    assert!(
        has(&log, "its ID does not match the expected 1002:67df"),
        "{log:#?}"
    );
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
    assert_eq!(t.override_of("01:00.1").trim(), "(null)");
}

#[test]
fn kill_switch_wins() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.modprobe_binds()
        .file("etc/vfio-early.conf", "devices = 01:00.0\n")
        .cmdline("vfio-early.devices=01:00.0 vfio-early.off");
    let log = boot(&t);
    assert!(has(&log, "disabled by vfio-early.off"), "{log:#?}");
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
    assert_eq!(t.modprobe_log(), "");
}

#[test]
fn no_iommu_group_is_refused_with_the_hint() {
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x10de, 0x1c03, DISPLAY))
        .cmdline("vfio-early.devices=01:00.0");
    let log = boot(&t);
    assert!(
        has(
            &log,
            "no IOMMU group: the IOMMU is off; hint: add intel_iommu=on"
        ),
        "{log:#?}"
    );
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
}

#[test]
fn registered_vfio_pci_takes_the_probe_path() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.driver_registered("vfio-pci")
        .cmdline("vfio-early.devices=01:00.0");
    let log = boot(&t);
    assert_eq!(
        t.modprobe_log(),
        "",
        "no modprobe when vfio-pci is registered"
    );
    assert_eq!(
        t.override_of("01:00.1"),
        "\n",
        "not taken (fake kernel), so released"
    );
    // The fake kernel does not bind on drivers_probe; the last write there is the release probe.
    assert_eq!(t.read("sys/bus/pci/drivers_probe"), "0000:01:00.1");
    assert!(
        has(&log, "not bound: vfio-pci did not take it (no driver)"),
        "{log:#?}"
    );
    assert!(has(
        &log,
        "override cleared and re-probed so the host keeps it"
    ));
}

#[test]
fn a_bound_device_moves_only_with_unbind() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.set_driver("0000:01:00.1", Some("snd_hda_intel"));
    t.modprobe_binds().cmdline("vfio-early.devices=01:00.0");
    let log = boot(&t);
    assert!(has(&log, "0000:01:00.1 [10de:10f1] audio device (audio companion of 0000:01:00.0): refused: bound to snd_hda_intel; hint: add +unbind"), "{log:#?}");
    assert_eq!(t.driver_of("01:00.1").as_deref(), Some("snd_hda_intel"));
    assert!(has(
        &log,
        "IOMMU group 1: 0000:01:00.1 [10de:10f1] (audio device) stay with the host"
    ));

    let t = FakeTree::new();
    card(&t, 1, 1);
    t.set_driver("0000:01:00.1", Some("snd_hda_intel"));
    t.modprobe_binds()
        .cmdline("vfio-early.devices=01:00.0+unbind");
    boot(&t);
    // The fake kernel keeps the link, but the unbind request was written first.
    assert_eq!(
        t.read("sys/bus/pci/drivers/snd_hda_intel/unbind"),
        "0000:01:00.1"
    );
}

#[test]
fn a_second_run_changes_nothing() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.modprobe_binds().cmdline("vfio-early.devices=01:00.0");
    boot(&t);
    t.file("dev/kmsg", "");
    let log = boot(&t);
    assert!(has(&log, "0000:01:00.0 [10de:1c03] display controller (entry 01:00.0): already on vfio-pci; nothing to do"), "{log:#?}");
    assert_eq!(t.modprobe_log(), "vfio-pci\n", "loaded once");
}

#[test]
fn failed_modprobe_releases_and_names_the_cause() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.script(
        "sbin/modprobe",
        "#!/bin/sh\necho 'modprobe: FATAL: Module vfio-pci not found' >&2\nexit 1\n",
    )
    .cmdline("vfio-early.devices=01:00.0");
    let log = boot(&t);
    assert!(
        has(&log, "loading vfio-pci failed: ")
            && has(
                &log,
                "exit status: 1 modprobe: FATAL: Module vfio-pci not found"
            ),
        "modprobe's own words are quoted: {log:#?}"
    );
    assert_eq!(
        t.read("run/vfio-early/modprobe.log"),
        "modprobe: FATAL: Module vfio-pci not found\n"
    );
    assert_eq!(t.override_of("01:00.0"), "\n");

    t.modprobe_exit(None)
        .file("dev/kmsg", "")
        .cmdline("vfio-early.devices=01:00.0 vfio-early.on-fail=fence");
    let log = boot(&t);
    assert!(
        has(
            &log,
            "left fenced (vfio-early.on-fail=fence); now with no driver"
        ),
        "{log:#?}"
    );
    assert_eq!(t.override_of("01:00.0"), "vfio-pci");
}

#[test]
fn a_modprobe_past_the_deadline_is_left_running_and_nothing_more_is_written() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    card(&t, 2, 2);
    // A modprobe slower than the deadline: the run stops waiting at the deadline, does not kill
    // it, and writes nothing more.
    let done = t.path("modprobe-finished");
    t.modprobe(common::Modprobe::Log, "/bin/sh")
        .script(
            "sbin/modprobe",
            &format!("#!/bin/sh\nsleep 3\necho done >{}\n", done.display()),
        )
        .cmdline("vfio-early.devices=01:00.0,02:00.0 vfio-early.timeout=1");
    let log = boot(&t);
    assert!(!done.exists(), "the run returned before modprobe ended");
    assert_eq!(
        t.read("sys/bus/pci/drivers_probe"),
        "",
        "no probe after the deadline"
    );
    assert_eq!(
        t.override_of("01:00.0"),
        "vfio-pci",
        "fenced before the deadline, and left so"
    );
    assert!(
        has(
            &log,
            "modprobe vfio-pci still running at the deadline: outcome unknown"
        ),
        "{log:#?}"
    );
    assert!(has(&log, "4 unknown (modprobe still running)"), "{log:#?}");
    let state = t.read("run/vfio-early/state.json");
    assert_eq!(
        state.matches("\"result\":\"unknown\"").count(),
        4,
        "{state}"
    );
    // Never killed: it finishes on its own.
    for _ in 0..100 {
        if done.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(done.exists(), "modprobe was not left to finish");
}

#[test]
fn the_log_stays_within_the_kernel_budget_and_ends_with_the_summary() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    let junk: Vec<String> = (0..12).map(|i| format!("junk{i}")).collect();
    t.modprobe_binds()
        .cmdline(&format!("vfio-early.devices=01:00.0,{}", junk.join(",")));
    let log = boot(&t);
    assert_eq!(log.len(), 10, "{log:#?}");
    let last = log.last().unwrap();
    assert!(
        last.contains("summary: 2 bound, 0 refused, 0 failed, 12 bad entries"),
        "{last}"
    );
    assert!(last.contains("records over the kernel log budget are in /run/vfio-early/state.json"));
    // The state file has them all.
    let state = t.read("run/vfio-early/state.json");
    assert!(state.contains("junk11"));

    // With printk_devkmsg=on the kernel does not rate-limit: everything is logged.
    t.file("proc/sys/kernel/printk_devkmsg", "on\n")
        .file("dev/kmsg", "");
    assert!(boot(&t).len() > 12);
}

#[test]
fn state_file_says_what_was_asked_and_done() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.modprobe_binds().cmdline("vfio-early.devices=01:00.0,zz");
    boot(&t);
    let s = t.read("run/vfio-early/state.json");
    for needle in [
        r#""asked":["01:00.0"]"#,
        r#""problems":["kernel command line: bad device entry \"zz\": "#,
        r#"{"bdf":"0000:01:00.0","id":"10de:1c03","class":"0x030000","driver_before":"","why":"entry 01:00.0","result":"bound","detail":"bound to vfio-pci via modprobe","driver_now":"vfio-pci"}"#,
    ] {
        assert!(s.contains(needle), "{needle}\nnot in\n{s}");
    }
}

#[test]
fn boot_mode_refuses_outside_an_initramfs() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.remove("etc/initrd-release")
        .cmdline("vfio-early.devices=01:00.0");
    // The host build says on stderr what it does instead, and which commands show the rest.
    let (code, out, err) = run(&t, &[]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.contains("bind acts only inside an initramfs") && err.contains("vfio-early plan"),
        "{err}"
    );
    // The boot build, run by hand: the kernel log and stderr.
    let (code, _, err) = exe::run(exe::boot_exe(), &t, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("not inside an initramfs: nothing done; boot mode refuses"),
        "{err}"
    );
    assert!(has(&t.kmsg_lines(), "not inside an initramfs"));
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
    // initramfs-tools images are recognised by their own files.
    t.file("scripts/functions", "")
        .file("conf/initramfs.conf", "")
        .modprobe_binds();
    boot(&t);
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn plan_reads_everything_and_writes_nothing() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.remove("etc/initrd-release");
    let (code, out, err) = run(&t, &["plan", "--cmdline", "vfio-early.devices=01:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "0000:01:00.0 [10de:1c03] display controller (entry 01:00.0): would bind to vfio-pci"
        ),
        "{out}"
    );
    assert!(out.contains("0000:01:00.1"));
    assert_eq!(t.override_of("01:00.0").trim(), "(null)");
    assert!(!t.exists("run/vfio-early/state.json"));
    assert_eq!(t.kmsg(), "", "plan logs to stderr, not the kernel");

    let (code, _, err) = run(&t, &["plan", "--cmdline", "vfio-early.devices=01:00.0,bad"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad device entry \"bad\""), "{err}");
    let (code, _, err) = run(&t, &["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown argument \"--frobnicate\""));
}

#[test]
fn legacy_hacks_are_named() {
    let t = FakeTree::new();
    card(&t, 1, 1);
    t.modprobe_binds()
        .file(
            "etc/modprobe.d/vfio.conf",
            "options vfio-pci ids=10de:1c03\ninstall vfio-pci /usr/local/bin/override.sh\n",
        )
        .cmdline("vfio-pci.ids=10de:1c03 vfio-early.devices=01:00.0");
    let log = boot(&t);
    assert!(
        has(&log, "the command line also has vfio-pci.ids="),
        "{log:#?}"
    );
    assert!(has(
        &log,
        "vfio.conf: `options vfio-pci ids=` grabs every device"
    ));
    assert!(has(&log, "an `install vfio-pci` directive"));
}

#[test]
fn help_and_version() {
    let t = FakeTree::new();
    let (code, out, _) = run(&t, &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("vfio-early.devices=LIST") && out.contains("plan"));
    let (code, out, _) = run(&t, &["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("vfio-early "));
}

/// The boot build binds and answers --help/--version; every host command is refused there.
#[test]
fn boot_build_binds_only() {
    let t = FakeTree::new();
    let (code, out, _) = exe::run(exe::boot_exe(), &t, &["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("boot build") && !out.contains("vfio-early rom"),
        "{out}"
    );
    let (code, out, _) = exe::run(exe::boot_exe(), &t, &["--version"]);
    assert_eq!((code, out.starts_with("vfio-early ")), (0, true), "{out}");
    for args in [
        &["plan"][..],
        &["config"],
        &["rom", "known"],
        &["bind", "--cmdline", "x"],
    ] {
        let (code, out, err) = exe::run(exe::boot_exe(), &t, args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert!(err.contains("unknown argument"), "{args:?}: {err}");
    }
    // `bind` spelled out is the same run as none.
    card(&t, 1, 1);
    t.modprobe_binds().cmdline("vfio-early.devices=01:00.0");
    let (code, _, err) = exe::run(exe::boot_exe(), &t, &["bind"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
}

/// `vfio-early config`: the file's settings by the boot's parser (what the hooks ask for
/// build-strict); problems named on stderr with exit 1, an unreadable file exit 2.
#[test]
fn config_reports_the_file_and_names_its_problems() {
    let t = FakeTree::new();
    let (code, out, err) = run(&t, &["config"]);
    assert_eq!(code, 0, "no file: defaults; stderr: {err}");
    assert!(
        out.contains("build-strict = no\n") && out.contains("group = companions\n"),
        "{out}"
    );

    t.file(
        "etc/vfio-early.conf",
        "devices = 01:00.0, zz:00.0\nBUILD_STRICT\nbuild-strict = YES # wanted\nfoo = 1\n",
    );
    let (code, out, err) = run(&t, &["config"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("devices = 01:00.0\n") && out.contains("build-strict = yes\n"),
        "{out}"
    );
    assert!(
        err.contains("line 1: bad device entry \"zz:00.0\""),
        "{err}"
    );
    assert!(
        err.contains("line 2: unknown key \"BUILD_STRICT\""),
        "{err}"
    );
    assert!(err.contains("line 4: unknown key \"foo\""), "{err}");

    let conf = t.root.join("etc/vfio-early.conf");
    std::fs::remove_file(&conf).expect("remove the file");
    std::fs::create_dir(&conf).expect("a directory in its place");
    let (code, out, err) = run(&t, &["config"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("vfio-early.conf"), "{err}");

    let (code, _, err) = run(&t, &["config", "--cmdline", "x"]);
    assert_eq!(code, 2, "{err}");
}
