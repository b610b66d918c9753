// SPDX-License-Identifier: MIT OR Apache-2.0
//! `rom persist` under kill -9 at random points and run concurrently, and the safe writer
//! against planted temporary names: every capture ends stored whole with its sidecar, nothing
//! is lost, no temporary file is left. Faults at every syscall (strace), a full disk and planted
//! symlinks are in tests/roms/persist-faults.sh (they need root and strace).

mod common;
#[path = "common/exe.rs"]
mod exe;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{rom_image, FakeTree};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use vfio_early_engine::romstore::sha256_hex;
use vfio_early_system::files::{Dir, Replace};

const RUN: &str = "run/vfio-early/roms";
const VAR: &str = "var/lib/vfio-early/roms";

/// `n` boot captures in the tree's /run: (name, bytes).
fn captures(t: &FakeTree, n: u16) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for k in 0..n {
        let device = 0x1100 + k;
        let blocks = 4 + (k % 4) as u8 * 16;
        let data = [
            rom_image(0x1234, device, 0x030000, blocks, 0, false),
            rom_image(0x1234, device, 0x030000, 1, 3, true),
        ]
        .concat();
        let sha = sha256_hex(&data);
        let name = format!("1234-{device:04x}-0000-0000-{}.rom", &sha[..12]);
        t.bytes(&format!("{RUN}/{name}"), &data).file(
            &format!("{RUN}/{name}.json"),
            &format!("{{\"version\":1,\"file\":\"{name}\",\"sha256\":\"{sha}\"}}\n"),
        );
        out.push((name, data));
    }
    out
}

fn persist(t: &FakeTree) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vfio-early"))
        .args(["rom", "--root"])
        .arg(&t.root)
        .arg("persist")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vfio-early")
}

/// One whole `rom persist` run that must succeed (`what` says which, on failure); its stderr.
fn persist_ok(t: &FakeTree, what: &str) -> String {
    let out = persist(t).wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {err}");
    err
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every capture stored whole with its sidecar, /run empty, no temporary file anywhere.
fn all_stored(t: &FakeTree, caps: &[(String, Vec<u8>)]) -> Result<(), String> {
    for (name, data) in caps {
        let rom = fs::read(t.path(&format!("{VAR}/{name}"))).map_err(|e| format!("{name}: {e}"))?;
        if rom != *data {
            return Err(format!("{name}: stored bytes differ"));
        }
        let side = t.read(&format!("{VAR}/{name}.json"));
        if !side.contains(&*sha256_hex(data)) {
            return Err(format!("{name}: sidecar missing or wrong: {side:?}"));
        }
    }
    let left = names(&t.path(RUN));
    if left.iter().any(|n| n != "shadow") {
        return Err(format!("left in /run: {left:?}"));
    }
    let stored = names(&t.path(VAR));
    if stored.len() != caps.len() * 2 {
        return Err(format!("store holds {stored:?}"));
    }
    Ok(())
}

/// 200 trials of 8 captures, each killed up to 3 times at random points, then run to the end.
#[test]
fn kill_9_at_random_points_loses_nothing() {
    // How long one whole run takes here (the fastest of 5, warm): the kills fall inside it.
    let mut whole = std::time::Duration::MAX;
    for _ in 0..5 {
        let t = FakeTree::new();
        let caps = captures(&t, 8);
        let start = Instant::now();
        persist_ok(&t, "a clean run");
        whole = whole.min(start.elapsed());
        all_stored(&t, &caps).unwrap();
    }

    let mut runner = proptest::test_runner::TestRunner::default();
    let (mut kills, mut cut_short) = (0, 0);
    for trial in 0..200 {
        let t = FakeTree::new();
        let caps = captures(&t, 8);
        for _ in 0..3 {
            let frac = (0.0..1.0f64).new_tree(&mut runner).unwrap().current();
            let mut child = persist(&t);
            std::thread::sleep(whole.mul_f64(frac));
            let _ = child.kill();
            let _ = child.wait();
            kills += 1;
            // Cut short: captures still waiting in /run.
            if names(&t.path(RUN)).iter().any(|n| n.ends_with(".rom")) {
                cut_short += 1;
            }
        }
        persist_ok(&t, &format!("trial {trial}: the run after the kills"));
        if let Err(e) = all_stored(&t, &caps) {
            panic!("trial {trial}: {e}");
        }
    }
    eprintln!(
        "rom persist: 200 trials of 8 captures, {kills} kill -9 ({cut_short} left captures in /run; one run takes {whole:?}), 0 captures lost, 0 temporary files left"
    );
    // Timing varies with the machine's load; a tenth of the kills cutting a run short is far
    // below what runs have shown (strace's injection in persist-faults.sh covers every point).
    assert!(
        cut_short >= 60,
        "too few kills cut a run short: {cut_short}"
    );
}

/// Two and four runs at once, 25 times each.
#[test]
fn concurrent_runs_lose_nothing() {
    for width in [2, 4] {
        for trial in 0..25 {
            let t = FakeTree::new();
            let caps = captures(&t, 8);
            let children: Vec<Child> = (0..width).map(|_| persist(&t)).collect();
            for c in children {
                let out = c.wait_with_output().expect("wait");
                assert!(
                    out.status.success(),
                    "{width} at once, trial {trial}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if let Err(e) = all_stored(&t, &caps) {
                panic!("{width} at once, trial {trial}: {e}");
            }
        }
    }
}

/// A damaged, empty or planted file under a capture's name in the store never costs the good
/// capture: it is replaced, and a symlink's target outside is not touched.
#[test]
fn a_bad_stored_copy_is_replaced_not_trusted() {
    let t = FakeTree::new();
    let caps = captures(&t, 3);
    let outside = t.path("outside");
    fs::write(&outside, b"precious").unwrap();
    t.bytes(&format!("{VAR}/{}", caps[0].0), b"");
    t.bytes(&format!("{VAR}/{}", caps[1].0), &caps[0].1);
    t.file(&format!("{VAR}/{}.json", caps[1].0), "{}");
    symlink(&outside, t.path(&format!("{VAR}/{}", caps[2].0))).unwrap();
    let err = persist_ok(&t, "over bad stored copies");
    assert_eq!(
        err.matches("did not match its name's content").count(),
        3,
        "{err}"
    );
    all_stored(&t, &caps).unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"precious");
}

/// The writer skips temporary names someone planted (here: symlinks at the names this process
/// would use first) and never writes through them.
#[test]
fn planted_temporary_names_are_skipped() {
    let t = FakeTree::new();
    let outside = t.path("outside");
    fs::write(&outside, b"precious").unwrap();
    let dir = Dir::open(&t.root, "store", true).unwrap();
    for seq in 0..4 {
        let planted = format!("store/.x.rom.{}-{seq}.vetmp", std::process::id());
        symlink(&outside, t.path(&planted)).unwrap();
    }
    dir.write("x.rom", b"data", Replace::No).unwrap();
    assert_eq!(fs::read(t.path("store/x.rom")).unwrap(), b"data");
    assert_eq!(fs::read(&outside).unwrap(), b"precious");
    assert!(!t
        .path("store/x.rom")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
}

#[test]
fn state_and_modprobe_log_never_go_through_a_symlinked_directory() {
    let t = FakeTree::new();
    // A device to bind, so modprobe runs and its log is written too.
    t.device(common::Dev::new("01:00.0", 0x1234, 0x1111, 0x030000).group(1))
        .modprobe_binds();
    let elsewhere = t.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::remove_dir_all(t.path("run")).unwrap();
    fs::create_dir(t.path("run")).unwrap();
    symlink(&elsewhere, t.path("run/vfio-early")).unwrap();
    t.cmdline("vfio-early.devices=01:00.0")
        .file("proc/sys/kernel/printk_devkmsg", "on\n");
    let out = Command::new(exe::boot_exe())
        .arg("--root")
        .arg(&t.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(names(&elsewhere).is_empty(), "{:?}", names(&elsewhere));
    assert!(t.kmsg().contains("state file not written"), "{}", t.kmsg());
    assert!(t.kmsg().contains("bound to vfio-pci"), "{}", t.kmsg());
    assert_eq!(t.modprobe_log(), "vfio-pci\n", "modprobe ran");
}

/// Runs `body` (sh, `$1` = the tree, `$2` = the binary) in private user and mount namespaces
/// with a tmpfs of `size` mounted on the tree's `dir`; returns its exit code and stderr. A
/// machine where the namespaces or the mount do not work fails the test, loudly.
fn on_small_tmpfs(t: &FakeTree, dir: &str, size: &str, body: &str) -> (Option<i32>, String) {
    let script = format!("mount -t tmpfs -o size={size} tmpfs \"$1/{dir}\" || exit 90\n{body}");
    let out = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(&t.root)
        .arg(env!("CARGO_BIN_EXE_vfio-early"))
        .output()
        .expect("unshare (util-linux) runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(
        out.status.code(),
        Some(90),
        "needs unshare with user and mount namespaces: {err}"
    );
    (out.status.code(), err)
}

/// A full disk under the writer: the write fails with ENOSPC, named, and no partial file stays
/// (a partial temporary file once kept the boot's state file from being written).
#[test]
fn a_full_disk_leaves_no_partial_file() {
    let t = FakeTree::new();
    let rom = rom_image(0x1234, 0x1111, 0x030000, 128, 0, true);
    t.bytes("dump.bin", &rom).mkdir("out");
    let body = r#""$2" rom clean "$1/dump.bin" "$1/out/x.rom" 2>"$1/err"
rc=$?
ls -A "$1/out" >"$1/left"
exit $rc"#;
    let (code, err) = on_small_tmpfs(&t, "out", "48k", body);
    assert_eq!(code, Some(2), "{err}");
    let said = t.read("err");
    assert!(said.contains("No space left on device"), "{said}");
    assert_eq!(t.read("left"), "", "partial files left");
}

/// /run full at boot: the state file cannot be written, the log says so, the boot goes on.
#[test]
fn a_full_run_at_boot_is_logged_and_the_boot_goes_on() {
    let t = FakeTree::new();
    t.device(common::Dev::new("01:00.0", 0x1234, 0x1111, 0x030000).group(1))
        .modprobe_binds()
        .file("proc/sys/kernel/printk_devkmsg", "on\n")
        .cmdline("vfio-early.devices=01:00.0");
    let body = r#"dd if=/dev/zero of="$1/run/filler" bs=1k count=64 2>/dev/null
"$2" --root "$1"
rc=$?
find "$1/run" -name '*.vetmp' >"$1/temps"
exit $rc"#;
    let (code, err) = on_small_tmpfs(&t, "run", "8k", body);
    assert_eq!(code, Some(0), "boot mode exits 0: {err}");
    assert_eq!(t.read("temps"), "", "partial files left");
    let log = t.kmsg();
    assert!(
        log.contains("state file not written") && log.contains("No space left on device"),
        "{log}"
    );
    assert!(log.contains("bound to vfio-pci"), "{log}");
}

/// `rom clean IN OUT` with no directory part, an `OUT.tmp` already there, an input named like
/// a temporary file: the output is written, nothing else touched.
#[test]
fn rom_clean_touches_nothing_but_its_output() {
    let t = FakeTree::new();
    let rom = rom_image(0x1234, 0x1111, 0x030000, 4, 0, true);
    let mut dump = vec![0u8; 512];
    dump.extend_from_slice(&rom);
    t.bytes("vbios.tmp", &dump).file("out.tmp", "keep me");
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-early"))
        .args(["rom", "clean", "vbios.tmp", "out.rom"])
        .current_dir(&t.root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(t.path("out.rom")).unwrap(), rom);
    assert_eq!(t.read("out.tmp"), "keep me");
    assert_eq!(fs::read(t.path("vbios.tmp")).unwrap(), dump);
    let again = Command::new(env!("CARGO_BIN_EXE_vfio-early"))
        .args(["rom", "clean", "vbios.tmp", "out.rom"])
        .current_dir(&t.root)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing output is never replaced"
    );
    assert_eq!(fs::read(t.path("out.rom")).unwrap(), rom);
}
