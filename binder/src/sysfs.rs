// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the system: one root directory that every path is joined onto, bounded reads, and the
//! device record with its pure parsers.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::pci::{Bdf, Class, PciId};

/// A device's `uevent` is about 200 bytes; `resource` 13 to 17 lines of 57 bytes.
pub const UEVENT_CAP: usize = 1024;
pub const RESOURCE_CAP: usize = 1024;

/// A driver or module name as sysfs shows it.
pub type Name = heapless::String<32>;

/// Every file vfio-early touches lives under this root (`/` at boot, a test tree otherwise).
#[derive(Clone, Debug)]
pub struct Root(PathBuf);

#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {what}")]
    Malformed { path: PathBuf, what: &'static str },
    #[error("more than {cap} {what}: the rest is not considered")]
    Capacity { what: &'static str, cap: usize },
}

pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SysError + '_ {
    move |source| SysError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root(dir.into())
    }

    /// `rel` is always one of our own constants, never user input.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    pub fn devices_dir(&self) -> PathBuf {
        self.path("sys/bus/pci/devices")
    }

    pub fn device(&self, bdf: &Bdf) -> PathBuf {
        self.devices_dir().join(bdf.to_string())
    }

    pub fn attr(&self, bdf: &Bdf, attr: &str) -> PathBuf {
        self.device(bdf).join(attr)
    }

    pub fn group_dir(&self, group: u32) -> PathBuf {
        self.path("sys/kernel/iommu_groups")
            .join(group.to_string())
            .join("devices")
    }

    pub fn driver_registered(&self, driver: &str) -> bool {
        self.path("sys/bus/pci/drivers").join(driver).is_dir()
    }

    /// Boot mode acts only inside an initramfs: dracut, systemd and mkinitcpio images carry
    /// `/etc/initrd-release`; initramfs-tools images carry its `scripts/functions` and `conf/`.
    pub fn in_initrd(&self) -> bool {
        self.path("etc/initrd-release").exists()
            || (self.path("scripts/functions").exists()
                && self.path("conf/initramfs.conf").exists())
    }

    /// The driver bound to a device now: the basename of its `driver` link.
    pub fn driver_of(&self, bdf: &Bdf) -> Option<Name> {
        link_name(&self.attr(bdf, "driver"))
    }
}

/// Basename of a symlink's target, if the link exists and the name fits.
fn link_name(path: &Path) -> Option<Name> {
    let target = fs::read_link(path).ok()?;
    let name = target.file_name()?.to_str()?;
    heapless::String::try_from(name).ok()
}

/// Bytes of an input file, at most its cap, and whether there was more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub bytes: Vec<u8>,
    pub cut: bool,
}

impl Input {
    /// The text, for line-oriented inputs (invalid UTF-8 shown as U+FFFD).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Reads an input file (configuration, command line, modprobe.d): at most `cap` bytes kept,
/// `cut` set when there was more. Opened without blocking and required to be a regular file
/// (procfs files are), so a FIFO or a device in its place is an error, never a hang; the read
/// itself stops at `cap + 1` bytes whatever the file claims.
pub fn read_input(path: &Path, cap: usize) -> Result<Input, SysError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(io_err(path))?;
    if !file.metadata().map_err(io_err(path))?.is_file() {
        return Err(SysError::Malformed {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    let mut bytes = Vec::with_capacity(cap.min(4096));
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    let cut = bytes.len() > cap;
    bytes.truncate(cap);
    Ok(Input { bytes, cut })
}

/// Like `read_input` for files that may legitimately be absent: `Ok(None)` then.
pub fn read_input_optional(path: &Path, cap: usize) -> Result<Option<Input>, SysError> {
    match read_input(path, cap) {
        Err(SysError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        other => other.map(Some),
    }
}

/// Reads a small attribute into a stack buffer (one open, one or two reads, no allocation);
/// `Ok(None)` when it does not exist. Longer content is cut at `N` bytes.
pub fn read_attr<const N: usize>(path: &Path) -> Result<Option<heapless::String<N>>, SysError> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut buf = [0u8; N];
    let mut len = 0;
    while len < N {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    let mut text = heapless::String::new();
    for ch in String::from_utf8_lossy(&buf[..len]).chars() {
        if text.push(ch).is_err() {
            break;
        }
    }
    Ok(Some(text))
}

/// What the plan needs to know about one PCI function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub bdf: Bdf,
    pub id: PciId,
    pub class: Class,
    pub driver: Option<Name>,
    pub group: Option<u32>,
    pub boot_vga: bool,
    /// Memory BARs as `(start, end)`, to find a firmware framebuffer inside one.
    pub bars: heapless::Vec<(u64, u64), 6>,
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

/// Reads one device; `Ok(None)` when no such device exists.
pub fn read_device(root: &Root, bdf: &Bdf) -> Result<Option<Device>, SysError> {
    let uevent = root.attr(bdf, "uevent");
    let Some(text) = read_attr::<UEVENT_CAP>(&uevent)? else {
        return Ok(None);
    };
    let (id, class) = parse_uevent(&text).ok_or(SysError::Malformed {
        path: uevent,
        what: "no PCI_ID or PCI_CLASS",
    })?;
    let group = link_name(&root.attr(bdf, "iommu_group")).and_then(|g| g.parse().ok());
    // The kernel creates boot_vga only for VGA-class devices.
    let boot_vga = class.base_sub() == 0x0300
        && read_attr::<16>(&root.attr(bdf, "boot_vga"))?.is_some_and(|t| t.trim() == "1");
    // BARs matter only for finding a firmware framebuffer in a display.
    let bars = match class.is_display() {
        true => read_attr::<RESOURCE_CAP>(&root.attr(bdf, "resource"))?
            .map(|t| parse_bars(&t))
            .unwrap_or_default(),
        false => heapless::Vec::new(),
    };
    Ok(Some(Device {
        bdf: *bdf,
        id,
        class,
        driver: root.driver_of(bdf),
        group,
        boot_vga,
        bars,
    }))
}

/// Calls `f` for each entry of a directory that parses as a PCI address (streamed: nothing is
/// collected, so a bus of any size costs no memory).
pub fn for_each_bdf(dir: &Path, mut f: impl FnMut(Bdf)) -> Result<(), SysError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(bdf) = entry.file_name().to_str().and_then(Bdf::parse) {
            f(bdf);
        }
    }
    Ok(())
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
}
