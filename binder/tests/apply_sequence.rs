// SPDX-License-Identifier: MIT OR Apache-2.0
//! The exact sequence of kernel writes, recorded through the `Kernel` interface.

mod common;

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Dev, FakeTree};
use vfio_early_core::config::{OnFail, Origin, Problems, Settings};
use vfio_early_core::outcome::{Deadline, Left, Outcome, Via};
use vfio_early_core::plan;
use vfio_early_engine::apply::{self, Ctx, Kernel, ModprobeError};
use vfio_early_engine::scan;
use vfio_early_system::files::Dir;
use vfio_early_system::sysfs::Root;

/// Records every call; `bind_on_modprobe` lets the tree imitate vfio-pci's module init.
struct Recorder<'a> {
    tree: &'a FakeTree,
    calls: Vec<String>,
    bind_on_modprobe: bool,
}

impl Kernel for Recorder<'_> {
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let rel = path.strip_prefix(&self.tree.root).unwrap_or(path);
        self.calls.push(format!("{} <- {value:?}", rel.display()));
        Ok(())
    }
    fn modprobe(&mut self, module: &str, _: Instant, _: Option<&Dir>) -> Result<(), ModprobeError> {
        self.calls.push(format!("modprobe {module}"));
        if self.bind_on_modprobe {
            // The override was only recorded, so set it as the kernel would have.
            for b in ["0000:01:00.0", "0000:01:00.1"] {
                self.tree.file(
                    &format!("sys/bus/pci/devices/{b}/driver_override"),
                    "vfio-pci\n",
                );
            }
            self.tree.vfio_pci_init();
        }
        Ok(())
    }
}

fn tree() -> FakeTree {
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x10de, 0x1c03, 0x030000).group(1))
        .device(
            Dev::new("01:00.1", 0x10de, 0x10f1, 0x040300)
                .group(1)
                .driver("snd_hda_intel"),
        );
    t
}

fn plan_of(t: &FakeTree, cmdline: &str) -> plan::Plan {
    let mut s = Settings::default();
    s.apply_cmdline(
        cmdline.as_bytes(),
        Origin::Cmdline,
        &mut Problems::default(),
    );
    let (inv, _) = scan::scan(&Root::new(&t.root), &s.entries);
    plan::plan(&s, &inv)
}

fn outcomes<K: Kernel>(t: &FakeTree, cmdline: &str, k: &mut K) -> Vec<Outcome> {
    let plan = plan_of(t, cmdline);
    let root = Root::new(&t.root);
    let mut ctx = Ctx {
        root: &root,
        kernel: k,
        deadline: Deadline {
            start: Instant::now(),
            limit: Duration::from_secs(10),
        },
        on_fail: OnFail::Release,
        log_dir: None,
    };
    apply::apply(&mut ctx, &plan).to_vec()
}

#[test]
fn override_then_unbind_then_one_modprobe() {
    let t = tree();
    let mut k = Recorder {
        tree: &t,
        calls: vec![],
        bind_on_modprobe: true,
    };
    let out = outcomes(&t, "vfio-early.devices=01:00.0+unbind", &mut k);
    assert_eq!(
        k.calls,
        [
            "sys/bus/pci/devices/0000:01:00.0/driver_override <- \"vfio-pci\"",
            // Fenced before it is unbound: it can go nowhere but vfio-pci.
            "sys/bus/pci/devices/0000:01:00.1/driver_override <- \"vfio-pci\"",
            "sys/bus/pci/devices/0000:01:00.1/driver/unbind <- \"0000:01:00.1\"",
            "modprobe vfio-pci",
            // Still on snd_hda_intel here: released, the host keeps it.
            "sys/bus/pci/devices/0000:01:00.1/driver_override <- \"\\n\"",
            "sys/bus/pci/drivers_probe <- \"0000:01:00.1\"",
        ]
    );
    // The audio keeps snd_hda_intel in the fake tree (the unbind was only recorded).
    assert_eq!(
        out[0],
        Outcome::Bound {
            via: Via::Modprobe,
            unbound_from: None
        }
    );
    assert!(matches!(
        out[1],
        Outcome::Failed {
            left: Left::Released,
            ..
        }
    ));
}

#[test]
fn registered_driver_means_drivers_probe_per_device_and_release_on_failure() {
    let t = tree();
    t.driver_registered("vfio-pci");
    let mut k = Recorder {
        tree: &t,
        calls: vec![],
        bind_on_modprobe: false,
    };
    let out = outcomes(&t, "vfio-early.devices=01:00.0", &mut k);
    assert_eq!(
        k.calls,
        [
            "sys/bus/pci/devices/0000:01:00.0/driver_override <- \"vfio-pci\"",
            "sys/bus/pci/drivers_probe <- \"0000:01:00.0\"",
            // Nothing bound it (fake kernel): give it back.
            "sys/bus/pci/devices/0000:01:00.0/driver_override <- \"\\n\"",
            "sys/bus/pci/drivers_probe <- \"0000:01:00.0\"",
        ]
    );
    assert!(matches!(
        out[0],
        Outcome::Failed {
            left: Left::Released,
            ..
        }
    ));
    // The audio companion is refused (bound, no +unbind): no write for it.
    assert_eq!(out[1], Outcome::AsPlanned);
}

/// modprobe finds no vfio-pci (an image without it); the add-on's loader then answers `addon`,
/// imitating vfio-pci's module init when it loads.
struct NoModprobe<'a> {
    tree: &'a FakeTree,
    addon: Result<bool, &'static str>,
    calls: Vec<String>,
}

impl Kernel for NoModprobe<'_> {
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let rel = path.strip_prefix(&self.tree.root).unwrap_or(path);
        self.calls.push(format!("{} <- {value:?}", rel.display()));
        std::fs::write(path, value)
    }
    fn modprobe(&mut self, _: &str, _: Instant, _: Option<&Dir>) -> Result<(), ModprobeError> {
        self.calls.push("modprobe".into());
        Err(ModprobeError::Failed(
            "modprobe: FATAL: Module vfio-pci not found"
                .try_into()
                .unwrap(),
        ))
    }
    fn load_addon(&mut self, _: Instant) -> Result<bool, heapless::String<200>> {
        self.calls.push("load_addon".into());
        match self.addon {
            Ok(true) => {
                self.tree.vfio_pci_init();
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(e.try_into().unwrap()),
        }
    }
}

#[test]
fn the_addon_loads_vfio_pci_only_when_modprobe_finds_none_and_its_failure_releases() {
    use vfio_early_core::outcome::Failure;
    for addon in [
        Ok(true),
        Ok(false),
        Err("the add-on was built for kernel 6.1.0-49-amd64"),
    ] {
        let t = tree();
        let mut k = NoModprobe {
            tree: &t,
            addon,
            calls: Vec::new(),
        };
        let cmdline = "vfio-early.devices=01:00.0";
        let out = outcomes(&t, cmdline, &mut k);
        let plan = plan_of(&t, cmdline);
        let at = plan
            .items
            .iter()
            .position(|i| i.bdf.to_string() == "0000:01:00.0")
            .unwrap();
        let load = k.calls.iter().position(|c| c == "load_addon").unwrap();
        assert!(
            load > k.calls.iter().position(|c| c == "modprobe").unwrap(),
            "{:?}",
            k.calls
        );
        match (addon, &out[at]) {
            (Ok(true), Outcome::Bound { via, .. }) => assert_eq!(*via, Via::Addon),
            (
                Ok(false),
                Outcome::Failed {
                    reason: Failure::Modprobe(_),
                    left,
                    ..
                },
            )
            | (
                Err(_),
                Outcome::Failed {
                    reason: Failure::Addon(_),
                    left,
                    ..
                },
            ) => {
                assert_eq!(*left, Left::Released, "{addon:?}");
                assert!(
                    k.calls[load..]
                        .iter()
                        .any(|c| c.ends_with("driver_override <- \"\\n\"")),
                    "{:?}",
                    k.calls
                );
            }
            (a, o) => panic!("{a:?}: {o:?}"),
        }
        if let (Err(_), Outcome::Failed { reason, .. }) = (addon, &out[at]) {
            let said = reason.to_string();
            assert!(
                said.contains("modprobe found none") && said.contains("built for kernel"),
                "{said}"
            );
        }
    }
}

/// Writes for real into the tree and records; `reset_method` writes fail with `reset_error`.
struct Writer<'a> {
    tree: &'a FakeTree,
    calls: Vec<String>,
    reset_error: Option<i32>,
}

impl Kernel for Writer<'_> {
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let rel = path.strip_prefix(&self.tree.root).unwrap_or(path);
        self.calls.push(format!("{} <- {value:?}", rel.display()));
        if let (Some(errno), true) = (self.reset_error, path.ends_with("reset_method")) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        // As sysfs: an attribute that is not there is not created.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)?;
        io::Write::write_all(&mut f, value.as_bytes())
    }
    fn modprobe(&mut self, module: &str, _: Instant, _: Option<&Dir>) -> Result<(), ModprobeError> {
        self.calls.push(format!("modprobe {module}"));
        match module {
            "vfio-pci" => {
                self.tree.vfio_pci_init();
                Ok(())
            }
            other => Err(ModprobeError::Failed(
                heapless::String::try_from(format!("FATAL: Module {other} not found").as_str())
                    .unwrap(),
            )),
        }
    }
}

fn writer(tree: &FakeTree, reset_error: Option<i32>) -> Writer<'_> {
    Writer {
        tree,
        calls: vec![],
        reset_error,
    }
}

fn reset_tree() -> FakeTree {
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x1002, 0x67df, 0x030000).group(1))
        .device(Dev::new("01:00.1", 0x1002, 0xaaf0, 0x040300).group(1))
        .file(
            "sys/devices/pci0000:01/0000:01:00.0/reset_method",
            "flr bus\n",
        );
    t
}

#[test]
fn the_reset_method_is_set_after_the_override_and_before_vfio_pci_probes() {
    let t = reset_tree();
    let mut k = writer(&t, None);
    let out = outcomes(&t, "vfio-early.devices=01:00.0+reset=bus", &mut k);
    assert_eq!(
        k.calls,
        [
            "sys/bus/pci/devices/0000:01:00.0/driver_override <- \"vfio-pci\"",
            "sys/bus/pci/devices/0000:01:00.0/reset_method <- \"bus\"",
            // The companion has no reset of its own asked for.
            "sys/bus/pci/devices/0000:01:00.1/driver_override <- \"vfio-pci\"",
            "modprobe vfio-pci",
        ]
    );
    assert_eq!(
        t.read("sys/bus/pci/devices/0000:01:00.0/reset_method"),
        "bus"
    );
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Bound { .. })),
        "{out:?}"
    );
}

#[test]
fn a_reset_method_refused_or_with_no_attribute_still_takes_the_device() {
    // The kernel refuses `bus` on a card whose functions share the bus (EINVAL).
    let t = reset_tree();
    let mut k = writer(&t, Some(nix::libc::EINVAL));
    let out = outcomes(&t, "vfio-early.devices=01:00.0+reset=bus", &mut k);
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Bound { .. })),
        "{out:?}"
    );
    assert_eq!(
        t.read("sys/bus/pci/devices/0000:01:00.0/reset_method"),
        "flr bus\n"
    );
    // A kernel before 5.15: no attribute.
    let t = reset_tree();
    t.remove("sys/devices/pci0000:01/0000:01:00.0/reset_method");
    let mut k = writer(&t, None);
    let out = outcomes(&t, "vfio-early.devices=01:00.0+reset=flr", &mut k);
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Bound { .. })),
        "{out:?}"
    );
    assert!(
        !t.exists("sys/devices/pci0000:01/0000:01:00.0/reset_method"),
        "never created"
    );
}

#[test]
fn device_specific_loads_vendor_reset_first_and_goes_on_without_it() {
    let t = reset_tree();
    let mut k = writer(&t, None);
    let out = outcomes(
        &t,
        "vfio-early.devices=01:00.0+reset=device_specific",
        &mut k,
    );
    assert_eq!(k.calls[0], "modprobe vendor-reset", "{:?}", k.calls);
    assert!(k.calls.contains(
        &"sys/bus/pci/devices/0000:01:00.0/reset_method <- \"device_specific\"".to_string()
    ));
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Bound { .. })),
        "{out:?}"
    );
    // Asked for by no entry: not loaded.
    let t = reset_tree();
    let mut k = writer(&t, None);
    outcomes(&t, "vfio-early.devices=01:00.0+reset=flr", &mut k);
    assert!(
        !k.calls.iter().any(|c| c.contains("vendor-reset")),
        "{:?}",
        k.calls
    );
}
