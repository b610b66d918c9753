// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early add` and `remove` on fake trees: pinned entries judged by the next boot's planner,
//! every other line and comment kept, refusals that write nothing, ID entries named, the rebuild
//! command for the generator found, and a file that a kill -9 at any point leaves whole.

mod common;
#[path = "common/exe.rs"]
mod exe;
#[path = "common/kmod.rs"]
mod kmod;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::FakeTree;

const CONF: &str = "etc/vfio-early.conf";

fn machine() -> FakeTree {
    kmod::qemu_machine()
}

fn run(t: &FakeTree, args: &[&str]) -> (i32, String, String) {
    exe::run(exe::HOST, t, args)
}

#[test]
fn add_writes_a_pinned_entry_the_boot_takes() {
    let t = machine();
    t.file("usr/share/initramfs-tools/hook-functions", "")
        .file("usr/sbin/update-initramfs", "");
    let (code, out, err) = run(&t, &["add", "01:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.read(CONF), "devices = 0000:01:00.0@1234:1111:1af4:1100\n");
    assert!(
        out.contains("added to /etc/vfio-early.conf: devices = 0000:01:00.0@1234:1111:1af4:1100"),
        "{out}"
    );
    assert!(
        out.contains("rebuild it with `sudo update-initramfs -u -k \"$(uname -r)\"`"),
        "{out}"
    );
    assert!(err.contains("0000:01:00.1 comes along"), "{err}");
    // What was written is what the boot reads and takes.
    let log = exe::boot(&t);
    assert!(exe::has(&log, "summary: 2 bound"), "{log:#?}");
    // Again: nothing to do, nothing written.
    let (code, out, _) = run(&t, &["add", "01:00.0"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("0000:01:00.0 is taken already: 0000:01:00.0 [1234:1111]"),
        "{out}"
    );
    assert_eq!(t.read(CONF).lines().count(), 1);
}

#[test]
fn add_keeps_every_other_line_and_says_what_is_missing() {
    let t = machine();
    let before = "# my GPU setup\ngroup = companions   # the default\n\ndevices = 02:00.0 # the twin, by hand\ntimeout = 20";
    t.file(CONF, before);
    let (code, out, err) = run(&t, &["add", "01:00.0+unbind"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        t.read(CONF),
        format!("{before}\ndevices = 0000:01:00.0@1234:1111:1af4:1100+unbind\n")
    );
    assert!(out.contains("no initramfs generator found"), "{out}");
    // No group at all under sys/kernel/iommu_groups? The test machine has groups: no hint.
    assert!(!out.contains("the IOMMU is off"), "{out}");
    let names: Vec<String> = std::fs::read_dir(t.path("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("vetmp"))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

#[test]
fn what_the_next_boot_would_refuse_is_not_written() {
    let t = machine();
    t.file(CONF, "# keep me\n");
    for (args, code, says) in [
        (
            &["add", "00:02.0"][..],
            1,
            "the next boot would refuse 0000:00:02.0",
        ),
        (
            &["add", "01:00.0+frobnicate"],
            2,
            "\"0000:01:00.0@1234:1111:1af4:1100+frobnicate\"",
        ),
        (&["add", "zz:00.0"], 2, "\"zz:00.0\" is not a PCI address"),
        (&["add", "07:00.0"], 2, "07:00.0: no such PCI device"),
        (&["add"], 2, "which devices?"),
        (
            &["add", "--force", "01:00.0"],
            2,
            "unknown argument \"--force\"",
        ),
    ] {
        let (got, out, err) = run(&t, args);
        assert_eq!(got, code, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(t.read(CONF), "# keep me\n", "{args:?} wrote");
    }
    // With the flag that allows it, the boot display is taken.
    let (code, out, err) = run(&t, &["add", "00:02.0+boot-vga"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        t.read(CONF)
            .ends_with("devices = 0000:00:02.0@1234:1111+boot-vga\n"),
        "{out}{err}{}",
        t.read(CONF)
    );
}

#[test]
fn dry_run_shows_the_change_and_writes_nothing() {
    let t = machine();
    t.file(CONF, "group = whole\n");
    let (code, out, err) = run(&t, &["add", "--dry-run", "02:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "+devices = 0000:02:00.0@1234:1111:1af4:1100\n");
    assert_eq!(t.read(CONF), "group = whole\n");
    t.file(CONF, "devices = 01:00.0, 02:00.0 # both\n");
    let (code, out, _) = run(&t, &["remove", "--dry-run", "01:00.0"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "-devices = 01:00.0, 02:00.0 # both\n+devices = 02:00.0 # both\n"
    );
    assert_eq!(t.read(CONF), "devices = 01:00.0, 02:00.0 # both\n");
}

#[test]
fn remove_takes_an_address_out_and_names_an_id_entry_that_covers_it() {
    let t = machine();
    t.file(CONF, "# cards\ndevices = 01:00.0, 02:00.0 # both\ndevices=0000:01:00.0@1234:1111\ngroup = companions\n");
    let (code, out, err) = run(&t, &["remove", "01:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        t.read(CONF),
        "# cards\ndevices = 02:00.0 # both\ngroup = companions\n"
    );
    assert!(
        out.contains("removed from /etc/vfio-early.conf: 01:00.0")
            && out.contains("0000:01:00.0@1234:1111"),
        "{out}"
    );
    let (code, _, err) = run(&t, &["remove", "01:00.0"]);
    assert_eq!(code, 1);
    assert!(err.contains("0000:01:00.0 is not listed"), "{err}");

    // Only the named entry goes: a bad entry on the same line stays for the user to fix, the
    // comment stays, and a line that held only the named one keeps its comment alone.
    t.file(
        CONF,
        "devices = 03:00.0, 05:00.0, 04:00.0@10de:zzzz # mine\ndevices = 0000:03:00.0 # old card\n",
    );
    let (code, _, err) = run(&t, &["remove", "03:00.0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        t.read(CONF),
        "devices = 05:00.0, 04:00.0@10de:zzzz # mine\n# old card\n"
    );

    t.file(CONF, "devices = 02:00.0\ndevices = 1234:1111\n");
    let (code, _, err) = run(&t, &["remove", "02:00.0"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("also taken by the ID entry \"1234:1111\""),
        "{err}"
    );
    assert_eq!(
        t.read(CONF),
        "devices = 02:00.0\ndevices = 1234:1111\n",
        "nothing written"
    );
}

#[test]
fn a_file_that_cannot_be_read_whole_is_never_rewritten() {
    let t = machine();
    t.file(CONF, &format!("# {}\n", "x".repeat(20_000)));
    let (code, _, err) = run(&t, &["add", "01:00.0"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("longer than 16384 bytes: not rewritten"),
        "{err}"
    );
    t.remove(CONF).mkdir(CONF);
    let (code, _, _) = run(&t, &["add", "01:00.0"]);
    assert_eq!(code, 2);
}

/// `add` killed with SIGKILL at random points, over and over: the file is always the old text
/// or the new, never a part, and the next run completes it.
#[test]
fn a_killed_add_never_leaves_a_half_written_file() {
    let t = machine();
    let old = format!("# {}\ngroup = companions\n", "pad ".repeat(1000));
    let new = format!("{old}devices = 0000:01:00.0@1234:1111:1af4:1100\n");
    let mut mid_write = 0;
    for trial in 0..120u64 {
        t.file(CONF, &old);
        let mut child = Command::new(exe::HOST)
            .arg("--root")
            .arg(&t.root)
            .args(["add", "01:00.0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread over the run's few milliseconds (a cheap xorshift, no dependency).
        let mut x = trial.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        std::thread::sleep(Duration::from_micros(x % 4000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let text = t.read(CONF);
        assert!(
            text == old || text == new,
            "trial {trial}: a partial file: {} bytes",
            text.len()
        );
        // A kill counts only if it landed while the new text was being written: its
        // temporary file is still there.
        mid_write += usize::from(!status.success() && temps(&t) > 0);
        let (code, _, err) = run(&t, &["add", "01:00.0"]);
        assert_eq!(code, 0, "trial {trial}: {err}");
        assert_eq!(
            t.read(CONF),
            new,
            "trial {trial}: the next run completes it"
        );
        assert_eq!(
            temps(&t),
            0,
            "trial {trial}: a temporary file survived the next run"
        );
    }
    eprintln!("{mid_write} of 120 kills landed mid-write");
    // The kills must land inside the write, or this proves nothing.
    assert!(
        mid_write >= 3,
        "only {mid_write} of 120 kills landed mid-write"
    );
}

/// Temporary files `add` left in /etc.
fn temps(t: &FakeTree) -> usize {
    std::fs::read_dir(t.path("etc"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".vetmp")
        })
        .count()
}

/// The next boot reads every source: an entry on the command line counts, and an entry the boot
/// would refuse is named instead of called "taken".
#[test]
fn add_judges_every_source_as_the_boot_does() {
    let t = machine();
    t.cmdline("vfio-early.devices=01:00.0+unbind");
    let (code, out, _) = run(&t, &["add", "01:00.0"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("0000:01:00.0 is taken already") && out.contains("entry 01:00.0+unbind"),
        "{out}"
    );
    assert!(
        !t.exists(CONF),
        "nothing written: the command line's entry (with its flag) stays the one"
    );
    t.cmdline("");
    t.file(CONF, "devices = 02:00.0@10de:aaaa\n");
    let (code, _, err) = run(&t, &["add", "02:00.0"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the next boot would refuse it") && err.contains("its ID does not match"),
        "{err}"
    );
    assert_eq!(t.read(CONF), "devices = 02:00.0@10de:aaaa\n");
}

/// A replaced file keeps its permission bits; a symlinked one is not replaced.
#[test]
fn the_file_keeps_its_mode_and_a_symlink_stays() {
    use std::os::unix::fs::PermissionsExt;
    let t = machine();
    t.file(CONF, "# private\n");
    std::fs::set_permissions(t.path(CONF), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = run(&t, &["add", "01:00.0"]);
    assert_eq!(code, 0, "{err}");
    let mode = std::fs::metadata(t.path(CONF))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // The group too (root:adm 0640 stays root:adm), for add and remove alike.
    // SAFETY: geteuid has no preconditions.
    if unsafe { nix::libc::geteuid() } == 0 {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(t.path(CONF), None, Some(4)).unwrap();
        std::fs::set_permissions(t.path(CONF), std::fs::Permissions::from_mode(0o640)).unwrap();
        for args in [&["add", "02:00.0"][..], &["remove", "02:00.0"][..]] {
            let (code, _, err) = run(&t, args);
            assert_eq!(code, 0, "{args:?}: {err}");
            let m = std::fs::metadata(t.path(CONF)).unwrap();
            assert_eq!((m.gid(), m.mode() & 0o777), (4, 0o640), "{args:?}");
        }
    }
    t.file("etc/managed.conf", "# from config management\n")
        .remove(CONF)
        .symlink(CONF, "managed.conf");
    let (code, _, err) = run(&t, &["add", "02:00.0"]);
    assert_eq!(code, 2);
    assert!(err.contains("a symbolic link: not replaced"), "{err}");
    assert!(std::fs::symlink_metadata(t.path(CONF))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(t.read("etc/managed.conf"), "# from config management\n");
}
