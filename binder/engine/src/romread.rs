// SPDX-License-Identifier: MIT OR Apache-2.0
//! Expansion ROM capture at boot: read once, while the card is cleanest (fenced by its override,
//! not yet taken by vfio-pci, which may put it in D3 where reads return 0xFF), then handed to the
//! store under /run (`romstore`); the booted system moves it to /var/lib (`rom persist`).

use std::fs;
use std::io::Read;
use std::path::Path;

use log::{error, info, warn};

use crate::apply::{Ctx, Kernel};
use crate::romstore::{known_line, store, RomRead, Verdict};
use vfio_early_core::config::RomWant;
use vfio_early_core::layout::ROMS_VAR_DIR;
use vfio_early_core::outcome::Deadline;
use vfio_early_core::pci::{Bdf, PciId};
use vfio_early_core::plan::{Decision, Plan};
use vfio_early_core::rom;
use vfio_early_core::rom::ROM_CAP;
use vfio_early_core::text::bounded;
use vfio_early_system::read::{io_err, SysError};
use vfio_early_system::sysfs::{self, Root};

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

/// What a ROM read may change and put back.
pub struct Access<'a, K: Kernel> {
    pub root: &'a Root,
    pub kernel: &'a mut K,
    pub deadline: Deadline,
}

/// Reads a device's ROM through sysfs; every state changed is restored, even past the deadline
/// (a ROM BAR left enabled is worse than a late write), and a failed restore is reported, not
/// dropped. Never touches config space.
pub fn read_rom<K: Kernel>(a: &mut Access<'_, K>, bdf: &Bdf) -> Result<RomRead, CaptureError> {
    let rom_path = a.root.attr(bdf, "rom");
    if !rom_path.exists() {
        return Err(CaptureError::NoRomBar);
    }
    if a.deadline.passed_at(a.kernel.now()) {
        return Err(CaptureError::Deadline);
    }
    let read = |p: &Path| sysfs::read_attr::<16>(p).ok().flatten();
    let mut undo: heapless::Vec<(&'static str, heapless::String<16>), 3> = heapless::Vec::new();
    let mut out = RomRead {
        data: Vec::new(),
        enabled_here: false,
        not_restored: heapless::Vec::new(),
    };
    // Runtime PM may have the card in D3: hold it in D0 for the read.
    let power = a.root.attr(bdf, "power/control");
    if let Some(was) = read(&power).filter(|v| v.trim() != "on") {
        if a.kernel.write(&power, "on").is_ok() {
            let was = heapless::String::try_from(was.trim()).unwrap_or_default();
            let _ = undo.push(("power/control", was));
        }
    }
    // Memory decoding: `enable` works only while no driver holds the device.
    let enable = a.root.attr(bdf, "enable");
    if read(&enable).is_some_and(|v| v.trim() == "0") && a.kernel.write(&enable, "1").is_ok() {
        let _ = undo.push((
            "enable",
            heapless::String::try_from("0").unwrap_or_default(),
        ));
        out.enabled_here = true;
    }
    let result = a
        .kernel
        .write(&rom_path, "1\n")
        .map_err(|e| CaptureError::Io(io_err(&rom_path)(e)))
        .and_then(|()| {
            let _ = undo.push(("rom", heapless::String::try_from("0\n").unwrap_or_default()));
            read_capped(&rom_path)
        });
    for (attr, value) in undo.iter().rev() {
        if let Err(e) = a.kernel.write(&a.root.attr(bdf, attr), value) {
            let _ = out.not_restored.push((attr, bounded(format_args!("{e}"))));
        }
    }
    for (attr, e) in &out.not_restored {
        error!("{bdf}: after the ROM read, {attr} could not be put back: {e}; hint: the device keeps the changed state until a driver or a reset sets it");
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

/// Whether the image already knows a capture of this card.
pub fn known(text: &str, id: &PciId) -> bool {
    let key = known_line(id, "");
    text.lines().any(|l| l.starts_with(key.trim_end()))
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
        let mut access = Access {
            root: ctx.root,
            kernel: &mut *ctx.kernel,
            deadline: ctx.deadline,
        };
        match read_rom(&mut access, &dev.bdf).map(|r| store(ctx.root, dev, &r, shadow, release)) {
            Err(e) => error!("{head}: ROM not read: {e}"),
            Ok(Ok(st)) if st.verdict == Verdict::Shadow => warn!(
                "{head}: ROM read is the boot VGA's shadow copy at 0xC0000 (legacy image only, often resized), not a clean dump: kept aside as {}, never installed as the card's ROM",
                st.path.display()
            ),
            Ok(Ok(st)) => info!(
                "{head}: ROM captured: {} bytes in {} images, sha256 {}: {} (kept by `vfio-early rom persist` in /{ROMS_VAR_DIR})",
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
    use crate::romstore::{file_name, ids_from_name, sha256_hex};

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
