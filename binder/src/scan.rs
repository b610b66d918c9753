// SPDX-License-Identifier: MIT OR Apache-2.0
//! One pass over sysfs that gathers every fact the plan needs, and nothing more: the devices the
//! entries select and the other members of their IOMMU groups.

use crate::entry::{Entry, Selector};
use crate::iomem::{self, MAX_FRAMEBUFFERS};
use crate::pci::Bdf;
use crate::sysfs::{self, Device, Root, SysError};

/// Devices the plan can consider in one boot: selected ones plus their group members.
pub const MAX_DEVICES: usize = 64;
/// Scan errors kept; more are counted.
pub const MAX_SCAN_ERRORS: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Sorted by address.
    pub devices: heapless::Vec<Device, MAX_DEVICES>,
    /// `/sys/kernel/iommu_groups` has groups: the IOMMU is on.
    pub iommu_on: bool,
    pub framebuffers: heapless::Vec<(u64, u64), MAX_FRAMEBUFFERS>,
}

impl Inventory {
    pub fn get(&self, bdf: &Bdf) -> Option<&Device> {
        self.devices.iter().find(|d| d.bdf == *bdf)
    }

    pub fn group_members(&self, group: u32) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.group == Some(group))
    }
}

#[derive(Debug, Default)]
pub struct Errors {
    pub kept: heapless::Vec<SysError, MAX_SCAN_ERRORS>,
    pub dropped: usize,
}

impl Errors {
    fn push(&mut self, e: SysError) {
        if self.kept.push(e).is_err() {
            self.dropped += 1;
        }
    }
}

struct Scan<'a> {
    root: &'a Root,
    inv: Inventory,
    errors: Errors,
    full: bool,
}

impl Scan<'_> {
    fn add(&mut self, bdf: &Bdf) {
        if self.inv.get(bdf).is_some() {
            return;
        }
        match sysfs::read_device(self.root, bdf) {
            Ok(Some(dev)) => {
                if self.inv.devices.push(dev).is_err() && !self.full {
                    self.full = true;
                    self.errors.push(SysError::Capacity {
                        what: "devices selected or sharing their IOMMU groups",
                        cap: MAX_DEVICES,
                    });
                }
            }
            Ok(None) => {}
            Err(e) => self.errors.push(e),
        }
    }
}

pub fn scan(root: &Root, entries: &[Entry]) -> (Inventory, Errors) {
    let mut s = Scan {
        root,
        inv: Inventory::default(),
        errors: Errors::default(),
        full: false,
    };
    for e in entries {
        if let Selector::Bdf { bdf, .. } = &e.selector {
            s.add(bdf);
        }
    }
    // ID entries need the whole bus: stream it, reading only `uevent` until something matches.
    if entries
        .iter()
        .any(|e| matches!(e.selector, Selector::Id(_)))
    {
        let mut matches: heapless::Vec<Bdf, MAX_DEVICES> = heapless::Vec::new();
        let listed = sysfs::for_each_bdf(&root.devices_dir(), |bdf| {
            let uevent = root.attr(&bdf, "uevent");
            let hit = sysfs::read_attr::<{ sysfs::UEVENT_CAP }>(&uevent)
                .ok()
                .flatten()
                .and_then(|t| sysfs::parse_uevent(&t))
                .is_some_and(|(id, _)| entries.iter().any(|e| e.selects(&bdf, &id)));
            if hit && matches.push(bdf).is_err() && !s.full {
                s.full = true;
                s.errors.push(SysError::Capacity {
                    what: "devices matching the ID entries",
                    cap: MAX_DEVICES,
                });
            }
        });
        if let Err(e) = listed {
            s.errors.push(e);
        }
        for bdf in &matches {
            s.add(bdf);
        }
    }
    // Group members: what the companions come from and what makes a group usable or not.
    let mut groups: heapless::Vec<u32, MAX_DEVICES> = heapless::Vec::new();
    for g in s.inv.devices.iter().filter_map(|d| d.group) {
        if !groups.contains(&g) {
            let _ = groups.push(g);
        }
    }
    for g in groups {
        let mut members: heapless::Vec<Bdf, MAX_DEVICES> = heapless::Vec::new();
        let mut over = false;
        let listed = sysfs::for_each_bdf(&root.group_dir(g), |bdf| {
            over |= members.push(bdf).is_err();
        });
        if let Err(e) = listed {
            s.errors.push(e);
        }
        if over && !s.full {
            s.full = true;
            s.errors.push(SysError::Capacity {
                what: "devices in one IOMMU group",
                cap: MAX_DEVICES,
            });
        }
        for bdf in &members {
            s.add(bdf);
        }
    }
    s.inv.devices.sort_unstable_by_key(|d| d.bdf);
    s.inv.iommu_on = std::fs::read_dir(root.path("sys/kernel/iommu_groups"))
        .is_ok_and(|mut d| d.next().is_some());
    if s.inv.devices.iter().any(|d| d.class.is_display()) {
        // A large machine's iomem is tens of KiB; the cap only bounds a pathological one.
        if let Ok(Some(input)) = sysfs::read_input_optional(&root.path("proc/iomem"), 256 * 1024) {
            let text = input.text();
            s.inv.framebuffers = iomem::framebuffers(&text);
        }
    }
    (s.inv, s.errors)
}
