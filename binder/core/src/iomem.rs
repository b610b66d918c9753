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

fn is_framebuffer(name: &[u8]) -> bool {
    // Every name starts with b, e, v or s: most lines are rejected on their first byte.
    if !matches!(
        name.first().map(u8::to_ascii_lowercase),
        Some(b'b' | b'e' | b'v' | b's')
    ) {
        return false;
    }
    NAMES.iter().any(|n| {
        name.get(..n.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(n.as_bytes()))
    })
}

/// The length of the run of hex digits at the start of `b`, and its value (saturated).
fn hex(b: &[u8]) -> (usize, u64) {
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        v = v.saturating_mul(16).saturating_add(u64::from(d));
        n += 1;
    }
    (n, v)
}

/// `start-end` in hex.
fn range(text: &[u8]) -> Option<(u64, u64)> {
    let dash = text.iter().position(|&b| b == b'-')?;
    let (a, start) = hex(&text[..dash]);
    let (b, end) = hex(&text[dash + 1..]);
    (a == dash && a > 0 && b > 0 && dash + 1 + b == text.len()).then_some((start, end))
}

/// A BAR's name as pci_name() spells it, kept as bytes: parsed only if a framebuffer below it
/// needs an owner (`DDDD:BB:DD.F`; VMD domains have five digits).
type Name = heapless::Vec<u8, 16>;

fn is_device_name(n: &[u8]) -> bool {
    matches!(n, [_, _, _, _, b':', _, _, b':', _, _, b'.', _])
}

/// Any BAR's name: `pci_name()` with a domain of any width (VMD's are five digits).
fn device(n: &[u8]) -> Option<Bdf> {
    let text = core::str::from_utf8(n).ok()?;
    (text.matches(':').count() == 2)
        .then(|| Bdf::parse(text))
        .flatten()
}

/// Every firmware framebuffer listed in `/proc/iomem` (`<indent>start-end : name` lines, two
/// spaces of indent a level), with its owner where the tree names one. Unprivileged readers see
/// every range as zeros: a framebuffer then counts only through its owner.
///
/// One pass over bytes, since the file grows with the bus (a line per BAR): no UTF-8 pass, no
/// substring search, no number it does not need; a BAR line (most lines) is recognised by its
/// fixed length, without looking for its end.
pub fn framebuffers(iomem: &[u8]) -> heapless::Vec<Framebuffer, MAX_FRAMEBUFFERS> {
    let mut s = Scanner::default();
    s.feed(iomem, true);
    s.finish()
}

/// [`framebuffers`] a piece at a time (the file is read through a bounded buffer).
#[derive(Default)]
pub struct Scanner {
    out: heapless::Vec<Framebuffer, MAX_FRAMEBUFFERS>,
    /// The open ancestors of the current line: (indent, the device a line names).
    above: heapless::Vec<(usize, Option<Name>), MAX_DEPTH>,
}

impl Scanner {
    pub fn finish(self) -> heapless::Vec<Framebuffer, MAX_FRAMEBUFFERS> {
        self.out
    }

    /// Scans the whole lines of `iomem` (all of it when `last`); returns the bytes taken.
    pub fn feed(&mut self, iomem: &[u8], last: bool) -> usize {
        let (out, above) = (&mut self.out, &mut self.above);
        let mut at = 0;
        while at < iomem.len() {
            let line = &iomem[at..];
            let indent = line.iter().take_while(|&&b| b == b' ').count();
            let rest = &line[indent..];
            // The range holds no space: it ends at the first one (checked as hex only when used).
            let parsed = crate::text::find_byte(b' ', rest).and_then(|r| match &rest[r..] {
                // Byte patterns, not slice equality: that is a memcmp call per line. A range
                // holding a newline is a blank or broken line running into the next.
                [b' ', b':', b' ', name @ ..]
                    if r > 0 && crate::text::find_byte(b'\n', &rest[..r]).is_none() =>
                {
                    Some((&rest[..r], name, indent + r + 3))
                }
                _ => None,
            });
            let Some((range_text, tail, name_at)) = parsed else {
                match crate::text::find_byte(b'\n', line) {
                    Some(n) => at += n + 1,
                    // The rest of this line is in the next piece.
                    None if !last => return at,
                    None => at = iomem.len(),
                }
                continue;
            };
            let (name, next) = if tail.get(12) == Some(&b'\n') && is_device_name(&tail[..12]) {
                (&tail[..12], name_at + 13)
            } else {
                match crate::text::find_byte(b'\n', tail) {
                    Some(n) => (tail[..n].trim_ascii_end(), name_at + n + 1),
                    None if !last => return at,
                    None => (tail.trim_ascii_end(), name_at + tail.len()),
                }
            };
            at += next;
            while above.last().is_some_and(|&(i, _)| i >= indent) {
                above.pop();
            }
            if is_framebuffer(name) {
                // Its owner is the BAR it sits in: its direct parent, when that line names a
                // device. Anything else (a bus window between, a line too deep to track) leaves
                // it without one, and the BARs of the displays decide.
                let owner = match above.is_full() {
                    true => None,
                    false => above.last().and_then(|(_, n)| device(n.as_deref()?)),
                };
                let (start, end) = range(range_text).unwrap_or((0, 0));
                // Kept even with no owner and a zero range (what unprivileged readers see): it says
                // a framebuffer exists that only root can place. Past the capacity: dropped.
                let _ = out.push(Framebuffer { start, end, owner });
            }
            // Cheap shape checks only: most lines are BARs, parsed only under a framebuffer.
            let dev = match is_device_name(name) || (name.len() <= 16 && name.contains(&b'.')) {
                true => Name::from_slice(name).ok(),
                false => None,
            };
            // Over the depth kept, the line is dropped: its children then find no owner through it.
            let _ = above.push((indent, dev));
        }
        at.min(iomem.len())
    }
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
        let fbs = framebuffers(IOMEM.as_bytes());
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
        assert!(framebuffers(b"garbage\n - : \n").is_empty());
    }

    #[test]
    fn unprivileged_zeros_still_name_the_owner() {
        let text = "00000000-00000000 : PCI Bus 0000:00\n  00000000-00000000 : 0000:01:00.0\n    00000000-00000000 : efifb\n00000000-00000000 : simplefb\n";
        let fbs = framebuffers(text.as_bytes());
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
        let fbs = framebuffers(text.as_bytes());
        assert_eq!(fbs[0].owner, None, "BOOTFB sits beside the BAR, not in it");
        assert!(shows(&fbs, &bdf("01:00.1"), &[(0x8100_0000, 0x81ff_ffff)]));
    }

    #[test]
    fn pieces_of_any_size_read_as_the_whole() {
        let text = format!(
            "{IOMEM}  c0000000-c0ffffff : 0000:00:03.0\n    c0000000-c07fffff : simplefb\n"
        );
        let whole = framebuffers(text.as_bytes());
        for piece in 1..text.len() {
            // As read::for_each_chunk feeds it: what is not taken comes again with more.
            let mut s = Scanner::default();
            let mut kept: Vec<u8> = Vec::new();
            for chunk in text.as_bytes().chunks(piece) {
                kept.extend_from_slice(chunk);
                let taken = s.feed(&kept, false);
                kept.drain(..taken);
            }
            s.feed(&kept, true);
            assert_eq!(s.finish(), whole, "pieces of {piece}");
        }
    }

    #[test]
    fn the_owner_is_the_bar_it_sits_in() {
        // A VMD child (five-digit domain) under the VMD controller's BAR: the child owns it.
        let text = "a0000000-afffffff : 0000:00:0e.0\n  a0000000-a7ffffff : PCI Bus 10000:e1\n    a0000000-a0ffffff : 10000:e1:00.0\n      a0000000-a07fffff : BOOTFB\n";
        let fbs = framebuffers(text.as_bytes());
        assert_eq!(
            fbs[0].owner.map(|b| b.to_string()).as_deref(),
            Some("10000:e1:00.0")
        );
        // Under a bus window with no BAR line: no owner, never the device above the window.
        let text = "a0000000-afffffff : 0000:00:0e.0\n  a0000000-a7ffffff : PCI Bus 10000:e1\n    a0000000-a07fffff : BOOTFB\n";
        let fbs = framebuffers(text.as_bytes());
        assert_eq!(fbs[0].owner, None);
        assert!(shows(
            &fbs,
            &bdf("10000:e1:00.0"),
            &[(0xa000_0000, 0xa0ff_ffff)]
        ));
        // A blank line does not swallow the next.
        let fbs = framebuffers(b"\nfe000000-fe0fffff : efifb\n");
        assert_eq!((fbs[0].start, fbs[0].end), (0xfe00_0000, 0xfe0f_ffff));
    }

    #[test]
    fn line_ends_of_every_kind() {
        // A BAR name with more after it is no device; no final newline; CRLF; blank lines.
        let text = "80000000-8fffffff : 0000:01:00.0 x\n  80000000-80ffffff : BOOTFB\n\n\
                    90000000-9fffffff : 0000:02:00.0\r\n  90000000-90ffffff : efifb\r\n\
                    a0000000-afffffff : 0000:03:00.0\n  a0000000-a0ffffff : simplefb";
        let fbs = framebuffers(text.as_bytes());
        let owners: Vec<_> = fbs.iter().map(|f| f.owner.map(|b| b.to_string())).collect();
        assert_eq!(
            owners,
            [
                None,
                Some("0000:02:00.0".into()),
                Some("0000:03:00.0".into())
            ]
        );
        assert_eq!((fbs[2].start, fbs[2].end), (0xa000_0000, 0xa0ff_ffff));
    }

    #[test]
    fn too_deep_a_tree_loses_owners_not_framebuffers() {
        let mut text = String::from("00000000-ffffffff : 0000:09:00.0\n");
        for depth in 1..=MAX_DEPTH + 2 {
            text += &format!("{}00001000-00001fff : level\n", "  ".repeat(depth));
        }
        text += &format!("{}00001000-00001fff : BOOTFB\n", "  ".repeat(MAX_DEPTH + 3));
        let fbs = framebuffers(text.as_bytes());
        assert_eq!(fbs.len(), 1);
        assert_eq!(fbs[0].owner, None);
    }
}
