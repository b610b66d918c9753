// SPDX-License-Identifier: MIT OR Apache-2.0
//! Stored ROM captures: names, sidecars, the store under /run at boot, `rom persist` to /var/lib
//! and the list an image is told about (`rom known`).

use core::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::device::Device;
use crate::pci::PciId;
use crate::rom::{self, Report};
use crate::romread::RomRead;
use crate::state::{write_file, Json, Replace};
use crate::sysfs::{io_err, Root, SysError};

pub const RUN_DIR: &str = "run/vfio-early/roms";
pub const VAR_DIR: &str = "var/lib/vfio-early/roms";

/// What a stored capture is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A complete chain: installable.
    Clean,
    /// The boot VGA's shadow copy at 0xC0000: legacy image only, often resized. Kept aside.
    Shadow,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Clean => "clean",
            Verdict::Shadow => "shadow",
        })
    }
}

pub fn sha256_hex(data: &[u8]) -> heapless::String<64> {
    let digest = Sha256::digest(data);
    let mut s = heapless::String::new();
    for b in digest {
        let _ = fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
    }
    s
}

/// `vvvv-dddd-ssss-ssss-<12 hex of sha256>.rom`: IDs for people and tools, the hash so a
/// flashed vBIOS gets its own file instead of replacing the old one.
pub fn file_name(id: &PciId, sha: &str) -> String {
    format!(
        "{:04x}-{:04x}-{:04x}-{:04x}-{}.rom",
        id.vendor,
        id.device,
        id.subvendor,
        id.subdevice,
        sha.get(..12).unwrap_or(sha)
    )
}

/// The IDs part of a file name, to find other captures of the same card.
pub fn id_prefix(id: &PciId) -> String {
    format!(
        "{:04x}-{:04x}-{:04x}-{:04x}-",
        id.vendor, id.device, id.subvendor, id.subdevice
    )
}

/// One line of `roms.known`: `vvvv:dddd:ssss:ssss sha256`.
pub fn known_line(id: &PciId, sha: &str) -> String {
    format!(
        "{:04x}:{:04x}:{:04x}:{:04x} {sha}",
        id.vendor, id.device, id.subvendor, id.subdevice
    )
}

/// A stored capture.
pub struct Stored {
    pub path: PathBuf,
    pub sha: heapless::String<64>,
    pub verdict: Verdict,
    pub report: Report,
}

/// Stores a capture under `<root>/run/vfio-early/roms` (shadow copies in `shadow/`), with its
/// sidecar. Returns `Err` with the report when the data is not a usable ROM: nothing is stored.
pub fn store(
    root: &Root,
    dev: &Device,
    read: &RomRead,
    shadow: bool,
    kernel_release: &str,
) -> Result<Stored, Result<Report, SysError>> {
    let report = rom::inspect(&read.data, Some(&dev.id));
    let (verdict, bytes) = match (shadow, report.chain_end) {
        (true, _) => (Verdict::Shadow, &read.data[..]),
        (false, Some(end)) if report.ok() => (Verdict::Clean, &read.data[..end]),
        _ => return Err(Ok(report)),
    };
    let sha = sha256_hex(bytes);
    let dir = match verdict {
        Verdict::Clean => root.path(RUN_DIR),
        Verdict::Shadow => root.path(RUN_DIR).join("shadow"),
    };
    let path = dir.join(file_name(&dev.id, &sha));
    let mut j = Json::default();
    j.open(None, '{')
        .raw(Some("version"), 1)
        .str(
            Some("file"),
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
        )
        .str(Some("sha256"), &sha)
        .str(Some("bdf"), dev.bdf)
        .str(Some("vendor"), format_args!("{:04x}", dev.id.vendor))
        .str(Some("device"), format_args!("{:04x}", dev.id.device))
        .str(Some("subvendor"), format_args!("{:04x}", dev.id.subvendor))
        .str(Some("subdevice"), format_args!("{:04x}", dev.id.subdevice))
        .str(Some("kernel"), kernel_release)
        .raw(Some("time"), now())
        .str(Some("verdict"), verdict)
        .raw(Some("size"), bytes.len())
        .raw(Some("read_bytes"), read.data.len())
        .raw(Some("enable_set_here"), read.enabled_here);
    if read.enabled_here {
        j.str(
            Some("note"),
            "enable was 0 and was set for the read; writing 0 back does not clear memory decoding (pci_disable_device leaves it on)",
        );
    }
    if !read.not_restored.is_empty() {
        j.open(Some("not_restored"), '[');
        for (attr, e) in &read.not_restored {
            j.str(None, format_args!("{attr}: {e}"));
        }
        j.close(']');
    }
    j.raw(Some("report"), Raw(&report_json(&report)));
    j.close('}');
    j.out.push('\n');
    write_file(&path, bytes, Replace::No).map_err(Err)?;
    write_file(&sidecar(&path), j.out.as_bytes(), Replace::No).map_err(Err)?;
    Ok(Stored {
        path,
        sha,
        verdict,
        report,
    })
}

/// JSON that is already JSON.
struct Raw<'a>(&'a str);

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

pub fn sidecar(rom: &Path) -> PathBuf {
    let mut s = rom.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The report as a JSON object (shared by the sidecar and `rom inspect --json`).
pub fn report_json(r: &Report) -> String {
    let mut j = Json::default();
    j.open(None, '{')
        .raw(Some("size"), r.size)
        .raw(Some("ok"), r.ok());
    match r.chain_end {
        Some(e) => j.raw(Some("chain_end"), e),
        None => j.raw(Some("chain_end"), "null"),
    };
    j.open(Some("images"), '[');
    for img in &r.images {
        j.open(None, '{')
            .raw(Some("offset"), img.offset)
            .str(Some("code_type"), img.code_type_name())
            .raw(Some("code_type_value"), img.code_type)
            .str(Some("vendor"), format_args!("{:04x}", img.vendor))
            .str(Some("device"), format_args!("{:04x}", img.device));
        j.open(Some("device_list"), '[');
        for d in &img.device_list {
            j.str(None, format_args!("{d:04x}"));
        }
        j.close(']')
            .str(Some("class"), img.class)
            .raw(Some("length"), img.length)
            .raw(Some("last"), img.last)
            .raw(Some("pcir_offset"), img.pcir)
            .raw(Some("pcir_length"), img.pcir_length)
            .raw(Some("pcir_revision"), img.pcir_revision)
            .raw(Some("code_revision"), img.code_revision);
        if let (Some(size), Some(ok)) = (img.x86_size, img.x86_checksum_ok) {
            j.raw(Some("x86_size"), size)
                .raw(Some("x86_checksum_ok"), ok);
        }
        if let Some(h) = &img.efi {
            j.open(Some("efi"), '{')
                .str(Some("signature"), format_args!("{:#x}", h.signature))
                .raw(Some("subsystem"), h.subsystem)
                .str(Some("machine"), format_args!("{:#06x}", h.machine))
                .raw(Some("compression"), h.compression)
                .str(Some("image_offset"), format_args!("{:#x}", h.image_offset))
                .close('}');
        }
        j.close('}');
    }
    j.close(']');
    for (key, errors) in [("errors", true), ("warnings", false)] {
        j.open(Some(key), '[');
        for f in r.findings.iter().filter(|f| f.is_error() == errors) {
            j.str(None, f);
        }
        j.close(']');
    }
    j.close('}');
    j.out
}

/// What `persist` did.
#[derive(Debug, Default)]
pub struct Persisted {
    pub moved: Vec<PathBuf>,
    /// Read again at boot although already stored: the image does not know them yet.
    pub again: Vec<PathBuf>,
    /// Same card, different content: a flashed vBIOS? Both kept.
    pub differs: Vec<(PathBuf, PathBuf)>,
    pub errors: Vec<SysError>,
}

/// Moves captures from /run to /var/lib (root-joined): never replaces a stored capture, drops
/// identical copies, keeps both when the same card's ROM changed.
pub fn persist(root: &Root) -> Persisted {
    let mut p = Persisted::default();
    for sub in ["", "shadow"] {
        let from_dir = root.path(RUN_DIR).join(sub);
        let to_dir = root.path(VAR_DIR).join(sub);
        let Ok(entries) = fs::read_dir(&from_dir) else {
            continue;
        };
        let mut roms: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rom"))
            .collect();
        roms.sort();
        for rom in roms {
            let Some(name) = rom.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let target = to_dir.join(&name);
            if target.exists() {
                let _ = fs::remove_file(&rom);
                let _ = fs::remove_file(sidecar(&rom));
                p.again.push(target);
                continue;
            }
            let prefix = name.get(..20).unwrap_or(&name).to_string();
            if let Ok(stored) = fs::read_dir(&to_dir) {
                for other in stored.flatten().map(|e| e.path()) {
                    let on = other.file_name().map(|n| n.to_string_lossy().into_owned());
                    if on.is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".rom")) {
                        p.differs.push((other, target.clone()));
                    }
                }
            }
            let moved = fs::read(&rom)
                .map_err(io_err(&rom))
                .and_then(|b| write_file(&target, &b, Replace::No))
                .and_then(|()| {
                    let side = sidecar(&rom);
                    let b = fs::read(&side).map_err(io_err(&side))?;
                    write_file(&sidecar(&target), &b, Replace::No)
                });
            match moved {
                Ok(()) => {
                    let _ = fs::remove_file(&rom);
                    let _ = fs::remove_file(sidecar(&rom));
                    p.moved.push(target);
                }
                Err(e) => p.errors.push(e),
            }
        }
    }
    p
}

/// `roms.known` for an image: one line per clean capture stored under /var/lib.
pub fn known_list(root: &Root) -> Result<String, SysError> {
    let dir = root.path(VAR_DIR);
    let mut lines = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    for rom in entries.flatten().map(|e| e.path()) {
        if !rom.extension().is_some_and(|x| x == "rom") {
            continue;
        }
        let Ok(bytes) = fs::read(&rom) else { continue };
        let r = rom::inspect(&bytes, None);
        let (Some(first), true) = (r.images.first(), r.ok()) else {
            continue;
        };
        let id = ids_from_name(&rom).unwrap_or(PciId {
            vendor: first.vendor,
            device: first.device,
            ..PciId::default()
        });
        lines.push(known_line(&id, &sha256_hex(&bytes)));
    }
    lines.sort();
    lines.dedup();
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// The IDs a capture's file name carries.
pub fn ids_from_name(path: &Path) -> Option<PciId> {
    let name = path.file_name()?.to_str()?;
    let mut f = name.split('-').map(|v| u16::from_str_radix(v, 16).ok());
    Some(PciId {
        vendor: f.next()??,
        device: f.next()??,
        subvendor: f.next()??,
        subdevice: f.next()??,
    })
}
