// SPDX-License-Identifier: MIT OR Apache-2.0
//! A fake root for vfio-early: the sysfs, procfs and initramfs files the binder reads and writes
//! (docs/interface.md), laid out like the kernel lays them out.
//!
//! Shared by the integration tests (`mod common;`) and `examples/bench_tree.rs`
//! (`#[path = "../tests/common/mod.rs"] mod common;`).
//!
//! Layout, as in the kernel (flattened: no bridge nesting under `sys/devices`):
//! - `sys/devices/pci<DDDD>:<BB>/<BDF>/`: the device directory, with `uevent`, `vendor`, `device`,
//!   `subsystem_vendor`, `subsystem_device`, `class`, `modalias`, `driver_override` (`(null)\n`),
//!   `resource` (13 lines, 17 for bridges), `enable`, `boot_vga` (VGA class only, as the kernel),
//!   `config` (256 bytes of configuration space, [`Dev::config`]),
//!   `subsystem -> ../../../bus/pci`, `iommu_group -> ../../../kernel/iommu_groups/N`,
//!   `driver -> ../../../bus/pci/drivers/NAME`.
//! - `sys/bus/pci/devices/<BDF> -> ../../../devices/pci<DDDD>:<BB>/<BDF>`.
//! - `sys/kernel/iommu_groups/N/devices/<BDF> -> ../../../../devices/pci<DDDD>:<BB>/<BDF>`.
//! - `sys/bus/pci/drivers/NAME/{bind,unbind,new_id,remove_id}` and `NAME/<BDF>` links back to the
//!   devices it holds.
//!
//! Every attribute is a regular file, so writes land as bytes the tests can read back; nothing
//! reproduces the kernel's bind semantics except the imitation of vfio-pci's module init, as a
//! shell `sbin/modprobe` ([`Modprobe::Bind`]) or in Rust ([`FakeTree::vfio_pci_init`]).
//! Attributes are plain files: open them with `O_TRUNC` when writing (harmless on sysfs), or a
//! shorter value leaves the tail of the old one behind.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// Lines in a device's `resource` file: the kernel prints `PCI_BRIDGE_RESOURCES` (6 BARs, the
/// ROM, 6 SR-IOV BARs) for an endpoint and `DEVICE_COUNT_RESOURCE` (plus 4 bridge windows) for a
/// bridge.
pub const RESOURCE_LINES: usize = 13;
pub const BRIDGE_RESOURCE_LINES: usize = 17;

/// Which `sbin/modprobe` script the tree carries. (The benchmark uses a compiled fake instead,
/// built on [`FakeTree::vfio_pci_init`]: the same imitation at a hundredth of the cost.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modprobe {
    /// Appends its arguments to `<root>/modprobe.log`, loads nothing (the default).
    Log,
    /// As `Log`, and on the first load of `vfio-pci`/`vfio_pci` (no `drivers/vfio-pci` yet)
    /// imitates its module init: registers `drivers/vfio-pci` and binds every free device whose
    /// `driver_override` is `vfio-pci`, that has an IOMMU group and is not a bridge (vfio-pci
    /// refuses those). Binding = `driver` link, `drivers/vfio-pci/<BDF>` link, `DRIVER=` in uevent.
    Bind,
}

/// A fake root directory. Made by [`FakeTree::new`] it lives in a temporary directory removed on
/// drop; made by [`FakeTree::at`] it stays.
pub struct FakeTree {
    pub root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// `0000:01:00.0` from `01:00.0` or any-case input.
pub fn full_bdf(bdf: &str) -> String {
    let b = bdf.to_ascii_lowercase();
    if b.matches(':').count() == 1 {
        format!("0000:{b}")
    } else {
        b
    }
}

/// `pci0000:01`: the directory under `sys/devices` that holds a BDF's device directory here.
fn bus_dir(bdf: &str) -> String {
    let mut it = bdf.split(':');
    let dom = it.next().unwrap_or("0000");
    let bus = it.next().unwrap_or("00");
    format!("pci{dom}:{bus}")
}

fn write(path: &Path, contents: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn link(target: &str, at: &Path) {
    if let Some(p) = at.parent() {
        fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    }
    remove_path(at);
    symlink(target, at).unwrap_or_else(|e| panic!("symlink {} -> {target}: {e}", at.display()));
}

/// Removes a file, symlink or directory tree; absent is fine.
fn remove_path(p: &Path) {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(_) => return,
    };
    if let Err(e) = r {
        if e.kind() != ErrorKind::NotFound {
            panic!("remove {}: {e}", p.display());
        }
    }
}

/// The first bytes of a small attribute, in one read.
fn read_head(path: &Path) -> String {
    use std::io::Read;
    let mut buf = [0u8; 64];
    match fs::File::open(path).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `(bus, slot, function)` of a full `DDDD:BB:SS.F`.
fn parse_bdf_parts(b: &str) -> (u8, u8, u8) {
    let hex = |s: &str| u8::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad BDF {b}"));
    let (bus, rest) = b[5..]
        .split_once(':')
        .unwrap_or_else(|| panic!("bad BDF {b}"));
    let (slot, func) = rest
        .split_once('.')
        .unwrap_or_else(|| panic!("bad BDF {b}"));
    (hex(bus), hex(slot), hex(func))
}

impl FakeTree {
    /// A fresh tree in a new temporary directory: under cargo's `CARGO_TARGET_TMPDIR` for
    /// integration tests (the fake `sbin/modprobe` must be executable; `/tmp` may be noexec),
    /// else the system's.
    pub fn new() -> FakeTree {
        let mut b = tempfile::Builder::new();
        b.prefix("vfio-early-tree.");
        let tmp = match option_env!("CARGO_TARGET_TMPDIR") {
            Some(dir) => b.tempdir_in(dir),
            None => b.tempdir(),
        }
        .expect("temporary directory");
        let t = FakeTree {
            root: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        };
        t.skeleton();
        t
    }

    /// A fresh tree in a new temporary directory under `dir` (e.g. a tmpfs, for tests that build
    /// thousands of trees and do not execute the fake modprobe); `new()` when `dir` is unusable.
    pub fn new_in(dir: &Path) -> FakeTree {
        let Ok(tmp) = tempfile::Builder::new()
            .prefix("vfio-early-tree.")
            .tempdir_in(dir)
        else {
            return FakeTree::new();
        };
        let t = FakeTree {
            root: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        };
        t.skeleton();
        t
    }

    /// A tree in `dir` (created if absent; must be empty), left in place.
    pub fn at(dir: &Path) -> FakeTree {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let not_empty = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .next()
            .is_some();
        assert!(!not_empty, "{} is not empty", dir.display());
        let root = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let t = FakeTree { root, _tmp: None };
        t.skeleton();
        t
    }

    /// An existing tree (made earlier by [`FakeTree::at`]), left in place; nothing is created.
    pub fn open(dir: &Path) -> FakeTree {
        FakeTree {
            root: dir.to_path_buf(),
            _tmp: None,
        }
    }

    fn skeleton(&self) {
        self.file("proc/cmdline", "\n");
        self.file("proc/iomem", "");
        self.file("proc/sys/kernel/printk_devkmsg", "ratelimit\n");
        self.file(
            "etc/initrd-release",
            "NAME=\"vfio-early test initrd\"\nID=vfio-early-test\nVERSION_ID=0\n",
        );
        for d in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/devices",
            "sys/kernel/iommu_groups",
            "run",
        ] {
            self.mkdir(d);
        }
        self.file("sys/bus/pci/drivers_probe", "");
        self.file("dev/kmsg", "");
        self.modprobe(Modprobe::Log, "/bin/sh");
    }

    /// Absolute path of `rel` inside the tree.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// `proc/cmdline` (a newline is added, as the kernel prints it).
    pub fn cmdline(&self, line: &str) -> &Self {
        self.file("proc/cmdline", &format!("{line}\n"))
    }

    /// Any file, parent directories created; replaces what was there.
    pub fn file(&self, rel: &str, contents: &str) -> &Self {
        self.bytes(rel, contents.as_bytes())
    }

    pub fn bytes(&self, rel: &str, contents: &[u8]) -> &Self {
        let p = self.path(rel);
        remove_path(&p);
        write(&p, contents);
        self
    }

    pub fn mkdir(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        self
    }

    /// A symlink at `rel` pointing at `target` (verbatim, usually relative).
    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        link(target, &self.path(rel));
        self
    }

    /// Removes a file, symlink or directory tree; absent is fine.
    pub fn remove(&self, rel: &str) -> &Self {
        remove_path(&self.path(rel));
        self
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// Installs an executable script at `rel` (e.g. `usr/sbin/modprobe`).
    pub fn script(&self, rel: &str, text: &str) -> &Self {
        let p = self.path(rel);
        self.file(rel, text);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        self
    }

    /// Replaces `sbin/modprobe` with the given kind, run by `shell` (an absolute path; e.g.
    /// `/bin/sh`, or `/usr/bin/busybox sh`, whose `ln`/`mkdir` applets fork less).
    /// The script finds the root from its own path, so a copied tree keeps working.
    pub fn modprobe(&self, kind: Modprobe, shell: &str) -> &Self {
        let mut s = format!(
            "#!{shell}\n\
             # Fake modprobe of a vfio-early test tree: records its arguments.\n\
             case $0 in */*) r=${{0%/*}}/.. ;; *) r={root} ;; esac\n\
             printf '%s\\n' \"$*\" >> \"$r/modprobe.log\"\n\
             # A test can make it fail: modprobe.exit holds the exit status.\n\
             if [ -f \"$r/modprobe.exit\" ]; then read -r c < \"$r/modprobe.exit\"; exit \"$c\"; fi\n",
            root = sh_quote(&self.root.to_string_lossy()),
        );
        if kind == Modprobe::Bind {
            s.push_str(BIND_SH);
        }
        s.push_str("exit 0\n");
        self.script("sbin/modprobe", &s)
    }

    /// The binding modprobe under `/bin/sh`.
    pub fn modprobe_binds(&self) -> &Self {
        self.modprobe(Modprobe::Bind, "/bin/sh")
    }

    /// Makes `sbin/modprobe` exit with `code` (after logging); `None` restores success.
    pub fn modprobe_exit(&self, code: Option<i32>) -> &Self {
        match code {
            Some(c) => self.file("modprobe.exit", &format!("{c}\n")),
            None => self.remove("modprobe.exit"),
        }
    }

    /// Device directory of `bdf`, relative to the root.
    pub fn dev_rel(bdf: &str) -> String {
        let b = full_bdf(bdf);
        format!("sys/devices/{}/{b}", bus_dir(&b))
    }

    /// Adds a PCI device (see [`Dev`]).
    pub fn device(&self, dev: Dev) -> &Self {
        let b = dev.bdf.clone();
        let rel = Self::dev_rel(&b);
        let d = self.path(&rel);
        remove_path(&d);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        let put = |name: &str, s: &str| write(&d.join(name), s.as_bytes());
        put("vendor", &format!("0x{:04x}\n", dev.vendor));
        put("device", &format!("0x{:04x}\n", dev.device));
        put("subsystem_vendor", &format!("0x{:04x}\n", dev.subsys.0));
        put("subsystem_device", &format!("0x{:04x}\n", dev.subsys.1));
        put("class", &format!("0x{:06x}\n", dev.class));
        put("modalias", &format!("{}\n", dev.modalias()));
        put("driver_override", "(null)\n");
        put("enable", "0\n");
        put("resource", &dev.resource());
        write(&d.join("config"), &dev.config());
        match dev.boot_vga {
            Some(on) => put("boot_vga", if on { "1\n" } else { "0\n" }),
            // The kernel shows boot_vga on every VGA-class device, and only there.
            None if dev.class >> 8 == 0x0300 => put("boot_vga", "0\n"),
            None => {}
        }
        put("uevent", &dev.uevent(None));
        link("../../../bus/pci", &d.join("subsystem"));
        link(
            &format!("../../../{rel}", rel = rel.trim_start_matches("sys/")),
            &self.path(&format!("sys/bus/pci/devices/{b}")),
        );
        if let Some(g) = dev.group {
            link(
                &format!("../../../kernel/iommu_groups/{g}"),
                &d.join("iommu_group"),
            );
            link(
                &format!("../../../../{}", rel.trim_start_matches("sys/")),
                &self.path(&format!("sys/kernel/iommu_groups/{g}/devices/{b}")),
            );
        }
        if let Some(drv) = dev.driver.as_deref() {
            self.set_driver(&b, Some(drv));
        }
        // /proc/bus/pci/devices: "BBDF\tVVVVDDDD\tIRQ..." (no domain), as drivers/pci/proc.c.
        let (bus, slot, func) = parse_bdf_parts(&b);
        let line = format!(
            "{bus:02x}{:02x}\t{:04x}{:04x}\t0\n",
            slot << 3 | func,
            dev.vendor,
            dev.device
        );
        let p = self.path("proc/bus/pci/devices");
        let mut all = fs::read_to_string(&p).unwrap_or_default();
        all.push_str(&line);
        write(&p, all.as_bytes());
        self
    }

    /// `sys/bus/pci/drivers/NAME/` with its `bind`, `unbind`, `new_id`, `remove_id` files.
    pub fn driver_registered(&self, name: &str) -> &Self {
        for f in ["bind", "unbind", "new_id", "remove_id"] {
            let p = self.path(&format!("sys/bus/pci/drivers/{name}/{f}"));
            if !p.exists() {
                write(&p, b"");
            }
        }
        self
    }

    /// A file's contents, `""` when absent or unreadable.
    pub fn read(&self, rel: &str) -> String {
        fs::read(self.path(rel))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// What was written to `dev/kmsg`.
    pub fn kmsg(&self) -> String {
        self.read("dev/kmsg")
    }

    /// `dev/kmsg` split into records with the `<N>` level prefix removed.
    pub fn kmsg_lines(&self) -> Vec<String> {
        self.kmsg()
            .lines()
            .map(
                |l| match l.strip_prefix('<').and_then(|r| r.split_once('>')) {
                    Some((lvl, rest)) if lvl.bytes().all(|c| c.is_ascii_digit()) => {
                        rest.to_string()
                    }
                    _ => l.to_string(),
                },
            )
            .collect()
    }

    /// One line per `sbin/modprobe` call: its arguments.
    pub fn modprobe_log(&self) -> String {
        self.read("modprobe.log")
    }

    /// Contents of the device's `driver_override`.
    pub fn override_of(&self, bdf: &str) -> String {
        self.read(&format!(
            "sys/bus/pci/devices/{}/driver_override",
            full_bdf(bdf)
        ))
    }

    /// Basename of `devices/BDF/driver`, `None` when unbound.
    pub fn driver_of(&self, bdf: &str) -> Option<String> {
        let p = self.path(&format!("sys/bus/pci/devices/{}/driver", full_bdf(bdf)));
        fs::read_link(p)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// Binds (`Some`) or unbinds (`None`) by hand: the `driver` link, the driver directory and its
    /// `<BDF>` link, and the `DRIVER=` line of `uevent`.
    pub fn set_driver(&self, bdf: &str, driver: Option<&str>) {
        let b = full_bdf(bdf);
        let rel = Self::dev_rel(&b);
        let d = self.path(&rel);
        assert!(d.is_dir(), "no device {b}");
        if let Some(old) = self.driver_of(&b) {
            remove_path(&self.path(&format!("sys/bus/pci/drivers/{old}/{b}")));
        }
        remove_path(&d.join("driver"));
        let uevent = d.join("uevent");
        let rest: String = fs::read_to_string(&uevent)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("DRIVER="))
            .map(|l| format!("{l}\n"))
            .collect();
        match driver {
            Some(name) => {
                self.driver_registered(name);
                link(
                    &format!("../../../bus/pci/drivers/{name}"),
                    &d.join("driver"),
                );
                link(
                    &format!("../../../../{}", rel.trim_start_matches("sys/")),
                    &self.path(&format!("sys/bus/pci/drivers/{name}/{b}")),
                );
                write(&uevent, format!("DRIVER={name}\n{rest}").as_bytes());
            }
            None => write(&uevent, rest.as_bytes()),
        }
    }

    /// Imitates vfio-pci's module init, as [`Modprobe::Bind`] does in shell but with a few
    /// syscalls per device: unless `drivers/vfio-pci` exists already, registers it and binds
    /// every free device whose `driver_override` is `vfio-pci`, that has an IOMMU group and is
    /// not a bridge. Returns the BDFs bound, sorted.
    pub fn vfio_pci_init(&self) -> Vec<String> {
        let drv = self.path("sys/bus/pci/drivers/vfio-pci");
        if drv.is_dir() {
            return Vec::new();
        }
        self.driver_registered("vfio-pci");
        let mut bound = Vec::new();
        let Ok(rd) = fs::read_dir(self.path("sys/bus/pci/devices")) else {
            return bound;
        };
        for e in rd.flatten() {
            let d = e.path();
            let b = e.file_name().to_string_lossy().into_owned();
            if read_head(&d.join("driver_override")).trim_end() != "vfio-pci"
                || fs::symlink_metadata(d.join("driver")).is_ok()
                || !d.join("iommu_group").exists()
                || read_head(&d.join("class")).starts_with("0x0604")
            {
                continue;
            }
            // As set_driver, minus its checks: driver link, back link, DRIVER= first in uevent.
            let dir = format!("devices/{}/{b}", bus_dir(&b));
            let ok = symlink("../../../bus/pci/drivers/vfio-pci", d.join("driver")).is_ok()
                && symlink(format!("../../../../{dir}"), drv.join(&b)).is_ok();
            if let (true, Ok(ue)) = (ok, fs::read_to_string(d.join("uevent"))) {
                let _ = fs::write(d.join("uevent"), format!("DRIVER=vfio-pci\n{ue}"));
                bound.push(b);
            }
        }
        bound.sort();
        bound
    }

    /// BDFs under `sys/bus/pci/devices`, sorted.
    pub fn devices(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path("sys/bus/pci/devices"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Panics, showing every line, unless one of `lines` contains `needle`.
#[track_caller]
pub fn assert_logged(lines: &[String], needle: &str) {
    assert!(
        lines.iter().any(|l| l.contains(needle)),
        "no line contains {needle:?}: {lines:#?}"
    );
}

impl Default for FakeTree {
    fn default() -> Self {
        Self::new()
    }
}

/// Shell text appended to the fake modprobe for [`Modprobe::Bind`]. Uses only builtins except
/// `mkdir` and `ln`, so its cost stays small and equal for whoever calls it.
const BIND_SH: &str = r#"# Imitate vfio-pci's module init, once: bind every free device whose driver_override
# names it, that has an IOMMU group (else -EINVAL) and is not a bridge (header type 1).
for a in "$@"; do
  case $a in vfio-pci|vfio_pci) ;; *) continue ;; esac
  drv=$r/sys/bus/pci/drivers/vfio-pci
  [ ! -d "$drv" ] || break
  mkdir "$drv"
  for f in bind unbind new_id remove_id; do : > "$drv/$f"; done
  for d in "$r"/sys/bus/pci/devices/*; do
    [ -e "$d/iommu_group" ] && [ ! -L "$d/driver" ] || continue
    o=; read -r o < "$d/driver_override" || :
    [ "$o" = vfio-pci ] || continue
    c=; read -r c < "$d/class" || :
    case $c in 0x0604*) continue ;; esac
    b=${d##*/}; x=${b#*:}
    ln -s ../../../bus/pci/drivers/vfio-pci "$d/driver"
    ln -s "../../../../devices/pci${b%%:*}:${x%%:*}/$b" "$drv/$b"
    u=DRIVER=vfio-pci
    while IFS= read -r l; do u="$u
$l"; done < "$d/uevent"
    printf '%s\n' "$u" > "$d/uevent"
  done
  break
done
"#;

/// A PCI function to add with [`FakeTree::device`].
#[derive(Clone, Debug)]
pub struct Dev {
    pub bdf: String,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub subsys: (u16, u16),
    pub group: Option<u32>,
    pub driver: Option<String>,
    pub boot_vga: Option<bool>,
    pub bars: Vec<(usize, u64, u64, u64)>,
}

impl Dev {
    /// `bdf` as `0000:01:00.0` or `01:00.0`; `class` as 0xCCSSPP (e.g. 0x030000).
    /// Defaults: subsystem 0000:0000, no IOMMU group, no driver, all resources zero,
    /// `boot_vga` `0` for VGA class (absent otherwise).
    pub fn new(bdf: &str, vendor: u16, device: u16, class: u32) -> Dev {
        Dev {
            bdf: full_bdf(bdf),
            vendor,
            device,
            class,
            subsys: (0, 0),
            group: None,
            driver: None,
            boot_vga: None,
            bars: Vec::new(),
        }
    }

    pub fn subsys(mut self, vendor: u16, device: u16) -> Dev {
        self.subsys = (vendor, device);
        self
    }

    /// IOMMU group `n`; without it the device has no `iommu_group` link (IOMMU off).
    pub fn group(mut self, n: u32) -> Dev {
        self.group = Some(n);
        self
    }

    /// Bound to `name` at creation.
    pub fn driver(mut self, name: &str) -> Dev {
        self.driver = Some(name.to_string());
        self
    }

    /// `boot_vga` file `1\n` / `0\n`.
    pub fn boot_vga(mut self, on: bool) -> Dev {
        self.boot_vga = Some(on);
        self
    }

    /// Line `index` of `resource` (6 = expansion ROM, or the shadow copy at 0xc0000 with flag
    /// 0x2 for the boot VGA).
    pub fn bar(mut self, index: usize, start: u64, end: u64, flags: u64) -> Dev {
        assert!(index < BRIDGE_RESOURCE_LINES, "resource index {index}");
        self.bars.retain(|b| b.0 != index);
        self.bars.push((index, start, end, flags));
        self
    }

    pub fn is_bridge(&self) -> bool {
        self.class >> 8 == 0x0604
    }

    /// As the kernel's `pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X`.
    pub fn modalias(&self) -> String {
        format!(
            "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}",
            self.vendor,
            self.device,
            self.subsys.0,
            self.subsys.1,
            (self.class >> 16) & 0xff,
            (self.class >> 8) & 0xff,
            self.class & 0xff
        )
    }

    /// As the kernel's `pci_uevent` (`PCI_CLASS=%04X`, `PCI_ID=%04X:%04X`, ...), preceded by
    /// the driver core's `DRIVER=` line when bound.
    pub fn uevent(&self, driver: Option<&str>) -> String {
        let mut s = String::new();
        if let Some(d) = driver {
            let _ = writeln!(s, "DRIVER={d}");
        }
        let _ = writeln!(s, "PCI_CLASS={:04X}", self.class);
        let _ = writeln!(s, "PCI_ID={:04X}:{:04X}", self.vendor, self.device);
        let _ = writeln!(
            s,
            "PCI_SUBSYS_ID={:04X}:{:04X}",
            self.subsys.0, self.subsys.1
        );
        let _ = writeln!(s, "PCI_SLOT_NAME={}", self.bdf);
        let _ = writeln!(s, "MODALIAS={}", self.modalias());
        s
    }

    /// The `config` file: the 256 bytes of configuration space root reads from sysfs (lspci's
    /// source with `-A linux-sysfs`), consistent with `uevent` and `resource`. A type-0 header
    /// for an endpoint, type 1 for a bridge (class 0x0604): vendor, device; command with memory
    /// and I/O decoding on where there are such BARs, bus mastering when bound at creation; class
    /// and programming interface, revision 0 (`(rev)` unshown, as with no `revision` file);
    /// header type; the BARs' start addresses with their type bits (a 64-bit BAR takes two
    /// slots). The subsystem IDs at 0x2c for an endpoint; a bridge has no such field, so it gets
    /// them in a Subsystem ID capability (0x0d) at 0x40, as AMD's and Intel's root ports carry
    /// them. Bus numbers, IRQ lines and the rest are 0: the fake tree has no topology.
    pub fn config(&self) -> Vec<u8> {
        let mut c = vec![0u8; 256];
        let put16 =
            |c: &mut [u8], at: usize, v: u16| c[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |c: &mut [u8], at: usize, v: u32| c[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put16(&mut c, 0x00, self.vendor);
        put16(&mut c, 0x02, self.device);
        const IO: u64 = 0x100; // IORESOURCE_IO
        const MEM: u64 = 0x200; // IORESOURCE_MEM
        let bars = if self.is_bridge() { 2 } else { 6 };
        let live = |i: usize, kind: u64| {
            self.bars
                .iter()
                .any(|b| b.0 == i && b.3 & kind != 0 && b.1 < b.2)
        };
        let has = |kind: u64| (0..bars).any(|i| live(i, kind)) || self.is_bridge();
        let mut command = 0u16;
        if has(IO) {
            command |= 0x1;
        }
        if has(MEM) {
            command |= 0x2;
        }
        if self.driver.is_some() {
            command |= 0x4;
        }
        put16(&mut c, 0x04, command);
        c[0x09] = self.class as u8;
        c[0x0a] = (self.class >> 8) as u8;
        c[0x0b] = (self.class >> 16) as u8;
        c[0x0e] = u8::from(self.is_bridge());
        for &(i, start, end, flags) in &self.bars {
            if i >= bars || start >= end {
                continue;
            }
            let at = 0x10 + 4 * i;
            if flags & IO != 0 {
                put32(&mut c, at, (start as u32 & !0x3) | 0x1);
            } else if flags & 0x100000 != 0 && i + 1 < bars {
                // IORESOURCE_MEM_64: type bits 10b, prefetchable as the flags say.
                let pref = if flags & 0x2000 != 0 { 0x8 } else { 0 };
                put32(&mut c, at, (start as u32 & !0xf) | 0x4 | pref);
                put32(&mut c, at + 4, (start >> 32) as u32);
            } else {
                let pref = if flags & 0x2000 != 0 { 0x8 } else { 0 };
                put32(&mut c, at, (start as u32 & !0xf) | pref);
            }
        }
        if self.is_bridge() {
            put16(&mut c, 0x06, 0x0010); // status: capabilities list
            c[0x34] = 0x40;
            c[0x40] = 0x0d; // PCI_CAP_ID_SSVID, last in the list
            put16(&mut c, 0x44, self.subsys.0);
            put16(&mut c, 0x46, self.subsys.1);
        } else {
            put16(&mut c, 0x2c, self.subsys.0);
            put16(&mut c, 0x2e, self.subsys.1);
        }
        c
    }

    /// As the kernel's `resource_show`: `0x%016llx 0x%016llx 0x%016llx` per line.
    pub fn resource(&self) -> String {
        let n = if self.is_bridge() {
            BRIDGE_RESOURCE_LINES
        } else {
            RESOURCE_LINES
        };
        let mut s = String::new();
        for i in 0..n {
            let (a, b, f) = self
                .bars
                .iter()
                .find(|r| r.0 == i)
                .map_or((0, 0, 0), |r| (r.1, r.2, r.3));
            let _ = writeln!(s, "0x{a:016x} 0x{b:016x} 0x{f:016x}");
        }
        s
    }
}

/// A ROM image of `blocks` × 512 bytes: `55 AA`, a real entry point (`retf`) for SeaBIOS, a PCIR
/// at 0x1C with the IDs and class; x86 images get a valid checksum, EFI images (code type 3) a
/// valid EFI header (x64 boot-service driver).
pub fn rom_image(
    vendor: u16,
    device: u16,
    class: u32,
    blocks: u8,
    code: u8,
    last: bool,
) -> Vec<u8> {
    let mut d = vec![0u8; blocks as usize * 512];
    d[..4].copy_from_slice(&[0x55, 0xAA, blocks, 0xCB]);
    d[0x18] = 0x1C;
    let p = 0x1C;
    d[p..p + 4].copy_from_slice(b"PCIR");
    d[p + 4..p + 6].copy_from_slice(&vendor.to_le_bytes());
    d[p + 6..p + 8].copy_from_slice(&device.to_le_bytes());
    d[p + 0x0A] = 0x18;
    d[p + 0x0D..p + 0x10].copy_from_slice(&class.to_le_bytes()[..3]);
    d[p + 0x10] = blocks;
    d[p + 0x14] = code;
    d[p + 0x15] = if last { 0x80 } else { 0 };
    if code == 3 {
        d[4..8].copy_from_slice(&0x0EF1u32.to_le_bytes());
        d[8] = 11;
        d[0x0A..0x0C].copy_from_slice(&0x8664u16.to_le_bytes());
        d[0x16] = 0x40;
    } else {
        let sum = d.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        d[6] = 0u8.wrapping_sub(sum);
    }
    d
}
