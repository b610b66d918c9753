// SPDX-License-Identifier: MIT OR Apache-2.0
//! Deciding, without touching anything, which devices go to vfio-pci and why the others do not.

use core::fmt;

use crate::config::{GroupPolicy, Settings, MAX_ENTRIES};
use crate::device::{Device, Inventory, Name, MAX_DEVICES};
use crate::entry::{Flags, Selector};
use crate::iomem;
use crate::pci::{Bdf, Class, IdMatch, PciId};

/// Group warnings: one per IOMMU group of a taken device, so never more than the devices.
pub const MAX_WARNINGS: usize = MAX_DEVICES;
/// Every device considered plus every listed address that does not exist: cannot overflow.
pub const MAX_ITEMS: usize = MAX_DEVICES + MAX_ENTRIES;

pub const VFIO: &str = "vfio-pci";

/// What a display's companion is on its card. A card's parts share its slot, whose functions
/// are numbered 0-7 ([`Bdf`]'s function is three bits): a display brings at most 7 companions,
/// all among the inventory's devices ([`MAX_DEVICES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The HDMI/DP audio function (any vendor's: some cards carry another maker's codec).
    Audio,
    /// The card's own USB controller (USB-C on the card; the display's vendor ID).
    Usb,
    /// The card's USB Type-C UCSI controller (serial bus, class 0x0c80; the display's vendor ID).
    Ucsi,
}

impl Part {
    /// The part a function of `lead`'s slot and group is, if it is one: never a virtual function
    /// (SR-IOV: it belongs to its physical function, not to the card), never another vendor's
    /// USB or serial bus (an APU slot also holds the machine's own xHCI and its PSP).
    pub fn of(lead: &Device, m: &Device) -> Option<Part> {
        if !lead.class.is_display()
            || m.virtfn
            || !m.bdf.same_slot(&lead.bdf)
            || m.group != lead.group
        {
            return None;
        }
        let same_vendor = m.id.vendor == lead.id.vendor;
        match m.class.base_sub() {
            0x0403 => Some(Part::Audio),
            0x0c03 if same_vendor => Some(Part::Usb),
            0x0c80 if same_vendor => Some(Part::Ucsi),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Audio => "audio",
            Part::Usb => "USB",
            Part::Ucsi => "UCSI",
        }
    }
}

/// Why a device is in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Selected by entry number `n` (an index into `Settings::entries`).
    Listed(usize),
    /// A function of a listed display's card (its slot and IOMMU group), see [`Part`].
    Companion(Bdf, Part),
    /// Another endpoint of a listed device's IOMMU group (`group=whole`).
    GroupMember(Bdf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    IdMismatch {
        expected: IdMatch,
    },
    Bridge,
    Guarded {
        kind: &'static str,
    },
    NoGroup {
        iommu_off: bool,
    },
    BootDisplay {
        framebuffer: bool,
    },
    Bound {
        driver: Name,
    },
    StrictGroup {
        group: u32,
        outside: Bdf,
    },
    /// The scan did not see what this decision needs.
    PartialView(Partial),
}

/// What a refused device's decision would have needed to see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partial {
    /// Not every member of its IOMMU group was read.
    Group(u32),
    /// The device itself was not read.
    Listed,
    /// Its ID entry matched more devices than one boot reads.
    IdMatches,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Override and probe; unbind this driver first.
    Bind {
        unbind: Option<Name>,
    },
    /// Already on vfio-pci: nothing to do.
    Already,
    Refuse(Refusal),
}

impl Decision {
    pub fn takes(&self) -> bool {
        matches!(self, Decision::Bind { .. } | Decision::Already)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub bdf: Bdf,
    /// `None` when a listed address does not exist.
    pub dev: Option<Device>,
    pub why: Why,
    pub flags: Flags,
    pub decision: Decision,
}

/// Endpoints named per group warning; more are counted.
pub const MAX_OUTSIDE_NAMED: usize = 8;

/// The endpoints that stay with the host although they share an IOMMU group with a taken device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outside {
    pub group: u32,
    pub devs: heapless::Vec<Member, MAX_OUTSIDE_NAMED>,
    pub more: usize,
}

/// What a group warning says of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub bdf: Bdf,
    pub id: PciId,
    pub class: Class,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub items: heapless::Vec<Item, MAX_ITEMS>,
    pub outside: heapless::Vec<Outside, MAX_WARNINGS>,
    /// ID entries (indexes into `Settings::entries`) that match no device on the bus.
    pub unmatched: heapless::Vec<usize, { crate::config::MAX_ENTRIES }>,
}

impl Plan {
    fn has(&self, bdf: &Bdf) -> bool {
        self.items.iter().any(|i| i.bdf == *bdf)
    }

    fn push(&mut self, item: Item) {
        // Items are unique per address and come from the inventory or the entries: MAX_ITEMS
        // holds them all.
        let _ = self.items.push(item);
    }
}

/// The whole decision: pure, from settings and the gathered facts.
pub fn plan(settings: &Settings, inv: &Inventory) -> Plan {
    let mut plan = Plan::default();
    for (n, entry) in settings.entries.iter().enumerate() {
        match &entry.selector {
            Selector::Bdf { bdf, pin } => {
                if plan.has(bdf) {
                    continue;
                }
                let dev = inv.get(bdf).cloned();
                let decision = match (&dev, pin) {
                    (None, _) if inv.unseen.listed.contains(bdf) => {
                        Decision::Refuse(Refusal::PartialView(Partial::Listed))
                    }
                    (None, _) => Decision::Refuse(Refusal::Missing),
                    (Some(d), Some(pin)) if !pin.matches(&d.id) => {
                        Decision::Refuse(Refusal::IdMismatch { expected: *pin })
                    }
                    (Some(d), _) => {
                        decide(d, entry.flags, entry.flags.guarded && pin.is_some(), inv)
                    }
                };
                plan.push(Item {
                    bdf: *bdf,
                    dev,
                    why: Why::Listed(n),
                    flags: entry.flags,
                    decision,
                });
            }
            Selector::Id(m) => {
                if !inv.devices.iter().any(|d| m.matches(&d.id)) && !inv.unseen.id_matches {
                    // One slot per entry: never full.
                    let _ = plan.unmatched.push(n);
                }
                for d in inv.devices.iter().filter(|d| m.matches(&d.id)) {
                    if !plan.has(&d.bdf) {
                        plan.push(Item {
                            bdf: d.bdf,
                            dev: Some(d.clone()),
                            why: Why::Listed(n),
                            flags: entry.flags,
                            decision: match inv.unseen.id_matches {
                                // Acting on some of an entry's matches would be a silent cut.
                                true => Decision::Refuse(Refusal::PartialView(Partial::IdMatches)),
                                false => decide(d, entry.flags, entry.flags.guarded, inv),
                            },
                        });
                    }
                }
            }
        }
    }
    add_companions(&mut plan, settings.group, inv);
    check_groups(&mut plan, settings.group, inv);
    plan
}

/// The checks every path goes through, in order of precedence. `guard_lifted`: a guarded class
/// may be taken (its entry pins the ID and says `+guarded`, or it is a card's own part).
fn decide(d: &Device, flags: Flags, guard_lifted: bool, inv: &Inventory) -> Decision {
    let refuse = |r| Decision::Refuse(r);
    if d.class.is_bridge() {
        return refuse(Refusal::Bridge);
    }
    if let Some(kind) = d.class.guarded_kind() {
        if !guard_lifted {
            return refuse(Refusal::Guarded { kind });
        }
    }
    let Some(group) = d.group else {
        return refuse(Refusal::NoGroup {
            iommu_off: !inv.iommu_on,
        });
    };
    if !inv.group_seen_whole(group) {
        return refuse(Refusal::PartialView(Partial::Group(group)));
    }
    let framebuffer = d.class.is_display() && iomem::shows(&inv.framebuffers, &d.bdf, &d.bars);
    if (d.boot_vga || framebuffer) && !flags.boot_vga {
        return refuse(Refusal::BootDisplay { framebuffer });
    }
    match &d.driver {
        None => Decision::Bind { unbind: None },
        Some(drv) if drv == VFIO => Decision::Already,
        Some(drv) if flags.unbind => Decision::Bind {
            unbind: Some(drv.clone()),
        },
        Some(drv) => refuse(Refusal::Bound {
            driver: drv.clone(),
        }),
    }
}

/// A display brings the rest of its card: the functions of its slot and IOMMU group that are
/// its parts ([`Part::of`]); `whole` brings every endpoint of the group.
fn add_companions(plan: &mut Plan, policy: GroupPolicy, inv: &Inventory) {
    let leads: heapless::Vec<(Device, u32, Flags), MAX_DEVICES> = plan
        .items
        .iter()
        .filter(|i| i.decision.takes())
        .filter_map(|i| {
            let d = i.dev.as_ref()?;
            Some((d.clone(), d.group?, i.flags))
        })
        .collect();
    for (lead, group, flags) in leads {
        for m in inv.group_members(group) {
            if plan.has(&m.bdf) || m.class.is_bridge() {
                continue;
            }
            let part = Part::of(&lead, m);
            let why = match (policy, part) {
                (GroupPolicy::Whole, _) => Why::GroupMember(lead.bdf),
                (_, Some(p)) => Why::Companion(lead.bdf, p),
                (_, None) => continue,
            };
            plan.push(Item {
                bdf: m.bdf,
                dev: Some(m.clone()),
                why,
                flags,
                // A companion's identity is not pinned by its lead's entry, so the class guard
                // stays, but for the card's own USB and UCSI controllers: the guard is for the
                // machine's (the keyboard's), and these are pinned by being the display
                // vendor's, on its slot.
                decision: decide(m, flags, part.is_some_and(|p| p != Part::Audio), inv),
            });
        }
    }
}

/// Names every endpoint left outside a taken group; `strict` refuses such groups instead.
fn check_groups(plan: &mut Plan, policy: GroupPolicy, inv: &Inventory) {
    let mut groups: heapless::Vec<u32, MAX_DEVICES> = heapless::Vec::new();
    for g in plan
        .items
        .iter()
        .filter(|i| i.decision.takes())
        .filter_map(|i| i.dev.as_ref()?.group)
    {
        if !groups.contains(&g) {
            let _ = groups.push(g);
        }
    }
    for g in groups {
        let outside: heapless::Vec<&Device, MAX_DEVICES> = inv
            .group_members(g)
            .filter(|m| {
                !m.class.is_bridge()
                    && !plan
                        .items
                        .iter()
                        .any(|i| i.bdf == m.bdf && i.decision.takes())
            })
            .collect();
        match (policy, outside.first()) {
            (_, None) => {}
            (GroupPolicy::Strict, Some(first)) => {
                for item in plan.items.iter_mut() {
                    let in_group = item.dev.as_ref().and_then(|d| d.group) == Some(g);
                    if in_group && matches!(item.decision, Decision::Bind { .. }) {
                        item.decision = Decision::Refuse(Refusal::StrictGroup {
                            group: g,
                            outside: first.bdf,
                        });
                    }
                }
            }
            _ => {
                let mut o = Outside {
                    group: g,
                    devs: heapless::Vec::new(),
                    more: 0,
                };
                for m in outside {
                    let member = Member {
                        bdf: m.bdf,
                        id: m.id,
                        class: m.class,
                    };
                    if o.devs.push(member).is_err() {
                        o.more += 1;
                    }
                }
                // One per group of a taken device: MAX_WARNINGS holds them all.
                let _ = plan.outside.push(o);
            }
        }
    }
}

impl fmt::Display for Refusal {
    /// The reason, then a hint a person can act on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing => f.write_str(
                "no such PCI device; hint: check `lspci -D`, the address may have changed",
            ),
            Refusal::IdMismatch { expected } => write!(
                f,
                "its ID does not match the expected {expected}; hint: the bus may have been renumbered (new card, firmware update): check `lspci -nn` and fix the entry"
            ),
            Refusal::Bridge => f.write_str("class guard: bridges are never bound to vfio-pci"),
            Refusal::Guarded { kind } => write!(
                f,
                "class guard: a {kind} is bound only when its entry pins the ID and says +guarded (it may hold the root disk, network or keyboard); hint: BDF@vendor:device+guarded if you are sure"
            ),
            Refusal::NoGroup { iommu_off: true } => f.write_str(
                "no IOMMU group: the IOMMU is off; hint: add intel_iommu=on (Intel) or amd_iommu=on (AMD) to the kernel command line and enable VT-d / AMD-Vi in the firmware setup",
            ),
            Refusal::NoGroup { iommu_off: false } => f.write_str(
                "no IOMMU group although the IOMMU is on; hint: the device is not behind the IOMMU (check `ls /sys/kernel/iommu_groups/*/devices`)",
            ),
            Refusal::BootDisplay { framebuffer: false } => f.write_str(
                "boot display (boot_vga=1): the host console is on it; hint: add +boot-vga to its entry to take it anyway",
            ),
            Refusal::BootDisplay { framebuffer: true } => f.write_str(
                "boot display (a firmware framebuffer lies in its BAR): the host console is on it; hint: add +boot-vga to its entry to take it anyway",
            ),
            Refusal::Bound { driver } => write!(
                f,
                "bound to {driver}; hint: add +unbind to its entry to move it to vfio-pci"
            ),
            Refusal::StrictGroup { group, outside } => write!(
                f,
                "IOMMU group {group} is not fully covered ({outside} stays outside) and vfio-early.group=strict; hint: list {outside} too"
            ),
            Refusal::PartialView(Partial::Group(group)) => write!(
                f,
                "not every member of IOMMU group {group} could be read (more than {MAX_DEVICES} devices, or a read error logged above): vfio-early does not act on a group it cannot see whole; hint: a group that large is not one a VM can take; check the slot and the firmware's ACS setting"
            ),
            Refusal::PartialView(Partial::Listed) => write!(
                f,
                "the device could not be read (more than {MAX_DEVICES} devices in this boot, or a read error logged above); hint: list fewer devices"
            ),
            Refusal::PartialView(Partial::IdMatches) => write!(
                f,
                "its ID entry matches more than {MAX_DEVICES} devices, more than one boot reads: none of them is taken; hint: select the devices by address"
            ),
        }
    }
}

impl fmt::Display for Outside {
    /// One record per group: the kernel log budget is small.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IOMMU group {}: ", self.group)?;
        for (n, d) in self.devs.iter().enumerate() {
            let sep = if n == 0 { "" } else { ", " };
            write!(f, "{sep}{} [{}] ({})", d.bdf, d.id, d.class.kind())?;
        }
        if self.more > 0 {
            write!(f, " and {} more", self.more)?;
        }
        f.write_str(" stay with the host, so a VM cannot use this group; to include them add ")?;
        for (n, d) in self.devs.iter().enumerate() {
            let sep = if n == 0 { "" } else { "," };
            let guarded = if d.class.guarded_kind().is_some() {
                "+guarded"
            } else {
                ""
            };
            write!(f, "{sep}{}@{}{guarded}", d.bdf, d.id)?;
        }
        f.write_str(" to vfio-early.devices")
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Listed(_) => f.write_str("listed"),
            Why::Companion(lead, part) => write!(f, "{} companion of {lead}", part.as_str()),
            Why::GroupMember(lead) => write!(f, "IOMMU group member of {lead}"),
        }
    }
}
