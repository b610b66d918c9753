// SPDX-License-Identifier: MIT OR Apache-2.0
//! The boot build's side of the rdinit shim's deadline pipe (issue 23), on the real binary: it
//! writes its deadline to descriptor 3 only when `VFIO_EARLY_DEADLINE_FD=3` names it and it is
//! a pipe, one line of milliseconds, and closes it; otherwise it writes nothing anywhere.

mod common;
#[path = "common/exe.rs"]
mod exe;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::FakeTree;
use nix::libc;

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills the array or fails.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: just returned by the kernel, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Runs the boot build on `t` with `fd` as its descriptor 3 and `env` as the variable (if any);
/// returns its exit code.
fn run_with_fd3(t: &FakeTree, fd: &OwnedFd, env: Option<&str>) -> i32 {
    let raw = fd.as_raw_fd();
    let mut cmd = Command::new(exe::boot_exe());
    cmd.arg("--root")
        .arg(&t.root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove("VFIO_EARLY_DEADLINE_FD");
    if let Some(v) = env {
        cmd.env("VFIO_EARLY_DEADLINE_FD", v);
    }
    // SAFETY: dup2 is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run the boot build");
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still running after 20 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn told(t: &FakeTree, env: Option<&str>) -> String {
    let (rd, wr) = pipe();
    assert_eq!(run_with_fd3(t, &wr, env), 0);
    drop(wr);
    let mut out = String::new();
    std::fs::File::from(rd)
        .read_to_string(&mut out)
        .expect("read");
    out
}

#[test]
fn the_deadline_goes_to_the_shim_on_its_pipe_and_nowhere_else() {
    let t = FakeTree::new();
    t.cmdline("vfio-early.timeout=7");
    assert_eq!(told(&t, Some("3")), "7000\n");
    t.cmdline("quiet");
    assert_eq!(told(&t, Some("3")), "10000\n", "the default");
    // Even when the settings block binding: the shim must still learn when to stop waiting.
    t.cmdline("vfio-early.timeout=600")
        .mkdir("etc/vfio-early.conf");
    assert_eq!(told(&t, Some("3")), "600000\n");
    // Not named, or named otherwise: nothing written.
    for env in [None, Some("4"), Some("3 "), Some("")] {
        assert_eq!(told(&t, env), "", "{env:?}");
    }
    // Named, but descriptor 3 is no pipe: a file someone else owns stays untouched.
    let f = t.path("fd3-file");
    std::fs::write(&f, b"").expect("write");
    let file = OwnedFd::from(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&f)
            .expect("open"),
    );
    assert_eq!(run_with_fd3(&t, &file, Some("3")), 0);
    assert_eq!(std::fs::read(&f).expect("read"), b"");
}
