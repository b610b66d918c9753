// SPDX-License-Identifier: MIT OR Apache-2.0
//! A split boot run, every part of it: the fence's handover, the rest (`finish`), the settle,
//! and the shell inits' `wait`. The state file is a report, never the protocol; the
//! [handoff](vfio_early_core::handoff) is the one record of the work left, and the lock on
//! `/run/vfio-early` says whether a rest is still at it.
//!
//! - `fence`, before udev: every override written, then the handoff. A shell init's fence
//!   starts `vfio-early finish` itself and hands it the lock (so nothing can take it between
//!   the two); a systemd initrd's (`fence --unit`) leaves the rest to vfio-early-finish.service.
//!   A handoff that cannot be written, or a rest that cannot be started: the rest runs in the
//!   fence's own process, before udev, as `vfio-early.sync` asks.
//! - `finish`, beside udev, under the lock: loads vfio-pci, checks every bind, gives back what
//!   vfio-pci did not take, reports, then renames the handoff `handoff.done`. It refuses only
//!   when the settings the plan depends on changed since the fence, and then settles at once.
//! - `settle`, under the lock, whatever became of the rest (done, refused, killed, stopped at
//!   its deadline): every fenced device not on vfio-pci is given back (`on-fail=release`) or
//!   kept fenced on purpose (`on-fail=fence`), and the final driver of each is logged. systemd
//!   runs it as the finish unit's `ExecStopPost=`; the shell inits through `wait`.
//! - `wait`, shell inits, before the switch to the real root: waits for the lock until the
//!   run's deadline, stops a rest that holds it past that, then settles.
//!
//! Every wait here is bounded by the program: the handoff's deadline, never more than the
//! settings' maximum (`timeout = 600`) plus [`GRACE`] from now, whatever the file says.

use core::fmt::Write as _;
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use log::{error, log, warn, Level};
use nix::libc;

use crate::apply::{self, Kernel, RealKernel};
use crate::options::{ctx, Options, Run, EXIT_OK, EXIT_REFUSED};
use crate::sources::Sources;
use crate::summary::tell;
use vfio_early_core::config::{OnFail, Settings};
use vfio_early_core::device::MAX_DEVICES;
use vfio_early_core::handoff::{self, Handoff};
use vfio_early_core::layout::{FINISH_PID_NAME, HANDOFF_DONE_NAME, STATE_NAME};
use vfio_early_core::outcome::{Deadline, Failure, Left, Outcome, Outcomes, Via};
use vfio_early_core::pci::Bdf;
use vfio_early_core::plan::{self, Decision, Plan, VFIO};
use vfio_early_system::files::{Dir, Replace};
use vfio_early_system::kmsg::{self, Phase, SUMMARY};
use vfio_early_system::sysfs::Root;

/// Past the run's deadline: how long the rest may take to end, and the settle to get the lock.
pub const GRACE: Duration = Duration::from_secs(2);
/// The settle's own writes (two or three per device) get this long.
const SETTLE_TIME: Duration = Duration::from_secs(2);
/// The lock a fence hands to the `finish` it starts: its descriptor, and the environment entry
/// that says so.
const LOCK_FD: libc::c_int = 3;
const LOCK_ENV: &str = "VFIO_EARLY_LOCK_FD";
const LOCK_ENTRY: &CStr = c"VFIO_EARLY_LOCK_FD=3";
/// How often a waiter looks at the lock.
const POLL: Duration = Duration::from_millis(10);

/// Writes the handoff; false (logged) when it could not be.
fn write_handoff(p: &Pending<'_>) -> bool {
    let written = match p.handoff() {
        Some(text) => p.dir.write(
            vfio_early_core::layout::HANDOFF_NAME,
            text.as_bytes(),
            Replace::Yes,
        ),
        None => {
            warn!("the run's state has a name the handoff cannot carry: loading vfio-pci now, before udev");
            return false;
        }
    };
    if let Err(e) = written {
        warn!("{e}: loading vfio-pci now, before udev");
        return false;
    }
    true
}

/// The fence's handover: the handoff, then (shell inits) the rest started with the lock; if
/// either fails, the rest now, in this process.
pub fn hand_off(p: &Pending<'_>, root: &Root, unit: bool) -> Rest {
    if !write_handoff(p) {
        return Rest::Here;
    }
    if unit {
        return Rest::Elsewhere;
    }
    match start_finish(p.dir, root) {
        Ok(pid) => {
            if let Err(e) =
                p.dir
                    .write(FINISH_PID_NAME, format!("{pid}\n").as_bytes(), Replace::Yes)
            {
                warn!("{e}: the rest of the run (pid {pid}) can be waited for, not stopped, at the switch to the real root");
            }
            Rest::Elsewhere
        }
        Err(e) => {
            warn!("cannot start `vfio-early finish`: {e}: loading vfio-pci now, before udev");
            // No handoff left behind: this process does the rest and reports it.
            let _ = p.dir.remove(vfio_early_core::layout::HANDOFF_NAME);
            Rest::Here
        }
    }
}

/// Starts `vfio-early finish` (this very program) with the run's lock as its descriptor 3.
fn start_finish(dir: &Dir, root: &Root) -> Result<u32, String> {
    let lock = match dir.try_lock() {
        Ok(Some(fd)) => fd,
        Ok(None) => return Err("another process holds /run/vfio-early".into()),
        Err(e) => return Err(e.to_string()),
    };
    let null = vfio_early_system::read::open_file(
        std::path::Path::new("/dev/null"),
        nix::fcntl::OFlag::O_RDWR,
        0,
    )
    .map_err(|e| format!("/dev/null: {e}"))?;
    let base = root.path("");
    let base = base.to_str().unwrap_or("/");
    let mut args = vec!["finish"];
    if base != "/" {
        args.extend(["--root", base]);
    }
    let pass = vfio_early_system::spawn::Pass {
        fd: lock.as_fd(),
        to: LOCK_FD,
        entry: LOCK_ENTRY,
    };
    let exe = std::path::Path::new("/proc/self/exe");
    let child = vfio_early_system::spawn::spawn(
        exe,
        &args,
        null.as_fd(),
        null.as_fd(),
        null.as_fd(),
        Some(&pass),
    )
    .map_err(|e| e.to_string())?;
    // Not waited for: the init reaps it once this process is gone.
    Ok(child.id())
}

/// The lock, if this process was handed it (a fence started it): descriptor 3 names the same
/// directory and the lock is already its own. Marked close-on-exec, so modprobe never holds it.
fn adopt_lock(dir: &Dir) -> Option<OwnedFd> {
    if !matches!(std::env::var_os(LOCK_ENV), Some(v) if v == "3") {
        return None;
    }
    vfio_early_system::unix::adopt_lock(LOCK_FD, |fd| dir.is_same(fd))
}

/// Takes the lock, looking every [`POLL`] until `until_ns` (CLOCK_MONOTONIC).
fn lock_until(dir: &Dir, until_ns: u64) -> Option<OwnedFd> {
    loop {
        match dir.try_lock() {
            Ok(Some(fd)) => return Some(fd),
            Ok(None) => {}
            Err(e) => {
                error!("{e}: cannot lock it");
                return None;
            }
        }
        let left = until_ns.saturating_sub(now_ns());
        if left == 0 {
            return None;
        }
        std::thread::sleep(POLL.min(Duration::from_nanos(left)));
    }
}

/// When a wait on a run with this handoff ends: its deadline plus [`GRACE`], never later than
/// the settings' maximum plus [`GRACE`] from now.
fn until_ns(h: Option<&Handoff>) -> u64 {
    let grace = ns(GRACE);
    let cap = now_ns()
        .saturating_add(u64::from(vfio_early_core::config::MAX_TIMEOUT_S) * 1_000_000_000)
        .saturating_add(grace);
    h.map_or(cap, |h| h.deadline_ns.saturating_add(grace).min(cap))
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `instant` on CLOCK_MONOTONIC in nanoseconds (what `Instant` measures on Linux), readable by
/// another process.
pub fn monotonic_ns(instant: Instant) -> u64 {
    let now = Instant::now();
    let mono = now_ns();
    match instant.checked_duration_since(now) {
        Some(ahead) => mono.saturating_add(ns(ahead)),
        None => mono.saturating_sub(ns(now.duration_since(instant))),
    }
}

pub fn now_ns() -> u64 {
    vfio_early_system::unix::monotonic_ns()
}

/// The handoff as this boot left it: `(read, done)`, `None` when there is none (no split run
/// in this boot). `done`: the rest reported (or a settle stood in for it).
fn read_handoff(dir: &Dir) -> Option<(Result<Handoff, String>, bool)> {
    let parse = |name: &str| match dir.read(name, handoff::CAP) {
        Ok(None) => None,
        Ok(Some(i)) if !i.cut => Some(handoff::parse(&i.text())),
        Ok(Some(_)) => Some(Err(format!("longer than {} bytes", handoff::CAP))),
        Err(e) => Some(Err(e.to_string())),
    };
    if let Some(h) = parse(vfio_early_core::layout::HANDOFF_NAME) {
        return Some((h, false));
    }
    parse(HANDOFF_DONE_NAME).map(|h| (h, true))
}

/// The run's directory, for the commands that act on what a fence left (`None`: no run split
/// in this boot).
fn run_dir(root: &Root) -> Option<Dir> {
    Dir::open(
        &root.path(vfio_early_core::layout::RUN_PARENT),
        vfio_early_core::layout::RUN_NAME,
        false,
    )
    .map(Dir::volatile)
    .ok()
}

/// The handoff as read, and whether the rest reported.
type Read = (Result<Handoff, String>, bool);

/// Where the commands after the fence start: the kernel log (records named `phase`), then this
/// boot's run directory and its handoff. `Err` is the exit code when there is nothing to act
/// on: not inside an initramfs (said, with `why` it refuses), or no split run in this boot.
fn begin(root: &Root, phase: Phase, why: &str) -> Result<(Dir, Read), i32> {
    kmsg::set_phase(phase);
    if !vfio_early_system::kmsg::boot_start(root, why) {
        return Err(EXIT_REFUSED);
    }
    let dir = run_dir(root).ok_or(EXIT_OK)?;
    let read = read_handoff(&dir).ok_or(EXIT_OK)?;
    Ok((dir, read))
}

/// `vfio-early finish`: the rest of a run the fence handed off. Never inlined: its frame (the
/// handoff, a plan) must not sit in the frame of every command.
#[inline(never)]
pub fn finish(opts: &Options) -> i32 {
    let mut kernel = RealKernel::new(&Root::new(&opts.root));
    finish_with(opts, &mut kernel)
}

/// `finish` with the given kernel interface. Exits 0 inside an initramfs whatever it finds.
pub fn finish_with<K: Kernel>(opts: &Options, kernel: &mut K) -> i32 {
    let root = Root::new(&opts.root);
    let (dir, read) = match begin(
        &root,
        Phase::Finish,
        "finish acts only in the boot that fenced",
    ) {
        // Done already.
        Ok((_, (_, true))) => return EXIT_OK,
        Ok((dir, (read, false))) => (dir, read),
        Err(code) => return code,
    };
    let until = until_ns(read.as_ref().ok());
    let Some(_lock) = adopt_lock(&dir).or_else(|| lock_until(&dir, until)) else {
        error!("another `vfio-early finish` holds /run/vfio-early past the run's deadline: this one does nothing");
        return EXIT_OK;
    };
    // Another finish may have done it while this one waited for the lock.
    let Some((read, false)) = read_handoff(&dir) else {
        return EXIT_OK;
    };
    let mut h = match read {
        Ok(h) => h,
        Err(e) => return refuse(&root, &dir, kernel, Err(e)),
    };
    let input = crate::sources::read(&root, None);
    if input.digest != h.inputs {
        let why = "the vfio-early settings changed since the fence (a device entry, off, group, on-fail or dry-run; see the records above)";
        for p in &input.problems.kept {
            error!("{p}");
        }
        return refuse(&root, &dir, kernel, Ok((h, why)));
    }
    let plan = plan::plan(&input.settings, &h.inv);
    let fits = h.fit(plan.items.len())
        && h.fenced
            .items
            .iter()
            .all(|&n| matches!(plan.items[n].decision, Decision::Bind { .. }));
    if !fits {
        return refuse(
            &root,
            &dir,
            kernel,
            Ok((h, "its items do not match the fence's plan")),
        );
    }
    // The fence's start, on this process's clock: the same deadline.
    let ago = now_ns().saturating_sub(h.start_ns);
    let start = Instant::now()
        .checked_sub(Duration::from_nanos(ago))
        .unwrap_or_else(Instant::now);
    let fenced = &mut h.fenced;
    crate::split::finish_rest(opts, kernel, start, &dir, &input, &plan, fenced);
    mark_done(&dir);
    EXIT_OK
}

/// The rest cannot go on: said, with what the handoff names, then settled at once (nothing
/// else will load vfio-pci for these devices in this boot).
fn refuse<K: Kernel>(
    root: &Root,
    dir: &Dir,
    kernel: &mut K,
    read: Result<(Handoff, &str), String>,
) -> i32 {
    let (h, why) = match read {
        Ok((h, why)) => (Ok(h), why.to_string()),
        Err(e) => (Err(e.clone()), e),
    };
    error!(
        "/run/vfio-early/{}: {why}: the rest of this boot's run does not go on; the settle below says where each fenced device ends",
        vfio_early_core::layout::HANDOFF_NAME
    );
    kmsg::set_phase(Phase::Settle);
    settle_locked(root, dir, kernel, h, false);
    EXIT_OK
}

/// The handoff, renamed: the rest reported.
fn mark_done(dir: &Dir) {
    if let Err(e) = dir.rename(vfio_early_core::layout::HANDOFF_NAME, HANDOFF_DONE_NAME) {
        warn!("{e}: the settle will take this run for one that did not report");
    }
}

/// `vfio-early settle`: what systemd runs after the finish unit, whatever its result
/// (`ExecStopPost=`, also when the unit is stopped at the switch to the real root: idempotent).
#[inline(never)]
pub fn settle(opts: &Options) -> i32 {
    let mut kernel = RealKernel::new(&Root::new(&opts.root));
    settle_with(opts, &mut kernel)
}

/// `settle` with the given kernel interface.
pub fn settle_with<K: Kernel>(opts: &Options, kernel: &mut K) -> i32 {
    let root = Root::new(&opts.root);
    let (dir, (read, done)) = match begin(
        &root,
        Phase::Settle,
        "settle acts only in the boot that fenced",
    ) {
        Ok(begun) => begun,
        Err(code) => return code,
    };
    // The rest has ended (this runs after it): the lock is free but for a second finish.
    let Some(_lock) = lock_until(&dir, now_ns().saturating_add(ns(GRACE))) else {
        error!("a `vfio-early finish` still holds /run/vfio-early: the fenced devices ({}) are left to it", listed(read.as_ref().ok()));
        return EXIT_OK;
    };
    // Read again under the lock: a second finish may have reported meanwhile.
    let (read, done) = read_handoff(&dir).unwrap_or((read, done));
    if !done {
        // systemd says how the unit ended (v232+).
        let var = |k: &str| std::env::var_os(k).unwrap_or_default();
        let result = var("SERVICE_RESULT");
        if !result.is_empty() && result != "success" {
            let status = var("EXIT_STATUS");
            error!(
                "the finish unit ended without reporting (systemd: {}, {})",
                vfio_early_core::text::Token::from_bytes(result.as_encoded_bytes()),
                vfio_early_core::text::Token::from_bytes(status.as_encoded_bytes())
            );
        }
    }
    settle_locked(&root, &dir, kernel, read, done);
    EXIT_OK
}

/// `vfio-early wait`: shell inits, before the switch to the real root. Waits for the rest up to
/// the run's deadline, stops it past that, then settles. Exits 0 inside an initramfs, whatever
/// it finds.
#[inline(never)]
pub fn wait(root: &Root) -> i32 {
    let why = "wait acts only before the switch to the real root";
    let (dir, (read, done)) = match begin(root, Phase::Settle, why) {
        Ok(begun) => begun,
        Err(code) => return code,
    };
    let h = read.as_ref().ok();
    let mut lock = lock_until(&dir, until_ns(h));
    if lock.is_none() {
        let stopped = stop_rest(&dir);
        lock = lock_until(&dir, now_ns().saturating_add(ns(GRACE)));
        if lock.is_none() {
            error!(
                "the rest of this boot's run had not ended by its deadline and {}: the fenced devices ({}) are left as they are; hint: vfio-early.sync does it all before udev",
                if stopped { "did not end when killed (a write blocked in the kernel)" } else { "could not be stopped" },
                listed(h)
            );
            return EXIT_OK;
        }
        error!("the rest of this boot's run (loading vfio-pci, checking the binds) had not reported by its deadline: stopped before the switch to the real root; hint: vfio-early.sync does it all before udev");
    }
    // Read again under the lock: the rest may have reported while this waited.
    let (read, done) = read_handoff(&dir).unwrap_or((read, done));
    let mut kernel = RealKernel::new(root);
    settle_locked(root, &dir, &mut kernel, read, done);
    EXIT_OK
}

fn listed(h: Option<&Handoff>) -> String {
    h.map_or_else(
        || "not known: the handoff does not read".into(),
        Handoff::fenced_list,
    )
}

/// SIGKILL to the rest the fence started (its pid recorded, and still this program); true if
/// sent.
fn stop_rest(dir: &Dir) -> bool {
    let pid = dir
        .read(FINISH_PID_NAME, 32)
        .ok()
        .flatten()
        .filter(|i| !i.cut)
        .and_then(|i| i.text().trim().parse::<u32>().ok())
        .filter(|&p| p > 1);
    let Some(fd) = pid
        .filter(|&p| ours(p))
        .and_then(vfio_early_system::spawn::pidfd_open)
    else {
        return false;
    };
    vfio_early_system::spawn::pidfd_kill(&fd)
}

/// The process is this program (the fence's child), not an unrelated one that reused its pid.
/// The kernel's own /proc, never under the root: the pid is a real process's.
fn ours(pid: u32) -> bool {
    let exe = |p: &str| std::fs::read_link(format!("/proc/{p}/exe")).ok();
    matches!((exe(&pid.to_string()), exe("self")), (Some(a), Some(b)) if a == b)
}

/// Where one fenced device ends.
enum Fate {
    OnVfio,
    /// Given back before the settle (the rest released it).
    GivenBack,
    /// Not on vfio-pci, still fenced: what the settle did.
    Settled(Left),
}

/// The settle, under the lock: every device the handoff names as fenced ends on vfio-pci,
/// given back, or fenced on purpose (`on-fail=fence`), each named with its final driver. Run
/// twice, the second changes nothing. `done`: the rest reported; when it did not (or the settle
/// changed something), the state file is written anew, whole, from the handoff and the kernel.
fn settle_locked<K: Kernel>(
    root: &Root,
    dir: &Dir,
    kernel: &mut K,
    read: Result<Handoff, String>,
    done: bool,
) {
    let mut h = match read {
        Ok(h) => h,
        Err(e) => return unknown_fenced(root, &e),
    };
    let on_fail = h.on_fail();
    // A budget of its own: the run's deadline has passed when a settle stands in for the rest.
    let start = kernel.now();
    let mut ctx = apply::Ctx {
        root,
        kernel,
        deadline: Deadline {
            start,
            limit: SETTLE_TIME,
        },
        on_fail,
        log_dir: None,
    };
    let mut fates: heapless::Vec<(Bdf, Fate), MAX_DEVICES> = heapless::Vec::new();
    for &bdf in &h.fenced_bdfs {
        let now = root.driver_of(&bdf);
        let fate = if now.as_deref() == Some(VFIO) {
            Fate::OnVfio
        } else if !fenced_now(root, &bdf) {
            Fate::GivenBack
        } else if on_fail == OnFail::Fence {
            Fate::Settled(Left::Fenced)
        } else {
            Fate::Settled(apply::release(&mut ctx, &bdf, false))
        };
        // As many as the handoff holds.
        let _ = fates.push((bdf, fate));
    }
    let changed = fates.iter().any(|(_, f)| {
        matches!(
            f,
            Fate::Settled(
                Left::Released | Left::ReleasedUnprobed(_) | Left::Stuck(_) | Left::Deadline
            )
        )
    });
    if !done {
        error!(
            "the rest of this boot's run did not report: settling the {} device{} the fence took ({}, on-fail={})",
            fates.len(),
            if fates.len() == 1 { "" } else { "s" },
            h.fenced_list(),
            if on_fail == OnFail::Fence { "fence" } else { "release" }
        );
    }
    let mut line = String::new();
    let mut all_vfio = true;
    for (bdf, fate) in &fates {
        let now = root.driver_of(bdf);
        let now_text = Now(now.as_deref());
        if let Fate::Settled(left) = fate {
            warn!("{bdf}: not on vfio-pci at the settle: {left}; now {now_text}");
        }
        all_vfio &= matches!(fate, Fate::OnVfio);
        let sep = if line.is_empty() { "" } else { ", " };
        let _ = write!(line, "{sep}{bdf} {now_text}");
    }
    let level = if all_vfio { Level::Info } else { Level::Warn };
    log!(target: SUMMARY, level, "fenced devices at the end of the run: {line}");
    if !done || changed {
        write_settled(root, dir, &mut h, &fates);
    }
    if !done {
        if let Err(e) = dir.rename(vfio_early_core::layout::HANDOFF_NAME, HANDOFF_DONE_NAME) {
            warn!("{e}: a second settle will say this again");
        }
    }
}

/// A driver as the settle's records say it: `on NAME` or `no driver`.
struct Now<'a>(Option<&'a str>);

impl core::fmt::Display for Now<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(d) => write!(f, "on {d}"),
            None => f.write_str("no driver"),
        }
    }
}

/// Whether the device's override still names vfio-pci.
fn fenced_now(root: &Root, bdf: &Bdf) -> bool {
    vfio_early_system::sysfs::read_attr::<64>(&root.attr(bdf, "driver_override"))
        .ok()
        .flatten()
        .is_some_and(|o| o.trim() == VFIO)
}

/// The state file after a settle, whole: the fence's plan (from the handoff's settings and
/// view of the bus), its outcomes, and each fenced device as the settle left it.
fn write_settled(root: &Root, dir: &Dir, h: &mut Handoff, fates: &[(Bdf, Fate)]) {
    let Some(settings) = h.settings.take() else {
        return;
    };
    let plan = plan::plan(&settings, &h.inv);
    if !h.fit(plan.items.len()) {
        return;
    }
    let mut out = h.fenced.out.clone();
    for &n in &h.fenced.items {
        let bdf = plan.items[n].bdf;
        let now = root.driver_of(&bdf);
        out[n] = match fates.iter().find(|(b, _)| *b == bdf).map(|(_, f)| f) {
            Some(Fate::OnVfio) | None if now.as_deref() == Some(VFIO) => Outcome::Bound {
                via: Via::Unreported,
                unbound_from: None,
            },
            Some(Fate::Settled(left)) => Outcome::Failed {
                reason: Failure::Unfinished,
                left: left.clone(),
                now,
            },
            _ => Outcome::Failed {
                reason: Failure::Unfinished,
                left: Left::Released,
                now,
            },
        };
    }
    let doc = crate::summary::state_document(
        root,
        &settings,
        &plan,
        &out,
        crate::summary::Stage::Settled,
    );
    if let Err(e) = dir.write(STATE_NAME, doc.as_bytes(), Replace::Yes) {
        warn!("state file not written: {e}");
    }
}

/// No handoff to go by: name every device fenced with no driver now (left as it is: which of
/// them this run took is not known).
fn unknown_fenced(root: &Root, why: &str) {
    // sysfs lists the devices in bus order.
    let mut names = String::new();
    if let Ok(list) = std::fs::read_dir(root.path(vfio_early_core::layout::PCI_DEVICES)) {
        for e in list.flatten().take(1024) {
            let Some(bdf) = e.file_name().to_str().and_then(Bdf::parse) else {
                continue;
            };
            if fenced_now(root, &bdf) && root.driver_of(&bdf).is_none() {
                let sep = if names.is_empty() { "" } else { ", " };
                let _ = write!(names, "{sep}{bdf}");
            }
        }
    }
    if names.is_empty() {
        names.push_str("none");
    }
    log!(
        target: SUMMARY,
        Level::Error,
        "/run/vfio-early/{}: {why}: which devices the fence took is not known; fenced with no driver now: {names} (left so; hint: `echo > /sys/bus/pci/devices/BDF/driver_override` and `echo BDF > /sys/bus/pci/drivers_probe` give one back)",
        vfio_early_core::layout::HANDOFF_NAME
    );
}

/// Where the rest of a split run goes on after the fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rest {
    /// In this process (a test, or a handoff that could not be written).
    Here,
    /// Elsewhere (the finish the fence started, or the finish unit): this process is done and
    /// the boot goes on.
    Elsewhere,
}

/// What the fence hands over of its run (rendered as the handoff).
pub struct Pending<'a> {
    /// The run's directory (`/run/vfio-early`).
    pub dir: &'a Dir,
    pub deadline: Deadline,
    /// The addresses fenced, in plan order.
    pub fenced: &'a [vfio_early_core::pci::Bdf],
    /// [`Sources::digest`] of the sources the fence read.
    pub digest: u64,
    pub settings: &'a Settings,
    pub inv: &'a vfio_early_core::device::Inventory,
    pub state: &'a vfio_early_core::outcome::Fenced,
}

impl Pending<'_> {
    /// The handoff for `vfio-early finish`; `None` when it cannot be written whole.
    pub fn handoff(&self) -> Option<String> {
        vfio_early_core::handoff::render(
            self.digest,
            self.settings,
            self.inv,
            self.state,
            self.fenced,
            crate::split::monotonic_ns(self.deadline.start),
            crate::split::monotonic_ns(self.deadline.end()),
        )
    }
}

/// The rest of a split run, from the fence's state (`vfio-early finish`, under the run's lock;
/// see [`crate::split`]): load, verify, settle what vfio-pci did not take, report.
pub fn finish_rest<K: Kernel>(
    opts: &Options,
    kernel: &mut K,
    start: Instant,
    dir: &Dir,
    input: &Sources,
    plan: &Plan,
    fenced: &mut vfio_early_core::outcome::Fenced,
) {
    let run = Run {
        opts,
        root: Root::new(&opts.root),
        start,
        dir: Some(dir.try_clone()),
        split: true,
    };
    let mut ctx = ctx(&run, kernel, &input.settings);
    apply::load_and_verify(&mut ctx, plan, fenced);
    settle_rest(&run, plan, &mut fenced.out);
    let bad = input.problems.len();
    tell(&run, input, Some((plan, &fenced.out)), bad);
}

/// After a split: what failed in the fence was settled before udev ran; where it is now.
pub fn settle_rest(run: &Run, plan: &Plan, out: &mut Outcomes) {
    for (item, o) in plan.items.iter().zip(out.iter_mut()) {
        if let Outcome::Failed { now, .. } = o {
            *now = run.root.driver_of(&item.bdf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_is_the_one_instant_uses() {
        let a = now_ns();
        let later = monotonic_ns(Instant::now() + Duration::from_secs(2));
        assert!(
            later >= a + 1_900_000_000 && later < a + 3_000_000_000,
            "{a} {later}"
        );
    }

    #[test]
    fn no_file_sets_a_wait_past_the_maximum() {
        let cap = now_ns() + 602 * 1_000_000_000;
        assert!(until_ns(None) <= cap + 1_000_000_000);
        let mut h = handoff::parse(&format!(
            "vfio-early handoff 1\nstart 1\ndeadline {}\ninputs 0\niommu 1\nfenced\nfenced-bdfs\nstopped 0\nend\n",
            u64::MAX
        ))
        .unwrap();
        assert!(until_ns(Some(&h)) <= cap + 1_000_000_000);
        h.deadline_ns = now_ns();
        assert!(until_ns(Some(&h)) <= now_ns() + ns(GRACE));
    }
}
