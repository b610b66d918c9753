// SPDX-License-Identifier: MIT OR Apache-2.0
//! Stored ROM captures: names, sidecars, the store under /run at boot, `rom persist` to /var/lib
//! and the list an image is told about (`rom known`).

use core::fmt;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use vfio_early_core::device::Device;
use vfio_early_core::json::Json;
use vfio_early_core::layout::{ROMS_RUN_DIR, ROMS_VAR_DIR};
use vfio_early_core::pci::PciId;
use vfio_early_core::rom::ROM_CAP;
use vfio_early_core::rom::{self, Report};
use vfio_early_system::files::{Dir, Replace};
use vfio_early_system::read::SysError;
use vfio_early_system::sysfs::Root;

/// A finished read, with what it had to change on the way.
pub struct RomRead {
    pub data: Vec<u8>,
    /// `enable` was 0 and was set for the read (memory decoding stays on after it is restored).
    pub enabled_here: bool,
    /// State that could not be put back: the attribute and the error (logged and in the
    /// sidecar).
    pub not_restored: heapless::Vec<(&'static str, heapless::String<120>), 3>,
}

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
    let rel = match verdict {
        Verdict::Clean => ROMS_RUN_DIR.to_string(),
        Verdict::Shadow => format!("{ROMS_RUN_DIR}/shadow"),
    };
    // Under /run: `rom persist` makes the durable copy.
    let dir = Dir::open(root.base(), &rel, true).map_err(Err)?.volatile();
    let name = file_name(&dev.id, &sha);
    let path = dir.child(&name);
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
    // The sidecar first: a ROM is never visible without it (`persist` reads `*.rom`).
    dir.write(&sidecar_name(&name), j.out.as_bytes(), Replace::Yes)
        .map_err(Err)?;
    dir.write(&name, bytes, Replace::No).map_err(Err)?;
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

pub fn sidecar_name(rom: &str) -> String {
    format!("{rom}.json")
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
    /// A stored copy (or its sidecar) that did not match its name's content, replaced.
    pub repaired: Vec<PathBuf>,
    /// Temporary files a killed run left, removed.
    pub stale: usize,
    pub errors: Vec<SysError>,
}

/// Sidecars are small; a bigger file is not ours.
const SIDECAR_CAP: usize = 64 * 1024;

/// The sha256 a sidecar records.
fn sidecar_sha(text: &[u8]) -> Option<&str> {
    let text = core::str::from_utf8(text).ok()?;
    let rest = text.get(text.find("\"sha256\"")? + 8..)?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let sha = rest.get(..64)?;
    let hex = sha
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    (hex && rest.get(64..65) == Some("\"")).then_some(sha)
}

/// A capture's ROM bytes and sidecar bytes.
type Capture = (Vec<u8>, Vec<u8>);

/// A capture whose content matches its name and sidecar.
fn read_capture(dir: &Dir, name: &str) -> Result<Option<Capture>, SysError> {
    let Some(rom) = dir.read(name, ROM_CAP)? else {
        return Ok(None);
    };
    let Some(side) = dir.read(&sidecar_name(name), SIDECAR_CAP)? else {
        return Ok(None);
    };
    let sha = sha256_hex(&rom.bytes);
    let named = name.len() > 16 && name.get(20..32) == sha.get(..12);
    let ok = !rom.cut && !side.cut && named && sidecar_sha(&side.bytes) == Some(sha.as_str());
    Ok(ok.then_some((rom.bytes, side.bytes)))
}

/// Moves captures from /run to /var/lib (root-joined) under a lock on the store, so runs are
/// serialised. A capture is published sidecar first, then the ROM, and dropped from /run only
/// once the stored copy is verified by content; a run killed at any point is completed by the
/// next. Never replaces a good stored capture; a damaged or planted one under a capture's name
/// is replaced (by rename: a symlink there is swapped, never followed). Same card with other
/// content: both kept.
pub fn persist(root: &Root) -> Persisted {
    let mut p = Persisted::default();
    let store = match Dir::open(root.base(), ROMS_VAR_DIR, true) {
        Ok(d) => d,
        Err(e) => {
            p.errors.push(e);
            return p;
        }
    };
    let _lock = match store.lock() {
        Ok(l) => l,
        Err(e) => {
            p.errors.push(e);
            return p;
        }
    };
    for sub in ["", "shadow"] {
        let from_rel = format!("{ROMS_RUN_DIR}/{sub}");
        let from = match Dir::open(root.base(), from_rel.trim_end_matches('/'), false) {
            Ok(d) => d,
            Err(SysError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                continue
            }
            Err(e) => {
                p.errors.push(e);
                continue;
            }
        };
        let to = match Dir::open(root.base(), &format!("{ROMS_VAR_DIR}/{sub}"), true) {
            Ok(d) => d,
            Err(e) => {
                p.errors.push(e);
                continue;
            }
        };
        match to.remove_stale_temps() {
            Ok(n) => p.stale += n,
            Err(e) => p.errors.push(e),
        }
        if let Err(e) = persist_dir(&from, &to, &mut p) {
            p.errors.push(e);
        }
    }
    p
}

fn persist_dir(from: &Dir, to: &Dir, p: &mut Persisted) -> Result<(), SysError> {
    let names = from.names()?;
    for name in names.iter().filter(|n| n.ends_with(".rom")) {
        if let Err(e) = persist_one(from, to, name, p) {
            p.errors.push(e);
        }
    }
    // A sidecar whose ROM never got published (the boot was cut between the two): nothing of
    // it is stored, nothing is lost by dropping it.
    for name in names.iter().filter(|n| n.ends_with(".rom.json")) {
        let rom = name.trim_end_matches(".json");
        if !names.iter().any(|n| n == rom) {
            from.remove(name)?;
        }
    }
    Ok(())
}

fn persist_one(from: &Dir, to: &Dir, name: &str, p: &mut Persisted) -> Result<(), SysError> {
    let target = to.child(name);
    let stored = read_capture(to, name);
    let Some((rom, side)) = read_capture(from, name)? else {
        // The /run copy cannot be verified (its sidecar is gone: a run was killed after
        // dropping it). Drop it only when the stored copy is whole.
        if matches!(stored, Ok(Some(_))) {
            from.remove(name)?;
            return Ok(());
        }
        return Err(SysError::Malformed {
            path: from.child(name),
            what: "capture does not match its sidecar or name: kept where it is",
        });
    };
    match stored {
        Ok(Some(_)) => p.again.push(target.clone()),
        Ok(None) | Err(_) => {
            let prefix = name.get(..20).unwrap_or(name);
            for other in to.names()? {
                if other.starts_with(prefix) && other.ends_with(".rom") && other != name {
                    p.differs.push((to.child(&other), target.clone()));
                }
            }
            // Anything already under the name (a damaged copy, a planted link) is replaced.
            let existed = to.read(name, 0).map_or(true, |r| r.is_some());
            // Written whole and fsynced, or an error before anything in /run is dropped.
            to.write(&sidecar_name(name), &side, Replace::Yes)?;
            to.write(name, &rom, Replace::Yes)?;
            if existed {
                p.repaired.push(target.clone());
            }
            p.moved.push(target);
        }
    }
    // Only now, the stored copy verified: the sidecar first, so a cut here leaves a ROM the
    // next run recognises as stored.
    from.remove(&sidecar_name(name))?;
    from.remove(name)?;
    from.sync()
}

/// `roms.known` for an image: one line per clean capture stored under /var/lib.
pub fn known_list(root: &Root) -> Result<String, SysError> {
    let dir = match Dir::open(root.base(), ROMS_VAR_DIR, false) {
        Ok(d) => d,
        Err(SysError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(String::new())
        }
        Err(e) => return Err(e),
    };
    let mut lines = Vec::new();
    for name in dir.names()?.iter().filter(|n| n.ends_with(".rom")) {
        // Only whole captures: a ROM whose sidecar is missing was not finished.
        let Ok(Some((bytes, _))) = read_capture(&dir, name) else {
            continue;
        };
        let r = rom::inspect(&bytes, None);
        let (Some(first), true) = (r.images.first(), r.ok()) else {
            continue;
        };
        let id = ids_from_name(Path::new(name)).unwrap_or(PciId {
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
