// SPDX-License-Identifier: MIT OR Apache-2.0
//! Golden trees, as zram-generator's tests: each `tests/golden/NN-name/` holds a machine and its
//! inputs; `run.expected/` holds everything the commands print and the boot writes, compared
//! whole. A change in any output fails the case with the first differing line.
//!
//! A case directory:
//! - `machine`: one PCI function a line, `BDF VENDOR:DEVICE[:SUBVENDOR:SUBDEVICE] CLASS GROUP
//!   [driver=NAME] [boot-vga]` (GROUP `-`: no IOMMU group), and `module DRIVER MODULE
//!   loadable|builtin` lines (how the kernel holds a driver, for `status`'s "held at boot");
//! - `cmdline`: the kernel command line (optional);
//! - `root/`: files copied into the fake root as they are (`etc/vfio-early.conf`, ...);
//! - `run.expected/`: `plan` (the host build's `plan`), `kmsg`, `sysfs` (each function's
//!   override and driver after the boot build ran), `modprobe.log`, `state.json`, `status`,
//!   `status.json` and `check`, each command's output with its exit code.
//!
//! Regenerate every `run.expected/` after an intended change, then read the diff:
//! `VFIO_EARLY_GOLDEN=regen cargo test --test golden`.

mod common;
#[path = "common/exe.rs"]
mod exe;
#[path = "common/kmod.rs"]
mod kmod;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Dev, FakeTree};

/// The kernel release every case's tree claims to run.
const RELEASE: &str = "6.1.0-golden";

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn hex(s: &str, what: &str) -> u32 {
    u32::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{what} {s:?}: {e}"))
}

/// Builds the case's machine (see the module comment).
fn machine(case: &Path) -> FakeTree {
    let t = FakeTree::new();
    let text = fs::read_to_string(case.join("machine")).expect("case has a machine file");
    let mut modules = Vec::new();
    for line in text.lines().map(str::trim) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [] => {}
            [c, ..] if c.starts_with('#') => {}
            ["module", driver, module, kind] => {
                modules.push((*driver, *module, *kind == "builtin"))
            }
            [bdf, id, class, group, rest @ ..] => {
                let ids: Vec<u16> = id.split(':').map(|x| hex(x, "ID") as u16).collect();
                let mut d = Dev::new(bdf, ids[0], ids[1], hex(class, "class"));
                if let [_, _, sv, sd] = ids.as_slice() {
                    d = d.subsys(*sv, *sd);
                }
                if *group != "-" {
                    d = d.group(group.parse().expect("IOMMU group number"));
                }
                for w in rest {
                    match w.split_once('=') {
                        Some(("driver", name)) => d = d.driver(name),
                        None if *w == "boot-vga" => d = d.boot_vga(true),
                        _ => panic!("{}: unknown word {w:?}", case.display()),
                    }
                }
                t.device(d);
            }
            _ => panic!("{}: bad machine line {line:?}", case.display()),
        }
    }
    for (driver, module, builtin) in modules {
        kmod::driver_module(&t, RELEASE, driver, module, builtin);
    }
    // A host ready but for what the case sets: vfio in the kernel, interrupts remapped.
    t.file("proc/sys/kernel/osrelease", &format!("{RELEASE}\n"))
        .file(
            &format!("lib/modules/{RELEASE}/modules.dep"),
            "kernel/drivers/vfio/vfio.ko.xz:\nkernel/drivers/vfio/pci/vfio-pci.ko.xz:\n",
        )
        .file("proc/interrupts", " 24:  0  IR-PCI-MSI 512000-edge  ahci\n");
    t.modprobe_binds();
    if let Ok(line) = fs::read_to_string(case.join("cmdline")) {
        t.cmdline(line.trim_end());
    }
    copy_tree(&case.join("root"), &t.root);
    t
}

fn copy_tree(from: &Path, to: &Path) {
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    for e in entries {
        let e = e.expect("read case root");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            fs::create_dir_all(&dest).expect("mkdir");
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).expect("copy case file");
        }
    }
}

/// Output that differs between runs made stable: the tree's path, durations, the binary's
/// version.
fn stable(t: &FakeTree, s: &str) -> String {
    let s = s.replace(&t.root.to_string_lossy().into_owned(), "$ROOT");
    let s = s.replace(env!("CARGO_PKG_VERSION"), "$VERSION");
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    // "<digits> ms" and "\"..._ms\": <digits>" carry times.
    while let Some(i) = rest.find(|c: char| c.is_ascii_digit()) {
        let (head, tail) = rest.split_at(i);
        let end = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (num, after) = tail.split_at(end);
        let timed = after.starts_with(" ms") || head.trim_end().ends_with("_ms\":");
        let glued = head.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == ':');
        out.push_str(head);
        out.push_str(if timed && !glued { "N" } else { num });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// JSON pretty-printed (one key a line: diffs that read), anything else as it is.
fn pretty(s: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => serde_json::to_string_pretty(&v).expect("print JSON") + "\n",
        Err(_) => s.to_string(),
    }
}

fn command(exe: &str, t: &FakeTree, args: &[&str]) -> String {
    let (code, out, err) = exe::run(exe, t, args);
    let out = pretty(&out);
    let mut s = format!("$ vfio-early {}\n{out}", args.join(" "));
    if !err.is_empty() {
        s += &format!("--- stderr\n{err}");
    }
    s += &format!("--- exit {code}\n");
    stable(t, &s)
}

/// Everything a case produces, file name -> contents.
fn outputs(case: &Path) -> Vec<(&'static str, String)> {
    let t = machine(case);
    let plan = command(exe::HOST, &t, &["plan"]);
    let (code, _, err) = exe::run(exe::boot_exe(), &t, &[]);
    assert_eq!(code, 0, "{}: the boot build exits 0; {err}", case.display());
    let sysfs: String = t
        .devices()
        .iter()
        .map(|b| {
            let o = t.override_of(b);
            let d = t.driver_of(b).unwrap_or_else(|| "-".into());
            format!("{b} driver_override={} driver={d}\n", o.trim_end())
        })
        .collect();
    vec![
        ("plan", plan),
        ("kmsg", stable(&t, &(t.kmsg_lines().join("\n") + "\n"))),
        ("sysfs", sysfs),
        ("modprobe.log", t.modprobe_log()),
        (
            "state.json",
            stable(&t, &pretty(&t.read("run/vfio-early/state.json"))),
        ),
        ("status", command(exe::HOST, &t, &["status"])),
        ("status.json", command(exe::HOST, &t, &["status", "--json"])),
        ("check", command(exe::HOST, &t, &["check"])),
    ]
}

#[test]
fn every_case_matches_its_expected_tree() {
    let regen = std::env::var("VFIO_EARLY_GOLDEN").is_ok_and(|v| v == "regen");
    let mut dirs: Vec<PathBuf> = fs::read_dir(cases())
        .expect("tests/golden exists")
        .map(|e| e.expect("read tests/golden").path())
        .filter(|p| p.join("machine").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "golden cases missing: {dirs:?}");
    let mut failed = Vec::new();
    for case in &dirs {
        let expected = case.join("run.expected");
        let got = outputs(case);
        if regen {
            let _ = fs::remove_dir_all(&expected);
            fs::create_dir_all(&expected).expect("mkdir run.expected");
            for (name, text) in &got {
                fs::write(expected.join(name), text).expect("write expected");
            }
            continue;
        }
        let mut names: Vec<String> = fs::read_dir(&expected)
            .unwrap_or_else(|e| panic!("{}: {e}", expected.display()))
            .map(|e| e.expect("read").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want: Vec<String> = got.iter().map(|(n, _)| n.to_string()).collect();
        want.sort();
        if names != want {
            failed.push(format!(
                "{}: files {names:?}, made {want:?}",
                case.display()
            ));
        }
        for (name, text) in &got {
            let old = fs::read_to_string(expected.join(name)).unwrap_or_default();
            if let Some((n, (a, b))) = old
                .lines()
                .chain(std::iter::repeat(""))
                .zip(text.lines().chain(std::iter::repeat("")))
                .take(old.lines().count().max(text.lines().count()))
                .enumerate()
                .find(|(_, (a, b))| a != b)
            {
                failed.push(format!(
                    "{}/{name} line {}:\n  expected {a:?}\n  got      {b:?}",
                    case.display(),
                    n + 1
                ));
            } else if old != *text {
                failed.push(format!("{}/{name}: trailing bytes differ", case.display()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} differences (VFIO_EARLY_GOLDEN=regen cargo test --test golden rewrites them; read the diff):\n{}",
        failed.len(),
        failed.join("\n")
    );
}
