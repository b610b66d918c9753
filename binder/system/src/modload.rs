// SPDX-License-Identifier: MIT OR Apache-2.0
//! The add-on's modules (`vfio-early addon`): its manifest, and loading them at boot when the
//! base image's modprobe cannot find vfio-pci. The base image's `modules.dep` does not list
//! them and must not be overwritten (it lists the base's own modules), so the add-on carries
//! its module files in a directory of its own and this manifest names them in load order.
//! Loading is `finit_module(2)` on each file, with the parameters modprobe would pass
//! (modprobe.d's `options`, then the command line's `MODULE.PARAM=`, see `modopts`).
//!
//! Manifest (text, one record a line; refused whole if any line is wrong):
//! ```text
//! vfio-early add-on 1
//! kernel 6.1.0-50-amd64
//! module irqbypass irqbypass.ko
//! module vfio_pci vfio-pci.ko
//! end
//! ```

use core::fmt;
use std::path::Path;
use std::time::Instant;

use crate::sysfs::{self, Root};
use vfio_early_core::layout::{ADDON_MANIFEST, ADDON_MODULES};

const HEADER: &str = "vfio-early add-on 1";
/// The manifest, at most: a few hundred bytes for the vfio modules.
pub const MANIFEST_CAP: usize = 8 << 10;
/// Modules in one add-on (vfio-pci needs five or six).
pub const MAX_MODULES: usize = 16;

/// One module: its name (`_` form) and its file in [`ADDON_MODULES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: heapless::String<64>,
    pub file: heapless::String<96>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub kernel: heapless::String<128>,
    /// In load order: every module after what it needs.
    pub modules: heapless::Vec<Module, MAX_MODULES>,
}

/// A name the manifest may hold: no path, nothing a shell or the kernel reads specially.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'~'))
}

impl Manifest {
    pub fn render(&self) -> String {
        let mut t = format!("{HEADER}\nkernel {}\n", self.kernel);
        for m in &self.modules {
            t.push_str(&format!("module {} {}\n", m.name, m.file));
        }
        t.push_str("end\n");
        t
    }

    /// The manifest, or which line is wrong (1-based) and how.
    pub fn parse(text: &str) -> Result<Manifest, (usize, &'static str)> {
        let mut lines = text.split('\n').enumerate().map(|(n, l)| (n + 1, l));
        if lines.next().map(|(_, l)| l) != Some(HEADER) {
            return Err((1, "not a vfio-early add-on manifest of version 1"));
        }
        if !text.ends_with("\nend\n") {
            return Err((text.split('\n').count(), "cut short: no end record"));
        }
        let mut kernel = None;
        let mut modules = heapless::Vec::new();
        for (n, line) in lines.by_ref() {
            let mut words: heapless::Vec<&str, 4> = heapless::Vec::new();
            for w in line.split(' ') {
                words.push(w).map_err(|_| (n, "too many words"))?;
            }
            match words.as_slice() {
                ["kernel", k] if kernel.is_none() && plain(k) => {
                    kernel = Some(heapless::String::try_from(*k).map_err(|_| (n, "too long"))?)
                }
                ["module", name, file] if kernel.is_some() && plain(name) && plain(file) => {
                    let m = Module {
                        name: heapless::String::try_from(*name).map_err(|_| (n, "too long"))?,
                        file: heapless::String::try_from(*file).map_err(|_| (n, "too long"))?,
                    };
                    modules.push(m).map_err(|_| (n, "too many modules"))?;
                }
                ["end"] => {
                    let rest: Vec<_> = lines.collect();
                    if !matches!(rest.as_slice(), [(_, "")]) {
                        return Err((n, "text after the end"));
                    }
                    let kernel = kernel.ok_or((n, "no kernel line"))?;
                    return Ok(Manifest { kernel, modules });
                }
                _ => return Err((n, "not a kernel, module or end record")),
            }
        }
        Err((text.split('\n').count(), "no end record"))
    }
}

/// Why the add-on's modules were not loaded; each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("/{ADDON_MANIFEST}: {0}")]
    Read(crate::read::SysError),
    #[error("/{ADDON_MANIFEST} line {line}: {what}: the add-on is damaged; hint: rebuild it (vfio-early addon)")]
    Malformed { line: usize, what: &'static str },
    #[error("the add-on was built for kernel {built}, this is {running}: its modules are not loaded; hint: vfio-early addon --kver {running}")]
    OtherKernel { built: String, running: String },
    #[error("loading {module} from /{ADDON_MODULES}/{file}: {error}")]
    Load {
        module: String,
        file: String,
        error: std::io::Error,
    },
    #[error("the deadline passed before {0} was loaded")]
    Deadline(String),
}

/// Reads the add-on's manifest: `None` when there is no add-on.
pub fn manifest(root: &Root) -> Result<Option<Manifest>, LoadError> {
    let Some(input) = crate::read::read_input_optional(&root.path(ADDON_MANIFEST), MANIFEST_CAP)
        .map_err(LoadError::Read)?
    else {
        return Ok(None);
    };
    if input.cut {
        return Err(LoadError::Malformed {
            line: 0,
            what: "longer than 8 KiB",
        });
    }
    Manifest::parse(&input.text())
        .map(Some)
        .map_err(|(line, what)| LoadError::Malformed { line, what })
}

/// The running kernel's release, as `uname -r` says it.
pub fn running_kernel(root: &Root) -> String {
    sysfs::read_attr::<128>(&root.path(vfio_early_core::layout::OSRELEASE))
        .ok()
        .flatten()
        .map(|r| r.trim().to_string())
        .unwrap_or_default()
}

/// Which modules to load and with what: the manifest checked against the running kernel,
/// loaded ones dropped (`/sys/module/NAME/initstate`; built-in ones have none and are never
/// in a manifest), each with modprobe's parameters. Pure but for the reads.
pub fn steps(root: &Root, m: &Manifest) -> Result<Vec<(Module, String)>, LoadError> {
    let running = running_kernel(root);
    if running != m.kernel.as_str() {
        return Err(LoadError::OtherKernel {
            built: m.kernel.to_string(),
            running,
        });
    }
    let cmdline = crate::read::read_input(
        &root.path(vfio_early_core::layout::PROC_CMDLINE),
        vfio_early_core::config::CMDLINE_CAP,
    )
    .map(|i| i.bytes)
    .unwrap_or_default();
    let files = crate::modopts::conf_files(root);
    let mut out = Vec::new();
    for module in &m.modules {
        let state = root.path(&format!("sys/module/{}/initstate", module.name));
        if state.exists() {
            continue;
        }
        let params = crate::modopts::options(root, &files, &cmdline, &module.name);
        out.push((module.clone(), params));
    }
    Ok(out)
}

/// Loads the add-on's modules in order, stopping at the first failure or at `until`. A module
/// another loader got in first with (`EEXIST`) counts as loaded. `Ok(false)`: no add-on.
pub fn load(root: &Root, until: Instant) -> Result<bool, LoadError> {
    let Some(m) = manifest(root)? else {
        return Ok(false);
    };
    for (module, params) in steps(root, &m)? {
        if Instant::now() > until {
            return Err(LoadError::Deadline(module.name.to_string()));
        }
        let path = root.path(&format!("{ADDON_MODULES}/{}", module.file));
        match finit_module(&path, &params, compressed(&module.file)) {
            Err(e) if e.raw_os_error() != Some(nix::libc::EEXIST) => {
                return Err(LoadError::Load {
                    module: module.name.to_string(),
                    file: module.file.to_string(),
                    error: e,
                })
            }
            _ => {}
        }
    }
    Ok(true)
}

/// Whether the kernel must decompress the file (`MODULE_INIT_COMPRESSED_FILE`, Linux 5.17).
pub fn compressed(file: &str) -> bool {
    [".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|s| file.ends_with(s))
}

fn finit_module(path: &Path, params: &str, compressed: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const MODULE_INIT_COMPRESSED_FILE: nix::libc::c_long = 4;
    let file = crate::read::open_ro(path, nix::fcntl::OFlag::empty())?;
    let mut c = params.as_bytes().to_vec();
    c.retain(|&b| b != 0);
    c.push(0);
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    // SAFETY: the descriptor is open for the call's length and `c` is NUL-terminated.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_finit_module,
            file.as_raw_fd() as nix::libc::c_long,
            c.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Manifest {
        let module = |n: &str, f: &str| Module {
            name: n.try_into().unwrap(),
            file: f.try_into().unwrap(),
        };
        Manifest {
            kernel: "6.1.0-50-amd64".try_into().unwrap(),
            modules: [
                module("vfio", "vfio.ko"),
                module("vfio_pci", "vfio-pci.ko.xz"),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn round_trip_and_every_damage_refused() {
        let t = m().render();
        assert_eq!(Manifest::parse(&t), Ok(m()));
        assert_eq!(
            Manifest::parse(&t[..t.len() - 4]).unwrap_err().1,
            "cut short: no end record"
        );
        for (bad, line) in [
            ("vfio-early add-on 2\nend\n", 1),
            ("vfio-early add-on 1\nmodule a a.ko\nend\n", 2),
            (
                "vfio-early add-on 1\nkernel 6.1\nmodule a ../x.ko\nend\n",
                3,
            ),
            ("vfio-early add-on 1\nkernel 6.1\nmodule a\nend\n", 3),
            ("vfio-early add-on 1\nkernel 6.1\nkernel 6.2\nend\n", 3),
            ("vfio-early add-on 1\nkernel 6.1\nend\nmore\nend\n", 3),
            ("vfio-early add-on 1\nkernel 6/1\nend\n", 2),
            (
                "vfio-early add-on 1\nkernel 6.1\nmodule a b c d e\nend\n",
                3,
            ),
        ] {
            assert_eq!(Manifest::parse(bad).map_err(|e| e.0), Err(line), "{bad:?}");
        }
        assert!(compressed("vfio-pci.ko.xz") && !compressed("vfio-pci.ko"));
    }

    #[test]
    fn steps_follow_the_kernel_and_skip_what_is_loaded() {
        let t = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let root = Root::new(t.path());
        assert!(manifest(&root).unwrap().is_none(), "no add-on");
        put(ADDON_MANIFEST, &m().render());
        put("proc/sys/kernel/osrelease", "6.1.0-49-amd64\n");
        let e = steps(&root, &manifest(&root).unwrap().unwrap()).unwrap_err();
        assert!(e
            .to_string()
            .contains("built for kernel 6.1.0-50-amd64, this is 6.1.0-49-amd64"));
        put("proc/sys/kernel/osrelease", "6.1.0-50-amd64\n");
        put("proc/cmdline", "quiet vfio-pci.disable_vga=1\n");
        put("etc/modprobe.d/v.conf", "options vfio disable_unsafe=0\n");
        put("sys/module/vfio/initstate", "live\n");
        let s = steps(&root, &manifest(&root).unwrap().unwrap()).unwrap();
        assert_eq!(s.len(), 1, "vfio is loaded already");
        assert_eq!(
            (s[0].0.name.as_str(), s[0].1.as_str()),
            ("vfio_pci", "disable_vga=1")
        );
        put(ADDON_MANIFEST, "vfio-early add-on 1\nkernel x\n");
        assert!(matches!(
            manifest(&root),
            Err(LoadError::Malformed { line: 3, .. })
        ));
    }
}
