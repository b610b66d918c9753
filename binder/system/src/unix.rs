// SPDX-License-Identifier: MIT OR Apache-2.0
//! The system calls std and nix do not offer the way the boot needs them: PID 1's mounts, a
//! descriptor passed to us by number, the auxiliary vector, the monotonic clock as a number
//! another process can read, a pipe polled against a deadline. Each is a safe function over
//! libc (no allocation: this runs in every boot build) with the reason its call is sound.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::libc;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The environment variable `name` as libc's getenv sees it.
pub fn getenv(name: &CStr) -> Option<&'static CStr> {
    // SAFETY: getenv with a NUL-terminated name; nothing in our programs sets variables, so the
    // environment it points into is never changed or freed while the process lives.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null result is a NUL-terminated string in that environment.
    Some(unsafe { CStr::from_ptr(p) })
}

/// The path the kernel started this program by (`AT_EXECFN`), when the vector has it.
pub fn exec_fn() -> Option<&'static CStr> {
    // SAFETY: getauxval reads the auxiliary vector; AT_EXECFN is a pointer to a NUL-terminated
    // string the kernel put on our stack (0 when absent).
    let p = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if p.is_null() {
        return None;
    }
    // SAFETY: as above: a NUL-terminated string that lives as long as the process.
    Some(unsafe { CStr::from_ptr(p) })
}

/// Writes `bytes` once to descriptor `fd`, then closes it: a descriptor another program passed
/// to this one by number, for this message only (the caller has checked what it is).
pub fn write_and_close(fd: RawFd, bytes: &[u8]) {
    // SAFETY: a write of a borrowed buffer, at most its length, then the descriptor's close:
    // nothing else in this process uses that number.
    unsafe {
        libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        libc::close(fd);
    }
}

/// Takes descriptor `fd`, passed to this process by number for a lock: when it is open, `same`
/// says it is the file meant, and the (shared) lock is taken without waiting. Marked
/// close-on-exec, so nothing this process starts holds it.
pub fn adopt_lock(fd: RawFd, same: impl FnOnce(BorrowedFd<'_>) -> bool) -> Option<OwnedFd> {
    nix::fcntl::fcntl(fd, nix::fcntl::F_GETFD).ok()?;
    // SAFETY: the number was just seen open; it is only borrowed here, for the comparison.
    if !same(unsafe { BorrowedFd::borrow_raw(fd) }) {
        return None;
    }
    // SAFETY: flock on an open descriptor (on the same open file a lock it holds is a no-op).
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return None;
    }
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    // SAFETY: the descriptor was passed to this process for this lock; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// CLOCK_MONOTONIC in nanoseconds (what `Instant` measures on Linux), readable by another
/// process.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Mounts a pseudo file system (`fstype` is also the source, no options).
pub fn mount(fstype: &CStr, target: &CStr, flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; data is null.
    check(unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    })
}

/// Unmounts `target` (`flags`: 0, or `libc::MNT_DETACH`).
pub fn umount(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: a NUL-terminated path that outlives the call.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

/// An empty close-on-exec memfd named `name`.
pub fn memfd(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: the name is NUL-terminated; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills the two-element array or fails.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just returned these descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Waits up to `ms` milliseconds for `fd` to be readable: `Ok(false)` when the time passed.
pub fn poll_in(fd: BorrowedFd<'_>, ms: libc::c_int) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, ours, for the call.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        0 => Ok(false),
        n if n < 0 => Err(io::Error::last_os_error()),
        _ => Ok(true),
    }
}

/// One `read()` into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    nix::unistd::read(fd.as_raw_fd(), buf).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_carries_a_line_within_its_deadline() {
        let (rd, wr) = pipe().unwrap();
        assert!(!poll_in(rd.as_fd(), 1).unwrap(), "nothing written yet");
        write_and_close(std::os::fd::IntoRawFd::into_raw_fd(wr), b"1500\n");
        assert!(poll_in(rd.as_fd(), 1000).unwrap());
        let mut buf = [0u8; 8];
        assert_eq!(read(rd.as_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"1500\n");
        assert_eq!(read(rd.as_fd(), &mut buf).unwrap(), 0, "closed");
    }

    #[test]
    fn the_clock_and_the_environment() {
        let a = monotonic_ns();
        assert!(monotonic_ns() >= a && a > 0);
        assert!(getenv(c"PATH").is_some() || std::env::var_os("PATH").is_none());
        assert_eq!(getenv(c"VFIO_EARLY_SURELY_UNSET_123"), None);
        assert!(memfd(c"t").is_ok());
        let t = tempfile::tempfile().unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(t);
        assert!(adopt_lock(fd, |_| false).is_none(), "not the file meant");
        assert!(adopt_lock(fd, |_| true).is_some());
    }
}
