// SPDX-License-Identifier: MIT OR Apache-2.0
//! A split boot run under a shell init (initramfs-tools, dracut's shell init, mkinitcpio's
//! busybox init): `vfio-early fence` forks the rest of the run off once every override is
//! written and returns, so udev starts at once; `vfio-early wait`, run just before the switch
//! to the real root, waits for that rest up to the run's deadline. A rest that has not
//! reported by then is stopped (after `mount --move /run` its writes would land in a deleted
//! root) and the state file says `incomplete`.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use log::{error, warn};
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::files::{Dir, Replace};
use crate::run::{Handover, Pending, STATE_FILE, STATE_NAME};
use crate::sysfs::Root;

/// The fence's record for `wait`: `PID DEADLINE_NS` (CLOCK_MONOTONIC), then the fenced
/// addresses on one line.
pub const RECORD_NAME: &str = "finish.pid";
/// Past the deadline the rest of a run writes nothing more and only reports: this long for it.
pub const GRACE: Duration = Duration::from_millis(250);
/// The state file of a split run starts so until the rest reports.
const PENDING_HEAD: &[u8] = br#"{"version":1,"stage":"pending""#;

/// The handover of `vfio-early fence`: a child does the rest; the parent records it for `wait`
/// and returns. Whatever fails here, the rest still runs: in this process, before udev.
pub fn fork_rest(p: &Pending<'_>) -> Handover {
    let mut gate = [0; 2];
    // SAFETY: pipe2 fills the two descriptors it is given.
    if unsafe { libc::pipe2(gate.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return inline(format_args!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: the boot build is single-threaded; the child only goes on with this program.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = io::Error::last_os_error();
        close(gate[0]);
        close(gate[1]);
        return inline(format_args!("fork: {e}"));
    }
    if pid == 0 {
        // The child starts once the parent's record is written (EOF on the gate), in a session
        // of its own with no terminal or pipe of the hook's held open.
        close(gate[1]);
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into a local.
        while unsafe { libc::read(gate[0], (&raw mut byte).cast::<c_void>(), 1) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        close(gate[0]);
        // SAFETY: setsid and dup2 onto 0-2 of a descriptor we opened change only this process.
        unsafe {
            libc::setsid();
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null >= 0 {
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                close(null);
            }
        }
        return Handover::Finish;
    }
    close(gate[0]);
    let mut text = format!("{pid} {}\n", monotonic_ns(p.deadline.end()));
    for (i, b) in p.fenced.iter().enumerate() {
        text += &format!("{}{b}", if i == 0 { "" } else { " " });
    }
    text.push('\n');
    let recorded = p.dir.write(RECORD_NAME, text.as_bytes(), Replace::Yes);
    if let Err(e) = recorded {
        // Nobody could wait for the child: stop it before it starts and do the rest here.
        // SAFETY: signals and reaps our own child, which waits on the gate.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        close(gate[1]);
        return inline(format_args!("{e}"));
    }
    close(gate[1]);
    Handover::Return
}

fn inline(why: core::fmt::Arguments<'_>) -> Handover {
    warn!("cannot run the rest apart ({why}): loading vfio-pci now, before udev");
    Handover::Finish
}

fn close(fd: libc::c_int) {
    // SAFETY: closes a descriptor this module opened and no one else uses.
    unsafe { libc::close(fd) };
}

/// `instant` on CLOCK_MONOTONIC in nanoseconds (what `Instant` measures on Linux), readable by
/// another process.
fn monotonic_ns(instant: Instant) -> u128 {
    let now = Instant::now();
    let mono = now_ns();
    match instant.checked_duration_since(now) {
        Some(ahead) => mono + ahead.as_nanos(),
        None => mono.saturating_sub(now.duration_since(instant).as_nanos()),
    }
}

fn now_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u128::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(ts.tv_nsec).unwrap_or(0)
}

/// The fence's record: the child's pid, the deadline, the fenced addresses.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub pid: i32,
    pub deadline_ns: u128,
    pub fenced: &'a str,
}

pub fn parse_record(text: &str) -> Option<Record<'_>> {
    let mut lines = text.lines();
    let (pid, deadline) = lines.next()?.split_once(' ')?;
    let pid = pid.parse().ok().filter(|&p: &i32| p > 1)?;
    let deadline_ns = deadline.parse().ok()?;
    let fenced = lines.next().unwrap_or("").trim();
    lines.next().is_none().then_some(Record {
        pid,
        deadline_ns,
        fenced,
    })
}

/// Whether the state file still says `pending`.
fn pending(dir: &Dir) -> bool {
    matches!(dir.read(STATE_NAME, PENDING_HEAD.len()), Ok(Some(i)) if i.bytes == PENDING_HEAD)
}

/// `vfio-early wait`: exits 0 inside an initramfs, whatever it finds; nothing waits past the run's deadline and [`GRACE`].
pub fn wait(root: &Root) -> i32 {
    crate::run::boot_logger(root);
    if !root.in_initrd() {
        error!("not inside an initramfs (no /etc/initrd-release): wait acts only before the switch to the real root");
        return crate::run::EXIT_REFUSED;
    }
    // Absent: no run in this boot, or one that did not split.
    let Ok(dir) = Dir::open(&root.path("run"), "vfio-early", false) else {
        return 0;
    };
    let input = match dir.read(RECORD_NAME, 4096) {
        Ok(Some(i)) => i,
        Ok(None) => return 0,
        Err(e) => {
            error!(
                "{e}: cannot tell whether the rest of this boot's run is done; the boot goes on"
            );
            return 0;
        }
    };
    let text = input.text();
    let Some(rec) = parse_record(&text).filter(|_| !input.cut) else {
        error!("/run/vfio-early/{RECORD_NAME} is not the fence's record; the boot goes on without waiting");
        return 0;
    };
    if !pending(&dir) {
        return 0;
    }
    let rest = u32::try_from(rec.pid)
        .ok()
        .filter(|_| ours(rec.pid))
        .and_then(crate::wait::pidfd_open);
    if let Some(fd) = &rest {
        let until = rec.deadline_ns + GRACE.as_nanos();
        // A pidfd is readable once the process has ended; EINTR only looks again.
        while !readable(fd, until.saturating_sub(now_ns())) && now_ns() < until {}
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
    error!(
        "the rest of this boot's run (loading vfio-pci, checking the binds) had not reported by its deadline: stopped before the switch to the real root; {} stay fenced with no driver (loading vfio-pci later binds them); see /{STATE_FILE}; hint: vfio-early.sync does it all before udev",
        if rec.fenced.is_empty() { "the fenced devices" } else { rec.fenced }
    );
    0
}

/// Polls a pidfd for up to `ns`; true once the process has ended.
fn readable(fd: &std::os::fd::OwnedFd, ns: u128) -> bool {
    let ms = u16::try_from(ns.div_ceil(1_000_000)).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

/// The process is this program (the fence's child), not an unrelated one that reused its pid.
/// The kernel's own /proc, never under the root: the pid is a real process's.
fn ours(pid: i32) -> bool {
    let exe = |p: &str| std::fs::read_link(format!("/proc/{p}/exe")).ok();
    matches!((exe(&pid.to_string()), exe("self")), (Some(a), Some(b)) if a == b)
}

/// `"stage":"pending"` becomes `"stage":"incomplete"`; the rest of the document stays.
fn mark_incomplete(dir: &Dir) {
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
    fn records_parse_or_are_refused() {
        assert_eq!(
            parse_record("123 456\n0000:01:00.0 0000:01:00.1\n"),
            Some(Record {
                pid: 123,
                deadline_ns: 456,
                fenced: "0000:01:00.0 0000:01:00.1"
            })
        );
        for bad in [
            "",
            "123\n",
            "1 5\n",
            "x 5\n",
            "12 -5\n",
            "12 5\na\nb\n",
            "-3 5\n",
        ] {
            assert_eq!(parse_record(bad), None, "{bad:?}");
        }
    }

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
