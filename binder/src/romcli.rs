// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early rom ...`: what people fetch rom-parser and header-strip scripts for, plus the
//! persistence step and the libvirt snippet.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use vfio_early_core::layout::ROMS_VAR_DIR;
use vfio_early_core::outcome::Deadline;
use vfio_early_core::pci::Bdf;
use vfio_early_core::rom::ROM_CAP;
use vfio_early_core::rom::{self, Report};
use vfio_early_engine::apply::RealKernel;
use vfio_early_engine::romread::{self, Access};
use vfio_early_engine::romstore;
use vfio_early_system::files::{Dir, Replace};
use vfio_early_system::sysfs::{self, Root};

pub const USAGE: &str = "\
Usage:
  vfio-early rom inspect FILE|BDF [--json] [--force]   the image chain and a verdict
  vfio-early rom clean IN OUT                          strip a dump's header and trailing data
  vfio-early rom libvirt BDF                           a <hostdev> element with the captured ROM
  vfio-early rom persist                               keep boot captures: /run -> /var/lib
  vfio-early rom known                                 stored captures, for the initramfs hooks
inspect exit codes: 0 usable, 1 unusable, 2 usage or read error.
Example: vfio-early rom inspect 01:00.0
";

/// Runs a `rom` subcommand; returns the exit code.
/// Words are OS strings: a file name may be any bytes.
pub fn main(root: &Root, args: &[std::ffi::OsString]) -> i32 {
    let (flags, rest): (Vec<&OsStr>, Vec<&OsStr>) = args
        .iter()
        .map(|a| a.as_os_str())
        .partition(|a| a.as_encoded_bytes().starts_with(b"--"));
    let json = flags.contains(&OsStr::new("--json"));
    let force = flags.contains(&OsStr::new("--force"));
    if let Some(bad) = flags
        .iter()
        .find(|f| !matches!(f.to_str(), Some("--json" | "--force")))
    {
        return usage(&format!("unknown option \"{}\"", bad.to_string_lossy()));
    }
    let command = rest.first().and_then(|c| c.to_str());
    match (command, &rest[rest.len().min(1)..]) {
        (Some("inspect"), [target]) => inspect(root, target, json, force),
        (Some("clean"), [input, output]) => clean(Path::new(input), Path::new(output)),
        (Some("libvirt"), [bdf]) => libvirt(root, &bdf.to_string_lossy()),
        (Some("persist"), []) => persist(root),
        (Some("known"), []) => known(root),
        _ => usage("which rom command?"),
    }
}

fn usage(msg: &str) -> i32 {
    errln!("vfio-early rom: {msg}\n{USAGE}");
    2
}

fn inspect(root: &Root, target: &OsStr, json: bool, force: bool) -> i32 {
    let shown = target.to_string_lossy();
    let (data, expect) = match target.to_str().and_then(Bdf::parse) {
        Some(bdf) if !Path::new(target).exists() => match read_device_rom(root, &bdf, force) {
            Ok(v) => v,
            Err(msg) => {
                errln!("vfio-early rom: {msg}");
                return 2;
            }
        },
        _ => match vfio_early_system::read::read_input(Path::new(target), ROM_CAP) {
            // Not read past the cap: the size is the file's.
            Ok(input) if input.cut => {
                let size = fs::metadata(target).map_or(ROM_CAP + 1, |m| m.len() as usize);
                let mut report = Report {
                    size,
                    ..Report::default()
                };
                let _ = report.findings.push(rom::Finding::Huge { size });
                return print_report(&shown, &report, json);
            }
            Ok(input) => (input.bytes, None),
            Err(e) => {
                errln!("vfio-early rom: {e}");
                return 2;
            }
        },
    };
    print_report(&shown, &rom::inspect(&data, expect.as_ref()), json)
}

fn print_report(target: &str, report: &Report, json: bool) -> i32 {
    if json {
        outln!("{}", romstore::report_json(report));
    } else {
        out!("{}", human(target, report));
    }
    i32::from(!report.ok())
}

/// Reads a device's ROM through sysfs, refusing while a driver holds it unless forced:
/// enabling the ROM BAR can cut access to the card's registers under a live driver or VM.
fn read_device_rom(
    root: &Root,
    bdf: &Bdf,
    force: bool,
) -> Result<(Vec<u8>, Option<vfio_early_core::pci::PciId>), String> {
    let dev = sysfs::read_device(root, bdf, None)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{bdf}: no such PCI device"))?;
    if let (Some(drv), false) = (&dev.driver, force) {
        return Err(format!(
            "{bdf} is bound to {drv}: enabling its ROM BAR can cut access to the card's registers under a live driver or VM; unbind it first, or --force"
        ));
    }
    let mut kernel = RealKernel::new(root);
    let mut access = Access {
        root,
        kernel: &mut kernel,
        deadline: Deadline {
            start: Instant::now(),
            limit: Duration::from_secs(60),
        },
    };
    let read = romread::read_rom(&mut access, bdf).map_err(|e| format!("{bdf}: {e}"))?;
    for (attr, e) in &read.not_restored {
        errln!("vfio-early: {bdf}: {attr} could not be put back after the read: {e}");
    }
    Ok((read.data, Some(dev.id)))
}

/// The report for people.
pub fn human(name: &str, r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(s, "{name}: {} bytes, {} images", r.size, r.images.len());
    if let Some(end) = r.chain_end {
        let _ = write!(s, ", chain ends at {end:#x}");
    }
    s.push('\n');
    for (n, i) in r.images.iter().enumerate() {
        let _ = write!(
            s,
            "image {n} at {:#x}: {}, {:04x}:{:04x}, class {}, {} bytes, PCIR at {:#x} rev {}",
            i.offset,
            i.code_type_name(),
            i.vendor,
            i.device,
            i.class,
            i.length,
            i.pcir,
            i.pcir_revision
        );
        if !i.device_list.is_empty() {
            let _ = write!(s, ", device list {:04x?}", i.device_list.as_slice());
        }
        if let Some(ok) = i.x86_checksum_ok {
            let _ = write!(s, ", checksum {}", if ok { "ok" } else { "BAD" });
        }
        if let Some(h) = &i.efi {
            let _ = write!(
                s,
                ", EFI subsystem {} machine {:#06x} compression {} image at {:#x}",
                h.subsystem, h.machine, h.compression, h.image_offset
            );
        }
        if i.last {
            s.push_str(", last");
        }
        s.push('\n');
    }
    let errors = r.findings.iter().filter(|f| f.is_error()).count();
    let _ = writeln!(
        s,
        "verdict: {} ({errors} errors, {} warnings)",
        if r.ok() { "usable" } else { "UNUSABLE" },
        r.findings.len() - errors
    );
    for f in &r.findings {
        let kind = if f.is_error() { "error" } else { "warning" };
        let _ = writeln!(s, "{kind}: {f}");
    }
    s
}

/// A ROM file or dump: a regular file (a FIFO or device is refused, never waited on), read up to
/// the ROM cap; past it, exit code 1 (not a ROM), other errors 2.
fn read_rom_file(path: &Path) -> Result<Vec<u8>, (i32, String)> {
    match vfio_early_system::read::read_input(path, ROM_CAP) {
        Ok(input) if input.cut => Err((
            1,
            format!(
                "{}: more than {} MiB: not a ROM",
                path.display(),
                ROM_CAP >> 20
            ),
        )),
        Ok(input) => Ok(input.bytes),
        Err(e) => Err((2, e.to_string())),
    }
}

fn clean(input: &Path, output: &Path) -> i32 {
    let data = match read_rom_file(input) {
        Ok(d) => d,
        Err((code, msg)) => {
            errln!("vfio-early rom: {msg}");
            return code;
        }
    };
    let Some(range) = rom::clean_range(&data) else {
        errln!(
            "vfio-early rom: {}: no complete image chain (55 AA ... last-image flag) inside: nothing written",
            input.display()
        );
        return 1;
    };
    let written = Dir::of_user_path(output)
        .and_then(|(dir, name)| dir.write(&name, &data[range.clone()], Replace::No));
    if let Err(e) = written {
        errln!("vfio-early rom: {e}");
        return 2;
    }
    outln!(
        "{}: kept bytes {:#x}..{:#x} ({} bytes); cut {} bytes before and {} after; no byte changed",
        output.display(),
        range.start,
        range.end,
        range.len(),
        range.start,
        data.len() - range.end
    );
    0
}

fn libvirt(root: &Root, target: &str) -> i32 {
    let Some(bdf) = Bdf::parse(target) else {
        return usage(&format!("\"{target}\" is not a PCI address"));
    };
    let id = match sysfs::read_device(root, &bdf, None) {
        Ok(Some(d)) => d.id,
        Ok(None) => {
            errln!("vfio-early rom: {bdf}: no such PCI device");
            return 2;
        }
        Err(e) => {
            errln!("vfio-early rom: {e}");
            return 2;
        }
    };
    let prefix = romstore::id_prefix(&id);
    let dir = root.path(ROMS_VAR_DIR);
    let mut found: Vec<(std::time::SystemTime, String)> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let t = e.metadata().and_then(|m| m.modified()).ok()?;
            (name.starts_with(&prefix) && name.ends_with(".rom")).then_some((t, name))
        })
        .collect();
    found.sort();
    let Some((_, name)) = found.last() else {
        errln!(
            "vfio-early rom: no capture of {id} in /{ROMS_VAR_DIR}: boot once with vfio-early.rom={bdf} (or rom = display)"
        );
        return 1;
    };
    out!(
        "\
<!-- vfio-early: ROM of {bdf} [{id}] captured at boot. libvirt's confinement must let QEMU read it:
     AppArmor (Debian, Ubuntu): add the line
       /{ROMS_VAR_DIR}/** r,
     to /etc/apparmor.d/local/abstractions/libvirt-qemu, then: systemctl reload apparmor
     SELinux (Fedora, RHEL):
       semanage fcontext -a -t virt_content_t '/{ROMS_VAR_DIR}(/.*)?' && restorecon -Rv /{ROMS_VAR_DIR} -->
<hostdev mode='subsystem' type='pci' managed='yes'>
  <source>
    <address domain='{:#06x}' bus='{:#04x}' slot='{:#04x}' function='{:#x}'/>
  </source>
  <rom file='/{ROMS_VAR_DIR}/{name}'/>
</hostdev>
",
        bdf.domain,
        bdf.bus,
        bdf.device,
        bdf.function
    );
    if found.len() > 1 {
        errln!(
            "vfio-early rom: {} captures of {id} (a flashed vBIOS?): the newest is used",
            found.len()
        );
    }
    0
}

fn persist(root: &Root) -> i32 {
    let p = romstore::persist(root);
    for path in &p.moved {
        outln!("vfio-early: ROM kept: {}", path.display());
    }
    for path in &p.repaired {
        errln!(
            "vfio-early: warning: {} did not match its name's content (damaged, or not ours): replaced by the verified capture",
            path.display()
        );
    }
    if p.stale > 0 {
        outln!(
            "vfio-early: removed {} temporary files an interrupted run left",
            p.stale
        );
    }
    for (old, new) in &p.differs {
        errln!(
            "vfio-early: warning: {} differs from the stored {} (same card, other content: a flashed vBIOS?); both kept",
            new.display(),
            old.display()
        );
    }
    if !p.again.is_empty() {
        outln!(
            "vfio-early: {} ROMs were read again at boot although already stored; rebuild the initramfs (update-initramfs -u, dracut -f or mkinitcpio -P) so it knows them",
            p.again.len()
        );
    }
    for e in &p.errors {
        errln!("vfio-early: error: {e}");
    }
    i32::from(!p.errors.is_empty())
}

fn known(root: &Root) -> i32 {
    match romstore::known_list(root) {
        Ok(text) => {
            out!("{text}");
            0
        }
        Err(e) => {
            errln!("vfio-early rom: {e}");
            2
        }
    }
}
