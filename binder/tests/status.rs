// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early status` and `vfio-early cmdline` on fake trees: the table and its JSON, the next
//! boot's fate by the boot's own planner (modular drivers unbound, built-in ones bound), bad
//! pci.ids and state files, unprivileged readers, and the property that `status` and a real boot
//! of the same machine agree on every device.

mod common;
#[path = "common/exe.rs"]
mod exe;
#[path = "common/kmod.rs"]
mod kmod;

use std::process::Command;

use common::{Dev, FakeTree};
use proptest::prelude::*;
use serde_json::Value;

const DISPLAY: u32 = 0x030000;
const AUDIO: u32 = 0x040300;
const USB: u32 = 0x0c0330;
const BRIDGE: u32 = 0x060400;
const RELEASE: &str = "6.1.0-test";

fn status(t: &FakeTree, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    exe::run(exe::HOST, t, &all)
}

fn status_json(t: &FakeTree, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = status(t, &all);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {out}"))
}

fn device<'a>(j: &'a Value, bdf: &str) -> Option<&'a Value> {
    j["devices"]
        .as_array()?
        .iter()
        .find(|d| d["bdf"] == common::full_bdf(bdf).as_str())
}

fn driver_module(t: &FakeTree, driver: &str, module: &str, builtin: bool) {
    kmod::driver_module(t, RELEASE, driver, module, builtin);
}

/// The demo machine: boot VGA at 00:02.0, card A at 01:00.x and its identical twin at 02:00.x,
/// each behind a root port, a USB controller beside card A in its group.
fn machine() -> FakeTree {
    let t = FakeTree::new();
    t.device(
        Dev::new("00:02.0", 0x1234, 0x1111, DISPLAY)
            .group(0)
            .boot_vga(true)
            .driver("bochs-drm"),
    );
    for bus in [1u8, 2] {
        let g = u32::from(bus) * 10;
        t.device(
            Dev::new(&format!("00:0{}.0", bus + 3), 0x1b36, 0x000c, BRIDGE)
                .group(g + 1)
                .driver("pcieport"),
        )
        .device(
            Dev::new(&format!("{bus:02x}:00.0"), 0x1234, 0x1111, DISPLAY)
                .subsys(0x1af4, 0x1100)
                .group(g)
                .driver("bochs-drm"),
        )
        .device(
            Dev::new(&format!("{bus:02x}:00.1"), 0x8086, 0x293e, AUDIO)
                .subsys(0x1af4, 0x1100)
                .group(g)
                .driver("snd_hda_intel"),
        );
    }
    t.device(
        Dev::new("01:00.2", 0x1b36, 0x000d, USB)
            .group(10)
            .driver("xhci_hcd"),
    );
    driver_module(&t, "bochs-drm", "bochs", false);
    driver_module(&t, "snd_hda_intel", "snd_hda_intel", false);
    driver_module(&t, "xhci_hcd", "xhci_pci", false);
    t.modprobe_binds();
    t
}

#[test]
fn the_table_by_group_with_both_boots() {
    let t = machine();
    t.file("etc/vfio-early.conf", "devices = 01:00.0\n");
    let j = status_json(&t, &[]);
    assert_eq!(j["schema"], "vfio-early-status");
    assert_eq!(j["version"], 1);
    assert_eq!(j["iommu"], true);
    assert_eq!(j["state"]["status"], "absent");
    let a = device(&j, "01:00.0").expect("card A shown");
    assert_eq!(
        (a["vendor"].as_str(), a["device"].as_str()),
        (Some("1234"), Some("1111"))
    );
    assert_eq!(
        (a["subvendor"].as_str(), a["subdevice"].as_str()),
        (Some("1af4"), Some("1100"))
    );
    assert_eq!(a["group"], 10);
    assert_eq!(a["driver"], "bochs-drm");
    assert_eq!(a["driver_override"], Value::Null, "(null) is no override");
    assert_eq!(
        a["next_boot"]["fate"], "would-bind",
        "bochs is a module: free at boot"
    );
    assert_eq!(a["next_boot"]["why"], "entry 01:00.0");
    let audio = device(&j, "01:00.1").expect("its audio shown");
    assert_eq!(audio["next_boot"]["why"], "audio companion of 0000:01:00.0");
    let usb = device(&j, "01:00.2").expect("an endpoint of a shown group is shown");
    assert_eq!(usb["next_boot"]["fate"], "not-asked");
    let vga = device(&j, "00:02.0").expect("the boot VGA is a display");
    assert_eq!(
        (
            vga["boot_display"].as_bool(),
            vga["boot_display_by"].as_str()
        ),
        (Some(true), Some("boot_vga"))
    );
    let twin = device(&j, "02:00.0").unwrap();
    assert_eq!(twin["next_boot"]["fate"], "not-asked");
    assert!(
        device(&j, "00:04.0").is_none(),
        "a root port in its own group is not a candidate's"
    );
    let all = status_json(&t, &["--all"]);
    let port = device(&all, "00:04.0").expect("--all shows every device");
    assert_eq!(port["bridge"], true);

    // After a boot of that machine: what this boot did.
    let booted = exe::run(exe::boot_exe(), &boot_tree(&t), &[]);
    assert_eq!(booted.0, 0, "{}", booted.2);
    let (_, human, _) = status(&t, &[]);
    assert!(human.contains("IOMMU group 10\n  0000:01:00.0  display controller [0300]: Device [1234:1111] (subsystem 1af4:1100)"), "{human}");
    assert!(
        human.contains("next boot: would bind to vfio-pci (entry 01:00.0)"),
        "{human}"
    );
    assert!(human.contains("boot display yes (boot_vga)"), "{human}");
}

/// The same machine as its next boot's binder finds it: the modular drivers not loaded yet.
fn boot_tree(host: &FakeTree) -> FakeTree {
    let t = FakeTree::new();
    let out = Command::new("cp")
        .args(["-a", "--no-target-directory"])
        .arg(&host.root)
        .arg(&t.root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for b in t.devices() {
        let modular = t.driver_of(&b).is_some_and(|d| {
            t.exists(&format!("sys/bus/pci/drivers/{d}/module"))
                && t.exists(&format!(
                    "sys/module/{}/initstate",
                    std::fs::read_link(t.path(&format!("sys/bus/pci/drivers/{d}/module")))
                        .unwrap()
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                ))
        });
        if modular {
            t.set_driver(&b, None);
        }
    }
    t
}

#[test]
fn this_boots_records_are_shown_and_bad_state_files_named() {
    let t = machine();
    t.cmdline("vfio-early.devices=01:00.0,02:00.0@10de:ffff");
    let b = boot_tree(&t);
    let (code, _, err) = exe::run(exe::boot_exe(), &b, &[]);
    assert_eq!(code, 0, "{err}");
    t.file(
        "run/vfio-early/state.json",
        &b.read("run/vfio-early/state.json"),
    );
    let j = status_json(&t, &[]);
    assert_eq!(j["state"]["status"], "read");
    assert_eq!(
        device(&j, "01:00.0").unwrap()["this_boot"]["result"],
        "bound"
    );
    let twin = &device(&j, "02:00.0").unwrap()["this_boot"];
    assert_eq!(twin["result"], "refused");
    assert!(
        twin["detail"]
            .as_str()
            .unwrap()
            .contains("its ID does not match"),
        "{twin}"
    );
    assert_eq!(
        device(&j, "00:02.0").unwrap()["this_boot"],
        Value::Null,
        "not asked"
    );

    for (text, word) in [
        ("{\"version\":7,\"devices\":[]}", "other-version"),
        ("{garbage", "garbage"),
        ("", "garbage"),
        (
            "{\"version\":1,\"devices\":[{\"bdf\":\"../../x\"}]}",
            "garbage",
        ),
    ] {
        t.file("run/vfio-early/state.json", text);
        let (code, human, err) = status(&t, &[]);
        assert_eq!(code, 0, "{err}");
        assert!(
            human.contains("/run/vfio-early/state.json"),
            "{text:?}: {human}"
        );
        assert_eq!(status_json(&t, &[])["state"]["status"], word, "{text:?}");
    }
    t.remove("run/vfio-early/state.json")
        .mkdir("run/vfio-early/state.json");
    assert_eq!(status_json(&t, &[])["state"]["status"], "unreadable");
}

#[test]
fn names_from_pci_ids_and_bad_databases_named() {
    let t = machine();
    let (_, human, _) = status(&t, &[]);
    assert!(human.contains("names: no pci.ids"), "{human}");
    t.file(
        "usr/share/misc/pci.ids",
        "1234  QEMU\n\t1111  Standard VGA\n\t\t1af4 1100  QEMU Virtual Machine\nC 03  Display controller\n\t00  VGA compatible controller\n",
    );
    let j = status_json(&t, &[]);
    let a = device(&j, "01:00.0").unwrap();
    assert_eq!(a["names"]["vendor"], "QEMU");
    assert_eq!(a["names"]["device"], "Standard VGA");
    assert_eq!(a["names"]["subsystem"], "QEMU Virtual Machine");
    assert_eq!(a["names"]["class"], "VGA compatible controller");
    assert_eq!(
        device(&j, "01:00.1").unwrap()["names"]["vendor"],
        Value::Null
    );
    let (_, human, _) = status(&t, &[]);
    assert!(human.contains("VGA compatible controller [0300]: QEMU Standard VGA [1234:1111] (subsystem 1af4:1100 QEMU Virtual Machine)"), "{human}");
    for garbage in ["\u{0}\u{7f}\u{1}", "not a database at all\n\t\tzz\n"] {
        t.file("usr/share/misc/pci.ids", garbage);
        let (code, human, err) = status(&t, &[]);
        assert_eq!(code, 0, "{err}");
        assert!(human.contains("not a pci.ids; IDs only"), "{human}");
    }
    t.remove("usr/share/misc/pci.ids")
        .mkdir("usr/share/misc/pci.ids");
    let (code, human, _) = status(&t, &[]);
    assert_eq!(code, 0);
    assert!(
        human.contains("names: ") && human.contains("IDs only"),
        "{human}"
    );
}

#[test]
fn built_in_drivers_hold_their_devices_at_boot() {
    let t = machine();
    // bochs built in: it holds card A already when the binder runs.
    driver_module(&t, "bochs-drm", "bochs", true);
    t.remove("sys/module/bochs/initstate");
    t.file("etc/vfio-early.conf", "devices = 01:00.0\n");
    let j = status_json(&t, &[]);
    let a = device(&j, "01:00.0").unwrap();
    assert_eq!(a["next_boot"]["fate"], "refused");
    assert!(a["next_boot"]["detail"]
        .as_str()
        .unwrap()
        .contains("bound to bochs-drm; hint: add +unbind"));
    // A driver with no module at all is part of the kernel proper.
    t.remove("sys/bus/pci/drivers/bochs-drm/module");
    assert_eq!(
        device(&status_json(&t, &[]), "01:00.0").unwrap()["next_boot"]["fate"],
        "refused"
    );
    // Without modules.builtin, /sys/module/M/initstate tells a loadable module.
    driver_module(&t, "bochs-drm", "bochs", false);
    t.remove(&format!("lib/modules/{RELEASE}/modules.builtin"));
    assert_eq!(
        device(&status_json(&t, &[]), "01:00.0").unwrap()["next_boot"]["fate"],
        "would-bind"
    );
}

#[test]
fn cmdline_pins_what_the_next_boot_would_take() {
    let t = machine();
    let (code, out, err) = exe::run(exe::HOST, &t, &["cmdline", "01:00.0"]);
    assert_eq!(code, 0, "{err}");
    // The whole card, each function pinned to its ID.
    assert_eq!(
        out,
        "vfio-early.devices=0000:01:00.0@1234:1111:1af4:1100,0000:01:00.1@8086:293e:1af4:1100\n"
    );
    assert!(err.contains("0000:01:00.1 comes along"), "{err}");
    assert!(
        err.contains("IOMMU group 10: 0000:01:00.2"),
        "the USB controller is named: {err}"
    );
    // The printed entry is one the boot parser takes.
    t.cmdline(out.trim());
    let b = boot_tree(&t);
    let booted = exe::boot(&b);
    assert!(exe::has(&booted, "summary: 2 bound"), "{booted:#?}");

    let (code, out, err) = exe::run(exe::HOST, &t, &["cmdline", "00:02.0"]);
    assert_eq!((code, out.as_str()), (1, ""), "the boot display is refused");
    assert!(
        err.contains("the next boot would refuse 0000:00:02.0")
            && err.contains("boot display (boot_vga=1)"),
        "{err}"
    );
    let (code, _, err) = exe::run(exe::HOST, &t, &["cmdline", "00:04.0"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("class guard: bridges are never bound"),
        "{err}"
    );
    let (code, out, _) = exe::run(exe::HOST, &t, &["cmdline", "01:00.0", "02:00.0"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("0000:01:00.0@1234:1111:1af4:1100,0000:01:00.1@8086:293e:1af4:1100,0000:02:00.0@1234:1111:1af4:1100,0000:02:00.1@8086:293e:1af4:1100"),
        "{out}"
    );
    for bad in [
        &["cmdline"][..],
        &["cmdline", "zz:00.0"],
        &["cmdline", "07:00.0"],
        &["cmdline", "--x"],
    ] {
        let (code, out, err) = exe::run(exe::HOST, &t, bad);
        assert_eq!((code, out.as_str()), (2, ""), "{bad:?}: {err}");
    }
}

#[test]
fn cmdline_adds_the_iommu_argument_when_it_is_off() {
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x10de, 0x1c03, DISPLAY))
        .file("proc/cpuinfo", "vendor_id\t: AuthenticAMD\n");
    let (code, out, err) = exe::run(exe::HOST, &t, &["cmdline", "01:00.0"]);
    // No group for lack of an IOMMU: the argument that turns it on comes first, the reason on
    // stderr.
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "amd_iommu=on vfio-early.devices=0000:01:00.0@10de:1c03\n"
    );
    assert!(err.contains("no IOMMU group: the IOMMU is off"), "{err}");
    t.file("proc/cpuinfo", "vendor_id\t: GenuineIntel\n");
    let (_, out, _) = exe::run(exe::HOST, &t, &["cmdline", "01:00.0"]);
    assert!(out.starts_with("intel_iommu=on "), "{out}");
    let (_, human, _) = status(&t, &[]);
    assert!(human.contains("IOMMU: off"), "{human}");
}

#[test]
fn an_unprivileged_reader_is_told_what_needs_root() {
    assert!(
        nix_is_root(),
        "needs root: setpriv switches to an unprivileged user only from root"
    );
    let t = machine();
    let ovr = t.path(&format!("{}/driver_override", FakeTree::dev_rel("01:00.0")));
    std::fs::set_permissions(&ovr, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Everything else readable by anyone (the test tree lives under root's target dir).
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe::HOST)
        .args(["--root"])
        .arg(&t.root)
        .args(["status", "--json"])
        .output()
        .expect("setpriv (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        device(&j, "01:00.0").unwrap()["driver_override"],
        "needs root"
    );
    assert_eq!(
        device(&j, "02:00.0").unwrap()["driver_override"],
        Value::Null
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A generated host: 1-3 cards (display + audio, some with a USB controller in the group),
/// drivers bound, each modular or built in; a config naming some of them, by address or ID,
/// with flags, pins right or wrong.
#[derive(Clone, Debug)]
struct Host {
    cards: Vec<Card>,
    group: &'static str,
}

#[derive(Clone, Debug)]
struct Card {
    usb: bool,
    bound: Option<bool>,
    listed: Option<(bool, bool, bool)>,
    boot_vga: bool,
}

fn host() -> impl Strategy<Value = Host> {
    let card = (
        any::<bool>(),
        prop::option::of(any::<bool>()),
        prop::option::of((any::<bool>(), any::<bool>(), any::<bool>())),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(usb, bound, listed, boot_vga)| Card {
            usb,
            bound,
            listed,
            boot_vga,
        });
    (
        prop::collection::vec(card, 1..=3),
        prop::sample::select(vec!["companions", "whole", "strict"]),
    )
        .prop_map(|(cards, group)| Host { cards, group })
}

fn build(h: &Host) -> FakeTree {
    let t = FakeTree::new();
    let mut entries = Vec::new();
    for (n, c) in h.cards.iter().enumerate() {
        let bus = n + 1;
        let g = bus as u32;
        let drv = c
            .bound
            .map(|builtin| (if builtin { "nv_builtin" } else { "nvidia" }, builtin));
        let mut disp = Dev::new(&format!("{bus:02x}:00.0"), 0x10de, 0x1c03, DISPLAY)
            .subsys(0x1043, 0x85f4)
            .group(g)
            .boot_vga(c.boot_vga);
        if let Some((name, _)) = drv {
            disp = disp.driver(name);
        }
        t.device(disp).device(
            Dev::new(&format!("{bus:02x}:00.1"), 0x10de, 0x10f1, AUDIO)
                .group(g)
                .driver("snd_hda_intel"),
        );
        if c.usb {
            t.device(Dev::new(&format!("{bus:02x}:00.2"), 0x10de, 0x1ad8, USB).group(g));
        }
        if let Some((pin_right, unbind, boot)) = c.listed {
            let pin = if pin_right { "10de:1c03" } else { "10de:1c04" };
            let mut e = format!("{bus:02x}:00.0@{pin}");
            if unbind {
                e += "+unbind";
            }
            if boot {
                e += "+boot-vga";
            }
            entries.push(e);
        }
    }
    driver_module(&t, "nvidia", "nvidia", false);
    driver_module(&t, "nv_builtin", "nv_builtin", true);
    driver_module(&t, "snd_hda_intel", "snd_hda_intel", false);
    t.file(
        "etc/vfio-early.conf",
        &format!(
            "group = {}\n{}",
            h.group,
            entries
                .iter()
                .map(|e| format!("devices = {e}\n"))
                .collect::<String>()
        ),
    )
    .modprobe_binds();
    t
}

/// The dry-run boot's verdict for the fate `status` predicts.
fn agrees(predicted: &str, booted: Option<&str>) -> bool {
    match booted {
        Some(word) => predicted == word,
        None => predicted == "not-asked",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// One planner: on every generated host, `status` says for each device what a boot of the
    /// same machine then decides, in the same words. The boot is a dry run (`vfio-early.dry-run`):
    /// what the kernel then does with an unbind is not a fake tree's to show (QEMU row 11a is).
    #[test]
    fn status_and_the_boot_agree(h in host()) {
        let t = build(&h);
        let j = status_json(&t, &["--all"]);
        let b = boot_tree(&t);
        b.cmdline("vfio-early.dry-run");
        let (code, _, err) = exe::run(exe::boot_exe(), &b, &[]);
        prop_assert_eq!(code, 0, "{}", err);
        let state: Value = serde_json::from_str(&b.read("run/vfio-early/state.json")).unwrap();
        let booted = state["devices"].as_array().cloned().unwrap_or_default();
        for d in j["devices"].as_array().unwrap() {
            let bdf = d["bdf"].as_str().unwrap();
            let rec = booted.iter().find(|r| r["bdf"] == bdf);
            let fate = d["next_boot"]["fate"].as_str().unwrap();
            let result = rec.and_then(|r| r["result"].as_str());
            prop_assert!(agrees(fate, result), "{}: status {} vs boot {:?}\nstatus: {}\nboot: {}", bdf, fate, result, d, state);
            if let (Some(r), "refused") = (rec, fate) {
                prop_assert_eq!(&d["next_boot"]["detail"], &r["detail"], "the same words");
                prop_assert_eq!(&d["next_boot"]["why"], &r["why"]);
            }
        }
    }
}
