// SPDX-License-Identifier: MIT OR Apache-2.0
//! PCI expansion ROMs: the image chain, its verdict, and the clean chain inside a dump.
//!
//! Pure and bounds-checked: every read goes through `u8_at`/`u16_at`/`u32_at`, which return
//! `None` past the end, so no input can panic (fuzzed: see tests/roms).
//!
//! Layout (PCI Firmware spec 3.x): an image starts with `55 AA`; the u16 at +0x18 points to its
//! `PCIR` data structure, which holds the IDs, the class, the image length in 512-byte units and
//! the last-image flag. The next image starts where this one ends.

use core::fmt;

/// Read cap: past it the read is an error, not a silent cut.
pub const ROM_CAP: usize = 16 << 20;

use crate::pci::{Class, PciId};

/// Images followed in one chain; real ROMs have one to four.
pub const MAX_IMAGES: usize = 16;
/// IDs kept from a PCIR device list (revision 3).
pub const MAX_DEVICE_LIST: usize = 16;
/// Findings kept per report.
pub const MAX_FINDINGS: usize = 24;
/// Larger than any real vBIOS (the largest are a few MiB): not a ROM, an error. The commands
/// read no more than this plus one byte.
pub const LARGE: usize = 16 << 20;

pub const CODE_X86: u8 = 0;
pub const CODE_EFI: u8 = 3;

/// One image of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub offset: usize,
    /// Absolute offset of the PCIR structure.
    pub pcir: usize,
    pub vendor: u16,
    pub device: u16,
    pub device_list: heapless::Vec<u16, MAX_DEVICE_LIST>,
    pub pcir_length: u16,
    pub pcir_revision: u8,
    pub class: Class,
    /// PCIR image length in bytes.
    pub length: usize,
    pub code_revision: u16,
    pub code_type: u8,
    pub last: bool,
    /// Legacy x86 images: the initialization size (byte 2, in 512-byte units) in bytes.
    pub x86_size: Option<usize>,
    /// Legacy x86 images: the bytes of the initialization size sum to zero.
    pub x86_checksum_ok: Option<bool>,
    pub efi: Option<EfiHeader>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EfiHeader {
    pub signature: u32,
    pub subsystem: u16,
    pub machine: u16,
    pub compression: u16,
    pub image_offset: u16,
}

impl Image {
    pub fn code_type_name(&self) -> &'static str {
        match self.code_type {
            CODE_X86 => "x86",
            1 => "open-firmware",
            2 => "pa-risc",
            CODE_EFI => "efi",
            _ => "unknown",
        }
    }
}

/// Something wrong with a ROM; errors make it unusable, warnings do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    // Errors.
    Empty,
    NoSignature {
        offset: usize,
    },
    PcirPointer {
        image: usize,
        pointer: u16,
    },
    PcirSignature {
        image: usize,
    },
    PcirLength {
        image: usize,
        length: u16,
    },
    ZeroLength {
        image: usize,
    },
    PastEnd {
        image: usize,
        end: usize,
        size: usize,
    },
    NoLastImage {
        images: usize,
    },
    Huge {
        size: usize,
    },
    // Warnings.
    AllOnes,
    MisalignedPcir {
        image: usize,
        pointer: u16,
    },
    Checksum {
        image: usize,
    },
    X86Size {
        image: usize,
        x86: usize,
        pcir: usize,
    },
    Ids {
        image: usize,
        found: (u16, u16),
        expected: (u16, u16),
    },
    NoEfiImage,
    EfiHeader {
        image: usize,
    },
    Trailing {
        bytes: usize,
        blank: bool,
    },
    Vendors,
}

impl Finding {
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Finding::Empty
                | Finding::NoSignature { .. }
                | Finding::PcirPointer { .. }
                | Finding::PcirSignature { .. }
                | Finding::PcirLength { .. }
                | Finding::ZeroLength { .. }
                | Finding::PastEnd { .. }
                | Finding::NoLastImage { .. }
                | Finding::Huge { .. }
                | Finding::AllOnes
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Empty => f.write_str("empty: no ROM data (the device may have no ROM)"),
            Finding::NoSignature { offset } => write!(f, "no 55 AA signature at offset {offset:#x}"),
            Finding::PcirPointer { image, pointer } => write!(f, "image {image}: PCIR pointer {pointer:#x} is zero or out of bounds"),
            Finding::PcirSignature { image } => write!(f, "image {image}: no PCIR signature where the pointer says"),
            Finding::PcirLength { image, length } => write!(f, "image {image}: PCIR structure length {length} is too short"),
            Finding::ZeroLength { image } => write!(f, "image {image}: image length is zero"),
            Finding::PastEnd { image, end, size } => write!(f, "image {image}: ends at {end:#x}, past the end of the data ({size:#x}): truncated"),
            Finding::NoLastImage { images } => write!(f, "the chain of {images} images has no last-image flag"),
            Finding::Huge { size } => write!(f, "{size} bytes: more than 16 MiB, not a ROM"),
            Finding::AllOnes => f.write_str("all bytes are 0xFF: the device did not answer (powered down, or decoding off)"),
            Finding::MisalignedPcir { image, pointer } => write!(f, "image {image}: PCIR pointer {pointer:#x} is not 4-byte aligned"),
            Finding::Checksum { image } => write!(f, "image {image}: x86 checksum is not zero"),
            Finding::X86Size { image, x86, pcir } => write!(f, "image {image}: x86 size {x86} differs from the PCIR length {pcir} (resized: a shadow copy?)"),
            Finding::Ids { image, found, expected } => write!(f, "image {image}: IDs {:04x}:{:04x} differ from the device's {:04x}:{:04x}", found.0, found.1, expected.0, expected.1),
            Finding::NoEfiImage => f.write_str("a display ROM without an EFI image: the guest needs legacy boot (CSM) to use it"),
            Finding::EfiHeader { image } => write!(f, "image {image}: EFI header fields are not valid"),
            Finding::Trailing { bytes, blank: true } => write!(f, "{bytes} bytes of padding after the last image"),
            Finding::Trailing { bytes, blank: false } => write!(f, "{bytes} bytes of trailing data after the last image"),
            Finding::Vendors => f.write_str("the images name several vendors"),
        }
    }
}

/// What `inspect` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub size: usize,
    pub images: heapless::Vec<Image, MAX_IMAGES>,
    /// End of the chain (offset just past the last image), when the chain is complete.
    pub chain_end: Option<usize>,
    pub findings: heapless::Vec<Finding, MAX_FINDINGS>,
}

impl Report {
    pub fn ok(&self) -> bool {
        !self.findings.iter().any(Finding::is_error)
    }

    fn add(&mut self, f: Finding) {
        let _ = self.findings.push(f);
    }
}

fn u8_at(d: &[u8], at: usize) -> Option<u8> {
    d.get(at).copied()
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([
        u8_at(d, at)?,
        u8_at(d, at.checked_add(1)?)?,
    ]))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16_at(d, at)?) | u32::from(u16_at(d, at.checked_add(2)?)?) << 16)
}

/// The minimum PCIR structure this parser reads (through the indicator at +0x15).
const PCIR_MIN: u16 = 0x18;

/// Walks the chain starting at `start`; stops at the first error (recorded in `r`).
fn walk(d: &[u8], start: usize, r: &mut Report) {
    let mut off = start;
    for n in 0..MAX_IMAGES {
        if n > 0 && off >= d.len() {
            break;
        }
        if u16_at(d, off) != Some(0xAA55) {
            r.add(Finding::NoSignature { offset: off });
            return;
        }
        let ptr = u16_at(d, off + 0x18).unwrap_or(0);
        let pcir = off + ptr as usize;
        if ptr == 0
            || pcir
                .checked_add(PCIR_MIN as usize)
                .map_or(true, |e| e > d.len())
        {
            r.add(Finding::PcirPointer {
                image: n,
                pointer: ptr,
            });
            return;
        }
        if d.get(pcir..pcir + 4) != Some(b"PCIR") {
            r.add(Finding::PcirSignature { image: n });
            return;
        }
        if ptr % 4 != 0 {
            r.add(Finding::MisalignedPcir {
                image: n,
                pointer: ptr,
            });
        }
        let pcir_length = u16_at(d, pcir + 0x0A).unwrap_or(0);
        if pcir_length < PCIR_MIN {
            r.add(Finding::PcirLength {
                image: n,
                length: pcir_length,
            });
            return;
        }
        let length = usize::from(u16_at(d, pcir + 0x10).unwrap_or(0)) * 512;
        if length == 0 {
            r.add(Finding::ZeroLength { image: n });
            return;
        }
        // The PCIR structure lies inside its image (PCI Firmware 3.0); one that runs past the
        // image's end reads its fields from whatever follows, and `clean` would cut it.
        if ptr as usize + PCIR_MIN as usize > length {
            r.add(Finding::PcirPointer {
                image: n,
                pointer: ptr,
            });
            return;
        }
        let img = image_at(d, off, pcir, pcir_length, length);
        let end = off + length;
        let last = img.last;
        let _ = r.images.push(img);
        if end > d.len() {
            r.add(Finding::PastEnd {
                image: n,
                end,
                size: d.len(),
            });
            return;
        }
        if last {
            r.chain_end = Some(end);
            return;
        }
        off = end;
    }
    r.add(Finding::NoLastImage {
        images: r.images.len(),
    });
}

/// Reads one image's fields; the caller checked the PCIR bounds.
fn image_at(d: &[u8], off: usize, pcir: usize, pcir_length: u16, length: usize) -> Image {
    let at16 = |o: usize| u16_at(d, pcir + o).unwrap_or(0);
    let at8 = |o: usize| u8_at(d, pcir + o).unwrap_or(0);
    let revision = at8(0x0C);
    let class =
        Class(u32::from(at8(0x0D)) | u32::from(at8(0x0E)) << 8 | u32::from(at8(0x0F)) << 16);
    let code_type = at8(0x14);
    let mut device_list = heapless::Vec::new();
    let list_ptr = at16(0x08);
    if revision >= 3 && list_ptr != 0 {
        let mut at = pcir + list_ptr as usize;
        while let Some(id) = u16_at(d, at).filter(|&id| id != 0) {
            if device_list.push(id).is_err() {
                break;
            }
            at += 2;
        }
    }
    // The checksum is summed by `inspect` only: `clean_range` walks a chain from every
    // `55 AA` and needs none of it.
    let x86_size =
        (code_type == CODE_X86).then(|| usize::from(u8_at(d, off + 2).unwrap_or(0)) * 512);
    let efi = (code_type == CODE_EFI).then(|| EfiHeader {
        signature: u32_at(d, off + 4).unwrap_or(0),
        subsystem: u16_at(d, off + 8).unwrap_or(0),
        machine: u16_at(d, off + 0x0A).unwrap_or(0),
        compression: u16_at(d, off + 0x0C).unwrap_or(0),
        image_offset: u16_at(d, off + 0x16).unwrap_or(0),
    });
    Image {
        offset: off,
        pcir,
        vendor: at16(0x04),
        device: at16(0x06),
        device_list,
        pcir_length,
        pcir_revision: revision,
        class,
        length,
        code_revision: at16(0x12),
        code_type,
        last: at8(0x15) & 0x80 != 0,
        x86_size,
        x86_checksum_ok: None,
        efi,
    }
}

/// Legacy x86 images: the bytes of the initialization size sum to zero.
fn x86_checksum_ok(d: &[u8], off: usize, size: usize) -> bool {
    let sum = d
        .get(off..(off + size).min(d.len()))
        .map(|b| b.iter().fold(0u8, |a, &x| a.wrapping_add(x)));
    size > 0 && sum == Some(0) && off + size <= d.len()
}

fn efi_header_ok(h: &EfiHeader, length: usize) -> bool {
    // Subsystems: boot-service driver, runtime driver. Machines: IA32, x64, EBC, ARM64, RISC-V 64.
    h.signature == 0x0EF1
        && matches!(h.subsystem, 11 | 12)
        && matches!(h.machine, 0x014c | 0x8664 | 0x0ebc | 0xaa64 | 0x5064)
        && h.compression <= 1
        && (h.image_offset as usize) < length
}

/// The chain from offset 0, with every check. `expect` is the device the ROM should belong to.
pub fn inspect(d: &[u8], expect: Option<&PciId>) -> Report {
    let mut r = Report {
        size: d.len(),
        ..Report::default()
    };
    if d.is_empty() {
        r.add(Finding::Empty);
        return r;
    }
    if d.len() > LARGE {
        r.add(Finding::Huge { size: d.len() });
        return r;
    }
    if d.iter().all(|&b| b == 0xff) {
        r.add(Finding::AllOnes);
        return r;
    }
    walk(d, 0, &mut r);
    for img in r.images.iter_mut() {
        img.x86_checksum_ok = img
            .x86_size
            .map(|size| x86_checksum_ok(d, img.offset, size));
    }
    let images = r.images.clone();
    for (n, img) in images.iter().enumerate() {
        if img.x86_checksum_ok == Some(false) {
            r.add(Finding::Checksum { image: n });
        }
        if let Some(x86) = img.x86_size.filter(|&s| s != img.length) {
            r.add(Finding::X86Size {
                image: n,
                x86,
                pcir: img.length,
            });
        }
        if let Some(id) = expect {
            let ours = img.vendor == id.vendor
                && (img.device == id.device || img.device_list.contains(&id.device));
            if !ours {
                r.add(Finding::Ids {
                    image: n,
                    found: (img.vendor, img.device),
                    expected: (id.vendor, id.device),
                });
            }
        }
        if img.efi.is_some_and(|h| !efi_header_ok(&h, img.length)) {
            r.add(Finding::EfiHeader { image: n });
        }
    }
    if images.iter().any(|i| i.class.is_display())
        && !images.iter().any(|i| i.code_type == CODE_EFI)
    {
        r.add(Finding::NoEfiImage);
    }
    if images.iter().any(|i| i.vendor != images[0].vendor) {
        r.add(Finding::Vendors);
    }
    if let Some(end) = r.chain_end.filter(|&e| e < d.len()) {
        let rest = &d[end..];
        let blank = rest.iter().all(|&b| b == 0xff) || rest.iter().all(|&b| b == 0);
        r.add(Finding::Trailing {
            bytes: rest.len(),
            blank,
        });
    }
    r
}

/// The clean chain inside a dump: the first offset holding `55 AA` from which a complete, bounded
/// chain reaches a last-image flag inside the data. Returns `start..end`; no byte is changed.
pub fn clean_range(d: &[u8]) -> Option<core::ops::Range<usize>> {
    let mut from = 0;
    while let Some(pos) = d.get(from..)?.windows(2).position(|w| w == [0x55, 0xAA]) {
        let start = from + pos;
        let mut r = Report::default();
        walk(d, start, &mut r);
        if let (Some(end), true) = (r.chain_end, r.findings.iter().all(|f| !f.is_error())) {
            return Some(start..end);
        }
        from = start + 1;
    }
    None
}
