// SPDX-License-Identifier: MIT OR Apache-2.0
//! Running the two builds on a fake tree (integration tests only: examples have no
//! `CARGO_BIN_EXE_*`). Include with `#[path = "common/exe.rs"] mod exe;`.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::FakeTree;

/// The host build: every command.
pub const HOST: &str = env!("CARGO_BIN_EXE_vfio-early");
/// The boot build: what the hooks put into every image. It is vfio-early-engine's binary, so
/// cargo names it to that crate's tests only: it sits beside the host build, built by
/// `cargo test --workspace` (`cargo test -p vfio-early` alone does not build it: said so here).
pub fn boot_exe() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let p = std::path::Path::new(HOST).with_file_name("vfio-early-boot");
        assert!(
            p.is_file(),
            "{}: no boot build; it is vfio-early-engine's binary: run `cargo test --workspace`",
            p.display()
        );
        p.to_string_lossy().into_owned()
    })
}

/// Runs `exe --root TREE ARGS` with a hang guard (a blocked read would wait forever); returns
/// (exit code, stdout, stderr).
pub fn run(exe: &str, t: &FakeTree, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(exe)
        .arg("--root")
        .arg(&t.root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vfio-early");
    // Drain both pipes while waiting: a child that fills a 64 KiB pipe would block, not finish.
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{exe} {args:?} still running after 20 s: an input blocked it");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        status.code().unwrap_or(-1),
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    )
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The boot build in boot mode, which must exit 0 inside an initramfs; the kernel log.
#[track_caller]
pub fn boot(t: &FakeTree) -> Vec<String> {
    let (code, _, err) = run(boot_exe(), t, &[]);
    assert_eq!(code, 0, "boot mode exits 0; stderr: {err}");
    t.kmsg_lines()
}

pub fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}
