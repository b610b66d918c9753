// SPDX-License-Identifier: MIT OR Apache-2.0
//! Firmware framebuffers in `/proc/iomem`: a display whose BAR holds one is the boot display
//! even when `boot_vga` says otherwise (EFI GOP on a non-VGA-routed card).
//!
//! `/proc/iomem` is a tree (two spaces of indent a level): the PCI core names each BAR it claims
//! after its device (`0000:01:00.0`), and a framebuffer inside a BAR is listed under it. So the
//! line names the device that holds it, and no `resource` file needs reading; only a framebuffer
//! with no device above it (a BAR the PCI core did not claim) is matched against BARs instead.

use crate::pci::Bdf;

/// Framebuffer ranges kept; a machine has one or two.
pub const MAX_FRAMEBUFFERS: usize = 8;
/// Levels of nesting followed; deeper lines are read without an owner.
const MAX_DEPTH: usize = 16;

/// Resource names the kernel gives firmware framebuffers (sysfb, efifb, vesafb, simplefb).
const NAMES: [&str; 6] = [
    "bootfb",
    "efifb",
    "vesafb",
    "simplefb",
    "simple-framebuffer",
    "efi-framebuffer",
];

/// One firmware framebuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framebuffer {
    pub start: u64,
    pub end: u64,
    /// The device whose BAR it is listed under, when the tree says.
    pub owner: Option<Bdf>,
}

fn is_framebuffer(name: &str) -> bool {
    NAMES.iter().any(|n| {
        name.get(..n.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(n))
    })
}

/// Every firmware framebuffer listed in `/proc/iomem` text, with its owner where the tree
/// names one. Unprivileged readers see every range as zeros: a framebuffer then counts only
/// through its owner.
pub fn framebuffers(iomem: &str) -> heapless::Vec<Framebuffer, MAX_FRAMEBUFFERS> {
    let mut out = heapless::Vec::new();
    // The open ancestors of the current line: (indent, the device a line names).
    let mut above: heapless::Vec<(usize, Option<Bdf>), MAX_DEPTH> = heapless::Vec::new();
    for line in iomem.lines() {
        let Some((range, name)) = line.split_once(" : ") else {
            continue;
        };
        let indent = range.len() - range.trim_start().len();
        while above.last().is_some_and(|&(i, _)| i >= indent) {
            above.pop();
        }
        let name = name.trim();
        // The PCI core names a BAR `DDDD:BB:DD.F` (pci_name()), the domain always spelled out.
        let bdf = Bdf::parse(name).filter(|_| name.len() == 12);
        if is_framebuffer(name) {
            // The nearest device above it; a line too deep to track has no known owner.
            let owner = match above.is_full() {
                true => None,
                false => above.iter().rev().find_map(|&(_, b)| b),
            };
            let (start, end) = range
                .trim()
                .split_once('-')
                .and_then(|(a, b)| {
                    Some((
                        u64::from_str_radix(a, 16).ok()?,
                        u64::from_str_radix(b, 16).ok()?,
                    ))
                })
                .unwrap_or((0, 0));
            // Kept even with no owner and a zero range (what unprivileged readers see): it says
            // a framebuffer exists that only root can place.
            if out.push(Framebuffer { start, end, owner }).is_err() {
                break;
            }
        }
        // Over the depth kept, the line is dropped: its children then find no owner through it.
        let _ = above.push((indent, bdf));
    }
    out
}

/// Whether a framebuffer lies in this device: listed under it, or (with no owner listed) inside
/// one of its BARs.
pub fn shows(fbs: &[Framebuffer], bdf: &Bdf, bars: &[(u64, u64)]) -> bool {
    fbs.iter().any(|fb| match fb.owner {
        Some(owner) => owner == *bdf,
        None => fb.end > fb.start && bars.iter().any(|&(bs, be)| fb.start >= bs && fb.end <= be),
    })
}

/// Whether a framebuffer is listed that only a privileged reader can place (no owner, and the
/// range shown as zeros).
pub fn hidden(fbs: &[Framebuffer]) -> bool {
    fbs.iter()
        .any(|fb| fb.owner.is_none() && fb.end <= fb.start)
}

/// Whether some framebuffer names no owner, so BARs must be read to place it.
pub fn needs_bars(fbs: &[Framebuffer]) -> bool {
    fbs.iter().any(|fb| fb.owner.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IOMEM: &str = "\
00000000-00000fff : Reserved
c0000000-febfffff : PCI Bus 0000:00
  c0000000-c0ffffff : 0000:00:02.0
    c0000000-c02fffff : BOOTFB
  fd000000-fdffffff : 0000:01:00.0
fe000000-fe0fffff : efifb
00000000-00000000 : vesafb
";

    fn bdf(s: &str) -> Bdf {
        Bdf::parse(s).unwrap()
    }

    #[test]
    fn finds_framebuffers_at_any_depth_with_their_owner() {
        let fbs = framebuffers(IOMEM);
        assert_eq!(
            fbs.as_slice(),
            &[
                Framebuffer {
                    start: 0xc000_0000,
                    end: 0xc02f_ffff,
                    owner: Some(bdf("00:02.0"))
                },
                Framebuffer {
                    start: 0xfe00_0000,
                    end: 0xfe0f_ffff,
                    owner: None
                },
                Framebuffer {
                    start: 0,
                    end: 0,
                    owner: None
                }
            ]
        );
        assert!(shows(&fbs, &bdf("00:02.0"), &[]), "owner, no BARs read");
        assert!(!shows(&fbs, &bdf("01:00.0"), &[(0xfd00_0000, 0xfdff_ffff)]));
        // The owner-less one is placed by BARs.
        assert!(shows(&fbs, &bdf("03:00.0"), &[(0xfe00_0000, 0xfeff_ffff)]));
        assert!(needs_bars(&fbs));
        assert!(!needs_bars(&fbs[..1]));
        assert!(framebuffers("garbage\n - : \n").is_empty());
    }

    #[test]
    fn unprivileged_zeros_still_name_the_owner() {
        let text = "00000000-00000000 : PCI Bus 0000:00\n  00000000-00000000 : 0000:01:00.0\n    00000000-00000000 : efifb\n00000000-00000000 : simplefb\n";
        let fbs = framebuffers(text);
        assert_eq!(fbs.len(), 2);
        assert!(shows(&fbs, &bdf("01:00.0"), &[]));
        assert!(
            !shows(&fbs, &bdf("02:00.0"), &[(0, 0xffff_ffff)]),
            "a zero range is nowhere"
        );
        assert!(hidden(&fbs) && !hidden(&fbs[..1]));
    }

    #[test]
    fn a_sibling_is_not_an_owner() {
        let text = "80000000-8fffffff : PCI Bus 0000:01\n  80000000-80ffffff : 0000:01:00.0\n  81000000-81ffffff : BOOTFB\n";
        let fbs = framebuffers(text);
        assert_eq!(fbs[0].owner, None, "BOOTFB sits beside the BAR, not in it");
        assert!(shows(&fbs, &bdf("01:00.1"), &[(0x8100_0000, 0x81ff_ffff)]));
    }

    #[test]
    fn too_deep_a_tree_loses_owners_not_framebuffers() {
        let mut text = String::from("00000000-ffffffff : 0000:09:00.0\n");
        for depth in 1..=MAX_DEPTH + 2 {
            text += &format!("{}00001000-00001fff : level\n", "  ".repeat(depth));
        }
        text += &format!("{}00001000-00001fff : BOOTFB\n", "  ".repeat(MAX_DEPTH + 3));
        let fbs = framebuffers(&text);
        assert_eq!(fbs.len(), 1);
        assert_eq!(fbs[0].owner, None);
    }
}
