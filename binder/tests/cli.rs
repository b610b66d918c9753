// SPDX-License-Identifier: MIT OR Apache-2.0
//! The host build's command line explains itself: each command's own help, the reference
//! (`--help` and the man page) naming every key and command, arguments of any bytes, refusals
//! with a non-zero exit, warnings about the settings, duplicates once, names without control
//! bytes.

mod common;
#[path = "common/exe.rs"]
mod exe;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

use common::{Dev, FakeTree};
use vfio_early::help;
use vfio_early_core::config::KEYS;

fn run(t: &FakeTree, args: &[&str]) -> (i32, String, String) {
    exe::run(exe::HOST, t, args)
}

/// The host build with raw arguments (no --root: the bytes are the point); exit code (or the
/// signal, negative) and stderr.
fn raw(args: &[&OsStr]) -> (i32, String) {
    use std::os::unix::process::ExitStatusExt;
    let out = Command::new(exe::HOST)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vfio-early");
    let code = out
        .status
        .code()
        .unwrap_or_else(|| -out.status.signal().unwrap_or(0));
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn machine() -> FakeTree {
    let t = FakeTree::new();
    t.device(
        Dev::new("00:02.0", 0x1234, 0x1111, 0x030000)
            .group(1)
            .boot_vga(true),
    )
    .device(Dev::new("01:00.0", 0x10de, 0x1c03, 0x030000).group(5))
    .device(Dev::new("01:00.1", 0x10de, 0x10f1, 0x040300).group(5))
    .device(Dev::new("02:00.0", 0x10de, 0x1c03, 0x030000).group(6))
    .file("proc/sys/kernel/osrelease", "6.1.0-test\n");
    t
}

#[test]
fn every_command_answers_its_own_help() {
    let t = machine();
    for c in help::COMMANDS.iter().filter(|c| **c != "help") {
        let own = help::of(c).unwrap();
        for args in [vec![*c, "--help"], vec!["help", *c], vec![*c, "-h"]] {
            let (code, out, err) = run(&t, &args);
            assert_eq!((code, out.as_str()), (0, own), "{args:?}: {err}");
        }
    }
    let (code, out, _) = run(&t, &["--help"]);
    assert!(code == 0 && out.contains("Per command: vfio-early COMMAND --help"));
    let (code, _, err) = run(&t, &["help", "frobnicate"]);
    assert!(
        code == 2 && err.contains("unknown command \"frobnicate\""),
        "{err}"
    );
}

#[test]
fn help_and_the_man_page_name_every_key_and_command() {
    let t = machine();
    let (_, help_text, _) = run(&t, &["--help"]);
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/vfio-early.8"))
        .expect("docs/vfio-early.8")
        .replace("\\-", "-");
    for k in KEYS {
        let spelled = match k {
            "build-strict" => "build-strict = yes".to_string(),
            _ => format!("vfio-early.{k}"),
        };
        assert!(help_text.contains(&spelled), "--help lacks {spelled}");
        assert!(
            man.contains(&spelled) || man.contains(&format!("vfio-early.{k}")),
            "the man page lacks {spelled}"
        );
    }
    for c in help::COMMANDS.iter().filter(|c| **c != "help") {
        assert!(
            help_text.contains(&format!("vfio-early {c}")),
            "--help lacks {c}"
        );
        assert!(
            man.contains(&format!(".B {c}")) || man.contains(&format!("vfio-early {c}")),
            "the man page lacks {c}"
        );
    }
}

#[test]
fn arguments_of_any_bytes_are_named_never_a_signal() {
    let bad = OsStr::from_bytes(b"\xff\xfe");
    for args in [
        vec![OsStr::new("status"), bad],
        vec![OsStr::new("cmdline"), bad],
        vec![OsStr::new("add"), OsStr::new("--dry-run"), bad],
        vec![bad],
        vec![OsStr::new("plan"), OsStr::new("--cmdline"), bad],
        vec![
            OsStr::new("addon"),
            OsStr::new("-o"),
            OsStr::new("-"),
            OsStr::new("--kver"),
            bad,
        ],
    ] {
        let (code, err) = raw(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("\u{fffd}\u{fffd}"),
            "{args:?}: names the token: {err}"
        );
    }
    // A Latin-1 file name is a file name: `rom inspect` reads it.
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join(OsStr::from_bytes(b"r\xe9m.rom"));
    std::fs::write(&name, [0u8; 512]).unwrap();
    let (code, err) = raw(&[OsStr::new("rom"), OsStr::new("inspect"), name.as_os_str()]);
    assert_eq!(code, 1, "read and judged unusable (no 55aa): {err}");
}

#[test]
fn refusals_exit_non_zero_and_settings_are_warned_about() {
    let t = machine();
    // The boot display is refused: cmdline and add --dry-run both exit 1, on stderr.
    let (code, out, err) = run(&t, &["cmdline", "00:02.0"]);
    assert!(
        code == 1 && out.is_empty() && err.contains("would refuse 0000:00:02.0"),
        "{err}"
    );
    let (code, _, err) = run(&t, &["add", "--dry-run", "00:02.0"]);
    assert!(
        code == 1 && err.contains("would refuse 0000:00:02.0"),
        "{code} {err}"
    );
    // The kill switch: said by cmdline, add and check.
    t.cmdline("vfio-early.off");
    let kill = "the kill switch is set";
    let (code, _, err) = run(&t, &["cmdline", "01:00.0"]);
    assert!(code == 0 && err.contains(kill), "{err}");
    let (_, _, err) = run(&t, &["add", "--dry-run", "01:00.0"]);
    assert!(err.contains(kill), "{err}");
    let (_, out, _) = run(&t, &["check"]);
    assert!(out.contains(kill), "{out}");
    // Both the command line and the file name devices.
    t.cmdline("vfio-early.devices=01:00.0")
        .file("etc/vfio-early.conf", "devices = 01:00.0\n");
    let both =
        "both the kernel command line (vfio-early.devices=) and /etc/vfio-early.conf name devices";
    let (_, _, err) = run(&t, &["cmdline", "01:00.0"]);
    assert!(err.contains(both), "{err}");
    let (_, out, _) = run(&t, &["check"]);
    assert!(out.contains(both), "{out}");
    t.remove("etc/vfio-early.conf");
    let (_, _, err) = run(&t, &["add", "--dry-run", "02:00.0"]);
    assert!(
        err.contains(both),
        "add: the file is about to name it: {err}"
    );
    let (_, out, _) = run(&t, &["check"]);
    assert!(!out.contains(both), "{out}");
}

#[test]
fn a_device_named_twice_is_one_entry() {
    let t = machine();
    let (code, out, err) = run(&t, &["cmdline", "01:00.0", "0000:01:00.0", "01:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "vfio-early.devices=0000:01:00.0@10de:1c03,0000:01:00.1@10de:10f1\n"
    );
}

#[test]
fn names_from_pci_ids_carry_no_control_bytes() {
    let t = machine();
    t.file(
        "usr/share/misc/pci.ids",
        "10de  NVIDIA\x1b[2J\x07 Corporation\n\t1c03  GP106\0 [GeForce GTX 1060 6GB]\n",
    );
    let (code, out, _) = run(&t, &["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("NVIDIA?[2J? Corporation GP106? [GeForce GTX 1060 6GB]"),
        "{out}"
    );
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
}
