// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early check`: whether the next boot will work, one finding per line (ok, warn, error,
//! needs root), each warning and error with the command that fixes it. The findings come from
//! the boot's own parser and planner (`nextboot`), this boot's state file, the running kernel's
//! modules, the initramfs image (`initrd`) and the hacks that fight vfio-early.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::imagetool;
use crate::initrd;
use crate::nextboot::{self, NextBoot};
use crate::statefile::{self, BootState};
use crate::status::{self, line as device_line};
use vfio_early_core::config::CONFIG_CAP;
use vfio_early_core::layout::{CONFIG_FILE, HOOK_BINARY};
use vfio_early_core::legacy;
use vfio_early_core::pci::Bdf;
use vfio_early_core::plan::{Decision, Refusal, VFIO};
use vfio_early_system::sysfs::{self, Root};

/// The JSON schema's version (docs/interface.md, "check --json").
pub const SCHEMA_VERSION: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Something could not be read without root: never taken for ok.
    NeedsRoot,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::NeedsRoot => "needs root",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// What it is about: `iommu`, `interrupt-remapping`, `modules`, `config`, `device`,
    /// `group`, `framebuffer`, `image`, `leftover`, `this-boot`.
    pub topic: &'static str,
    pub text: String,
    /// The command (or edit) that fixes it.
    pub fix: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<10} {}", self.level.as_str(), self.text)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n{:<10} fix: {fix}", "")?;
        }
        Ok(())
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, level: Level, topic: &'static str, text: String, fix: Option<String>) {
        self.0.push(Finding {
            level,
            topic,
            text,
            fix,
        });
    }
}

fn release(root: &Root) -> String {
    sysfs::read_attr::<128>(&root.path(vfio_early_core::layout::OSRELEASE))
        .ok()
        .flatten()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty() && !r.contains('/'))
        .unwrap_or_default()
}

fn text_of(root: &Root, rel: &str) -> Option<String> {
    vfio_early_system::read::read_input(&root.path(rel), 8 << 20)
        .ok()
        .map(|i| i.text().into_owned())
}

fn iommu(root: &Root, next: &NextBoot, f: &mut Findings) {
    let arg = status::iommu_argument(root);
    if !next.inventory.iommu_on
        && !sysfs::dir_has_entries(&root.path(vfio_early_core::layout::IOMMU_GROUPS))
    {
        f.add(
            Level::Error,
            "iommu",
            "the IOMMU is off (no IOMMU groups): vfio-pci takes no device".into(),
            Some(format!("add {arg} to the kernel command line (README, \"3. Take it\") and enable VT-d / AMD-Vi (or \"IOMMU\") in the firmware setup")),
        );
        return;
    }
    let groups = std::fs::read_dir(root.path(vfio_early_core::layout::IOMMU_GROUPS))
        .map_or(0, |d| d.count());
    f.add(
        Level::Ok,
        "iommu",
        format!("the IOMMU is on ({groups} groups)"),
        None,
    );
    // Interrupt chips that remap show as IR-... in /proc/interrupts (world-readable).
    match text_of(root, "proc/interrupts") {
        Some(t) if t.contains("IR-") => f.add(
            Level::Ok,
            "interrupt-remapping",
            "interrupt remapping is in use".into(),
            None,
        ),
        Some(_) => f.add(
            Level::Warn,
            "interrupt-remapping",
            "no interrupt is remapped: vfio refuses to give a device to a VM unless unsafe interrupts are allowed".into(),
            Some("enable interrupt remapping in the firmware setup (VT-d / AMD-Vi with x2APIC); only on hardware without it: echo 'options vfio_iommu_type1 allow_unsafe_interrupts=1' | sudo tee /etc/modprobe.d/vfio-unsafe.conf".into()),
        ),
        None => f.add(
            Level::Warn,
            "interrupt-remapping",
            "/proc/interrupts cannot be read: whether interrupts are remapped is not known".into(),
            Some("mount /proc".into()),
        ),
    }
}

/// Where the running kernel keeps a vfio module: `module`, `builtin`, or nowhere.
fn module_state(root: &Root, release: &str, name: &str) -> Option<&'static str> {
    let base = format!("lib/modules/{release}");
    let file = format!("{name}.ko");
    let listed = |list: &str| {
        text_of(root, &format!("{base}/{list}")).is_some_and(|t| {
            t.lines().any(|l| {
                let path = l.split(':').next().unwrap_or("");
                let base = path.rsplit('/').next().unwrap_or("");
                base == file
                    || base
                        .strip_prefix(&file)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        })
    };
    if listed("modules.builtin") {
        Some("builtin")
    } else if listed("modules.dep") {
        Some("module")
    } else {
        None
    }
}

fn modules(root: &Root, f: &mut Findings) {
    let rel = release(root);
    if rel.is_empty() {
        f.add(
            Level::Warn,
            "modules",
            "the running kernel's release cannot be read (/proc/sys/kernel/osrelease): its modules are not checked".into(),
            Some("mount /proc".into()),
        );
        return;
    }
    let states: Vec<(&str, Option<&str>)> = ["vfio", "vfio-pci"]
        .into_iter()
        .map(|m| (m, module_state(root, &rel, m)))
        .collect();
    let missing: Vec<&str> = states
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(m, _)| *m)
        .collect();
    if missing.is_empty() {
        let how: Vec<String> = states
            .iter()
            .map(|(m, s)| format!("{m} ({})", s.unwrap_or("")))
            .collect();
        f.add(
            Level::Ok,
            "modules",
            format!("kernel {rel} has {}", how.join(", ")),
            None,
        );
    } else {
        f.add(
            Level::Error,
            "modules",
            format!("kernel {rel} has no {} (not in modules.dep nor modules.builtin)", missing.join(", ")),
            Some("install the running kernel's modules (e.g. linux-modules-extra-$(uname -r) on Ubuntu), then `sudo depmod -a`".into()),
        );
    }
}

fn config(root: &Root, next: &NextBoot, f: &mut Findings) {
    let p = &next.input.problems;
    for problem in &p.kept {
        f.add(
            Level::Error,
            "config",
            problem.to_string(),
            Some(format!(
                "fix the {} (the boot reads it with the same words)",
                problem.origin
            )),
        );
    }
    if p.dropped > 0 {
        f.add(
            Level::Error,
            "config",
            format!("{} more problems not shown", p.dropped),
            None,
        );
    }
    let n = next.settings().entries.len();
    if n == 0 && p.is_empty() {
        f.add(
            Level::Warn,
            "config",
            "nothing is configured: no device entry in /etc/vfio-early.conf or the command line"
                .into(),
            Some("sudo vfio-early add BDF (`vfio-early status` lists the candidates)".into()),
        );
    } else if p.is_empty() {
        f.add(
            Level::Ok,
            "config",
            format!("the configuration reads cleanly: {n} device entries"),
            None,
        );
    }
    for w in nextboot::source_warnings(root, next, false) {
        let fix = if w.starts_with("the kill switch") {
            "remove `off` from /etc/vfio-early.conf or vfio-early.off from the command line"
        } else {
            "take the devices off the kernel command line (`vfio-early add` keeps them in the file), or empty the file's `devices`"
        };
        f.add(Level::Warn, "config", w, Some(fix.into()));
    }
}

/// The fix for a refusal: the entry's hint, made a command where one fits.
fn refusal_fix(r: &Refusal, bdf: &Bdf) -> String {
    match r {
        Refusal::Missing | Refusal::IdMismatch { .. } => format!("check `vfio-early status --all`, then `sudo vfio-early remove {bdf}` and add the right address"),
        Refusal::BootDisplay { .. } => format!("give the host another display, or `sudo vfio-early remove {bdf} && sudo vfio-early add {bdf}+boot-vga` (the host console goes dark)"),
        Refusal::Bound { .. } => format!("`sudo vfio-early remove {bdf} && sudo vfio-early add {bdf}+unbind`, or stop the built-in driver from taking it"),
        Refusal::Guarded { .. } => format!("if the address is right: `sudo vfio-early remove {bdf} && sudo vfio-early add {bdf}+guarded`"),
        Refusal::NoGroup { .. } => "turn the IOMMU on (see the iommu finding)".into(),
        Refusal::Bridge => format!("`sudo vfio-early remove {bdf}`: take the devices behind the bridge instead"),
        Refusal::StrictGroup { outside, .. } => format!("`sudo vfio-early add {outside}`, or group = companions in /etc/vfio-early.conf"),
        Refusal::PartialView(_) => "list fewer devices; see the reason".into(),
    }
}

fn devices(next: &NextBoot, state: &BootState, f: &mut Findings) {
    for item in &next.plan.items {
        let text = device_line(next, item);
        match &item.decision {
            Decision::Refuse(r) => f.add(
                Level::Error,
                "device",
                text,
                Some(refusal_fix(r, &item.bdf)),
            ),
            _ => f.add(Level::Ok, "device", text, None),
        }
        // A firmware framebuffer is gone from /proc/iomem once the native driver runs: this
        // boot's binder saw it, so its state file says.
        let display = item.dev.as_ref().is_some_and(|d| d.class.is_display());
        // With +boot-vga the console is given up on purpose: nothing to find.
        if display && !item.flags.boot_vga && matches!(item.decision, Decision::Bind { .. }) {
            match state.record(&item.bdf) {
                Some(r) if r.detail.contains("firmware framebuffer") => f.add(
                    Level::Error,
                    "framebuffer",
                    format!("{}: this boot found a firmware framebuffer in its BAR: {}", item.bdf, r.detail),
                    Some(format!("keep the host console off it (video=efifb:off, or the firmware's primary display setting), or `sudo vfio-early remove {0} && sudo vfio-early add {0}+boot-vga` (the host console goes dark)", item.bdf)),
                ),
                Some(_) => f.add(
                    Level::Ok,
                    "framebuffer",
                    format!("{}: this boot's binder found no firmware framebuffer on it", item.bdf),
                    None,
                ),
                None => f.add(
                    Level::Warn,
                    "framebuffer",
                    format!("{}: whether a firmware framebuffer sits in its BARs cannot be told now (the native driver has taken it off /proc/iomem, and this boot's state file has no record of it); the next boot checks, and refuses it if so", item.bdf),
                    Some("after the next boot, run `vfio-early check` again".into()),
                ),
            }
        }
    }
    for o in &next.plan.outside {
        let adds: Vec<String> = o
            .devs
            .iter()
            .map(|d| {
                let guarded = if d.class.guarded_kind().is_some() {
                    "+guarded"
                } else {
                    ""
                };
                format!("{}{guarded}", d.bdf)
            })
            .collect();
        f.add(
            Level::Warn,
            "group",
            o.to_string(),
            Some(format!("sudo vfio-early add {}", adds.join(" "))),
        );
    }
    for &n in &next.plan.unmatched {
        if let Some(e) = next.settings().entries.get(n) {
            f.add(
                Level::Warn,
                "device",
                format!("entry \"{}\" matches no device on the bus", e.text),
                Some("check the IDs with `vfio-early status --all` or `lspci -nn`".into()),
            );
        }
    }
}

/// After a boot: is every device the plan takes on vfio-pci now, and if not, why.
fn this_boot(root: &Root, next: &NextBoot, state: &BootState, f: &mut Findings) {
    let taken: Vec<&Bdf> = next
        .plan
        .items
        .iter()
        .filter(|i| i.decision.takes())
        .map(|i| &i.bdf)
        .collect();
    if taken.is_empty() {
        return;
    }
    if let BootState::Read { .. } = state {
    } else {
        let level = match state {
            BootState::Unreadable(w) if w == "needs root" => Level::NeedsRoot,
            _ => Level::Error,
        };
        f.add(
            level,
            "this-boot",
            format!("{state}"),
            Some("put vfio-early into the initramfs (see the image finding) and reboot".into()),
        );
        return;
    }
    for bdf in taken {
        match root.driver_of(bdf) {
            Some(d) if d == VFIO => f.add(
                Level::Ok,
                "this-boot",
                format!("{bdf} is on vfio-pci"),
                None,
            ),
            now => {
                let why = state
                    .record(bdf)
                    .map(|r| format!("this boot: {} ({})", r.detail, r.result))
                    .unwrap_or_else(|| {
                        "this boot's binder was not asked for it (the configuration changed since?)"
                            .into()
                    });
                f.add(
                    Level::Warn,
                    "this-boot",
                    format!("{bdf} is on {} now, not vfio-pci: {why}", now.as_deref().unwrap_or("no driver")),
                    Some("rebuild the initramfs if the configuration changed, then reboot; `dmesg | grep vfio` shows the rest".into()),
                );
            }
        }
    }
}

/// Where each generator's hook lands in an image (any one shows vfio-early is wired in).
const HOOKS: [&str; 6] = [
    "scripts/init-top/00-vfio-early",
    "usr/lib/systemd/system/sysinit.target.wants/vfio-early.service",
    "usr/lib/dracut/hooks/cmdline/00-vfio-early.sh",
    "var/lib/dracut/hooks/cmdline/00-vfio-early.sh",
    "lib/dracut/hooks/cmdline/00-vfio-early.sh",
    "hooks/vfio-early",
];

/// The image to check: `given`, or the running kernel's as the generator names it.
fn image_path(root: &Root, given: Option<&Path>, f: &mut Findings) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let Some(g) = imagetool::detect(root) else {
        f.add(
            Level::Warn,
            "image",
            "no initramfs generator found (update-initramfs, dracut, mkinitcpio): the image is not checked".into(),
            Some("see docs/generators.md; `vfio-early check --image FILE` checks a given image".into()),
        );
        return None;
    };
    let rel = release(root);
    let images = g.images(root, &rel);
    if let Some(p) = images.iter().find(|p| p.exists()) {
        return Some(p.clone());
    }
    let names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    f.add(
        Level::Error,
        "image",
        format!(
            "no {} image for kernel {rel} ({})",
            g.name(),
            names.join(", ")
        ),
        Some(g.rebuild().into()),
    );
    None
}

/// The image (the running kernel's, or `given`): vfio-early's binary and hook, the vfio modules,
/// the same configuration as /etc, the installed boot build.
/// An initrd add-on for kernel `rel` where the kernel hooks and the kernel-install plugin put
/// it (`/boot/vfio-early-addon-REL.img`, a Boot Loader Spec entry's `initrd-vfio-early`).
fn addon_of(root: &Root, rel: &str) -> Option<PathBuf> {
    let hook = root.path(&format!("boot/vfio-early-addon-{rel}.img"));
    if hook.is_file() {
        return Some(hook);
    }
    ["boot", "boot/efi", "efi"].iter().find_map(|base| {
        std::fs::read_dir(root.path(base))
            .ok()?
            .flatten()
            .map(|e| e.path().join(rel).join("initrd-vfio-early"))
            .find(|p| p.is_file())
    })
}

/// An image without vfio-early and an add-on beside it: ready if the boot entry loads the
/// add-on (which check cannot see), an error if the add-on is for another kernel.
fn addon_finding(addon: &Path, image: &str, rel: &str, f: &mut Findings) {
    let shown = addon.display();
    let kernel = initrd::scan(
        addon,
        &[vfio_early_core::layout::ADDON_MANIFEST],
        &mut |_, _| {},
    )
    .ok()
    .and_then(|l| {
        let text = String::from_utf8_lossy(l.files.get(vfio_early_core::layout::ADDON_MANIFEST)?)
            .into_owned();
        vfio_early_system::modload::Manifest::parse(&text).ok()
    })
    .map(|m| m.kernel.to_string());
    match kernel {
        Some(k) if k == rel => f.add(
            Level::Warn,
            "image",
            format!("{image} has no vfio-early, but the initrd add-on {shown} carries it for kernel {rel}: ready if the boot entry loads the add-on after the image"),
            Some("list the add-on as an initrd after the image's own in the boot entry (docs/addon.md)".into()),
        ),
        other => f.add(
            Level::Error,
            "image",
            match other {
                Some(k) => format!("{image} has no vfio-early, and the initrd add-on {shown} is for kernel {k}, not {rel}: the next boot binds nothing"),
                None => format!("{image} has no vfio-early, and {shown} is no vfio-early add-on that can be read: the next boot binds nothing"),
            },
            Some(format!("sudo vfio-early addon --kver {rel} -o {shown}")),
        ),
    }
}

fn image(root: &Root, given: Option<&Path>, f: &mut Findings) {
    let Some(path) = image_path(root, given, f) else {
        return;
    };
    let rebuild = imagetool::detect(root)
        .map_or("rebuild the initramfs (docs/generators.md)", |g| {
            g.rebuild()
        });
    let shown = path.display();
    // O_NONBLOCK: a FIFO in the image's place must not hold check (scan refuses it by kind).
    if let Err(e) = vfio_early_system::read::open_ro(&path, nix::fcntl::OFlag::O_NONBLOCK) {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            f.add(
                Level::NeedsRoot,
                "image",
                format!("{shown} cannot be read: needs root"),
                Some("sudo vfio-early check".into()),
            );
            return;
        }
    }
    // Each member's name is looked at once, nothing of it kept: only what is asked below
    // (memory bounded whatever the image holds).
    let modules: Vec<[String; 2]> = ["vfio", "vfio-pci"]
        .iter()
        .map(|m| [format!("/{m}.ko"), format!("/{}.ko", m.replace('-', "_"))])
        .collect();
    let mut seen_binary = false;
    let mut seen_hook = false;
    let mut seen_module = [false; 2];
    let scanned = initrd::scan(&path, &[CONFIG_FILE, HOOK_BINARY], &mut |p, _| {
        seen_binary |= p == HOOK_BINARY;
        seen_hook |= HOOKS.contains(&p);
        for (seen, names) in seen_module.iter_mut().zip(&modules) {
            *seen |= names.iter().any(|n| p.contains(n.as_str()));
        }
    });
    let listing = match scanned {
        Ok(l) => l,
        Err(e) => {
            f.add(
                Level::Error,
                "image",
                format!("the image cannot be read: {e}"),
                Some(rebuild.into()),
            );
            return;
        }
    };
    let mut missing = Vec::new();
    if !seen_binary {
        missing.push(HOOK_BINARY.to_string());
    }
    if !seen_hook {
        missing.push("its hook".to_string());
    }
    let rel = release(root);
    for (m, present) in ["vfio", "vfio-pci"].into_iter().zip(seen_module) {
        let builtin = module_state(root, &rel, m) == Some("builtin");
        if !builtin && !present {
            missing.push(format!("module {m}"));
        }
    }
    if !missing.is_empty() {
        if let Some(addon) = addon_of(root, &rel) {
            return addon_finding(&addon, &shown.to_string(), &rel, f);
        }
    }
    if missing.is_empty() {
        f.add(
            Level::Ok,
            "image",
            format!("{shown} carries vfio-early, its hook and the vfio modules"),
            None,
        );
    } else {
        f.add(
            Level::Error,
            "image",
            format!(
                "{shown} lacks {}: the next boot binds nothing",
                missing.join(", ")
            ),
            Some(format!(
                "{rebuild} (the hooks say what is missing in the build output)"
            )),
        );
    }
    // The image's copy of the configuration must be the file's.
    let on_disk = vfio_early_system::read::read_input_optional(&root.path(CONFIG_FILE), CONFIG_CAP)
        .ok()
        .flatten()
        .map(|i| i.bytes);
    let in_image = listing.files.get(CONFIG_FILE);
    let conf = CONFIG_FILE;
    match (on_disk.as_deref(), in_image.map(Vec::as_slice)) {
        (None, None) => {}
        (a, b) if a == b => f.add(
            Level::Ok,
            "image",
            format!("{shown} carries the same /{conf}"),
            None,
        ),
        (Some(_), None) => f.add(
            Level::Error,
            "image",
            format!("{shown} has no /{conf}: the next boot does not see it"),
            Some(rebuild.into()),
        ),
        (None, Some(_)) => f.add(
            Level::Warn,
            "image",
            format!("{shown} still has a /{conf} that /etc no longer has"),
            Some(rebuild.into()),
        ),
        _ => f.add(
            Level::Error,
            "image",
            format!("{shown} has another /{conf} than /etc: the next boot reads the old one"),
            Some(rebuild.into()),
        ),
    }
    // The image's binder is the installed boot build (an old one lacks what this check assumes).
    let boot = std::fs::read(root.path(vfio_early_core::layout::BOOT_BINARY)).ok();
    if let (Some(installed), Some(copy)) = (boot, listing.files.get(HOOK_BINARY)) {
        if &installed != copy {
            let host = env!("CARGO_PKG_VERSION");
            let what = match release_in(copy) {
                Some(v) if v == host => format!("{shown}'s vfio-early is another build of {v} than the installed one"),
                Some(v) if newer(host, &v) => format!("{shown} carries vfio-early {v}, older than this host's {host}"),
                Some(v) => format!("{shown} carries vfio-early {v}, not this host's {host}"),
                None => format!("{shown} carries an older vfio-early than this host's {host} (a release before {host} names no version in its binary)"),
            };
            f.add(Level::Warn, "image", what, Some(rebuild.into()));
        }
    }
}

/// The release a boot build names in its `--version` line (`vfio-early X (boot build)`).
fn release_in(binary: &[u8]) -> Option<String> {
    const TAIL: &[u8] = b" (boot build)";
    const HEAD: &[u8] = b"vfio-early ";
    let mut from = 0;
    while let Some(at) = binary[from..].windows(TAIL.len()).position(|w| w == TAIL) {
        let end = from + at;
        let start = end.saturating_sub(HEAD.len() + 32);
        if let Some(h) = binary[start..end]
            .windows(HEAD.len())
            .rposition(|w| w == HEAD)
        {
            let v = &binary[start + h + HEAD.len()..end];
            if !v.is_empty()
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(b))
            {
                return Some(String::from_utf8_lossy(v).into_owned());
            }
        }
        from = end + TAIL.len();
    }
    None
}

/// Whether release `a` is later than `b` (numeric dot-separated parts; a suffix ignored).
fn newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['-', '+'])
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(a) > parts(b)
}

/// `*` and `?` globbing, as modules.alias patterns use: the two-pointer match, which backtracks
/// only to the last star (linear in practice, never exponential).
fn glob(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star take one more byte.
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|&c| c == b'*')
}

/// The modules (`-` as `_`) whose aliases match a device's modalias: its native drivers.
fn native_modules(root: &Root, release: &str, modalias: &str) -> Vec<String> {
    let Some(aliases) = text_of(root, &format!("lib/modules/{release}/modules.alias")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = aliases
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("alias"), Some(p), Some(m)) if p.starts_with("pci:") => Some((p, m)),
                _ => None,
            }
        })
        .filter(|(p, m)| !m.starts_with("vfio") && glob(p.as_bytes(), modalias.as_bytes()))
        .map(|(_, m)| m.replace('-', "_"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Words of the generator settings that force modules into an image: mkinitcpio's
/// `MODULES=(...)`, dracut's `force_drivers+=" ... "` and `add_drivers+=" ... "`.
fn forced_modules(root: &Root) -> Vec<(String, String)> {
    let mut files = vec![
        "etc/mkinitcpio.conf".to_string(),
        "etc/dracut.conf".to_string(),
    ];
    for dir in [
        "etc/mkinitcpio.conf.d",
        "etc/dracut.conf.d",
        "usr/lib/dracut/dracut.conf.d",
    ] {
        if let Ok(d) = std::fs::read_dir(root.path(dir)) {
            let mut names: Vec<String> = d
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(|n| format!("{dir}/{n}")))
                .filter(|n| n.ends_with(".conf"))
                .collect();
            names.sort();
            files.extend(names);
        }
    }
    let mut out = Vec::new();
    for rel in files {
        let Some(text) = text_of(root, &rel) else {
            continue;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim_end_matches('+').trim();
            if !matches!(key, "MODULES" | "force_drivers" | "add_drivers") {
                continue;
            }
            let value = value.trim_matches(|c| matches!(c, '(' | ')' | '"' | '\'' | ' '));
            for w in value.split_whitespace() {
                out.push((
                    w.trim_matches(|c| matches!(c, '"' | '\'' | '(' | ')'))
                        .replace('-', "_"),
                    format!("/{rel}"),
                ));
            }
        }
    }
    out
}

fn leftovers(root: &Root, next: &NextBoot, f: &mut Findings) {
    if next.input.cmdline_ids {
        f.add(
            Level::Warn,
            "leftover",
            "the kernel command line has vfio-pci.ids=: vfio-pci grabs every device with those IDs, identical twins included".into(),
            Some("remove vfio-pci.ids=... from the kernel command line (where it is set: /etc/default/grub, /etc/kernel/cmdline)".into()),
        );
    }
    for rel in vfio_early_system::modopts::conf_files(root) {
        let Some(text) = text_of(root, &rel) else {
            continue;
        };
        let h = legacy::scan_modprobe_conf(&text);
        for (on, what) in [
            (
                h.ids,
                "`options vfio-pci ids=` grabs every device with those IDs",
            ),
            (
                h.install,
                "an `install vfio-pci` line runs an old override script whenever vfio-pci loads",
            ),
            (
                h.softdep,
                "a `softdep ... pre: vfio-pci` line goes stale with every new driver",
            ),
        ] {
            if on {
                f.add(
                    Level::Warn,
                    "leftover",
                    format!("/{rel}: {what}"),
                    Some(format!("remove that line from /{rel}")),
                );
            }
        }
    }
    // A card's native driver forced into the image is loaded there: unneeded, and with vfio-early
    // missing from an image it takes the card first.
    let rel = release(root);
    let forced = forced_modules(root);
    if forced.is_empty() {
        return;
    }
    for item in next.plan.items.iter().filter(|i| i.decision.takes()) {
        let modalias = sysfs::read_attr::<256>(&root.attr(&item.bdf, "modalias"))
            .ok()
            .flatten();
        let Some(modalias) = modalias else { continue };
        let natives = native_modules(root, &rel, modalias.trim());
        for (m, file) in forced.iter().filter(|(m, _)| natives.contains(m)) {
            f.add(
                Level::Warn,
                "leftover",
                format!("{file} forces {m}, the native driver of {}, into the image", item.bdf),
                Some(format!("remove {m} from {file} (unless the host's own display needs it early), then rebuild the image")),
            );
        }
    }
}

/// Every finding, in order; `image_path`: check this image instead of the running kernel's.
pub fn findings(root: &Root, image_path: Option<&Path>) -> Vec<Finding> {
    let next = nextboot::plan(root, None);
    let state = statefile::read(root);
    let mut f = Findings(Vec::new());
    iommu(root, &next, &mut f);
    modules(root, &mut f);
    config(root, &next, &mut f);
    devices(&next, &state, &mut f);
    for (bdf, names) in next.inputs_behind_taken_usb(root) {
        f.add(
            Level::Warn,
            "input",
            nextboot::input_warning(&bdf, &names),
            Some(nextboot::INPUT_FIX.into()),
        );
    }
    image(root, image_path, &mut f);
    leftovers(root, &next, &mut f);
    this_boot(root, &next, &state, &mut f);
    f.0
}

/// The exit code for a set of findings: 0 ready, 1 warnings (or something only root can see),
/// 2 errors.
pub fn exit_code(findings: &[Finding]) -> i32 {
    match findings.iter().map(|f| f.level).max() {
        Some(Level::Error) => 2,
        Some(Level::Warn | Level::NeedsRoot) => 1,
        _ => 0,
    }
}

/// `vfio-early check [--json] [--image FILE]`.
pub fn check(root: &Root, json: bool, image_path: Option<&Path>) -> i32 {
    let all = findings(root, image_path);
    let code = exit_code(&all);
    if json {
        let list: Vec<Value> = all
            .iter()
            .map(|f| json!({"level": f.level.as_str(), "topic": f.topic, "text": f.text, "fix": f.fix}))
            .collect();
        outln!(
            "{}",
            json!({"schema": "vfio-early-check", "version": SCHEMA_VERSION, "ready": code == 0, "exit": code, "findings": list})
        );
    } else {
        for finding in &all {
            outln!("{finding}");
        }
        outln!(
            "{}",
            match code {
                0 => "ready: the next boot will take what is configured",
                1 => "warnings: the next boot may work; see above",
                _ => "errors: the next boot will not work as configured; see above",
            }
        );
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_modules_alias() {
        let m = b"pci:v000010DEd00001C03sv00001043sd000085F4bc03sc00i00";
        assert!(glob(b"pci:v000010DEd*sv*sd*bc03sc*i*", m));
        assert!(glob(b"pci:v000010DEd00001C03sv*sd*bc*sc*i*", m));
        assert!(!glob(b"pci:v00001002d*sv*sd*bc03sc*i*", m));
        assert!(glob(b"pci:v*d*sv*sd*bc03sc00i0?", m));
        assert!(!glob(b"pci:v*d*sv*sd*bc04sc*i*", m));
    }

    #[test]
    fn the_release_in_an_image_binary() {
        let mut bin = b"\x7fELF..vfio-early (boot build): bind chosen..".to_vec();
        assert_eq!(release_in(&bin), None, "the help text names no release");
        bin.extend_from_slice(b"\0vfio-early 0.0.9 (boot build)\0");
        assert_eq!(release_in(&bin).as_deref(), Some("0.0.9"));
        assert!(newer("0.1.0", "0.0.9") && newer("1.0.0", "0.10.0") && !newer("0.1.0", "0.1.0"));
        assert!(release_in(vfio_early_engine::BOOT_VERSION_LINE.as_bytes()).is_some());
    }

    #[test]
    fn exit_codes() {
        let f = |level| Finding {
            level,
            topic: "x",
            text: String::new(),
            fix: None,
        };
        assert_eq!(exit_code(&[f(Level::Ok)]), 0);
        assert_eq!(exit_code(&[f(Level::Ok), f(Level::NeedsRoot)]), 1);
        assert_eq!(exit_code(&[f(Level::Warn), f(Level::Error)]), 2);
    }
}
