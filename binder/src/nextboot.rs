// SPDX-License-Identifier: MIT OR Apache-2.0
//! How the next boot will see this machine, for the host commands (`status`, `cmdline`,
//! `check`, `add`): the boot's own input reader, scan and planner, on the running system, with
//! one change. At boot the binder runs before udev, when no driver that is a loadable module has
//! been loaded yet: a device such a driver holds now is free then. Only drivers built into the
//! kernel (and so already bound at boot) still hold their devices.

use vfio_early_core::config::{Settings, MAX_ENTRIES};
use vfio_early_core::device::Inventory;
use vfio_early_core::entry::Entry;
use vfio_early_core::plan::{self, Plan, VFIO};
use vfio_early_engine::scan::{self, Errors};
use vfio_early_engine::sources::Sources;
use vfio_early_system::sysfs::{self, Root};

/// The next boot's view and plan.
pub struct NextBoot {
    pub input: Sources,
    pub inventory: Inventory,
    pub errors: Errors,
    pub plan: Plan,
}

/// The drivers built into the running kernel, as far as the next boot is concerned.
pub struct Builtin {
    /// Module names (`-` as `_`) of the running kernel's `modules.builtin`; `None` when it
    /// cannot be read (then `/sys/module/NAME/initstate` decides: only loadable modules have it).
    listed: Option<Vec<String>>,
    root: Root,
}

fn module_name(s: &str) -> String {
    s.replace('-', "_")
}

impl Builtin {
    pub fn read(root: &Root) -> Builtin {
        let release = sysfs::read_attr::<128>(&root.path(vfio_early_core::layout::OSRELEASE))
            .ok()
            .flatten()
            .map(|r| r.trim().to_string())
            .unwrap_or_default();
        let listed = (!release.is_empty() && !release.contains('/'))
            .then(|| {
                let p = root
                    .path("lib/modules")
                    .join(&release)
                    .join("modules.builtin");
                vfio_early_system::read::read_input(&p, 4 << 20).ok()
            })
            .flatten()
            .map(|input| {
                input
                    .text()
                    .lines()
                    .filter_map(|l| l.trim().rsplit('/').next()?.strip_suffix(".ko"))
                    .map(module_name)
                    .collect()
            });
        Builtin {
            listed,
            root: root.clone(),
        }
    }

    /// Whether `driver` holds its devices already when the binder runs at boot. A driver with
    /// no module (`drivers/NAME/module` absent) is part of the kernel proper. vfio-pci never
    /// holds a device then: the binder is what gives them to it.
    pub fn holds_at_boot(&self, driver: &str) -> bool {
        if driver == VFIO {
            return false;
        }
        let link = self
            .root
            .path(vfio_early_core::layout::PCI_DRIVERS)
            .join(driver)
            .join("module");
        let Some(module) = std::fs::read_link(&link)
            .ok()
            .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()))
        else {
            return true;
        };
        match &self.listed {
            Some(names) => names.contains(&module_name(&module)),
            None => !self
                .root
                .path("sys/module")
                .join(&module)
                .join("initstate")
                .exists(),
        }
    }

    /// The inventory as the binder will find it at boot.
    pub fn at_boot(&self, inv: &mut Inventory) {
        for d in inv.devices.iter_mut() {
            if d.driver
                .as_deref()
                .is_some_and(|drv| !self.holds_at_boot(drv))
            {
                d.driver = None;
            }
        }
    }
}

/// The plan the next boot would make from the configuration it will read (the config file,
/// dracut's cmdline.d and this boot's command line), or, given `entries`, for those instead.
pub fn plan(root: &Root, entries: Option<heapless::Vec<Entry, MAX_ENTRIES>>) -> NextBoot {
    let mut input = vfio_early_engine::sources::read(root, None);
    if let Some(entries) = entries {
        input.settings.entries = entries;
    }
    let (mut inventory, errors) = scan::scan(root, &input.settings.entries);
    Builtin::read(root).at_boot(&mut inventory);
    let plan = plan::plan(&input.settings, &inventory);
    NextBoot {
        input,
        inventory,
        errors,
        plan,
    }
}

impl NextBoot {
    pub fn settings(&self) -> &Settings {
        &self.input.settings
    }
}

/// The most input devices named behind one USB controller, and the most sysfs entries looked
/// at to find them (a hub tree of a few devices is tens of entries).
const MAX_INPUTS: usize = 8;
const MAX_USB_ENTRIES: usize = 1024;

/// What the next boot's settings say that a person asking for a device must know: the kill
/// switch is set (it takes nothing), or both the kernel command line and the configuration file
/// name devices (it takes both lists, and removing a card from one leaves it in the other).
/// `adding`: the file is about to name devices (`add`).
pub fn source_warnings(root: &Root, next: &NextBoot, adding: bool) -> Vec<String> {
    let mut out = Vec::new();
    if next.settings().off {
        out.push("the kill switch is set (vfio-early.off on the kernel command line, or off = yes in /etc/vfio-early.conf): the next boot takes nothing".to_string());
    }
    // Each source read alone (the next boot's settings merge them).
    let mut problems = Default::default();
    let mut from_cmdline = Settings::default();
    vfio_early_engine::sources::apply_cmdline_file(
        &root.path(vfio_early_core::layout::PROC_CMDLINE),
        vfio_early_core::config::Origin::Cmdline,
        &mut from_cmdline,
        &mut problems,
    );
    let mut from_file = Settings::default();
    if !adding {
        vfio_early_engine::sources::apply_config_file(
            &root.path(vfio_early_core::layout::CONFIG_FILE),
            &mut from_file,
            &mut problems,
        );
    }
    let cmdline = !from_cmdline.entries.is_empty();
    let file = adding || !from_file.entries.is_empty();
    if cmdline && file {
        out.push("both the kernel command line (vfio-early.devices=) and /etc/vfio-early.conf name devices: the next boot takes both lists, and a card removed from one stays in the other; keep one".to_string());
    }
    out
}

/// What to say of the input devices behind a USB controller the next boot takes.
pub fn input_warning(bdf: &vfio_early_core::pci::Bdf, names: &[String]) -> String {
    format!(
        "{bdf}, a USB controller the next boot gives to vfio-pci, has a keyboard or mouse attached ({}): it goes to the VM with the card, and the host loses it",
        names.join(", ")
    )
}

/// The fix for [`input_warning`].
pub const INPUT_FIX: &str =
    "plug the keyboard and mouse into a port of the machine's own USB controller";

impl NextBoot {
    /// For each USB controller the next boot takes: the USB interfaces of class 03 (HID:
    /// keyboards, mice) attached below it now, by their sysfs names (`3-1:1.0`). They go to the
    /// VM with the card; a keyboard on a card's USB-C port leaves the host without one.
    pub fn inputs_behind_taken_usb(
        &self,
        root: &Root,
    ) -> Vec<(vfio_early_core::pci::Bdf, Vec<String>)> {
        self.plan
            .items
            .iter()
            .filter(|i| matches!(i.decision, plan::Decision::Bind { .. }))
            .filter(|i| i.dev.as_ref().is_some_and(|d| d.class.base_sub() == 0x0c03))
            .filter_map(|i| {
                let found = usb_inputs(&root.device(&i.bdf));
                (!found.is_empty()).then_some((i.bdf, found))
            })
            .collect()
    }
}

/// HID interfaces below a USB controller's sysfs directory: its `usbN` root hubs and the
/// device and interface directories under them (their names are digits, `-`, `.` and `:`),
/// never following a link; bounded in entries and results.
fn usb_inputs(dir: &std::path::Path) -> Vec<String> {
    let usb_name = |n: &str| {
        n.strip_prefix("usb")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b"-.:".contains(&b)))
    };
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_USB_ENTRIES || found.len() >= MAX_INPUTS {
                return found;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if !usb_name(&name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let class = sysfs::read_attr::<8>(&e.path().join("bInterfaceClass"))
                .ok()
                .flatten();
            if name.contains(':') && class.as_deref().map(str::trim) == Some("03") {
                found.push(name);
            } else {
                todo.push(e.path());
            }
        }
    }
    found.sort();
    found
}
