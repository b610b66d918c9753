// SPDX-License-Identifier: MIT OR Apache-2.0
//! Starting a child (modprobe) with posix_spawn and waiting for it up to a deadline, never
//! killing it: modprobe may be inside init_module or a driver's probe (uninterruptible), and a
//! kill between two module loads can leave a half-loaded stack. At the deadline we stop
//! waiting; the child runs on.
//!
//! posix_spawn rather than std's `Command`: the boot build needs one program, one argument and
//! three descriptors, and `Command`'s environment map and general machinery are a tenth of the
//! boot build's size.

use core::fmt;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// A started child.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    /// Reaped: its pid is no longer ours to wait for.
    done: bool,
}

/// How a child ended (a raw wait status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(libc::c_int);

impl Status {
    pub fn success(self) -> bool {
        libc::WIFEXITED(self.0) && libc::WEXITSTATUS(self.0) == 0
    }

    pub fn code(self) -> Option<i32> {
        libc::WIFEXITED(self.0).then(|| libc::WEXITSTATUS(self.0))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(c) => write!(f, "exit status: {c}"),
            None => write!(f, "signal: {}", libc::WTERMSIG(self.0)),
        }
    }
}

/// A descriptor passed to a child beyond its stdio: `fd` becomes its descriptor `to`, and the
/// environment entry `entry` (`NAME=VALUE`, replacing any inherited `NAME`) tells it so.
pub struct Pass<'a> {
    pub fd: BorrowedFd<'a>,
    pub to: libc::c_int,
    pub entry: &'a std::ffi::CStr,
}

/// Starts `path args...` with the given stdin, stdout and stderr, the environment inherited, SIGPIPE
/// back at its default (we ignore it; a child must not) and no signal blocked; `pass` adds a
/// descriptor and the entry that names it.
pub fn spawn(
    path: &Path,
    args: &[&str],
    stdin: BorrowedFd<'_>,
    stdout: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
    pass: Option<&Pass<'_>>,
) -> io::Result<Child> {
    let invalid = |_| io::Error::from(io::ErrorKind::InvalidInput);
    let prog = CString::new(path.as_os_str().as_bytes()).map_err(invalid)?;
    let args = args
        .iter()
        .map(|a| CString::new(*a).map_err(invalid))
        .collect::<io::Result<Vec<_>>>()?;
    let argv: Vec<*const libc::c_char> = std::iter::once(prog.as_ptr())
        .chain(args.iter().map(|a| a.as_ptr()))
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    // With a passed descriptor: our environment, less any entry of that name (one from the
    // kernel command line would come first and win), plus its entry.
    let mut envp: Vec<*const libc::c_char> = Vec::new();
    if let Some(pass) = pass {
        let entry = pass.entry.to_bytes();
        let name = &entry[..=entry
            .iter()
            .position(|&b| b == b'=')
            .unwrap_or(entry.len() - 1)];
        // SAFETY: environ is the C runtime's null-terminated array of valid pointers, read up to
        // its null entry; nothing changes it meanwhile (we set no variable).
        unsafe {
            let mut p = environ;
            while !(*p).is_null() {
                if !std::ffi::CStr::from_ptr(*p).to_bytes().starts_with(name) {
                    envp.push((*p).cast_const());
                }
                p = p.add(1);
            }
        }
        envp.push(pass.entry.as_ptr());
        envp.push(std::ptr::null());
    }
    let mut pid = 0;
    // SAFETY: every pointer handed to posix_spawn* is valid for the call (the CStrings, argv
    // and envp live until it returns; the actions and attributes are initialised first and
    // destroyed after); the descriptors are borrowed, so they are open.
    let rc = unsafe {
        let mut actions = std::mem::zeroed::<libc::posix_spawn_file_actions_t>();
        let mut attr = std::mem::zeroed::<libc::posix_spawnattr_t>();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawnattr_init(&mut attr);
        for (fd, to) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
            libc::posix_spawn_file_actions_adddup2(&mut actions, fd.as_raw_fd(), to);
        }
        // The passed descriptor last: the stdio sources may be its number themselves (the sink
        // when no kmsg descriptor holds 3), so 3 is overwritten only once they are copied. It
        // is never 0-2 itself: the shim fills those first.
        if let Some(pass) = pass {
            libc::posix_spawn_file_actions_adddup2(&mut actions, pass.fd.as_raw_fd(), pass.to);
        }
        // SIGPIPE is the one signal we ignore (handlers do not survive exec); naming only it
        // keeps the child from resetting every signal one syscall each.
        let mut pipe = std::mem::zeroed::<libc::sigset_t>();
        let mut none = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::sigemptyset(&mut none);
        libc::posix_spawnattr_setsigdefault(&mut attr, &pipe);
        libc::posix_spawnattr_setsigmask(&mut attr, &none);
        let flags = libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK;
        libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        let env = if envp.is_empty() {
            environ
        } else {
            envp.as_ptr().cast()
        };
        let rc = libc::posix_spawn(
            &mut pid,
            prog.as_ptr(),
            &actions,
            &attr,
            argv.as_ptr().cast(),
            env,
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        rc
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(Child { pid, done: false })
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// SIGKILL, for a child past every deadline (the rdinit shim's binder; never modprobe).
    pub fn kill(&self) {
        if !self.done {
            // SAFETY: a signal to our own child, not yet reaped (its pid is still ours).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// Reaps it if it has ended.
    pub fn try_wait(&mut self) -> io::Result<Option<Status>> {
        if self.done {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child, with a local for the status.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        match r {
            0 => Ok(None),
            r if r == self.pid => {
                self.done = true;
                Ok(Some(Status(status)))
            }
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// `Ok(None)`: still running at `until`.
    pub fn wait_until(&mut self, until: Instant) -> io::Result<Option<Status>> {
        // A pidfd becomes readable when the child exits (Linux 5.3): one wakeup, no polling
        // delay.
        let pidfd = pidfd_open(self.id());
        let mut nap = Duration::from_millis(1);
        // With a pidfd, the first look is its poll (a child that already ended makes it return
        // at once); without one, try_wait first.
        let mut look = pidfd.is_none();
        loop {
            if look {
                if let Some(status) = self.try_wait()? {
                    return Ok(Some(status));
                }
            }
            look = true;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // One last look: `None` only for a child still running at the deadline.
                return self.try_wait();
            }
            match &pidfd {
                Some(fd) => {
                    let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
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
}

/// A pidfd for `pid`; `None` when it is gone or the kernel has no pidfd_open (before 5.3).
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SIGKILL to the process `pidfd` names (and to no other, whatever pid it had); false when it
/// could not be sent.
pub fn pidfd_kill(pidfd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal on a pidfd we hold signals that process and no other.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            0,
            0,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn null() -> std::fs::File {
        std::fs::File::open("/dev/null").unwrap()
    }

    fn start(path: &str, arg: &str) -> Child {
        let n = null();
        spawn(
            Path::new(path),
            &[arg],
            n.as_fd(),
            n.as_fd(),
            n.as_fd(),
            None,
        )
        .unwrap()
    }

    #[test]
    fn returns_at_the_deadline_and_leaves_the_child_running() {
        let mut child = start("/bin/sleep", "5");
        let r = child
            .wait_until(Instant::now() + Duration::from_millis(100))
            .unwrap();
        assert!(r.is_none());
        // Returned before the child ended, and did not end it.
        assert!(child.try_wait().unwrap().is_none(), "never killed");
        // SAFETY: our own child.
        unsafe { libc::kill(child.pid, libc::SIGKILL) };
        let end = child.wait_until(Instant::now() + Duration::from_secs(20));
        assert_eq!(end.unwrap().unwrap().to_string(), "signal: 9");
    }

    #[test]
    fn returns_the_status_when_the_child_ends() {
        let mut child = start("/bin/false", "x");
        let r = child
            .wait_until(Instant::now() + Duration::from_secs(20))
            .unwrap();
        assert_eq!(r.and_then(Status::code), Some(1));
        assert_eq!(r.unwrap().to_string(), "exit status: 1");
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let n = null();
        let e = spawn(
            Path::new("/nonexistent/modprobe"),
            &["x"],
            n.as_fd(),
            n.as_fd(),
            n.as_fd(),
            None,
        );
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_child_gets_sigpipe_back_at_its_default() {
        // The boot build ignores SIGPIPE; what modprobe's install commands run must not.
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "grep SigIgn /proc/self/status\n").unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let n = null();
        let mut child = spawn(
            Path::new("/bin/sh"),
            &[script.to_str().unwrap()],
            n.as_fd(),
            out.as_fd(),
            n.as_fd(),
            None,
        )
        .unwrap();
        let end = child
            .wait_until(Instant::now() + Duration::from_secs(20))
            .unwrap();
        assert!(end.is_some_and(Status::success));
        let line = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let mask =
            u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
        assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{line}");
    }
}
