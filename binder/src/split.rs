// SPDX-License-Identifier: MIT OR Apache-2.0
//! A split boot run: `vfio-early fence` returns to the init system once every override is
//! written, leaving the rest of the run (load vfio-pci, verify, settle, report) to
//! `vfio-early finish`, another process that reads the fence's [handoff](crate::handoff).
//! systemd initrds start it as a unit of its own; under a shell init (initramfs-tools, dracut's
//! shell init, mkinitcpio's busybox init) the hook starts it in the background and records its
//! pid, and `vfio-early wait`, run just before the switch to the real root, waits for it up to
//! the run's deadline. A rest that has
//! not reported by then is stopped (after `mount --move /run` its writes would land in a
//! deleted root) and the state file says `incomplete`.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use log::{error, warn};
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::files::{Dir, Replace};
use crate::handoff;
use crate::run::{Handover, Pending, STATE_FILE, STATE_NAME};
use crate::sysfs::Root;

/// The pid of the `finish` a shell init's hook started, for `wait`.
pub const PID_NAME: &str = "finish.pid";
/// Past the deadline the rest of a run writes nothing more and only reports: this long (ns)
/// for it.
pub const GRACE_NS: u64 = 250_000_000;
/// The state file of a split run starts so until the rest reports.
const PENDING_HEAD: &[u8] = br#"{"version":1,"stage":"pending""#;

/// Writes the handoff; false (logged) when it could not be.
fn write_handoff(p: &Pending<'_>) -> bool {
    let written = match p.handoff() {
        Some(text) => p.dir.write(handoff::NAME, text.as_bytes(), Replace::Yes),
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

/// The fence's handover: the handoff for `vfio-early finish` (a unit of its own in systemd
/// initrds; started in the background by the shell inits' hooks), or, if it cannot be written,
/// the rest now.
pub fn hand_off(p: &Pending<'_>) -> Handover {
    if write_handoff(p) {
        Handover::Return
    } else {
        Handover::Finish
    }
}

/// `instant` on CLOCK_MONOTONIC in nanoseconds (what `Instant` measures on Linux), readable by
/// another process.
pub fn monotonic_ns(instant: Instant) -> u64 {
    let now = Instant::now();
    let mono = now_ns();
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    match instant.checked_duration_since(now) {
        Some(ahead) => mono.saturating_add(ns(ahead)),
        None => mono.saturating_sub(ns(now.duration_since(instant))),
    }
}

pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Whether the state file still says `pending`.
pub fn pending(dir: &Dir) -> bool {
    matches!(dir.read(STATE_NAME, PENDING_HEAD.len()), Ok(Some(i)) if i.bytes == PENDING_HEAD)
}

/// `vfio-early wait`: exits 0 inside an initramfs, whatever it finds; nothing waits past the
/// run's deadline and [`GRACE_NS`].
#[inline(never)]
pub fn wait(root: &Root) -> i32 {
    if !crate::run::boot_start(root, "wait acts only before the switch to the real root") {
        return crate::run::EXIT_REFUSED;
    }
    // Absent: no run in this boot, or one that did not split.
    let Ok(dir) = Dir::open(&root.path("run"), "vfio-early", false) else {
        return 0;
    };
    let h = match dir.read(handoff::NAME, handoff::CAP) {
        Ok(None) => return 0,
        Ok(Some(i)) if !i.cut => handoff::parse(&i.text()),
        Ok(Some(_)) => Err("longer than its cap".into()),
        Err(e) => Err(e.to_string()),
    };
    if !pending(&dir) {
        return 0;
    }
    let h = match h {
        Ok(h) => h,
        Err(e) => {
            error!("/run/vfio-early/{}: {e}: cannot tell how long to wait for the rest of this boot's run; the boot goes on", handoff::NAME);
            return 0;
        }
    };
    let pid = dir
        .read(PID_NAME, 32)
        .ok()
        .flatten()
        .and_then(|i| i.text().trim().parse::<u32>().ok())
        .filter(|&p| p > 1);
    let rest = pid.filter(|&p| ours(p)).and_then(crate::wait::pidfd_open);
    let until = h.deadline_ns.saturating_add(GRACE_NS);
    while pending(&dir) && now_ns() < until {
        let left = until.saturating_sub(now_ns());
        match &rest {
            // A pidfd is readable once the process has ended; EINTR only looks again.
            Some(fd) if readable(fd, left) => break,
            Some(_) => {}
            None => std::thread::sleep(Duration::from_nanos(left.min(10_000_000))),
        }
    }
    if !pending(&dir) {
        return 0;
    }
    if let Some(fd) = &rest {
        // SAFETY: pidfd_send_signal on a pidfd we hold signals that process and no other.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                0,
                0,
            );
        }
        readable(fd, 100_000_000);
        // It may have reported just before the signal.
        if !pending(&dir) {
            return 0;
        }
    }
    mark_incomplete(&dir);
    let who = if h.fenced_bdfs.is_empty() {
        "the fenced devices"
    } else {
        &h.fenced_bdfs
    };
    error!(
        "the rest of this boot's run (loading vfio-pci, checking the binds) had not reported by its deadline: stopped before the switch to the real root; {who} stay fenced with no driver (loading vfio-pci later binds them); see /{STATE_FILE}; hint: vfio-early.sync does it all before udev"
    );
    0
}

/// Polls a pidfd for up to `ns`; true once the process has ended.
fn readable(fd: &std::os::fd::OwnedFd, ns: u64) -> bool {
    let ms = u16::try_from(ns.div_ceil(1_000_000)).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

/// The process is this program (the fence's child), not an unrelated one that reused its pid.
/// The kernel's own /proc, never under the root: the pid is a real process's.
fn ours(pid: u32) -> bool {
    let exe = |p: &str| std::fs::read_link(format!("/proc/{p}/exe")).ok();
    matches!((exe(&pid.to_string()), exe("self")), (Some(a), Some(b)) if a == b)
}

/// `"stage":"pending"` becomes `"stage":"incomplete"`; the rest of the document stays.
pub fn mark_incomplete(dir: &Dir) {
    let doc = match dir.read(STATE_NAME, 1 << 20) {
        Ok(Some(i)) if !i.cut => i.bytes,
        _ => return,
    };
    let head = PENDING_HEAD.len() - br#"pending""#.len();
    let mut out = doc[..head].to_vec();
    out.extend_from_slice(br#"incomplete""#);
    out.extend_from_slice(&doc[PENDING_HEAD.len()..]);
    if let Err(e) = dir.write(STATE_NAME, &out, Replace::Yes) {
        warn!("state file not marked incomplete: {e}");
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
}
