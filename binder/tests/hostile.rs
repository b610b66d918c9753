// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hostile and careless input, on the real binary: every bad input is named, nothing is dropped
//! in silence, a cut input or a malformed kill switch takes nothing, and no input can hang it.

mod common;
#[path = "common/exe.rs"]
mod exe;

use std::process::{Command, Stdio};

use common::{Dev, FakeTree};
use exe::{boot, has};

const DISPLAY: u32 = 0x030000;
const AUDIO: u32 = 0x040300;

/// Runs the host build on the tree with a hang guard; returns (exit code, stdout, stderr).
fn run(t: &FakeTree, args: &[&str]) -> (i32, String, String) {
    exe::run(exe::HOST, t, args)
}

/// A card at 01:00.0/.1 (group 1) and its identical twin at 02:00.0/.1 (group 2).
fn twins() -> FakeTree {
    let t = FakeTree::new();
    for bus in [1u8, 2] {
        t.device(Dev::new(&format!("{bus:02x}:00.0"), 0x1234, 0x1111, DISPLAY).group(bus.into()))
            .device(Dev::new(&format!("{bus:02x}:00.1"), 0x8086, 0x293e, AUDIO).group(bus.into()));
    }
    t.modprobe_binds();
    t
}

fn taken(t: &FakeTree) -> Vec<String> {
    ["01:00.0", "01:00.1", "02:00.0", "02:00.1"]
        .into_iter()
        .filter(|b| t.driver_of(b).as_deref() == Some("vfio-pci") || t.override_of(b) == "vfio-pci")
        .map(String::from)
        .collect()
}

/// `plan` on the tree's own inputs: (exit code, all output).
fn plan(t: &FakeTree) -> (i32, String) {
    let (code, out, err) = run(t, &["plan"]);
    (code, format!("{out}{err}"))
}

#[test]
fn a_cut_input_takes_nothing_and_names_its_cap() {
    // One line over the cap, a valid entry first and the kill switch in the part not read.
    let long = format!(
        "vfio-early.devices=01:00.0 {} vfio-early.off\n",
        "x".repeat(9000)
    );
    for (rel, source, cap) in [
        (
            "etc/cmdline.d/90-long.conf",
            "/etc/cmdline.d/90-long.conf",
            "8192",
        ),
        ("proc/cmdline", "kernel command line", "8192"),
    ] {
        let t = twins();
        t.file(rel, &long);
        let log = boot(&t);
        assert!(taken(&t).is_empty(), "{rel}: {:?} {log:#?}", taken(&t));
        let want = format!("{source}: longer than {cap} bytes (the cap)");
        assert!(has(&log, &want), "{want}: {log:#?}");
        assert!(has(&log, "nothing is bound"), "{log:#?}");
        let (code, out) = plan(&t);
        assert_eq!(code, 1, "{out}");
    }
    let t = twins();
    t.cmdline("vfio-early.devices=01:00.0").file(
        "etc/vfio-early.conf",
        &format!("# {}\noff\n", "x".repeat(17000)),
    );
    let log = boot(&t);
    assert!(taken(&t).is_empty(), "{log:#?}");
    assert!(
        has(&log, "/etc/vfio-early.conf: longer than 16384 bytes"),
        "{log:#?}"
    );
}

#[test]
fn more_cmdline_d_files_than_read_take_nothing_and_the_first_by_name_are_read() {
    let t = twins();
    // Created in reverse name order: a directory-order reader would keep the wrong ones.
    for i in (0..17).rev() {
        t.file(&format!("etc/cmdline.d/{i:02}-x.conf"), "quiet\n");
    }
    t.file("etc/cmdline.d/00-x.conf", "vfio-early.devices=01:00.0\n");
    let log = boot(&t);
    assert!(taken(&t).is_empty(), "{log:#?}");
    assert!(
        has(
            &log,
            "more than 16 files: those after the first 16 by name are not read"
        ),
        "{log:#?}"
    );
    // Sixteen files are fine, and 00-x.conf (first by name) is among them.
    t.remove("etc/cmdline.d/16-x.conf");
    t.remove("run/vfio-early");
    let log = boot(&t);
    assert_eq!(taken(&t), ["01:00.0", "01:00.1"], "{log:#?}");
}

#[test]
fn a_cmdline_d_file_whose_name_cannot_be_kept_takes_nothing() {
    use std::os::unix::ffi::OsStrExt;
    for name in [
        &b"50-\xff.conf"[..],
        format!("{}.conf", "n".repeat(130)).as_bytes(),
    ] {
        let t = twins();
        t.cmdline("vfio-early.devices=01:00.0");
        let dir = t.path("etc/cmdline.d");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join(std::ffi::OsStr::from_bytes(name)),
            "vfio-early.off\n",
        )
        .expect("write");
        let log = boot(&t);
        assert!(taken(&t).is_empty(), "{log:#?}");
        assert!(
            has(&log, "not UTF-8 or longer than 128 bytes: not read"),
            "{log:#?}"
        );
    }
}

#[test]
fn the_blocking_notice_survives_a_flood_of_problems() {
    let t = twins();
    let junk: Vec<String> = (0..30).map(|i| format!("junk{i}")).collect();
    t.cmdline(&format!(
        "vfio-early.devices={} {} vfio-early.off",
        junk.join(","),
        "y".repeat(9000)
    ));
    let log = boot(&t);
    let state = t.read("run/vfio-early/state.json");
    assert!(taken(&t).is_empty(), "{log:#?}");
    assert!(state.contains("longer than 8192 bytes"), "{state}");
}

#[test]
fn an_id_entry_that_matches_nothing_is_named() {
    let t = twins();
    t.cmdline("vfio-early.devices=10de:1c03");
    let log = boot(&t);
    assert!(
        has(&log, "entry \"10de:1c03\" matches no device on the bus"),
        "{log:#?}"
    );
    assert!(has(&log, "1 entry matching nothing"), "{log:#?}");
    let (code, out) = plan(&t);
    assert_eq!(code, 1, "{out}");
}

/// Puts one bad input into a tree.
type Setup = dyn Fn(&FakeTree);

#[test]
fn silent_bad_input_is_named() {
    let cases: &[(&str, &Setup, &str)] = &[
        (
            "config is a directory",
            &|t| {
                t.mkdir("etc/vfio-early.conf");
            },
            "/etc/vfio-early.conf: cannot be read: not a regular file",
        ),
        (
            "config is a symlink loop",
            &|t| {
                t.symlink("etc/vfio-early.conf", "vfio-early.conf");
            },
            "/etc/vfio-early.conf: cannot be read: Too many levels of symbolic links",
        ),
        (
            "a directory named .conf in cmdline.d",
            &|t| {
                t.mkdir("etc/cmdline.d/50-dir.conf");
            },
            "/etc/cmdline.d/50-dir.conf: cannot be read: not a regular file",
        ),
        (
            "devices= alone",
            &|t| {
                t.cmdline("vfio-early.devices= 01:00.0");
            },
            "kernel command line: devices= lists no device",
        ),
        (
            "devices=,,,",
            &|t| {
                t.cmdline("vfio-early.devices=,,,");
            },
            "kernel command line: devices= lists no device",
        ),
        (
            "an empty entry",
            &|t| {
                t.cmdline("vfio-early.devices=01:00.0,,02:00.0");
            },
            "empty entry in the devices list \"01:00.0,,02:00.0\"",
        ),
        (
            "a byte-order mark",
            &|t| {
                t.file("etc/vfio-early.conf", "\u{feff}devices = 01:00.0\n");
            },
            "/etc/vfio-early.conf: starts with a UTF-8 byte-order mark",
        ),
        (
            "function 9",
            &|t| {
                t.cmdline("vfio-early.devices=01:00.9");
            },
            "bad device entry \"01:00.9\": the function (after the dot) must be 0-7",
        ),
    ];
    for (name, setup, needle) in cases {
        let t = twins();
        setup(&t);
        let (code, out) = plan(&t);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(needle), "{name}: want {needle:?} in {out}");
    }
    // The BOM does not swallow the line: its entry still applies.
    let t = twins();
    t.file("etc/vfio-early.conf", "\u{feff}devices = 01:00.0\n");
    let log = boot(&t);
    assert_eq!(taken(&t), ["01:00.0", "01:00.1"], "{log:#?}");
}

#[test]
fn a_malformed_kill_switch_means_off() {
    for (file, cmdline) in [
        ("off = ture\n", "vfio-early.devices=01:00.0"),
        ("devices = 01:00.0\n", "vfio-early.off=ture"),
        ("devices = 01:00.0\n", "vfio-early.off="),
        (
            "devices = 01:00.0\n",
            "vfio-early.off=ture vfio-early.off=0",
        ),
    ] {
        let t = twins();
        t.file("etc/vfio-early.conf", file).cmdline(cmdline);
        let log = boot(&t);
        assert!(taken(&t).is_empty(), "{file} {cmdline}: {log:#?}");
        assert!(
            has(&log, "taken as off (the kill switch fails safe)"),
            "{log:#?}"
        );
    }
}

#[test]
fn a_nbsp_byte_separates_arguments_as_for_the_kernel() {
    let t = twins();
    t.bytes(
        "proc/cmdline",
        b"vfio-early.devices=01:00.0 vfio-early.off\xa0quiet\n",
    );
    let log = boot(&t);
    assert!(taken(&t).is_empty(), "{log:#?}");
    assert!(has(&log, "disabled by vfio-early.off"), "{log:#?}");
}

#[test]
fn fifos_never_block_a_read() {
    for rel in [
        "etc/vfio-early.conf",
        "etc/cmdline.d/10-fifo.conf",
        "etc/modprobe.d/fifo.conf",
        "etc/vfio-early/roms.known",
        "proc/cmdline",
    ] {
        let t = twins();
        if rel != "proc/cmdline" {
            t.cmdline("vfio-early.devices=01:00.0 vfio-early.rom=display");
        }
        let p = t.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let _ = std::fs::remove_file(&p);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
        let (code, _, err) = run(&t, &[]);
        assert_eq!(code, 0, "{rel}: {err}");
        let log = t.kmsg_lines();
        if !rel.contains("modprobe.d") && !rel.contains("roms.known") {
            assert!(has(&log, "not a regular file"), "{rel}: {log:#?}");
        }
    }
}

/// Makes `rel` a FIFO.
fn fifo(t: &FakeTree, rel: &str) {
    let p = t.path(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    let _ = std::fs::remove_file(&p);
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
}

#[test]
fn a_source_that_exists_but_cannot_be_read_binds_nothing() {
    // Each case names a device on a source that reads fine, and makes another source exist
    // but unreadable: what it holds (a kill switch, say) is unknown, so nothing may be bound.
    let cases: &[(&str, &Setup, &str)] = &[
        (
            "config a FIFO",
            &|t| fifo(t, "etc/vfio-early.conf"),
            "/etc/vfio-early.conf: cannot be read: not a regular file",
        ),
        (
            "config a directory",
            &|t| {
                t.mkdir("etc/vfio-early.conf");
            },
            "/etc/vfio-early.conf: cannot be read: not a regular file",
        ),
        (
            "config a symlink loop",
            &|t| {
                t.symlink("etc/vfio-early.conf", "vfio-early.conf");
            },
            "/etc/vfio-early.conf: cannot be read: Too many levels of symbolic links",
        ),
        (
            "config a link to nothing",
            &|t| {
                t.symlink("etc/vfio-early.conf", "/nowhere");
            },
            "/etc/vfio-early.conf: cannot be read: a symbolic link to nothing",
        ),
        (
            "a cmdline.d file a FIFO",
            &|t| fifo(t, "etc/cmdline.d/50-x.conf"),
            "/etc/cmdline.d/50-x.conf: cannot be read: not a regular file",
        ),
        (
            "a cmdline.d file a dangling link",
            &|t| {
                t.mkdir("etc/cmdline.d")
                    .symlink("etc/cmdline.d/50-x.conf", "/nowhere");
            },
            "/etc/cmdline.d/50-x.conf: cannot be read: No such file or directory",
        ),
        (
            "cmdline.d a symlink loop",
            &|t| {
                t.symlink("etc/cmdline.d", "cmdline.d");
            },
            "/etc/cmdline.d/*.conf: cannot be read: Too many levels of symbolic links",
        ),
        (
            "cmdline.d a file",
            &|t| {
                t.file("etc/cmdline.d", "vfio-early.off\n");
            },
            "/etc/cmdline.d/*.conf: cannot be read: Not a directory",
        ),
    ];
    for (name, setup, needle) in cases {
        let t = twins();
        t.cmdline("vfio-early.devices=01:00.0");
        setup(&t);
        let log = boot(&t);
        assert!(taken(&t).is_empty(), "{name}: {:?} {log:#?}", taken(&t));
        assert!(has(&log, needle), "{name}: want {needle:?} in {log:#?}");
        assert!(
            has(&log, "nothing is bound in this boot"),
            "{name}: {log:#?}"
        );
        let state = t.read("run/vfio-early/state.json");
        let named = needle.split(": cannot").next().expect("source");
        assert!(
            state.contains(named) && state.contains("cannot be read"),
            "{name}: {state}"
        );
        let (code, out) = plan(&t);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(needle), "{name}: {out}");
    }
    // /proc/cmdline itself, with the device in the config file.
    for (name, make) in [
        (
            "a FIFO",
            &(|t: &FakeTree| fifo(t, "proc/cmdline")) as &Setup,
        ),
        ("a directory", &|t: &FakeTree| {
            t.remove("proc/cmdline").mkdir("proc/cmdline");
        }),
        ("missing", &|t: &FakeTree| {
            t.remove("proc/cmdline");
        }),
    ] {
        let t = twins();
        t.file("etc/vfio-early.conf", "devices = 01:00.0\n");
        make(&t);
        let log = boot(&t);
        assert!(taken(&t).is_empty(), "/proc/cmdline {name}: {log:#?}");
        assert!(
            has(&log, "kernel command line: cannot be read"),
            "/proc/cmdline {name}: {log:#?}"
        );
        let (code, _) = plan(&t);
        assert_eq!(code, 1, "/proc/cmdline {name}");
    }
}

#[test]
fn a_dry_run_says_would_bind() {
    let t = twins();
    t.cmdline("vfio-early.devices=01:00.0 vfio-early.dry-run");
    let log = boot(&t);
    assert!(taken(&t).is_empty(), "{log:#?}");
    assert!(has(&log, "summary: 2 would bind, 0 refused"), "{log:#?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

    /// Whatever the input, the devices taken are among those the well-formed entries name (with
    /// the display's audio companion), and a cut input or a malformed kill switch takes nothing.
    #[test]
    fn only_well_formed_entries_take_anything(
        picks in proptest::collection::vec(0usize..14, 0..8),
        cut in proptest::bool::ANY,
        in_file in proptest::bool::ANY,
    ) {
        const POOL: [&str; 14] = [
            "vfio-early.devices=01:00.0", "vfio-early.devices=02:00.1", "vfio-early.devices=1234:1111",
            "vfio-early.devices=zz:00.0", "vfio-early.devices=01:00.9", "vfio-early.devices=,,",
            "vfio-early.devices=../../x", "vfio-early.off=ture", "vfio-early.off=0",
            "vfio-early.bogus=1", "vfio-early.group=whole", "\"vfio-early.devices=02:00.0\"",
            "vfio-early.devices=01:00.0@10de:1c03", "quiet",
        ];
        let words: Vec<&str> = picks.iter().map(|&i| POOL[i]).collect();
        let mut line = words.join(" ");
        if cut {
            line = format!("{line} {}", "x".repeat(9000));
        }
        let t = twins();
        if in_file {
            t.file("etc/cmdline.d/50-test.conf", &line);
        } else {
            t.cmdline(&line);
        }
        let log = boot(&t);
        let got = taken(&t);
        // What the well-formed entries can name, with what shares their IOMMU group (the
        // display's audio, or all of it under group=whole): card 1 or card 2, or both by ID.
        let mut allowed: Vec<&str> = Vec::new();
        for w in &words {
            match *w {
                "vfio-early.devices=01:00.0" => allowed.extend(["01:00.0", "01:00.1"]),
                "vfio-early.devices=02:00.1" | "\"vfio-early.devices=02:00.0\"" => {
                    allowed.extend(["02:00.0", "02:00.1"])
                }
                "vfio-early.devices=1234:1111" => allowed.extend(["01:00.0", "01:00.1", "02:00.0", "02:00.1"]),
                _ => {}
            }
        }
        for d in &got {
            proptest::prop_assert!(allowed.contains(&d.as_str()), "{d} taken by {line:?}: {log:#?}");
        }
        if cut || words.contains(&"vfio-early.off=ture") {
            proptest::prop_assert!(got.is_empty(), "{got:?} taken by {line:?}: {log:#?}");
        }
    }
}

/// Runs the binary with stdout on `out` (e.g. /dev/full); returns (exit status, stderr).
fn run_to(t: &FakeTree, args: &[&str], out: Stdio) -> (std::process::ExitStatus, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vfio-early"))
        .arg("--root")
        .arg(&t.root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped())
        .output()
        .expect("run vfio-early");
    (o.status, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn an_output_that_cannot_be_written_is_exit_2_never_a_signal() {
    use std::os::unix::process::ExitStatusExt;
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x10de, 0x1c03, DISPLAY).group(1))
        .cmdline("vfio-early.devices=01:00.0")
        .bytes(
            "vbios.rom",
            &common::rom_image(0x10de, 0x1c03, 0x030000, 2, 0, true),
        );
    // A stored capture, so `rom known` has something to say.
    let data = common::rom_image(0x10de, 0x1c03, 0x030000, 2, 0, true);
    let sha = vfio_early_engine::romstore::sha256_hex(&data);
    let name = format!(
        "var/lib/vfio-early/roms/10de-1c03-0000-0000-{}.rom",
        &sha[..12]
    );
    t.bytes(&name, &data).file(
        &format!("{name}.json"),
        &format!("{{\"sha256\":\"{sha}\"}}\n"),
    );
    let full = || Stdio::from(std::fs::File::create("/dev/full").expect("/dev/full"));
    let rom = t.path("vbios.rom");
    let rom = rom.to_str().unwrap();
    for args in [
        &["--help"][..],
        &["--version"],
        &["plan"],
        &["config"],
        &["rom", "inspect", rom],
        &["rom", "inspect", rom, "--json"],
        &["rom", "known"],
    ] {
        let (status, err) = run_to(&t, args, full());
        assert_eq!(status.signal(), None, "{args:?} died by a signal: {err}");
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
    }
    // A pipe whose reader is gone (`vfio-early plan | true`).
    let (r, w) = nix::unistd::pipe().expect("pipe");
    drop(r);
    let (status, err) = run_to(&t, &["plan"], Stdio::from(w));
    assert_eq!(status.signal(), None, "plan into a closed pipe: {err}");
    assert_eq!(status.code(), Some(2), "{err}");
}

#[test]
fn rom_commands_refuse_what_is_not_a_regular_file() {
    let t = FakeTree::new();
    let fifo = t.path("fifo.rom");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    for input in ["/dev/zero", fifo.to_str().unwrap()] {
        let (code, _, err) = run(&t, &["rom", "inspect", input]);
        assert_eq!(code, 2, "{input}: {err}");
        assert!(err.contains("not a regular file"), "{input}: {err}");
        let out = t.path("out.rom");
        let (code, _, err) = run(&t, &["rom", "clean", input, out.to_str().unwrap()]);
        assert_eq!(code, 2, "{input}: {err}");
        assert!(!out.exists());
    }
}
