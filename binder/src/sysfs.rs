// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the system: one root directory that every path is joined onto, bounded reads, one
//! device's record.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::device::{self, Device, Name};
use crate::pci::Bdf;

/// A device's `uevent` is about 200 bytes; `resource` 13 to 17 lines of 57 bytes.
pub const UEVENT_CAP: usize = 1024;
pub const RESOURCE_CAP: usize = 1024;

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

    /// The root directory itself.
    pub fn base(&self) -> &Path {
        &self.0
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

    /// The driver bound to a device now, from its `driver` link: `None` only when there is no
    /// link; a link that cannot be read counts as a driver that holds the device.
    pub fn driver_of(&self, bdf: &Bdf) -> Option<Name> {
        match fs::read_link(self.attr(bdf, "driver")) {
            Ok(t) => Some(device::driver_name(
                t.file_name().map_or(b"?", |n| n.as_encoded_bytes()),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(_) => Some(device::driver_name(b"(unreadable)")),
        }
    }
}

/// The IOMMU group number a device's `iommu_group` link points to.
fn group_of(path: &Path) -> Option<u32> {
    fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
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

/// Reads one device; `Ok(None)` when no such device exists.
pub fn read_device(root: &Root, bdf: &Bdf) -> Result<Option<Device>, SysError> {
    let uevent = root.attr(bdf, "uevent");
    let Some(text) = read_attr::<UEVENT_CAP>(&uevent)? else {
        return Ok(None);
    };
    let (id, class) = device::parse_uevent(&text).ok_or(SysError::Malformed {
        path: uevent,
        what: "no PCI_ID or PCI_CLASS",
    })?;
    let group = group_of(&root.attr(bdf, "iommu_group"));
    // The kernel creates boot_vga only for VGA-class devices.
    let boot_vga = class.base_sub() == 0x0300
        && read_attr::<16>(&root.attr(bdf, "boot_vga"))?.is_some_and(|t| t.trim() == "1");
    // BARs matter only for finding a firmware framebuffer in a display.
    let bars = match class.is_display() {
        true => read_attr::<RESOURCE_CAP>(&root.attr(bdf, "resource"))?
            .map(|t| device::parse_bars(&t))
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
