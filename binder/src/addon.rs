// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early addon`: a newc archive that, loaded after a systemd initrd built without
//! vfio-early (a second `initrd` line, a UKI's `.initrd` add-on), fences and binds as the hooks
//! do, with no change to that image.
//!
//! What it holds, all under `usr/` (an entry for `bin`, `sbin`, `lib` or `lib64` would replace a
//! merged-/usr link: the kernel's unpacker removes a path of another type), directories root's
//! and 0755 as every base has them, no name a base image has:
//! - the static boot build as `usr/lib/vfio-early/addon/vfio-early`;
//! - `vfio-early-addon.service` and `vfio-early-addon-finish.service`, the hooks' two units
//!   with that binary, standing down when the image carries vfio-early itself, and the
//!   `sysinit.target.wants` link;
//! - the vfio modules of one kernel byte for byte (signatures, compression) with the manifest
//!   the boot build loads them from when modprobe finds no vfio-pci (see `modload`);
//! - with `--conf`, the settings as `etc/cmdline.d/zz-vfio-early-addon.conf`, which the boot
//!   build reads as dracut's cmdline.d (the kernel command line still wins);
//! - the rdinit shim as `usr/lib/vfio-early/init` (when the package has it, or `--init`): for
//!   images of any generator, booted with `rdinit=/usr/lib/vfio-early/init`; the units stand
//!   down then (the shim ran the binder before any init).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::initrd::Newc;
use vfio_early_core::layout::{
    ADDON_BINARY, ADDON_CMDLINE, ADDON_DIR, ADDON_MANIFEST, ADDON_MODULES, SHIM,
};
use vfio_early_system::modload::{Manifest, Module, MAX_MODULES};
use vfio_early_system::sysfs::Root;

/// The module the add-on exists for, `_` form.
const TARGET: &str = "vfio_pci";
const UNIT: &str = "vfio-early-addon.service";
const FINISH_UNIT: &str = "vfio-early-addon-finish.service";
const UNIT_DIR: &str = "usr/lib/systemd/system";

/// What to build.
pub struct Request<'a> {
    /// Where the kernel's modules, modprobe.d and `/boot/config-*` are read.
    pub root: &'a Root,
    pub kver: &'a str,
    /// The boot build to carry (default: the packaged one under `root`).
    pub binary: PathBuf,
    /// The rdinit shim to carry; `None`: none (the package has none, or `--no-init`).
    pub init: Option<PathBuf>,
    /// A vfio-early.conf whose settings the add-on carries.
    pub conf: Option<PathBuf>,
    /// Every member's mtime (SOURCE_DATE_EPOCH, or 0: the same inputs give the same bytes).
    pub mtime: u32,
}

/// What was built.
#[derive(Debug)]
pub struct Built {
    pub archive: Vec<u8>,
    /// The modules, in load order, and their files' bytes.
    pub modules: Vec<(String, u64)>,
    pub binary_bytes: u64,
    /// The rdinit shim's bytes (0: none carried).
    pub init_bytes: u64,
    /// What the user should know (a compression the build could not check, ...).
    pub notes: Vec<String>,
}

impl Built {
    /// The archive beyond the binaries and the modules (headers, units, manifest, padding).
    pub fn overhead(&self) -> u64 {
        let payload: u64 =
            self.binary_bytes + self.init_bytes + self.modules.iter().map(|m| m.1).sum::<u64>();
        self.archive.len() as u64 - payload
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("no modules for kernel {0} (neither /lib/modules/{0} nor /usr/lib/modules/{0}); hint: is that kernel installed? (ls /lib/modules)")]
    NoKernel(String),
    #[error("{0} has no modules.dep; hint: depmod {1}")]
    NoModulesDep(PathBuf, String),
    #[error("kernel {0} has no vfio-pci: modules.dep lists no vfio-pci module and modules.builtin does not name it")]
    NoVfio(String),
    #[error("{0}: modules.dep names it, but the file is missing; hint: reinstall the kernel's modules package")]
    MissingModule(PathBuf),
    #[error("{path} is a module for kernel {found}, not {kver}; hint: reinstall the kernel's modules package, then depmod {kver}")]
    WrongKernel {
        path: PathBuf,
        found: String,
        kver: String,
    },
    #[error("{0}: compressed, and /boot/config-{1} says the kernel cannot decompress modules itself (CONFIG_MODULE_DECOMPRESS is not set)")]
    NoDecompress(PathBuf, String),
    #[error("more than {MAX_MODULES} modules in vfio-pci's dependencies")]
    TooManyModules,
    #[error("{0}: no such file; hint: the packages install the static boot build there; or name one with --binary (make builds target/x86_64-unknown-linux-musl/release/vfio-early-boot)")]
    NoBinary(PathBuf),
    #[error("{0} is not an ELF executable; hint: --binary names the static boot build (vfio-early-boot)")]
    NotElf(PathBuf),
    #[error("{0} is dynamically linked (it asks for {1}): the add-on's binary runs in an image that may lack that loader and its libraries; hint: the packaged static boot build, /usr/lib/vfio-early/vfio-early-boot")]
    Dynamic(PathBuf, String),
    #[error("{0}: {1}; hint: vfio-early config --file {0}")]
    Conf(PathBuf, String),
    #[error("the unit template {0} changed (no `{1}` in it): the add-on's units cannot be made")]
    Template(&'static str, &'static str),
    #[error("{0}: longer than {1} bytes, the most read of such a file: nothing written")]
    TooLarge(PathBuf, usize),
    #[error("{0}: {1}")]
    Input(PathBuf, String),
    #[error("{0} is not a kernel module ({1}): nothing written; hint: reinstall the kernel's modules package")]
    NotModule(PathBuf, &'static str),
}

/// The most read of each input (every input is a regular file, read whole up to its cap: a FIFO
/// or `/dev/zero` in an input's place is refused, never waited on or read without end).
const INDEX_CAP: usize = 16 << 20;
const KERNEL_CONFIG_CAP: usize = 4 << 20;
const MODULE_CAP: usize = 64 << 20;
const BINARY_CAP: usize = 64 << 20;

/// An input read as a regular file with `cap`; `Ok(None)` when absent.
fn read_capped(path: &Path, cap: usize) -> Result<Option<Vec<u8>>, AddonError> {
    match vfio_early_system::read::read_input(path, cap) {
        Ok(i) if i.cut => Err(AddonError::TooLarge(path.to_path_buf(), cap)),
        Ok(i) => Ok(Some(i.bytes)),
        Err(vfio_early_system::read::SysError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(vfio_early_system::read::SysError::Io { source, .. }) => {
            Err(AddonError::Read(path.to_path_buf(), source))
        }
        Err(vfio_early_system::read::SysError::Malformed { what, .. }) => {
            Err(AddonError::Input(path.to_path_buf(), what.to_string()))
        }
        Err(e) => Err(AddonError::Input(path.to_path_buf(), e.to_string())),
    }
}

/// What is wrong with `bytes` as a module for kernel `kver` (ELF, relocatable, `.modinfo`'s
/// vermagic naming `kver`); `Ok` when nothing.
fn check_module(path: &Path, bytes: &[u8], kver: &str) -> Result<(), AddonError> {
    let not = |why| AddonError::NotModule(path.to_path_buf(), why);
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(not("not an ELF file"));
    }
    let little = bytes[5] == 1;
    let e_type = if little {
        u16::from_le_bytes([bytes[16], bytes[17]])
    } else {
        u16::from_be_bytes([bytes[16], bytes[17]])
    };
    if e_type != 1 {
        return Err(not("an ELF file, but not a relocatable object"));
    }
    match vermagic(bytes) {
        None => Err(not("no vermagic in its .modinfo")),
        Some(found) if found != kver => Err(AddonError::WrongKernel {
            path: path.to_path_buf(),
            found: found.to_string(),
            kver: kver.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

/// The directory of a kernel's modules under `root`.
fn modules_dir(root: &Root, kver: &str) -> Result<PathBuf, AddonError> {
    ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.path(&format!("{d}/{kver}")))
        .find(|p| p.is_dir())
        .ok_or_else(|| AddonError::NoKernel(kver.to_string()))
}

/// A module's name from its path in modules.dep (`kernel/drivers/vfio/pci/vfio-pci.ko.xz` is
/// `vfio_pci`).
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// modules.dep: name -> (path, the names it needs).
fn parse_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let deps = deps.split_whitespace().map(module_name).collect();
        out.insert(module_name(path), (path.trim().to_string(), deps));
    }
    out
}

/// modules.softdep: name -> (pre, post).
fn parse_softdep(text: &str) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some("softdep"), Some(name)) = (w.next(), w.next()) else {
            continue;
        };
        let entry = out.entry(name.replace('-', "_")).or_default();
        let mut post = false;
        for word in w {
            match word {
                "pre:" => post = false,
                "post:" => post = true,
                m if post => entry.1.push(m.replace('-', "_")),
                m => entry.0.push(m.replace('-', "_")),
            }
        }
    }
    out
}

/// The load order: every module after its hard dependencies and `pre:` soft dependencies,
/// before its `post:` ones (`vfio` wants `vfio_iommu_type1` after it: without an IOMMU backend
/// a VM cannot use the device). Soft dependencies the kernel lacks are skipped, as kmod does.
pub fn load_order(
    dep: &BTreeMap<String, (String, Vec<String>)>,
    soft: &BTreeMap<String, (Vec<String>, Vec<String>)>,
    target: &str,
) -> Vec<String> {
    fn visit(
        name: &str,
        dep: &BTreeMap<String, (String, Vec<String>)>,
        soft: &BTreeMap<String, (Vec<String>, Vec<String>)>,
        seen: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        if seen.iter().any(|s| s == name) || !dep.contains_key(name) {
            return;
        }
        seen.push(name.to_string());
        let none = (Vec::new(), Vec::new());
        let (pre, post) = soft.get(name).unwrap_or(&none);
        for d in pre.iter().chain(&dep[name].1) {
            visit(d, dep, soft, seen, out);
        }
        out.push(name.to_string());
        for d in post {
            visit(d, dep, soft, seen, out);
        }
    }
    let mut out = Vec::new();
    visit(target, dep, soft, &mut Vec::new(), &mut out);
    out
}

fn read_text(path: &Path, cap: usize) -> Result<Option<String>, AddonError> {
    Ok(read_capped(path, cap)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The kernel release an uncompressed module was built for (its `.modinfo` `vermagic=`).
fn vermagic(bytes: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\0vermagic=";
    let at = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &bytes[at..];
    let end = rest.iter().position(|&b| b == 0 || b == b' ')?;
    core::str::from_utf8(&rest[..end]).ok()
}

/// Refuses what is not a static ELF executable (a `PT_INTERP` program header asks for a
/// dynamic loader; static-pie has none).
pub fn check_static(path: &Path, bytes: &[u8]) -> Result<(), AddonError> {
    let not_elf = || AddonError::NotElf(path.to_path_buf());
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(not_elf());
    }
    let (wide, little) = (bytes[4] == 2, bytes[5] == 1);
    let num = |at: usize, len: usize| -> Option<u64> {
        let b = bytes.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = v << 8 | u64::from(byte);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (num(32, 8), num(54, 2), num(56, 2))
    } else {
        (num(28, 4), num(42, 2), num(44, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Err(not_elf());
    };
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let kind = num(at, 4).ok_or_else(not_elf)?;
        if kind == 3 {
            // PT_INTERP: its offset and size name the loader.
            let (off, size) = if wide {
                (num(at + 8, 8), num(at + 32, 8))
            } else {
                (num(at + 4, 4), num(at + 16, 4))
            };
            let interp = off
                .zip(size)
                .and_then(|(o, s)| bytes.get(o as usize..(o + s) as usize))
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_else(|| "a program interpreter".into());
            return Err(AddonError::Dynamic(path.to_path_buf(), interp));
        }
    }
    Ok(())
}

/// The add-on's two units, made from the hooks' own (one source for both): the add-on's
/// binary and unit names, and a condition that stands it down when the image carries
/// vfio-early itself (its hook put /usr/bin/vfio-early there).
pub fn units() -> Result<[(String, String); 2], AddonError> {
    const FENCE: &str = include_str!("../../systemd/vfio-early.service");
    const FINISH: &str = include_str!("../../systemd/vfio-early-finish.service");
    const INITRD: &str = "ConditionPathExists=/etc/initrd-release\n";
    let change = |name: &'static str, text: &str, edits: &[(&'static str, &str)]| {
        let mut t = text.to_string();
        for (from, to) in edits {
            if !t.contains(from) {
                return Err(AddonError::Template(name, from));
            }
            t = t.replace(from, to);
        }
        Ok(t)
    };
    let stand_down = format!(
        "{INITRD}ConditionPathExists=!/usr/bin/vfio-early\nConditionKernelCommandLine=!rdinit=/{SHIM}\n"
    );
    let exec = format!("ExecStart=/{ADDON_BINARY} ");
    let fence = change(
        "systemd/vfio-early.service",
        FENCE,
        &[
            (INITRD, &stand_down),
            ("ExecStart=/usr/bin/vfio-early ", &exec),
            (
                "Wants=vfio-early-finish.service",
                &format!("Wants={FINISH_UNIT}"),
            ),
            ("(vfio-early)", "(vfio-early add-on)"),
        ],
    )?;
    let finish = change(
        "systemd/vfio-early-finish.service",
        FINISH,
        &[
            (INITRD, &stand_down),
            ("ExecStart=/usr/bin/vfio-early ", &exec),
            (
                "ExecStopPost=/usr/bin/vfio-early ",
                &format!("ExecStopPost=/{ADDON_BINARY} "),
            ),
            ("After=vfio-early.service", &format!("After={UNIT}")),
            ("(vfio-early)", "(vfio-early add-on)"),
        ],
    )?;
    Ok([(UNIT.to_string(), fence), (FINISH_UNIT.to_string(), finish)])
}

/// A config file's settings as command-line words for the add-on's cmdline.d file, read back
/// by the boot's own parser to the same settings (else refused).
fn conf_words(path: &Path) -> Result<String, AddonError> {
    use vfio_early_core::config::{Problems, Settings};
    let bad = |what: String| AddonError::Conf(path.to_path_buf(), what);
    let text = read_text(path, vfio_early_core::config::CONFIG_CAP)?
        .ok_or_else(|| bad("no such file".into()))?;
    let mut settings = Settings::default();
    let mut problems = Problems::default();
    settings.apply_file(&text, &mut problems);
    if let Some(p) = problems.kept.first() {
        return Err(bad(p.to_string()));
    }
    let form = vfio_early_core::config::FileForm(&settings).to_string();
    let mut words = String::new();
    for line in form.lines() {
        if let Some((k, v)) = line.split_once(" = ") {
            words.push_str(&format!("vfio-early.{k}={v} "));
        }
    }
    let words = words.trim_end().to_string() + "\n";
    let mut back = Settings::default();
    let mut problems = Problems::default();
    back.apply_cmdline(
        words.as_bytes(),
        vfio_early_core::config::Origin::Cmdline,
        &mut problems,
    );
    if !problems.is_empty() || vfio_early_core::config::FileForm(&back).to_string() != form {
        return Err(bad(
            "its settings do not survive the command-line form".into()
        ));
    }
    Ok(words)
}

/// Builds the add-on; nothing is written.
pub fn build(req: &Request<'_>) -> Result<Built, AddonError> {
    let mut notes = Vec::new();
    let dir = modules_dir(req.root, req.kver)?;
    let dep_path = dir.join("modules.dep");
    let dep = read_text(&dep_path, INDEX_CAP)?
        .ok_or_else(|| AddonError::NoModulesDep(dir.clone(), req.kver.to_string()))?;
    let dep = parse_dep(&dep);
    let soft =
        parse_softdep(&read_text(&dir.join("modules.softdep"), INDEX_CAP)?.unwrap_or_default());
    let builtin = read_text(&dir.join("modules.builtin"), INDEX_CAP)?.unwrap_or_default();
    let is_builtin = |m: &str| builtin.lines().any(|l| module_name(l) == m);
    // A module built into the kernel needs no file (a stale one in modules.dep is not wanted).
    let order: Vec<String> = load_order(&dep, &soft, TARGET)
        .into_iter()
        .filter(|m| !is_builtin(m))
        .collect();
    if order.is_empty() {
        if !is_builtin(TARGET) {
            return Err(AddonError::NoVfio(req.kver.to_string()));
        }
        notes.push(format!(
            "vfio-pci is built into {}: the add-on carries no modules",
            req.kver
        ));
    }
    if order.len() > MAX_MODULES {
        return Err(AddonError::TooManyModules);
    }
    let config = read_text(
        &req.root.path(&format!("boot/config-{}", req.kver)),
        KERNEL_CONFIG_CAP,
    )?;
    let mut files = Vec::new();
    for name in &order {
        let path = dir.join(&dep[name].0);
        let bytes = read_capped(&path, MODULE_CAP)?
            .ok_or_else(|| AddonError::MissingModule(path.clone()))?;
        let file = dep[name]
            .0
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if vfio_early_system::modload::compressed(&file) {
            match &config {
                Some(c) if !c.lines().any(|l| l == "CONFIG_MODULE_DECOMPRESS=y") => {
                    return Err(AddonError::NoDecompress(path, req.kver.to_string()))
                }
                Some(_) => {}
                None => notes.push(format!(
                    "{file} is compressed and there is no /boot/config-{}: the kernel must decompress it (CONFIG_MODULE_DECOMPRESS, Linux 5.17)",
                    req.kver
                )),
            }
        }
        // Every module is looked at as the kernel will load it: an ELF relocatable object for
        // this kernel (a compressed one after decompressing it, under the cap).
        if vfio_early_system::modload::compressed(&file) {
            let inside = crate::initrd::decompressed(&path, MODULE_CAP)
                .map_err(|why| AddonError::Input(path.clone(), why))?;
            check_module(&path, &inside, req.kver)?;
        } else {
            check_module(&path, &bytes, req.kver)?;
        }
        files.push((name.clone(), file, bytes));
    }

    let binary = read_static(&req.binary)?;
    let init = req.init.as_deref().map(read_static).transpose()?;
    let cmdline_d = req.conf.as_deref().map(conf_words).transpose()?;

    let manifest = Manifest {
        kernel: heapless::String::try_from(req.kver)
            .map_err(|_| AddonError::NoKernel(req.kver.to_string()))?,
        modules: files
            .iter()
            .map(|(name, file, _)| {
                Ok(Module {
                    name: heapless::String::try_from(name.as_str())
                        .map_err(|_| AddonError::TooManyModules)?,
                    file: heapless::String::try_from(file.as_str())
                        .map_err(|_| AddonError::TooManyModules)?,
                })
            })
            .collect::<Result<_, AddonError>>()?,
    };

    let mut w = Newc::new(req.mtime);
    let dir_mode = 0o040755;
    for d in [
        "usr",
        "usr/lib",
        "usr/lib/systemd",
        UNIT_DIR,
        "usr/lib/systemd/system/sysinit.target.wants",
        vfio_early_core::layout::PKG_DIR,
        ADDON_DIR,
        ADDON_MODULES,
    ] {
        w.member(d, dir_mode, b"");
    }
    w.member(ADDON_BINARY, 0o100755, &binary);
    if let Some(init) = &init {
        w.member(SHIM, 0o100755, init);
    }
    for (name, text) in units()? {
        w.member(&format!("{UNIT_DIR}/{name}"), 0o100644, text.as_bytes());
    }
    w.member(
        &format!("{UNIT_DIR}/sysinit.target.wants/{UNIT}"),
        0o120777,
        format!("../{UNIT}").as_bytes(),
    );
    for (_, file, bytes) in &files {
        w.member(&format!("{ADDON_MODULES}/{file}"), 0o100644, bytes);
    }
    w.member(ADDON_MANIFEST, 0o100644, manifest.render().as_bytes());
    if let Some(words) = &cmdline_d {
        w.member("etc", dir_mode, b"");
        w.member(vfio_early_core::layout::CMDLINE_D, dir_mode, b"");
        w.member(ADDON_CMDLINE, 0o100644, words.as_bytes());
    }
    Ok(Built {
        archive: w.finish(),
        modules: files
            .iter()
            .map(|(n, _, b)| (n.clone(), b.len() as u64))
            .collect(),
        binary_bytes: binary.len() as u64,
        init_bytes: init.as_ref().map_or(0, |b| b.len() as u64),
        notes,
    })
}

/// A static executable's bytes (the add-on's binaries run in images that may have no loader).
fn read_static(path: &Path) -> Result<Vec<u8>, AddonError> {
    let bytes =
        read_capped(path, BINARY_CAP)?.ok_or_else(|| AddonError::NoBinary(path.to_path_buf()))?;
    check_static(path, &bytes)?;
    Ok(bytes)
}

/// `vfio-early addon`: builds the add-on and writes it atomically (a temporary name, then a
/// rename: an interrupted run leaves the old file or none, never half of one), over a regular
/// file or nothing (`-o /dev/null` refuses the device node, never replaces it), keeping an
/// existing file's mode and owner; `-o -` writes it to stdout. Exit 0 written, 1 refused (the
/// reason on stderr), 2 unwritable.
pub fn main(req: &Request<'_>, out: &Path) -> i32 {
    let built = match build(req) {
        Ok(b) => b,
        Err(e) => {
            errln!("vfio-early: addon for {}: {e}", req.kver);
            return vfio_early_engine::options::EXIT_REFUSED;
        }
    };
    for n in &built.notes {
        errln!("vfio-early: note: {n}");
    }
    if out == Path::new("-") {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout
            .write_all(&built.archive)
            .and_then(|()| stdout.flush())
        {
            errln!("vfio-early: cannot write the add-on to stdout: {e}");
            return vfio_early_engine::options::EXIT_USAGE;
        }
        errln!(
            "vfio-early: wrote the add-on to stdout: {} bytes for kernel {}",
            built.archive.len(),
            req.kver
        );
        return vfio_early_engine::options::EXIT_OK;
    }
    let written = vfio_early_system::files::Dir::of_user_path(out)
        .and_then(|(dir, name)| dir.replace_regular(&name, &built.archive, 0o644));
    if let Err(e) = written {
        errln!("vfio-early: cannot write the add-on: {e}");
        return vfio_early_engine::options::EXIT_USAGE;
    }
    let names: Vec<&str> = built.modules.iter().map(|m| m.0.as_str()).collect();
    let module_bytes: u64 = built.modules.iter().map(|m| m.1).sum();
    outln!(
        "wrote {}: {} bytes for kernel {} (the boot build {}, {}, {} modules {} ({}), the rest {})",
        out.display(),
        built.archive.len(),
        req.kver,
        built.binary_bytes,
        match built.init_bytes {
            0 => "no rdinit shim".to_string(),
            n => format!("the rdinit shim {n}"),
        },
        names.len(),
        module_bytes,
        names.join(" "),
        built.overhead()
    );
    outln!("load it after the image's own initrd (a second initrd line, or a UKI's .initrd add-on: see docs/addon.md)");
    vfio_early_engine::options::EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_puts_dependencies_first_and_post_softdeps_after() {
        let dep = parse_dep(
            "kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko kernel/drivers/vfio/vfio.ko kernel/virt/lib/irqbypass.ko\n\
             kernel/drivers/vfio/pci/vfio-pci-core.ko: kernel/drivers/vfio/vfio.ko kernel/virt/lib/irqbypass.ko\n\
             kernel/drivers/vfio/vfio.ko:\n\
             kernel/virt/lib/irqbypass.ko:\n\
             kernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko\n\
             kernel/sound/snd.ko.xz:\n",
        );
        let soft = parse_softdep(
            "# comment\nsoftdep vfio post: vfio_iommu_type1 vfio_iommu_spapr_tce\nsoftdep vfio-pci pre: irqbypass\n",
        );
        assert_eq!(
            load_order(&dep, &soft, "vfio_pci"),
            [
                "irqbypass",
                "vfio",
                "vfio_iommu_type1",
                "vfio_pci_core",
                "vfio_pci"
            ]
        );
        assert!(load_order(&dep, &soft, "nouveau").is_empty());
        assert_eq!(module_name("a/b/snd-hda-intel.ko.zst"), "snd_hda_intel");
    }

    #[test]
    fn units_come_from_the_hooks_own() {
        let [(n1, fence), (n2, finish)] = units().unwrap();
        assert_eq!((n1.as_str(), n2.as_str()), (UNIT, FINISH_UNIT));
        for t in [&fence, &finish] {
            assert!(t.contains("ConditionPathExists=!/usr/bin/vfio-early\n"));
            assert!(t.contains("ConditionKernelCommandLine=!rdinit=/usr/lib/vfio-early/init\n"));
            assert!(t.contains(&format!("ExecStart=/{ADDON_BINARY} ")));
            let settings: String = t.lines().filter(|l| !l.starts_with('#')).collect();
            assert!(
                !settings.contains("/usr/bin/vfio-early ")
                    && !settings.contains("vfio-early-finish.service")
            );
        }
        assert!(fence.contains(&format!("Wants={FINISH_UNIT}")));
        assert!(finish.contains(&format!("After={UNIT}")));
        assert!(finish.contains(&format!("ExecStopPost=/{ADDON_BINARY} settle\n")));
        assert!(fence.contains(&format!("ExecStart=/{ADDON_BINARY} fence --unit\n")));
    }

    #[test]
    fn vermagic_and_static_checks() {
        assert_eq!(
            vermagic(b"xx\0license=GPL\0vermagic=6.1.0-50-amd64 SMP mod_unload\0"),
            Some("6.1.0-50-amd64")
        );
        assert_eq!(vermagic(b"no modinfo"), None);
        let p = Path::new("x");
        assert!(matches!(
            check_static(p, b"#!/bin/sh\n"),
            Err(AddonError::NotElf(_))
        ));
        // Debian's /bin/sh is dynamic; the static boot build is checked in binder/tests/addon.rs.
        let sh = std::fs::read("/bin/sh").unwrap();
        match check_static(Path::new("/bin/sh"), &sh) {
            Err(AddonError::Dynamic(_, i)) => assert!(i.starts_with("/lib"), "{i}"),
            other => panic!("{other:?}"),
        }
    }
}
