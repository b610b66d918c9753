// SPDX-License-Identifier: MIT OR Apache-2.0
//! Firmware framebuffers in `/proc/iomem`: a display whose BAR holds one is the boot display
//! even when `boot_vga` says otherwise (EFI GOP on a non-VGA-routed card).

/// Framebuffer ranges kept; a machine has one or two.
pub const MAX_FRAMEBUFFERS: usize = 8;

/// Resource names the kernel gives firmware framebuffers (sysfb, efifb, vesafb, simplefb).
const NAMES: [&str; 6] = [
    "bootfb",
    "efifb",
    "vesafb",
    "simplefb",
    "simple-framebuffer",
    "efi-framebuffer",
];

/// `(start, end)` of every firmware framebuffer listed in `/proc/iomem` text.
pub fn framebuffers(iomem: &str) -> heapless::Vec<(u64, u64), MAX_FRAMEBUFFERS> {
    let mut out = heapless::Vec::new();
    for line in iomem.lines() {
        let Some((range, name)) = line.split_once(" : ") else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if !NAMES.iter().any(|n| name.starts_with(n)) {
            continue;
        }
        let Some((a, b)) = range.trim().split_once('-') else {
            continue;
        };
        if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
            // Unprivileged readers see zeros: those say nothing.
            if end > start && out.push((start, end)).is_err() {
                break;
            }
        }
    }
    out
}

/// Whether a framebuffer lies inside one of the BARs.
pub fn in_bars(fbs: &[(u64, u64)], bars: &[(u64, u64)]) -> bool {
    fbs.iter()
        .any(|&(fs, fe)| bars.iter().any(|&(bs, be)| fs >= bs && fe <= be))
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

    #[test]
    fn finds_framebuffers_at_any_depth() {
        let fbs = framebuffers(IOMEM);
        assert_eq!(
            fbs.as_slice(),
            &[(0xc000_0000, 0xc02f_ffff), (0xfe00_0000, 0xfe0f_ffff)]
        );
        assert!(in_bars(&fbs, &[(0xc000_0000, 0xc0ff_ffff)]));
        assert!(!in_bars(&fbs, &[(0xfd00_0000, 0xfdff_ffff)]));
        assert!(framebuffers("garbage\n - : \n").is_empty());
    }
}
