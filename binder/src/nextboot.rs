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
