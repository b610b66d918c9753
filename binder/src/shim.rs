// SPDX-License-Identifier: MIT OR Apache-2.0
//! The rdinit shim, `/usr/lib/vfio-early/init`: the first program of an initramfs that has no
//! vfio-early hook (booster, hand-made and vendor images), booted with
//! `rdinit=/usr/lib/vfio-early/init`. It mounts what the binder reads, runs the boot build's
//! whole run in a child (a fault in PID 1 panics the kernel; one in a child does not), puts
//! the mounts back as it found them and execs the image's real init with the original
//! arguments and environment. Whatever the binder does (fails, hangs, dies), the real init runs.
//!
//! `inits` is pure; `prepare`, `run_binder` and `restore` are the side effects, under one root.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::libc;

use crate::cmdline;
use crate::sysfs::Root;
use crate::text::Token;
use crate::wait;

/// Where packages install the shim, and the `rdinit=` that names it.
pub const SHIM_PATH: &str = "/usr/lib/vfio-early/init";
/// The binder, looked for in this order: an image built with the hook, the add-on, the packaged
/// boot build copied in by FILES=, install_items or extra_files.
pub const BINDERS: [&str; 3] = [
    "usr/bin/vfio-early",
    "usr/lib/vfio-early/addon/vfio-early",
    "usr/lib/vfio-early/vfio-early-boot",
];
/// What the kernel itself tries when rdinit= cannot run (init/main.c), `/init` first.
const FALLBACKS: [&str; 5] = ["/init", "/sbin/init", "/etc/init", "/bin/init", "/bin/sh"];
/// Longest init path taken from `vfio-early.init=`.
pub const PATH_MAX: usize = 255;
/// Past the run's own deadline, how long the binder may take to end before it is killed.
pub const GRACE: Duration = Duration::from_secs(2);
/// After a kill, how long to wait to reap it (a child in an uninterruptible sysfs write ends
/// only when the write returns; the real init reaps it then).
const REAP: Duration = Duration::from_millis(500);

/// The inits to try in order: `vfio-early.init=` (the last one on the command line, as the
/// kernel's own parameters) when it is an absolute path, then the kernel's list. The second
/// value says why a `vfio-early.init=` was ignored.
pub fn inits(line: &[u8]) -> (heapless::Vec<String, 6>, Option<String>) {
    let mut named = None;
    for a in cmdline::args(line) {
        if cmdline::param_eq(a.param, b"vfio-early.init") {
            named = Some(a.value.unwrap_or(b""));
        }
    }
    let mut why = None;
    let mut out = heapless::Vec::new();
    if let Some(v) = named {
        let token = Token::from_bytes(v);
        match std::str::from_utf8(v) {
            Ok(p) if p.starts_with('/') && p.len() <= PATH_MAX && !p.starts_with(SHIM_PATH) => {
                let _ = out.push(p.to_string());
            }
            Ok(p) if p.starts_with(SHIM_PATH) => {
                why = Some(format!(
                    "vfio-early.init=\"{token}\" names the shim itself: ignored"
                ));
            }
            _ => {
                why = Some(format!(
                    "vfio-early.init=\"{token}\" is not an absolute path of at most {PATH_MAX} bytes: ignored"
                ));
            }
        }
    }
    for f in FALLBACKS {
        if !out.iter().any(|p| p == f) {
            let _ = out.push(f.to_string());
        }
    }
    (out, why)
}

/// The filesystems the binder reads, mounted only where nothing is yet (an initramfs starts
/// with none; `/dev` is not auto-mounted there).
const MOUNTS: [(&str, &str, libc::c_ulong); 3] = [
    ("devtmpfs", "dev", libc::MS_NOSUID),
    (
        "proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    ),
    (
        "sysfs",
        "sys",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    ),
];

/// What `prepare` mounted (to take down again) and what went wrong, said once logging works.
#[derive(Default)]
pub struct Mounted {
    ours: heapless::Vec<PathBuf, 3>,
    problems: heapless::Vec<String, 3>,
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A mount point holds a mount when it is on another device than the root.
fn is_mounted(root: &Path, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(root), std::fs::metadata(dir)) {
        (Ok(r), Ok(d)) => r.dev() != d.dev(),
        _ => false,
    }
}

/// Mounts devtmpfs, proc and sysfs under `root` where nothing is mounted yet.
pub fn prepare(root: &Root) -> Mounted {
    let mut m = Mounted::default();
    let top = root.path("");
    // The binder's state directory goes under /run; every init mounts its own there later.
    let _ = std::fs::create_dir(root.path("run"));
    for (fstype, dir, flags) in MOUNTS {
        let target = root.path(dir);
        if is_mounted(&top, &target) {
            continue;
        }
        // The directory may be missing from a hand-made image: made here, left for the init.
        let _ = std::fs::create_dir(&target);
        let done = cstr(&target).and_then(|t| {
            let ty =
                CString::new(fstype).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: every pointer is a NUL-terminated string that outlives the call; data is
            // null (no options).
            check(unsafe {
                libc::mount(
                    ty.as_ptr(),
                    t.as_ptr(),
                    ty.as_ptr(),
                    flags,
                    std::ptr::null(),
                )
            })
        });
        match done {
            Ok(()) => {
                let _ = m.ours.push(target);
            }
            Err(e) => {
                let _ = m.problems.push(format!("mounting {fstype} on /{dir}: {e}"));
            }
        }
    }
    m
}

/// Says what `prepare` could not mount (the logger now works, or falls back to nothing).
pub fn report_mounts(m: &Mounted) {
    for p in &m.problems {
        warn!("init: {p}; the binder may find no devices");
    }
}

/// How the binder's run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    Failed(String),
    Ended(wait::Status, Duration),
    /// Still running past the deadline and the grace: killed.
    Killed(Duration),
}

/// A descriptor for the child's 0, 1 and 2 that needs no `/dev`: an empty memfd (reads see EOF,
/// writes are kept and dropped with it).
fn sink() -> io::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated literal; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"vfio-early-init".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The first binder present under `root`.
pub fn binder(root: &Root) -> Option<PathBuf> {
    BINDERS.iter().map(|p| root.path(p)).find(|p| p.is_file())
}

/// Runs `binder bind` and waits for it up to `deadline` plus the grace, then kills it.
pub fn run_binder(binder: &Path, deadline: Duration) -> Ran {
    let start = Instant::now();
    let fd = match sink() {
        Ok(fd) => fd,
        Err(e) => return Ran::Failed(format!("no descriptor for its output: {e}")),
    };
    let mut child = match wait::spawn(binder, "bind", fd.as_fd(), fd.as_fd(), fd.as_fd()) {
        Ok(c) => c,
        Err(e) => return Ran::Failed(format!("cannot start it: {e}")),
    };
    match child.wait_until(start + deadline + GRACE) {
        Ok(Some(status)) => Ran::Ended(status, start.elapsed()),
        Ok(None) => {
            child.kill();
            let _ = child.wait_until(Instant::now() + REAP);
            Ran::Killed(start.elapsed())
        }
        Err(e) => Ran::Failed(format!("waiting for it: {e}")),
    }
}

/// Takes down what `prepare` mounted, last first; a busy one (a module load the binder left
/// running, our own log descriptor on /dev) is detached: gone from the tree the init sees,
/// kept only while in use.
pub fn restore(m: &Mounted) {
    for target in m.ours.iter().rev() {
        let Ok(t) = cstr(target) else { continue };
        // SAFETY: a NUL-terminated path that outlives the calls.
        let plain = check(unsafe { libc::umount2(t.as_ptr(), 0) });
        if plain.is_err() {
            // SAFETY: as above.
            if let Err(e) = check(unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) }) {
                error!(
                    "init: cannot unmount {}: {e}; the init finds it mounted",
                    target.display()
                );
            }
        }
    }
}

/// One line on how the run went, before the init is started.
/// `binder`: the one found and how its run ended; `None`: the image has none.
pub fn report(binder: Option<(&Path, &Ran)>, deadline: Duration, init: &str) {
    let ms = |d: &Duration| d.as_millis();
    match binder {
        None => warn!(
            "init: no binder in this image (looked for /{}); nothing is bound; starting {init}; hint: the add-on carries one (vfio-early addon), or add /usr/lib/vfio-early/vfio-early-boot to the image",
            BINDERS.join(", /")
        ),
        Some((b, Ran::Failed(why))) => error!(
            "init: the binder {}: {why}; nothing is bound; starting {init}",
            b.display()
        ),
        Some((b, Ran::Ended(status, took))) if status.success() => info!(
            "init: the binder {} ended after {} ms; starting {init}",
            b.display(),
            ms(took)
        ),
        Some((b, Ran::Ended(status, took))) => warn!(
            "init: the binder {} ended with {status} after {} ms (its records say what it did); starting {init}",
            b.display(),
            ms(took)
        ),
        Some((b, Ran::Killed(took))) => error!(
            "init: the binder {} was still running {} ms after its {} s deadline: killed after {} ms; devices it took may stay on vfio-pci or without a driver; starting {init}",
            b.display(),
            GRACE.as_millis(),
            deadline.as_secs(),
            ms(took)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(line: &str) -> (Vec<String>, Option<String>) {
        let (v, why) = inits(line.as_bytes());
        (v.into_iter().collect(), why)
    }

    #[test]
    fn the_named_init_comes_first_then_the_kernels_list() {
        let (v, why) =
            list("root=/dev/vda rdinit=/usr/lib/vfio-early/init vfio-early.init=/sbin/myinit");
        assert_eq!(
            v,
            [
                "/sbin/myinit",
                "/init",
                "/sbin/init",
                "/etc/init",
                "/bin/init",
                "/bin/sh"
            ]
        );
        assert_eq!(why, None);
        let (v, _) = list("quiet");
        assert_eq!(v, FALLBACKS);
        // The last one wins; "/init" named is not tried twice; the kernel's dash rule holds.
        let (v, _) = list("vfio-early.init=/a vfio_early.init=/init");
        assert_eq!(v, FALLBACKS);
        // After "--" the words are init's, not the kernel's.
        let (v, _) = list("-- vfio-early.init=/a");
        assert_eq!(v, FALLBACKS);
    }

    #[test]
    fn a_bad_init_is_ignored_and_named() {
        for (arg, token) in [
            ("vfio-early.init=", ""),
            ("vfio-early.init", ""),
            ("vfio-early.init=init", "init"),
            ("vfio-early.init=../../x", "../../x"),
            (
                "vfio-early.init=/usr/lib/vfio-early/init",
                "/usr/lib/vfio-early/init",
            ),
        ] {
            let (v, why) = list(arg);
            assert_eq!(v, FALLBACKS, "{arg}");
            let why = why.unwrap_or_default();
            assert!(why.contains(&format!("\"{token}\"")), "{arg}: {why}");
        }
        let long = format!("vfio-early.init=/{}", "x".repeat(PATH_MAX));
        assert!(list(&long).1.unwrap().contains("at most 255 bytes"));
    }

    #[test]
    fn pid_1_being_the_shim_counts_as_an_initramfs() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        std::fs::create_dir_all(t.path().join("proc/1")).unwrap();
        assert!(!root.in_initrd());
        std::os::unix::fs::symlink("/sbin/init", t.path().join("proc/1/exe")).unwrap();
        assert!(!root.in_initrd(), "a running system's PID 1");
        std::fs::remove_file(t.path().join("proc/1/exe")).unwrap();
        std::os::unix::fs::symlink(SHIM_PATH, t.path().join("proc/1/exe")).unwrap();
        assert!(root.in_initrd());
    }

    #[test]
    fn the_binder_is_looked_for_in_order() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert_eq!(binder(&root), None);
        for p in BINDERS.iter().rev() {
            let path = t.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
            assert_eq!(binder(&root), Some(path));
        }
    }

    #[test]
    fn a_binder_that_hangs_is_killed_past_the_grace() {
        let t = tempfile::tempdir().unwrap();
        let b = t.path().join("binder");
        std::fs::write(&b, "#!/bin/sh\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        match run_binder(&b, Duration::ZERO) {
            Ran::Killed(took) => assert!(took >= GRACE, "{took:?}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&b, "#!/bin/sh\nkill -SEGV $$\n").unwrap();
        match run_binder(&b, Duration::from_secs(20)) {
            Ran::Ended(s, _) => assert_eq!(s.to_string(), "signal: 11"),
            other => panic!("{other:?}"),
        }
        match run_binder(&t.path().join("none"), Duration::from_secs(1)) {
            Ran::Failed(why) => assert!(why.contains("cannot start it"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
