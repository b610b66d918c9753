// SPDX-License-Identifier: MIT OR Apache-2.0
//! The device vocabulary the planner reasons with, and its pure parsers: what one PCI function
//! is, and what one boot's scan saw (and could not see) of the bus.

use crate::config::MAX_ENTRIES;
use crate::pci::{Bdf, Class, PciId};

/// Devices one boot considers: the selected ones plus every member of their IOMMU groups.
pub const MAX_DEVICES: usize = 64;

/// A driver or module name as sysfs shows it (a longer or non-UTF-8 name is kept shortened).
pub type Name = heapless::String<32>;

/// What the plan needs to know about one PCI function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub bdf: Bdf,
    pub id: PciId,
    pub class: Class,
    /// The driver bound now; `None` only when there is no `driver` link at all.
    pub driver: Option<Name>,
    pub group: Option<u32>,
    pub boot_vga: bool,
    /// An SR-IOV virtual function (sysfs shows `physfn`): part of its physical function, never
    /// of a card.
    pub virtfn: bool,
    /// Memory BARs as `(start, end)`, to place a firmware framebuffer `/proc/iomem` lists under
    /// no device (read only then).
    pub bars: heapless::Vec<(u64, u64), 6>,
}

/// The name of a bound driver from its link's last component: a name that does not fit or is
/// not UTF-8 is shortened and marked, never taken for "no driver" (that would let vfio-early
/// write under a live driver).
pub fn driver_name(raw: &[u8]) -> Name {
    let text = String::from_utf8_lossy(raw);
    let mut name = Name::new();
    if text.len() <= name.capacity() && !text.contains('\u{fffd}') {
        let _ = name.push_str(&text);
        return name;
    }
    for ch in text.chars() {
        if name.len() + ch.len_utf8() > name.capacity() - 3 {
            break;
        }
        let _ = name.push(if ch == '\u{fffd}' { '?' } else { ch });
    }
    let _ = name.push_str("...");
    name
}

/// One boot's view of the bus, with what it could not hold.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Sorted by address.
    pub devices: heapless::Vec<Device, MAX_DEVICES>,
    /// `/sys/kernel/iommu_groups` has groups: the IOMMU is on.
    pub iommu_on: bool,
    pub framebuffers: heapless::Vec<crate::iomem::Framebuffer, { crate::iomem::MAX_FRAMEBUFFERS }>,
    pub unseen: Unseen,
}

/// What the scan did not see whole: the plan refuses whatever depends on it rather than act on
/// a partial view. Capacities cover every case (one group per device, one address per entry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unseen {
    /// Groups with a member not read (over the cap, or a read error).
    pub groups: heapless::Vec<u32, MAX_DEVICES>,
    /// Listed addresses that exist but were not read (no room, or a read error).
    pub listed: heapless::Vec<Bdf, MAX_ENTRIES>,
    /// The ID entries matched more devices than were kept.
    pub id_matches: bool,
}

impl Inventory {
    pub fn get(&self, bdf: &Bdf) -> Option<&Device> {
        self.devices.iter().find(|d| d.bdf == *bdf)
    }

    pub fn group_members(&self, group: u32) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.group == Some(group))
    }

    pub fn group_seen_whole(&self, group: u32) -> bool {
        !self.unseen.groups.contains(&group)
    }
}

/// Identity and class from a device's `uevent` (one read instead of four attribute files).
pub fn parse_uevent(text: &str) -> Option<(PciId, Class)> {
    let mut id = None;
    let mut subsys = (0, 0);
    let mut class = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("PCI_ID", v)) => id = parse_pair(v),
            Some(("PCI_SUBSYS_ID", v)) => subsys = parse_pair(v)?,
            Some(("PCI_CLASS", v)) => class = u32::from_str_radix(v, 16).ok(),
            _ => {}
        }
    }
    let (vendor, device) = id?;
    Some((
        PciId {
            vendor,
            device,
            subvendor: subsys.0,
            subdevice: subsys.1,
        },
        Class(class?),
    ))
}

/// The bound driver named by a device's `uevent` (`DRIVER=`, present only while bound).
pub fn uevent_driver(text: &str) -> Option<Name> {
    text.lines()
        .find_map(|l| l.strip_prefix("DRIVER="))
        .map(|d| driver_name(d.as_bytes()))
}

/// One line of `/proc/bus/pci/devices`: `(bus, devfn, vendor, device)`. The file has no PCI
/// domain: `BBDF\tVVVVDDDD\t...` (drivers/pci/proc.c).
pub fn parse_proc_pci_line(line: &[u8]) -> Option<(u8, u8, u16, u16)> {
    let head = line.get(..14)?;
    if head[4] != b'\t' || head[13] != b'\t' {
        return None;
    }
    let field = |r: core::ops::Range<usize>| {
        let digits = &head[r];
        digits.iter().all(u8::is_ascii_hexdigit).then_some(())?;
        u32::from_str_radix(core::str::from_utf8(digits).ok()?, 16).ok()
    };
    Some((
        field(0..2)? as u8,
        field(2..4)? as u8,
        field(5..9)? as u16,
        field(9..13)? as u16,
    ))
}

fn parse_pair(v: &str) -> Option<(u16, u16)> {
    let (a, b) = v.split_once(':')?;
    Some((
        u16::from_str_radix(a, 16).ok()?,
        u16::from_str_radix(b, 16).ok()?,
    ))
}

/// Memory BARs (`IORESOURCE_MEM`, 0x200) among the first six lines of `resource`.
pub fn parse_bars(text: &str) -> heapless::Vec<(u64, u64), 6> {
    let mut bars = heapless::Vec::new();
    for line in text.lines().take(6) {
        let mut f = line
            .split_whitespace()
            .map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16));
        if let (Some(Ok(start)), Some(Ok(end)), Some(Ok(flags))) = (f.next(), f.next(), f.next()) {
            if flags & 0x200 != 0 && end > start {
                let _ = bars.push((start, end));
            }
        }
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevent_fields() {
        let text = "DRIVER=bochs-drm\nPCI_CLASS=30000\nPCI_ID=1234:1111\nPCI_SUBSYS_ID=1AF4:1100\nPCI_SLOT_NAME=0000:01:00.0\n";
        let (id, class) = parse_uevent(text).unwrap();
        assert_eq!(
            (id.vendor, id.device, id.subvendor, id.subdevice),
            (0x1234, 0x1111, 0x1af4, 0x1100)
        );
        assert_eq!(class, Class(0x030000));
        assert_eq!(parse_uevent("PCI_ID=1234:1111\n"), None, "no class");
        assert_eq!(parse_uevent("PCI_CLASS=30000\nPCI_ID=zz:1\n"), None);
    }

    #[test]
    fn bars_keep_memory_only() {
        let text = "0x00000000fd000000 0x00000000fdffffff 0x0000000000140208\n\
                    0x000000000000c000 0x000000000000c01f 0x0000000000040101\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
        assert_eq!(parse_bars(text).as_slice(), &[(0xfd00_0000, 0xfdff_ffff)]);
        assert!(parse_bars("garbage\n\n").is_empty());
    }

    #[test]
    fn proc_pci_lines() {
        let line =
            "0300\t10de1f02\t10\tf6000000\t0\t0\t0\t0\t0\t0\t1000000\t0\t0\t0\t0\t0\t0\tvfio-pci";
        assert_eq!(
            parse_proc_pci_line(line.as_bytes()),
            Some((0x03, 0x00, 0x10de, 0x1f02))
        );
        assert_eq!(
            parse_proc_pci_line(b"00fa\t80862930\t0"),
            Some((0, 0xfa, 0x8086, 0x2930))
        );
        assert_eq!(parse_proc_pci_line(b"garbage"), None);
        assert_eq!(parse_proc_pci_line(b"030\t10de1f02"), None);
        assert_eq!(parse_proc_pci_line(b"0300\t10de1f02x\t0"), None);
        assert_eq!(parse_proc_pci_line(b"0300\t+0de1f02\t0"), None, "no sign");
    }

    #[test]
    fn driver_names_are_never_lost() {
        assert_eq!(driver_name(b"vfio-pci").as_str(), "vfio-pci");
        let long = driver_name(&[b'x'; 40]);
        assert_eq!(long.len(), 32);
        assert!(long.ends_with("..."));
        let bad = driver_name(b"nv\xffidia");
        assert_eq!(bad.as_str(), "nv?idia...");
        assert_ne!(bad.as_str(), "vfio-pci");
    }
}
