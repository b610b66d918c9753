// SPDX-License-Identifier: MIT OR Apache-2.0
//! Expansion ROM capture: read once, in the initramfs, while the card is cleanest (fenced by its
//! override, not yet taken by vfio-pci, which may put it in D3 where reads return 0xFF); store it
//! under /run with a sidecar; the booted system moves it to /var/lib (`rom persist`).

use core::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use log::{error, info, warn};

use crate::apply::{Ctx, Kernel};
use crate::config::RomWant;
use crate::device::Device;
use crate::pci::{Bdf, PciId};
use crate::plan::{Decision, Plan};
use crate::rom::{self, Report};
use crate::state::{write_file, Json, Replace};
use crate::sysfs::{self, io_err, Root, SysError};

/// Read cap: past it the read is an error, not a silent cut.
pub const ROM_CAP: usize = 16 << 20;
pub const RUN_DIR: &str = "run/vfio-early/roms";
pub const VAR_DIR: &str = "var/lib/vfio-early/roms";
/// Inside the image: the captures already stored when it was built (`rom known`).
pub const KNOWN_FILE: &str = "etc/vfio-early/roms.known";
/// Known captures read from the image.
pub const MAX_KNOWN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("the device has no ROM BAR (no `rom` attribute)")]
    NoRomBar,
    #[error("{0}; hint: the card may not expose its ROM while in this state")]
    Io(SysError),
    #[error("more than {ROM_CAP} bytes: not a ROM")]
    TooLarge,
    #[error("the deadline passed before the ROM was read")]
    Deadline,
}

/// A finished read, with what it had to change on the way.
pub struct RomRead {
    pub data: Vec<u8>,
    /// `enable` was 0 and was set for the read (memory decoding stays on after it is restored).
    pub enabled_here: bool,
}

/// Reads a device's ROM through sysfs; every state changed is restored, even past the deadline
/// (a ROM BAR left enabled is worse than a late write). Never touches config space.
pub fn read_rom<K: Kernel>(ctx: &mut Ctx<'_, K>, bdf: &Bdf) -> Result<RomRead, CaptureError> {
    let rom_path = ctx.root.attr(bdf, "rom");
    if !rom_path.exists() {
        return Err(CaptureError::NoRomBar);
    }
    if ctx.deadline.passed() {
        return Err(CaptureError::Deadline);
    }
    let attr = |name: &str| ctx.root.attr(bdf, name);
    let read = |p: &Path| sysfs::read_attr::<16>(p).ok().flatten();
    let mut undo: heapless::Vec<(PathBuf, heapless::String<16>), 3> = heapless::Vec::new();
    let mut out = RomRead {
        data: Vec::new(),
        enabled_here: false,
    };
    // Runtime PM may have the card in D3: hold it in D0 for the read.
    let power = attr("power/control");
    if let Some(was) = read(&power).filter(|v| v.trim() != "on") {
        if ctx.kernel.write(&power, "on").is_ok() {
            let _ = undo.push((
                power,
                heapless::String::try_from(was.trim()).unwrap_or_default(),
            ));
        }
    }
    // Memory decoding: `enable` works only while no driver holds the device.
    let enable = attr("enable");
    if read(&enable).is_some_and(|v| v.trim() == "0") && ctx.kernel.write(&enable, "1").is_ok() {
        let _ = undo.push((enable, heapless::String::try_from("0").unwrap_or_default()));
        out.enabled_here = true;
    }
    let result = ctx
        .kernel
        .write(&rom_path, "1\n")
        .map_err(|e| CaptureError::Io(io_err(&rom_path)(e)))
        .and_then(|()| {
            let _ = undo.push((
                rom_path.clone(),
                heapless::String::try_from("0\n").unwrap_or_default(),
            ));
            read_capped(&rom_path)
        });
    for (path, value) in undo.iter().rev() {
        let _ = ctx.kernel.write(path, value);
    }
    out.data = result?;
    Ok(out)
}

/// Reads until EOF (the file's size is the BAR's, not the data's), at most ROM_CAP bytes.
fn read_capped(path: &Path) -> Result<Vec<u8>, CaptureError> {
    let f = fs::File::open(path).map_err(|e| CaptureError::Io(io_err(path)(e)))?;
    let mut data = Vec::new();
    f.take(ROM_CAP as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| CaptureError::Io(io_err(path)(e)))?;
    if data.len() > ROM_CAP {
        return Err(CaptureError::TooLarge);
    }
    Ok(data)
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

/// The seventh line of `resource` (index 6) is the ROM: the shadow copy sits at 0xC0000 with
/// IORESOURCE_ROM_SHADOW (0x2) set.
pub fn is_shadow(resource: &str) -> bool {
    let Some(line) = resource.lines().nth(6) else {
        return false;
    };
    let mut f = line
        .split_whitespace()
        .map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
    matches!((f.next(), f.nth(1)), (Some(Some(0xc0000)), Some(Some(flags))) if flags & 0x2 != 0)
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

/// Whether the image already knows a capture of this card.
pub fn known(text: &str, id: &PciId) -> bool {
    let key = known_line(id, "");
    text.lines().any(|l| l.starts_with(key.trim_end()))
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

/// Boot: reads the ROMs asked for among the fenced devices (one log record each), and says why
/// the others asked for are not read. Nothing is read when nothing is asked for.
pub fn capture_fenced<K: Kernel>(
    ctx: &mut Ctx<'_, K>,
    plan: &Plan,
    fenced: &[usize],
    want: &RomWant,
    known_text: &str,
    release: &str,
) {
    if *want == RomWant::None {
        return;
    }
    for (n, item) in plan.items.iter().enumerate() {
        let Some(dev) = item.dev.as_ref().filter(|d| want.wants(&d.bdf, d.class)) else {
            continue;
        };
        let head = format_args!("{} [{}]", dev.bdf, dev.id).to_string();
        let why_not = match &item.decision {
            Decision::Already => Some("already on vfio-pci before vfio-early ran (vfio-pci.ids=?), which may have put it in D3; hint: drop vfio-pci.ids= and let vfio-early take it"),
            Decision::Refuse(_) => Some("vfio-early does not take it in this boot"),
            Decision::Bind { unbind: Some(_) } => Some("a driver held it in this boot"),
            Decision::Bind { unbind: None } if !fenced.contains(&n) => Some("its override could not be written"),
            Decision::Bind { unbind: None } => None,
        };
        if let Some(why) = why_not {
            warn!("{head}: ROM not read: {why}");
            continue;
        }
        if known(known_text, &dev.id) {
            info!("{head}: ROM not read: the initramfs knows a stored capture of this card (/var/lib/vfio-early/roms)");
            continue;
        }
        let resource =
            sysfs::read_attr::<{ sysfs::RESOURCE_CAP }>(&ctx.root.attr(&dev.bdf, "resource"))
                .ok()
                .flatten();
        let shadow = dev.boot_vga && resource.is_some_and(|r| is_shadow(&r));
        match read_rom(ctx, &dev.bdf).map(|r| store(ctx.root, dev, &r, shadow, release)) {
            Err(e) => error!("{head}: ROM not read: {e}"),
            Ok(Ok(st)) if st.verdict == Verdict::Shadow => warn!(
                "{head}: ROM read is the boot VGA's shadow copy at 0xC0000 (legacy image only, often resized), not a clean dump: kept aside as {}, never installed as the card's ROM",
                st.path.display()
            ),
            Ok(Ok(st)) => info!(
                "{head}: ROM captured: {} bytes in {} images, sha256 {}: {} (kept by `vfio-early rom persist` in /{VAR_DIR})",
                st.report.chain_end.unwrap_or(0),
                st.report.images.len(),
                st.sha.get(..16).unwrap_or(""),
                st.path.display()
            ),
            Ok(Err(Ok(report))) => {
                let first = report.findings.iter().find(|f| f.is_error());
                error!(
                    "{head}: ROM not stored: {}; hint: {}",
                    first.map_or_else(|| "no complete image chain".to_string(), |f| f.to_string()),
                    match first {
                        Some(rom::Finding::Empty) => "this device has no ROM to capture",
                        Some(rom::Finding::AllOnes) => "the card did not answer: it may be powered down or need its own driver to expose the ROM",
                        _ => "the ROM is damaged or the read was cut short; `vfio-early rom inspect` on a dump tells more",
                    }
                );
            }
            Ok(Err(Err(e))) => error!("{head}: ROM read but not stored: {e}"),
        }
    }
    // Addresses asked for that vfio-early does not take in this boot: say so, once each.
    if let RomWant::Devices(list) = want {
        for bdf in list {
            if !plan
                .items
                .iter()
                .any(|i| i.dev.as_ref().is_some_and(|d| d.bdf == *bdf))
            {
                warn!("{bdf}: ROM not read: vfio-early does not take it in this boot (add it to vfio-early.devices=)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_is_the_rom_line_at_c0000_with_flag_2() {
        let mut res = String::new();
        for _ in 0..6 {
            res.push_str("0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
        }
        let shadow = format!("{res}0x00000000000c0000 0x00000000000dffff 0x0000000000000212\n");
        let real = format!("{res}0x00000000fe000000 0x00000000fe03ffff 0x0000000000046200\n");
        assert!(is_shadow(&shadow));
        assert!(!is_shadow(&real));
        assert!(!is_shadow("garbage"));
    }

    #[test]
    fn names_and_known_lines() {
        let id = PciId {
            vendor: 0x10de,
            device: 0x1c03,
            subvendor: 0x1043,
            subdevice: 0x85f4,
        };
        let sha = sha256_hex(b"abc");
        assert_eq!(
            sha.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let name = file_name(&id, &sha);
        assert_eq!(name, "10de-1c03-1043-85f4-ba7816bf8f01.rom");
        assert_eq!(ids_from_name(Path::new(&name)), Some(id));
        let known_text = format!("{}\n", known_line(&id, &sha));
        assert!(known(&known_text, &id));
        assert!(!known(&known_text, &PciId { subdevice: 0, ..id }));
    }
}
