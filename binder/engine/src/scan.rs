// SPDX-License-Identifier: MIT OR Apache-2.0
//! One pass over sysfs that gathers every fact the plan needs, and nothing more: the devices the
//! entries select and the other members of their IOMMU groups.

use vfio_early_core::device::{self, Inventory, MAX_DEVICES};
use vfio_early_core::entry::{Entry, Selector};
use vfio_early_core::iomem;
use vfio_early_core::pci::Bdf;
use vfio_early_core::plan::Part;
use vfio_early_system::read::SysError;
use vfio_early_system::sysfs::{self, Root};

/// Scan errors kept; more are counted.
pub const MAX_SCAN_ERRORS: usize = 8;

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

/// Why a device is read: what to mark unseen when it cannot be held.
#[derive(Clone, Copy)]
enum For {
    Listed,
    IdMatch,
    Group(u32),
}

impl Scan<'_> {
    fn add(&mut self, bdf: &Bdf, purpose: For) {
        if self.inv.get(bdf).is_some() {
            return;
        }
        let known_group = match purpose {
            For::Group(g) => Some(g),
            _ => None,
        };
        let held = match sysfs::read_device(self.root, bdf, known_group) {
            Ok(Some(dev)) => {
                let group = dev.group;
                let held = self.inv.devices.push(dev).is_ok();
                if !held {
                    self.capacity("devices selected or sharing their IOMMU groups");
                    // Its own group is not seen whole either.
                    if let Some(g) = group {
                        self.unseen_group(g);
                    }
                }
                held
            }
            Ok(None) => true,
            Err(e) => {
                self.errors.push(e);
                false
            }
        };
        if !held {
            match purpose {
                For::Listed => {
                    // One slot per entry: cannot overflow.
                    let _ = self.inv.unseen.listed.push(*bdf);
                }
                For::IdMatch => self.inv.unseen.id_matches = true,
                For::Group(g) => self.unseen_group(g),
            }
        }
    }

    fn unseen_group(&mut self, g: u32) {
        // One slot per group of a held device (at most MAX_DEVICES): cannot overflow.
        if !self.inv.unseen.groups.contains(&g) {
            let _ = self.inv.unseen.groups.push(g);
        }
    }

    /// One error record per run for running out of room.
    fn capacity(&mut self, what: &'static str) {
        if !self.full {
            self.full = true;
            self.errors.push(SysError::Capacity {
                what,
                cap: MAX_DEVICES,
            });
        }
    }
}

/// Addresses held by candidates for scanning with ID entries.
const MAX_CANDIDATES: usize = 4 * MAX_DEVICES;

/// `(bus, devfn)` of every device whose vendor:device an ID entry names, from one read of
/// `/proc/bus/pci/devices`; `None` (scan everything) when it cannot be read whole or holds more
/// candidates than kept.
fn id_candidates(
    root: &Root,
    entries: &[Entry],
) -> Option<heapless::Vec<(u8, u8), MAX_CANDIDATES>> {
    let mut out = heapless::Vec::new();
    // Read a line at a time (a line per device: about 1 MiB at 4096 devices); any line that
    // does not parse, or more candidates than kept, and the pre-filter is not trusted.
    let mut whole = true;
    let read = vfio_early_system::read::read_lines(&root.path("proc/bus/pci/devices"), |line| {
        let Some((bus, devfn, vendor, device)) = device::parse_proc_pci_line(line) else {
            whole = false;
            return;
        };
        let named = entries.iter().any(|e| match &e.selector {
            Selector::Id(m) => m.vendor == vendor && m.device == device,
            Selector::Bdf { .. } => false,
        });
        if named && !out.contains(&(bus, devfn)) {
            whole &= out.push((bus, devfn)).is_ok();
        }
    });
    (read.ok()? && whole).then_some(out)
}

/// Whether a function that could be a card's USB or UCSI part ([`Part::of`] a display of the
/// inventory) is an SR-IOV virtual function (`physfn`): asked only of those, one `lstat` each, so
/// a boot pays nothing for it on other machines.
fn mark_virtual_functions(root: &Root, inv: &mut Inventory) {
    for n in 0..inv.devices.len() {
        let d = &inv.devices[n];
        let candidate = inv
            .devices
            .iter()
            .any(|lead| matches!(Part::of(lead, d), Some(Part::Usb | Part::Ucsi)));
        if candidate {
            let bdf = d.bdf;
            inv.devices[n].virtfn = sysfs::is_virtual_function(root, &bdf);
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
            s.add(bdf, For::Listed);
        }
    }
    // ID entries need the whole bus: stream it, reading only `uevent` until something matches.
    if entries
        .iter()
        .any(|e| matches!(e.selector, Selector::Id(_)))
    {
        let mut matches: heapless::Vec<Bdf, MAX_DEVICES> = heapless::Vec::new();
        let mut over = false;
        // Where /proc/bus/pci/devices is readable, only the addresses whose vendor:device an
        // entry names are looked at; it has no domain, so every domain's device at such an
        // address is (uevent then decides).
        let candidates = id_candidates(root, entries);
        let listed = sysfs::for_each_bdf(&root.devices_dir(), |bdf| {
            let devfn = bdf.device << 3 | bdf.function;
            if candidates
                .as_ref()
                .is_some_and(|c| !c.contains(&(bdf.bus, devfn)))
            {
                return;
            }
            let uevent = root.attr(&bdf, "uevent");
            let hit = sysfs::read_attr::<{ sysfs::UEVENT_CAP }>(&uevent)
                .ok()
                .flatten()
                .and_then(|t| device::parse_uevent(&t))
                .is_some_and(|(id, _)| entries.iter().any(|e| e.selects(&bdf, &id)));
            over |= hit && matches.push(bdf).is_err();
        });
        if let Err(e) = listed {
            s.errors.push(e);
            s.inv.unseen.id_matches = true;
        }
        if over {
            s.inv.unseen.id_matches = true;
            s.capacity("devices matching the ID entries");
        }
        for bdf in &matches {
            s.add(bdf, For::IdMatch);
        }
    }
    // Group members: what the companions come from and what makes a group usable or not. A
    // group not read whole is marked, so the plan refuses it instead of judging a part.
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
            s.unseen_group(g);
        }
        if over {
            s.unseen_group(g);
            s.capacity("devices in one IOMMU group");
        }
        for bdf in &members {
            s.add(bdf, For::Group(g));
        }
    }
    s.inv.devices.sort_unstable_by_key(|d| d.bdf);
    mark_virtual_functions(root, &mut s.inv);
    // A device with a group proves the IOMMU on; only without one is the directory asked (to
    // tell "the IOMMU is off" from "this device is not behind it").
    s.inv.iommu_on = s.inv.devices.iter().any(|d| d.group.is_some())
        || sysfs::dir_has_entries(&root.path(vfio_early_core::layout::IOMMU_GROUPS));
    if s.inv.devices.iter().any(|d| d.class.is_display()) {
        match sysfs::framebuffers(root) {
            Ok(fbs) => s.inv.framebuffers = fbs,
            // Whether a display shows the console cannot be told: their groups are not seen
            // whole, so they are refused with the reason (the error is logged).
            Err(e) => {
                s.errors.push(e);
                let groups: heapless::Vec<u32, MAX_DEVICES> = s
                    .inv
                    .devices
                    .iter()
                    .filter(|d| d.class.is_display())
                    .filter_map(|d| d.group)
                    .collect();
                for g in groups {
                    s.unseen_group(g);
                }
            }
        }
    }
    // BARs matter only to place a firmware framebuffer /proc/iomem lists under no device.
    if iomem::needs_bars(&s.inv.framebuffers) {
        let mut unread: heapless::Vec<u32, MAX_DEVICES> = heapless::Vec::new();
        for d in s.inv.devices.iter_mut().filter(|d| d.class.is_display()) {
            match sysfs::read_bars(root, &d.bdf) {
                Ok(bars) => d.bars = bars,
                Err(e) => {
                    // Whether it shows the console cannot be told: its group is not seen whole.
                    s.errors.push(e);
                    if let Some(g) = d.group {
                        let _ = unread.push(g);
                    }
                }
            }
        }
        for g in unread {
            s.unseen_group(g);
        }
    }
    (s.inv, s.errors)
}
