// SPDX-License-Identifier: MIT OR Apache-2.0
//! Which initramfs generator builds this system's images, for the host commands: the command
//! that rebuilds them and where the running kernel's image is.

use std::path::PathBuf;

use vfio_early_system::sysfs::Root;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    InitramfsTools,
    Dracut,
    Mkinitcpio,
}

/// The generator installed under the root (initramfs-tools first: Debian may carry dracut-core
/// beside it without using it).
pub fn detect(root: &Root) -> Option<Generator> {
    let any = |paths: &[&str]| paths.iter().any(|p| root.path(p).exists());
    if any(&["usr/share/initramfs-tools/hook-functions"])
        && any(&["usr/sbin/update-initramfs", "sbin/update-initramfs"])
    {
        Some(Generator::InitramfsTools)
    } else if any(&["usr/bin/dracut", "usr/sbin/dracut", "sbin/dracut"]) {
        Some(Generator::Dracut)
    } else if any(&["usr/bin/mkinitcpio", "usr/sbin/mkinitcpio"]) {
        Some(Generator::Mkinitcpio)
    } else {
        None
    }
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Generator::InitramfsTools => "initramfs-tools",
            Generator::Dracut => "dracut",
            Generator::Mkinitcpio => "mkinitcpio",
        }
    }

    /// The command that rebuilds the running kernel's image.
    pub fn rebuild(self) -> &'static str {
        match self {
            Generator::InitramfsTools => "sudo update-initramfs -u -k \"$(uname -r)\"",
            Generator::Dracut => "sudo dracut -f --kver \"$(uname -r)\"",
            Generator::Mkinitcpio => "sudo mkinitcpio -P",
        }
    }

    /// The images a kernel `release` may boot with, as this generator names them, existing first.
    pub fn images(self, root: &Root, release: &str) -> Vec<PathBuf> {
        let names = match self {
            Generator::InitramfsTools => vec![format!("boot/initrd.img-{release}")],
            // Fedora's name, then Debian's (its dracut package keeps initrd.img-*).
            Generator::Dracut => vec![
                format!("boot/initramfs-{release}.img"),
                format!("boot/initrd.img-{release}"),
            ],
            // Named by the preset, not the release: the default kernel's.
            Generator::Mkinitcpio => vec!["boot/initramfs-linux.img".to_string()],
        };
        let mut paths: Vec<PathBuf> = names.iter().map(|n| root.path(n)).collect();
        paths.sort_by_key(|p| !p.exists());
        paths
    }
}
