// SPDX-License-Identifier: MIT OR Apache-2.0
//! Names from the PCI ID database (`pci.ids`, the file lspci reads), for the devices a host
//! command shows. Pure: one pass over the text answers every ID asked; a line that does not
//! parse is skipped, so a damaged file costs names, never a crash.
//!
//! Format: `vvvv  vendor`, `\tdddd  device`, `\t\tssss ssss  subsystem`; after them the class
//! list, `C cc  class`, `\tss  subclass`, `\t\tpp  programming interface`.

use vfio_early_core::pci::{Class, PciId};

/// Where distributions install it (Debian `pci.ids`, Fedora `hwdata`, others).
pub const PATHS: [&str; 3] = [
    "usr/share/misc/pci.ids",
    "usr/share/hwdata/pci.ids",
    "usr/share/pci.ids",
];
/// The database is about 1.4 MB; a file ten times that is not one.
pub const CAP: usize = 16 << 20;

/// The names of one device; `None` where the database has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub vendor: Option<String>,
    pub device: Option<String>,
    pub subsystem: Option<String>,
    /// The most specific class name (programming interface, subclass or class).
    pub class: Option<String>,
}

/// What one pass over the database found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Index-aligned with the IDs asked.
    pub names: Vec<Names>,
    /// Lines that parsed: zero means the file is not a pci.ids.
    pub entries: usize,
}

/// `hhhh  name` with `digits` hex digits, two spaces, a name.
fn entry(line: &str, digits: usize) -> Option<(u32, &str)> {
    let head = line.get(..digits)?;
    let rest = line.get(digits..)?.strip_prefix("  ")?;
    let value = u32::from_str_radix(head, 16).ok()?;
    let name = rest.trim_end();
    (!name.is_empty()).then_some((value, name))
}

/// The names of `ids` (with their classes) in `text`. The asked IDs are indexed by vendor and
/// by class first: a line of a vendor nobody asked for costs a comparison, not a pass over them.
pub fn lookup(text: &str, ids: &[(PciId, Class)]) -> Lookup {
    use std::collections::BTreeMap;
    let mut out = Lookup {
        names: vec![Names::default(); ids.len()],
        entries: 0,
    };
    let mut by_vendor: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    let mut by_class: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (n, (id, class)) in ids.iter().enumerate() {
        by_vendor.entry(id.vendor).or_default().push(n);
        by_class.entry(class.base()).or_default().push(n);
    }
    let none: Vec<usize> = Vec::new();
    // The asked IDs of the current vendor (or class), and the current device (or subclass).
    let mut asked: &[usize] = &none;
    let mut vendor_seen = false;
    let mut device: Option<u16> = None;
    let mut in_classes = false;
    let mut class: Option<u8> = None;
    let mut subclass: Option<u8> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let depth = line.bytes().take_while(|&b| b == b'\t').count();
        let body = &line[depth..];
        if depth == 0 {
            (device, subclass) = (None, None);
            if let Some(rest) = body.strip_prefix("C ") {
                in_classes = true;
                class = entry(rest, 2).map(|(c, _)| c as u8);
                vendor_seen = class.is_some();
                asked = class.and_then(|c| by_class.get(&c)).unwrap_or(&none);
                if let (Some((_, name)), true) = (entry(rest, 2), class.is_some()) {
                    out.entries += 1;
                    for &n in asked {
                        out.names[n].class = Some(name.to_string());
                    }
                }
            } else {
                in_classes = false;
                let parsed = entry(body, 4);
                vendor_seen = parsed.is_some();
                out.entries += usize::from(vendor_seen);
                asked = parsed
                    .and_then(|(v, _)| by_vendor.get(&(v as u16)))
                    .unwrap_or(&none);
                if let Some((_, name)) = parsed {
                    for &n in asked {
                        out.names[n].vendor = Some(name.to_string());
                    }
                }
            }
            continue;
        }
        if !vendor_seen || asked.is_empty() {
            // Lines of a vendor or class nobody asked about (or of none): skipped unparsed.
            continue;
        }
        match (depth, in_classes) {
            (1, false) => {
                device = entry(body, 4).map(|(d, name)| {
                    let d = d as u16;
                    for &n in asked {
                        if ids[n].0.device == d {
                            out.names[n].device = Some(name.to_string());
                        }
                    }
                    d
                });
                out.entries += usize::from(device.is_some());
            }
            (2, false) => {
                let Some(d) = device else { continue };
                let Some((sv, rest)) = body.split_once(' ') else {
                    continue;
                };
                let (Ok(sv), Some((sd, name))) = (u16::from_str_radix(sv, 16), entry(rest, 4))
                else {
                    continue;
                };
                out.entries += 1;
                for &n in asked {
                    let id = &ids[n].0;
                    if (id.device, id.subvendor, id.subdevice) == (d, sv, sd as u16) {
                        out.names[n].subsystem = Some(name.to_string());
                    }
                }
            }
            (1, true) => {
                subclass = entry(body, 2).map(|(sc, name)| {
                    let sc = sc as u8;
                    for &n in asked {
                        if (ids[n].1 .0 >> 8) as u8 == sc {
                            out.names[n].class = Some(name.to_string());
                        }
                    }
                    sc
                });
                out.entries += usize::from(subclass.is_some());
            }
            (2, true) => {
                let (Some(c), Some(sc), Some((p, name))) = (class, subclass, entry(body, 2)) else {
                    continue;
                };
                out.entries += 1;
                for &n in asked {
                    if ids[n].1 .0 == (u32::from(c) << 16 | u32::from(sc) << 8 | p) {
                        out.names[n].class = Some(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    // The database is text anyone can write: a name never carries control bytes (ESC, BEL,
    // NUL) to a terminal.
    for names in &mut out.names {
        for name in [
            &mut names.vendor,
            &mut names.device,
            &mut names.subsystem,
            &mut names.class,
        ]
        .into_iter()
        .flatten()
        {
            if name.chars().any(char::is_control) {
                *name = name
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_no_control_bytes() {
        let db = "10de  NVIDIA\x1b[2J Corp\x07\n\t1c03  GP106\0 [GTX 1060]\n";
        let id = PciId {
            vendor: 0x10de,
            device: 0x1c03,
            subvendor: 0,
            subdevice: 0,
        };
        let l = lookup(db, &[(id, Class(0x030000))]);
        assert_eq!(l.names[0].vendor.as_deref(), Some("NVIDIA?[2J Corp?"));
        assert_eq!(l.names[0].device.as_deref(), Some("GP106? [GTX 1060]"));
    }

    const DB: &str = "\
# comment
10de  NVIDIA Corporation
\t1c03  GP106 [GeForce GTX 1060 6GB]
\t\t1043 85f4  ROG STRIX GTX 1060
\t10f1  GP106 High Definition Audio Controller
8086  Intel Corporation
\t1c03  6 Series/C200 Series Chipset Family 6 port Mobile SATA AHCI Controller
C 03  Display controller
\t00  VGA compatible controller
\t\t00  VGA controller
\t02  3D controller
C 04  Multimedia controller
\t03  Audio device
";

    fn id(v: u16, d: u16, sv: u16, sd: u16) -> PciId {
        PciId {
            vendor: v,
            device: d,
            subvendor: sv,
            subdevice: sd,
        }
    }

    #[test]
    fn names_vendor_device_subsystem_and_class() {
        let asked = [
            (id(0x10de, 0x1c03, 0x1043, 0x85f4), Class(0x030000)),
            (id(0x10de, 0x10f1, 0x1043, 0x85f4), Class(0x040300)),
            (id(0x8086, 0x1c03, 0, 0), Class(0x030200)),
            (id(0x1234, 0x1111, 0, 0), Class(0x0c0330)),
        ];
        let l = lookup(DB, &asked);
        assert_eq!(l.names[0].vendor.as_deref(), Some("NVIDIA Corporation"));
        assert_eq!(
            l.names[0].device.as_deref(),
            Some("GP106 [GeForce GTX 1060 6GB]")
        );
        assert_eq!(l.names[0].subsystem.as_deref(), Some("ROG STRIX GTX 1060"));
        assert_eq!(l.names[0].class.as_deref(), Some("VGA controller"));
        assert_eq!(l.names[1].subsystem, None, "no such subsystem line");
        assert_eq!(l.names[1].class.as_deref(), Some("Audio device"));
        assert!(
            l.names[2]
                .device
                .as_deref()
                .unwrap()
                .starts_with("6 Series"),
            "same device ID, other vendor"
        );
        assert_eq!(l.names[2].class.as_deref(), Some("3D controller"));
        assert_eq!(l.names[3], Names::default(), "unknown everywhere");
        assert!(l.entries >= 10);
    }

    #[test]
    fn garbage_costs_names_not_a_crash() {
        let asked = [(id(0x10de, 0x1c03, 0, 0), Class(0x030000))];
        for text in [
            "",
            "\u{0}\u{1}binary\t\t\t",
            "zzzz  nope\n\tqqqq  x\nC zz  y\n\t\t\t\t",
            "10de\n\t1c03\n",
        ] {
            let l = lookup(text, &asked);
            assert_eq!(l.entries, 0, "{text:?}");
            assert_eq!(l.names[0], Names::default());
        }
        // A truncated file keeps what came before the cut.
        let cut = &DB[..DB.find("\t10f1").unwrap() + 3];
        let l = lookup(cut, &asked);
        assert_eq!(l.names[0].vendor.as_deref(), Some("NVIDIA Corporation"));
    }
}
