// SPDX-License-Identifier: MIT OR Apache-2.0
//! Waiting for a child process up to a deadline, and never killing it: modprobe may be inside
//! init_module or a driver's probe (uninterruptible), and a kill between two module loads can
//! leave a half-loaded stack. At the deadline we stop waiting; the child runs on.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// `Ok(None)`: still running at `until`.
pub fn wait_until(child: &mut Child, until: Instant) -> io::Result<Option<ExitStatus>> {
    // A pidfd becomes readable when the child exits (Linux 5.3): one wakeup, no polling delay.
    let pidfd = pidfd_open(child.id());
    let mut nap = Duration::from_millis(1);
    // With a pidfd, the first look is its poll (a child that already ended makes it return at
    // once); without one, try_wait first.
    let mut look = pidfd.is_none();
    loop {
        if look {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
        }
        look = true;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // One last look: `None` only for a child still running at the deadline.
            return child.try_wait();
        }
        match &pidfd {
            Some(fd) => {
                let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
                // EINTR or a timeout: the loop looks again.
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            None => {
                // Older kernels: look again after a short, growing nap.
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(Duration::from_millis(16));
            }
        }
    }
}

/// A pidfd for `pid`; `None` when it is gone or the kernel has no pidfd_open (before 5.3).
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = nix::libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn returns_at_the_deadline_and_leaves_the_child_running() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let r = wait_until(&mut child, Instant::now() + Duration::from_millis(100)).unwrap();
        assert!(r.is_none());
        // Returned before the child ended, and did not end it.
        assert!(child.try_wait().unwrap().is_none(), "never killed");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn returns_the_status_when_the_child_ends() {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let r = wait_until(&mut child, Instant::now() + Duration::from_secs(20)).unwrap();
        assert_eq!(r.and_then(|s| s.code()), Some(3));
    }
}
