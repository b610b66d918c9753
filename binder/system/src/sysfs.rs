// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the system: one root directory that every path is joined onto, bounded reads, one
//! device's record.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::read::{io_err, open_ro, SysError};
use vfio_early_core::device::{self, Device, Name};
use vfio_early_core::pci::Bdf;

/// A device's `uevent` is about 200 bytes; `resource` 13 to 17 lines of 57 bytes.
pub const UEVENT_CAP: usize = 1024;
pub const RESOURCE_CAP: usize = 1024;

/// Every file vfio-early touches lives under this root (`/` at boot, a test tree otherwise).
#[derive(Clone, Debug)]
pub struct Root(PathBuf);

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
        self.path(vfio_early_core::layout::PCI_DEVICES)
    }

    pub fn device(&self, bdf: &Bdf) -> PathBuf {
        self.devices_dir().join(bdf.to_string())
    }

    pub fn attr(&self, bdf: &Bdf, attr: &str) -> PathBuf {
        self.device(bdf).join(attr)
    }

    pub fn group_dir(&self, group: u32) -> PathBuf {
        self.path(vfio_early_core::layout::IOMMU_GROUPS)
            .join(group.to_string())
            .join("devices")
    }

    pub fn driver_registered(&self, driver: &str) -> bool {
        self.path(vfio_early_core::layout::PCI_DRIVERS)
            .join(driver)
            .is_dir()
    }

    /// Boot mode acts only inside an initramfs: dracut, systemd and mkinitcpio images carry
    /// `/etc/initrd-release`; initramfs-tools images carry its `scripts/functions` and `conf/`;
    /// any other image (booster, hand-made) is one when PID 1 is the rdinit shim.
    pub fn in_initrd(&self) -> bool {
        self.path("etc/initrd-release").exists()
            || (self.path("scripts/functions").exists()
                && self.path("conf/initramfs.conf").exists())
            || fs::read_link(self.path("proc/1/exe"))
                .is_ok_and(|p| p == Path::new(vfio_early_core::layout::SHIM_PATH))
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

impl Root {
    /// Which of `bdfs` the driver's directory lists as bound to it (`None` when it cannot be
    /// read). The driver's `BDF` link and the device's `driver` link are made and removed
    /// together (driver_sysfs_add/remove), so one listing answers for every device.
    pub fn held_by(
        &self,
        driver: &str,
        bdfs: &[Bdf],
    ) -> Option<heapless::Vec<bool, { vfio_early_core::device::MAX_DEVICES }>> {
        let mut held: heapless::Vec<bool, { vfio_early_core::device::MAX_DEVICES }> =
            heapless::Vec::new();
        held.resize(bdfs.len(), false).ok()?;
        let dir = self.path(vfio_early_core::layout::PCI_DRIVERS).join(driver);
        for_each_bdf(&dir, |b| {
            if let Some(at) = bdfs.iter().position(|x| *x == b) {
                if let Some(h) = held.get_mut(at) {
                    *h = true;
                }
            }
        })
        .ok()?;
        Some(held)
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

/// Framebuffers in `/proc/iomem` (absent: none), read whole through one bounded buffer (it is
/// about 80 bytes a BAR, 320 KiB at 4096 devices: nothing is cut, and few pages are touched).
pub fn framebuffers(
    root: &Root,
) -> Result<
    heapless::Vec<
        vfio_early_core::iomem::Framebuffer,
        { vfio_early_core::iomem::MAX_FRAMEBUFFERS },
    >,
    SysError,
> {
    let path = root.path("proc/iomem");
    let file = match open_ro(&path, nix::fcntl::OFlag::O_NONBLOCK) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(heapless::Vec::new()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut s = vfio_early_core::iomem::Scanner::default();
    crate::read::for_each_chunk(file, &path, |data, last| s.feed(data, last))?;
    Ok(s.finish())
}

/// Reads a small attribute into a stack buffer (one open, one or two reads, no allocation);
/// `Ok(None)` when it does not exist. Longer content is cut at `N` bytes.
pub fn read_attr<const N: usize>(path: &Path) -> Result<Option<heapless::String<N>>, SysError> {
    let mut file = match open_ro(path, nix::fcntl::OFlag::empty()) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut buf = [0u8; N];
    let mut len = 0;
    // A sysfs attribute comes whole in one read, and a regular file ends short only at its end:
    // a short read is the end, no second read just to see 0.
    while len < N {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < N {
                    break;
                }
            }
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

/// Reads one device; `Ok(None)` when no such device exists. `group` when the caller already
/// knows it (from a group's listing): its link is not read again. The driver comes from
/// `uevent` (`DRIVER=`, one read for identity, class and driver); BARs are read later, and only
/// when a firmware framebuffer exists to look for (`read_bars`).
pub fn read_device(root: &Root, bdf: &Bdf, group: Option<u32>) -> Result<Option<Device>, SysError> {
    let uevent = root.attr(bdf, "uevent");
    let Some(text) = read_attr::<UEVENT_CAP>(&uevent)? else {
        return Ok(None);
    };
    let (id, class) = device::parse_uevent(&text).ok_or(SysError::Malformed {
        path: uevent,
        what: "no PCI_ID or PCI_CLASS",
    })?;
    let group = group.or_else(|| group_of(&root.attr(bdf, "iommu_group")));
    // The kernel creates boot_vga only for VGA-class devices.
    let boot_vga = class.base_sub() == 0x0300
        && read_attr::<16>(&root.attr(bdf, "boot_vga"))?.is_some_and(|t| t.trim() == "1");
    Ok(Some(Device {
        bdf: *bdf,
        id,
        class,
        driver: device::uevent_driver(&text),
        group,
        boot_vga,
        // Asked only where it matters ([`is_virtual_function`]).
        virtfn: false,
        bars: heapless::Vec::new(),
    }))
}

/// An SR-IOV virtual function has a `physfn` link to its physical function.
pub fn is_virtual_function(root: &Root, bdf: &Bdf) -> bool {
    fs::symlink_metadata(root.attr(bdf, "physfn")).is_ok()
}

/// A device's memory BARs, from `resource`.
pub fn read_bars(root: &Root, bdf: &Bdf) -> Result<heapless::Vec<(u64, u64), 6>, SysError> {
    Ok(read_attr::<RESOURCE_CAP>(&root.attr(bdf, "resource"))?
        .map(|t| device::parse_bars(&t))
        .unwrap_or_default())
}

/// Calls `f` for each entry of a directory that parses as a PCI address (streamed: nothing is
/// collected, so a bus of any size costs no memory).
pub fn for_each_bdf(dir: &Path, mut f: impl FnMut(Bdf)) -> Result<(), SysError> {
    for_each_name(dir, |name| {
        if let Some(bdf) = core::str::from_utf8(name).ok().and_then(Bdf::parse) {
            f(bdf);
        }
    })
}

/// Calls `f` with the name of each entry of a directory (`.` and `..` included), read with
/// `getdents64` into a stack buffer: no allocation, no `opendir` bookkeeping.
pub fn for_each_name(dir: &Path, mut f: impl FnMut(&[u8])) -> Result<(), SysError> {
    use std::os::fd::AsRawFd;
    let file = open_ro(dir, nix::fcntl::OFlag::O_DIRECTORY).map_err(io_err(dir))?;
    // 8-byte aligned, as the records are; 32 KiB: a bus of 4096 devices lists in five calls.
    let mut buf = [0u64; 4096];
    loop {
        // SAFETY: getdents64 writes at most the given length into the buffer we own.
        let n = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_getdents64,
                file.as_raw_fd(),
                buf.as_mut_ptr(),
                core::mem::size_of_val(&buf),
            )
        };
        let n = match usize::try_from(n) {
            Ok(0) => return Ok(()),
            Ok(n) => n.min(core::mem::size_of_val(&buf)),
            Err(_) => return Err(io_err(dir)(io::Error::last_os_error())),
        };
        // SAFETY: the first n bytes were written by the kernel; u64 to u8 is always valid.
        let bytes = unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
        // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
        let mut at = 0;
        while let Some(head) = bytes.get(at..at + 19) {
            let reclen = usize::from(u16::from_ne_bytes([head[16], head[17]]));
            let Some(rec) = bytes.get(at + 19..at + reclen).filter(|_| reclen > 19) else {
                break;
            };
            let end = rec.iter().position(|&b| b == 0).unwrap_or(rec.len());
            f(&rec[..end]);
            at += reclen;
        }
    }
}

/// Whether a directory has an entry besides `.` and `..` (false when it cannot be read).
pub fn dir_has_entries(dir: &Path) -> bool {
    let mut any = false;
    let _ = for_each_name(dir, |n| any |= n != b"." && n != b"..");
    any
}
