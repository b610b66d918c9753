// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hacks vfio-early replaces, found where they still linger: `vfio-pci.ids=` grabs every
//! identical card, and an `install vfio-pci` directive runs an old override script whenever
//! vfio-pci is loaded (by us too).

use crate::cmdline::{self, param_eq};

/// Where modprobe reads its configuration, in its own order.
pub const MODPROBE_DIRS: [&str; 4] = [
    "etc/modprobe.d",
    "run/modprobe.d",
    "usr/local/lib/modprobe.d",
    "lib/modprobe.d",
];
/// `usr/lib/modprobe.d` is the merged-/usr twin of `lib/modprobe.d`.
pub const MODPROBE_DIRS_USR: &str = "usr/lib/modprobe.d";

/// Whether a command line carries `vfio-pci.ids=`.
pub fn cmdline_has_ids(line: &[u8]) -> bool {
    cmdline::args(line).any(|a| param_eq(a.param, b"vfio_pci.ids"))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModprobeHacks {
    /// `options vfio-pci ... ids=...`
    pub ids: bool,
    /// `install vfio-pci ...`
    pub install: bool,
    /// `softdep MODULE pre: vfio-pci` (goes stale with every new driver).
    pub softdep: bool,
}

/// Scans one modprobe.d file's text.
pub fn scan_modprobe_conf(text: &str) -> ModprobeHacks {
    let mut hacks = ModprobeHacks::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(cmd), Some(module)) = (words.next(), words.next()) else {
            continue;
        };
        if cmd == "softdep" {
            hacks.softdep |= words
                .skip_while(|w| *w != "pre:")
                .any(|w| param_eq(w.as_bytes(), b"vfio_pci"));
            continue;
        }
        if !param_eq(module.as_bytes(), b"vfio_pci") {
            continue;
        }
        match cmd {
            "options" => hacks.ids |= words.any(|w| w.starts_with("ids=")),
            "install" => hacks.install = true,
            _ => {}
        }
    }
    hacks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_old_hacks() {
        assert!(cmdline_has_ids(b"quiet vfio_pci.ids=10de:1c03 splash"));
        assert!(cmdline_has_ids(b"vfio-pci.ids=10de:1c03"));
        assert!(!cmdline_has_ids(b"vfio-pci.disable_vga=1"));
        let h = scan_modprobe_conf(
            "# options vfio-pci ids=1:2\noptions vfio_pci disable_vga=1 ids=10de:1c03\ninstall vfio-pci /usr/bin/vfio-override.sh\n",
        );
        assert_eq!(
            h,
            ModprobeHacks {
                ids: true,
                install: true,
                softdep: false
            }
        );
        assert_eq!(
            scan_modprobe_conf("softdep nouveau pre: vfio-pci\noptions snd ids=1\n"),
            ModprobeHacks {
                softdep: true,
                ..ModprobeHacks::default()
            }
        );
        assert!(!scan_modprobe_conf("softdep vfio-pci post: x\nsoftdep a pre: b\n").softdep);
    }
}
