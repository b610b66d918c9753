// SPDX-License-Identifier: MIT OR Apache-2.0
//! The rdinit shim, `/usr/lib/vfio-early/init`: the first program of an initramfs that has no
//! vfio-early hook (booster, hand-made and vendor images), booted with
//! `rdinit=/usr/lib/vfio-early/init`. It mounts what the binder reads, runs the boot build's
//! whole run in a child (a fault in PID 1 panics the kernel; one in a child does not), puts
//! the mounts back as it found them and execs the image's real init with the original
//! arguments and environment. Whatever the binder does (fails, hangs, dies), the real init runs.
//!
//! PID 1 parses nothing that can fail: the binder reads the settings and tells the shim its
//! deadline on a pipe (one line of decimal milliseconds: [`tell_deadline`], [`parse_deadline`]);
//! until told, the shim waits the default deadline. Which init to start is decided by file
//! identity, never by name: a candidate that is the shim's own file is skipped (it would start
//! the shim again, for ever).
//!
//! `inits` and `parse_deadline` are pure; `prepare`, `run_binder`, `restore` and `Identity` are
//! the side effects, under one root.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::libc;

use vfio_early_core::cmdline;
use vfio_early_core::config::DEFAULT_TIMEOUT_MS;
use vfio_early_core::text::Token;
use vfio_early_system::sysfs::Root;
use vfio_early_system::{spawn, unix};

/// The binder, looked for in this order: an image built with the hook, the add-on, the packaged
/// boot build copied in by FILES=, install_items or extra_files.
pub const BINDERS: [&str; 3] = [
    vfio_early_core::layout::HOOK_BINARY,
    vfio_early_core::layout::ADDON_BINARY,
    vfio_early_core::layout::BOOT_BINARY,
];
/// What the kernel itself tries when rdinit= cannot run (init/main.c), `/init` first.
const FALLBACKS: [&str; 5] = ["/init", "/sbin/init", "/etc/init", "/bin/init", "/bin/sh"];
/// Longest init path taken from `vfio-early.init=`.
pub const PATH_MAX: usize = 255;
/// Past the run's own deadline, how long the binder may take to end before it is killed.
pub const GRACE: Duration = Duration::from_secs(2);
/// The deadline until the binder tells its own (the settings' default), and the most it may
/// tell (the settings' maximum): a file never sets how long PID 1 waits.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(DEFAULT_TIMEOUT_MS as u64);
pub const MAX_DEADLINE: Duration =
    Duration::from_secs(vfio_early_core::config::MAX_TIMEOUT_S as u64);
/// Longest deadline line read: ten digits and the newline.
const TOLD_MAX: usize = 11;
/// The binder's descriptor for its deadline, and the environment entry that names it (the
/// variable alone: [`TELL_ENV`]).
pub const TELL_FD: libc::c_int = 3;
pub const TELL_ENV: &std::ffi::CStr = c"VFIO_EARLY_DEADLINE_FD";
const TELL_ENTRY: &std::ffi::CStr = c"VFIO_EARLY_DEADLINE_FD=3";
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
        match std::str::from_utf8(v) {
            Ok(p) if p.starts_with('/') && p.len() <= PATH_MAX => {
                let _ = out.push(p.to_string());
            }
            _ => {
                why = Some(format!(
                    "vfio-early.init=\"{}\" is not an absolute path of at most {PATH_MAX} bytes: ignored",
                    Token::from_bytes(v)
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

/// The deadline a binder told: one line of 1 to 10 ASCII digits (milliseconds) and a newline,
/// capped at [`MAX_DEADLINE`]. `Err` says what was wrong with anything else.
pub fn parse_deadline(told: &[u8]) -> Result<Duration, &'static str> {
    let Some(digits) = told.strip_suffix(b"\n") else {
        return Err("no whole line");
    };
    if digits.is_empty() || digits.len() > TOLD_MAX - 1 || !digits.iter().all(u8::is_ascii_digit) {
        return Err("not decimal milliseconds");
    }
    let ms = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(Duration::from_millis(ms).min(MAX_DEADLINE))
}

/// The binder's side: when the shim started it ([`TELL_ENV`] names descriptor 3 and that
/// is a pipe), tells it the run's deadline and closes the descriptor (nothing the binder starts
/// inherits it). Anything else: nothing done (a variable of that name from the kernel command
/// line must not make us write to a descriptor we do not own).
pub fn tell_deadline(timeout_ms: u32) {
    // libc's getenv and a stack buffer: this runs in every boot build, which stays small.
    if !matches!(unix::getenv(TELL_ENV), Some(v) if v.to_bytes() == b"3") {
        return;
    }
    let fd = TELL_FD;
    let is_fifo =
        nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    if !is_fifo {
        return;
    }
    let mut line = heapless::String::<12>::new();
    let _ = core::fmt::Write::write_fmt(&mut line, format_args!("{timeout_ms}\n"));
    // The descriptor is ours: the shim passed it, and nothing else in this process uses it.
    unix::write_and_close(fd, line.as_bytes());
}

/// A file's identity: device and inode, after following links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    pub fn of(path: &Path) -> Option<Identity> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Identity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// The shim's own file: `/proc/self/exe` while /proc is mounted, else the path the kernel
    /// started it by (`AT_EXECFN`).
    pub fn own(root: &Root) -> Option<Identity> {
        Identity::of(&root.path("proc/self/exe")).or_else(|| {
            let name = unix::exec_fn()?;
            Identity::of(Path::new(std::ffi::OsStr::from_bytes(name.to_bytes())))
        })
    }
}

/// Fills descriptors 0-2 where the kernel opened none (no `/dev/console` in the image) with
/// close-on-exec memfds: what the shim opens later never takes those numbers (the binder's
/// stdio and told descriptor are then never mixed up), and the init still starts with them
/// closed, as the kernel left them.
pub fn fill_stdio() {
    for fd in 0..3 {
        if nix::fcntl::fcntl(fd, nix::fcntl::F_GETFD).is_ok() {
            continue;
        }
        // The lowest free number is `fd` (the lower ones are open): the memfd takes it.
        if let Ok(f) = sink() {
            let _ = f.into_raw_fd();
        }
    }
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
    let _ = std::fs::create_dir(root.path(vfio_early_core::layout::RUN_PARENT));
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
            unix::mount(&ty, &t, flags)
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
        warn!("shim: {p}; the binder may find no devices");
    }
}

/// How the binder's run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    Failed(String),
    Ended(spawn::Status, Duration),
    /// Still running past the deadline and the grace: killed.
    Killed(Duration),
}

/// What the binder told of its deadline.
#[derive(Debug, PartialEq, Eq)]
pub enum Told {
    /// A deadline (capped at [`MAX_DEADLINE`]).
    Deadline(Duration),
    /// Something that is not a deadline line: the default holds.
    Garbage(&'static str),
    /// Nothing before it ended or closed the pipe, or before the default deadline: the default.
    Nothing,
}

impl Told {
    pub fn deadline(&self) -> Duration {
        match self {
            Told::Deadline(d) => *d,
            Told::Garbage(_) | Told::Nothing => DEFAULT_DEADLINE,
        }
    }
}

/// A descriptor for the child's 0, 1 and 2 that needs no `/dev`: an empty memfd (reads see EOF,
/// writes are kept and dropped with it).
fn sink() -> io::Result<OwnedFd> {
    unix::memfd(c"vfio-early-init")
}

/// Reads the binder's deadline line from `rd` until `until`, a whole line, its end or
/// [`TOLD_MAX`] bytes.
fn read_told(rd: &OwnedFd, until: Instant) -> Told {
    let mut buf = [0u8; TOLD_MAX];
    let mut len = 0;
    while len < buf.len() && !buf[..len].contains(&b'\n') {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Told::Nothing;
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        match unix::poll_in(rd.as_fd(), ms) {
            Ok(false) => continue, // the time is looked at again
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break, // anything else would fail again at once: the default holds
            Ok(true) => {}
        }
        match unix::read(rd.as_fd(), &mut buf[len..]) {
            Ok(0) => break, // closed: it ended, or closed the pipe without a word
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if len == 0 {
        return Told::Nothing;
    }
    match parse_deadline(&buf[..len]) {
        Ok(d) => Told::Deadline(d),
        Err(why) => Told::Garbage(why),
    }
}

/// The first binder present under `root`.
pub fn binder(root: &Root) -> Option<PathBuf> {
    BINDERS.iter().map(|p| root.path(p)).find(|p| p.is_file())
}

/// Runs `binder bind`, learns its deadline from it (the default until it tells one) and waits
/// for it up to that deadline plus the grace, then kills it.
pub fn run_binder(binder: &Path) -> (Ran, Told) {
    let start = Instant::now();
    let fds = sink().and_then(|s| unix::pipe().map(|p| (s, p)));
    let (fd, (rd, wr)) = match fds {
        Ok(fds) => fds,
        Err(e) => {
            return (
                Ran::Failed(format!("no descriptors for it: {e}")),
                Told::Nothing,
            )
        }
    };
    let spawned = spawn::spawn(
        binder,
        &["bind"],
        fd.as_fd(),
        fd.as_fd(),
        fd.as_fd(),
        Some(&spawn::Pass {
            fd: wr.as_fd(),
            to: TELL_FD,
            entry: TELL_ENTRY,
        }),
    );
    // Our copy of the write end closed: the read end sees the end when the child's goes.
    drop(wr);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return (Ran::Failed(format!("cannot start it: {e}")), Told::Nothing),
    };
    let told = read_told(&rd, start + DEFAULT_DEADLINE + GRACE);
    let ran = match child.wait_until(start + told.deadline() + GRACE) {
        Ok(Some(status)) => Ran::Ended(status, start.elapsed()),
        Ok(None) => {
            child.kill();
            let _ = child.wait_until(Instant::now() + REAP);
            Ran::Killed(start.elapsed())
        }
        Err(e) => Ran::Failed(format!("waiting for it: {e}")),
    };
    (ran, told)
}

/// Takes down what `prepare` mounted, last first; a busy one (a module load the binder left
/// running, our own log descriptor on /dev) is detached: gone from the tree the init sees,
/// kept only while in use.
pub fn restore(m: &Mounted) {
    for target in m.ours.iter().rev() {
        let Ok(t) = cstr(target) else { continue };
        if unix::umount(&t, 0).is_err() {
            if let Err(e) = unix::umount(&t, libc::MNT_DETACH) {
                error!(
                    "shim: cannot unmount {}: {e}; the init finds it mounted",
                    target.display()
                );
            }
        }
    }
}

/// A deadline as people write it: whole seconds, else milliseconds.
fn span(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

/// One line on how the run went, before the init is started.
/// `binder`: the one found and how its run ended; `None`: the image has none.
pub fn report(binder: Option<(&Path, &Ran, &Told)>, init: &str) {
    let ms = |d: &Duration| d.as_millis();
    let Some((b, ran, told)) = binder else {
        warn!(
            "shim: no binder in this image (looked for /{}); nothing is bound; starting {init}; hint: the add-on carries one (vfio-early addon), or add /usr/lib/vfio-early/vfio-early-boot to the image",
            BINDERS.join(", /")
        );
        return;
    };
    if let Told::Garbage(why) = told {
        warn!(
            "shim: the binder {} told its deadline as something that is {why}: waited the default {}",
            b.display(),
            span(DEFAULT_DEADLINE)
        );
    }
    match ran {
        Ran::Failed(why) => error!(
            "shim: the binder {}: {why}; nothing is bound; starting {init}",
            b.display()
        ),
        Ran::Ended(status, took) if status.success() => info!(
            "shim: the binder {} ended after {} ms; starting {init}",
            b.display(),
            ms(took)
        ),
        Ran::Ended(status, took) => warn!(
            "shim: the binder {} ended with {status} after {} ms (its records say what it did); starting {init}",
            b.display(),
            ms(took)
        ),
        Ran::Killed(took) => error!(
            "shim: the binder {} was still running {} ms after its {} deadline ({}): killed after {} ms; devices it took may stay on vfio-pci or without a driver; starting {init}",
            b.display(),
            GRACE.as_millis(),
            span(told.deadline()),
            match told {
                Told::Deadline(_) => "as it told",
                _ => "the default: it told none; a binder older than the shim tells none, so rebuild the image or the add-on",
            },
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
    fn names_never_decide_what_the_shim_is() {
        // The shim's own path, or one beside it, is a name like any other: `Identity` decides.
        for p in ["/usr/lib/vfio-early/init", "/usr/lib/vfio-early/init.real"] {
            let (v, why) = list(&format!("vfio-early.init={p}"));
            assert_eq!((v[0].as_str(), why), (p, None));
        }
        let t = tempfile::tempdir().unwrap();
        let shim = t.path().join("init");
        std::fs::write(&shim, b"x").unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&shim, t.path().join("link")).unwrap();
        std::fs::hard_link(&shim, t.path().join("hard")).unwrap();
        std::fs::write(t.path().join("other"), b"x").unwrap();
        let own = Identity::of(&shim);
        assert!(own.is_some());
        let same = |rel: &str| Identity::of(&t.path().join(rel)) == own;
        for rel in ["link", "hard", "sub/../init", "sub//../init"] {
            assert!(same(rel), "{rel}");
        }
        assert!(!same("other"));
        assert_eq!(Identity::of(&t.path().join("none")), None);
    }

    #[test]
    fn the_told_deadline_is_one_line_of_milliseconds_capped() {
        let ok = |s: &str| parse_deadline(s.as_bytes());
        assert_eq!(ok("1000\n"), Ok(Duration::from_secs(1)));
        assert_eq!(ok("0\n"), Ok(Duration::ZERO));
        assert_eq!(ok("9999999999\n"), Ok(MAX_DEADLINE));
        assert_eq!(ok("600001\n"), Ok(MAX_DEADLINE));
        for bad in [
            "",
            "\n",
            "1000",
            "10 00\n",
            "-1\n",
            "+1\n",
            "12345678901\n",
            "1e3\n",
            "1000\n\n",
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
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
        std::os::unix::fs::symlink(
            vfio_early_core::layout::SHIM_PATH,
            t.path().join("proc/1/exe"),
        )
        .unwrap();
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

    fn script(dir: &Path, body: &str) -> PathBuf {
        let b = dir.join("binder");
        std::fs::write(&b, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        b
    }

    #[test]
    fn a_binder_that_hangs_is_killed_past_its_told_deadline_and_the_grace() {
        let t = tempfile::tempdir().unwrap();
        let b = script(t.path(), "echo 0 >&3; exec sleep 60");
        match run_binder(&b) {
            (Ran::Killed(took), Told::Deadline(d)) => {
                assert_eq!(d, Duration::ZERO);
                assert!(took >= GRACE && took < DEFAULT_DEADLINE, "{took:?}");
            }
            other => panic!("{other:?}"),
        }
        let b = script(t.path(), "kill -SEGV $$");
        match run_binder(&b) {
            (Ran::Ended(s, _), Told::Nothing) => assert_eq!(s.to_string(), "signal: 11"),
            other => panic!("{other:?}"),
        }
        match run_binder(&t.path().join("none")) {
            (Ran::Failed(why), Told::Nothing) => assert!(why.contains("cannot start it"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_binder_learns_the_descriptor_from_its_environment() {
        let t = tempfile::tempdir().unwrap();
        let b = script(
            t.path(),
            "[ \"$VFIO_EARLY_DEADLINE_FD\" = 3 ] && [ -p /dev/fd/3 ] && echo 'ten\nseconds' >&3",
        );
        match run_binder(&b) {
            (Ran::Ended(s, _), Told::Garbage(_)) => assert!(s.success()),
            other => panic!("{other:?}"),
        }
        // A huge one is capped (the child ends at once: nothing waits for it).
        let b = script(t.path(), "echo 99999999 >&3");
        match run_binder(&b) {
            (Ran::Ended(..), Told::Deadline(d)) => assert_eq!(d, MAX_DEADLINE),
            other => panic!("{other:?}"),
        }
    }
}
