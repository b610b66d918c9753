// SPDX-License-Identifier: MIT OR Apache-2.0
//! The split run with the real boot build on fake trees: `fence` returns once the overrides are
//! written while `finish` (a unit, or started by a shell init's hook) loads vfio-pci; `wait`
//! waits for it up to the deadline, stops it past it and records `incomplete`; a pid that is
//! not ours is never signalled; a handoff that does not read is named, never acted on. Real
//! boots: tests/generators (every generator flavour).

mod common;
#[path = "common/exe.rs"]
mod exe;

use std::process::{Command, Stdio};

use common::{Dev, FakeTree};
use exe::has;

fn boot(t: &FakeTree, args: &[&str]) -> (i32, String) {
    let (code, _, err) = exe::run(exe::BOOT, t, args);
    (code, err)
}

/// A display and its audio function in one group; modprobe binds after `delay` seconds.
fn machine(delay: u32, args: &str) -> FakeTree {
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x1234, 0x1111, 0x030000).group(1))
        .device(Dev::new("01:00.1", 0x8086, 0x293e, 0x040300).group(1))
        .modprobe_binds()
        .cmdline(&format!("vfio-early.devices=01:00.0 {args}"));
    let script = t.read("sbin/modprobe");
    let (shebang, body) = script.split_once('\n').unwrap();
    t.script(
        "sbin/modprobe",
        &format!("{shebang}\nsleep {delay}\n{body}"),
    );
    t
}

/// What the shell inits' hooks do: the fence, then `finish` in the background, its pid recorded.
fn hook_fence(t: &FakeTree) {
    let (code, err) = boot(t, &["fence"]);
    assert_eq!(code, 0, "{err}");
    if t.exists("run/vfio-early/handoff") {
        let child = Command::new(exe::BOOT)
            .arg("--root")
            .arg(&t.root)
            .arg("finish")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start finish");
        t.file("run/vfio-early/finish.pid", &format!("{}\n", child.id()));
        // Reaped by a thread, as the init reaps it: a zombie would look alive to `running`.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
    }
}

fn state(t: &FakeTree) -> serde_json::Value {
    serde_json::from_str(&t.read("run/vfio-early/state.json")).expect("state.json is JSON")
}

fn results(t: &FakeTree) -> Vec<String> {
    let s = state(t);
    s["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["bdf"].as_str().unwrap(),
                d["result"].as_str().unwrap()
            )
        })
        .collect()
}

fn pid_of(t: &FakeTree) -> i32 {
    let rec = t.read("run/vfio-early/finish.pid");
    rec.split_whitespace().next().unwrap().parse().unwrap()
}

/// Alive and not a zombie.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn fence_returns_fenced_and_the_rest_reports_before_wait_returns() {
    let t = machine(3, "");
    hook_fence(&t);
    // Returned while modprobe still sleeps: fenced, nothing bound yet, the state says pending.
    assert_eq!(state(&t)["stage"], "pending");
    assert_eq!(
        results(&t),
        ["0000:01:00.0 pending", "0000:01:00.1 pending"]
    );
    assert_eq!(t.override_of("01:00.0").trim(), "vfio-pci");
    assert_eq!(t.driver_of("01:00.0"), None);
    let pid = pid_of(&t);
    assert!(running(pid), "the rest runs in process {pid}");
    assert!(has(&t.kmsg_lines(), "fenced 2 devices in"));

    let (code, err) = boot(&t, &["wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(!running(pid), "wait returned before the rest ended");
    assert_eq!(state(&t)["stage"], "done");
    assert_eq!(results(&t), ["0000:01:00.0 bound", "0000:01:00.1 bound"]);
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
    let log = t.kmsg_lines();
    assert!(
        has(&log, "0000:01:00.0 [1234:1111] display controller (entry 01:00.0): bound to vfio-pci via modprobe"),
        "{log:#?}"
    );
    assert!(
        has(&log, "summary: 2 bound, 0 refused, 0 failed"),
        "{log:#?}"
    );
    assert!(!has(&log, "had not reported"), "{log:#?}");
}

#[test]
fn a_rest_stuck_past_its_deadline_is_stopped_and_recorded_incomplete() {
    // vfio-pci registered: the rest writes drivers_probe, here a FIFO nobody reads, so the
    // write blocks as one stuck in a driver's probe does.
    let t = machine(0, "vfio-early.timeout=1");
    t.driver_registered("vfio-pci");
    let probe = t.path("sys/bus/pci/drivers_probe");
    std::fs::remove_file(&probe).unwrap();
    let made = Command::new("mkfifo").arg(&probe).status().expect("mkfifo");
    assert!(made.success());

    hook_fence(&t);
    let pid = pid_of(&t);
    assert!(running(pid));
    let (code, err) = boot(&t, &["wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(!running(pid), "the stuck rest was stopped");
    let s = state(&t);
    assert_eq!(s["stage"], "incomplete");
    assert_eq!(
        results(&t),
        ["0000:01:00.0 pending", "0000:01:00.1 pending"]
    );
    let log = t.kmsg_lines();
    assert!(
        has(&log, "had not reported by its deadline: stopped before the switch to the real root; 0000:01:00.0 0000:01:00.1 stay fenced"),
        "{log:#?}"
    );
}

#[test]
fn sync_keeps_the_whole_run_before_the_init_goes_on() {
    let t = machine(1, "vfio-early.sync");
    hook_fence(&t);
    assert_eq!(state(&t)["stage"], "done");
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
    assert!(!t.exists("run/vfio-early/handoff"), "nothing handed off");
    let (code, _) = boot(&t, &["wait"]);
    assert_eq!(code, 0);
}

#[test]
fn nothing_to_take_means_nothing_left_for_later() {
    // The only listed device is refused (no IOMMU group): nothing is fenced, nothing forked.
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x1234, 0x1111, 0x030000))
        .cmdline("vfio-early.devices=01:00.0");
    hook_fence(&t);
    assert_eq!(state(&t)["stage"], "done");
    assert_eq!(results(&t), ["0000:01:00.0 refused"]);
    assert!(!t.exists("run/vfio-early/handoff"));
}

#[test]
fn a_systemd_fence_hands_off_and_finish_does_the_rest_once() {
    let t = machine(0, "");
    let (code, err) = boot(&t, &["fence"]);
    assert_eq!(code, 0, "{err}");
    // Nothing started: the unit does the rest.
    assert!(!t.exists("run/vfio-early/finish.pid"));
    assert!(t.exists("run/vfio-early/handoff"));
    assert_eq!(state(&t)["stage"], "pending");
    assert_eq!(t.driver_of("01:00.0"), None);
    // udev between the units: the twin's native driver cannot take the fenced device.
    let (code, err) = boot(&t, &["finish"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(state(&t)["stage"], "done");
    assert_eq!(results(&t), ["0000:01:00.0 bound", "0000:01:00.1 bound"]);
    let log = t.kmsg_lines();
    assert!(
        has(&log, "summary: 2 bound, 0 refused, 0 failed"),
        "{log:#?}"
    );
    // A second start of the unit finds the run done and does nothing.
    let before = t.kmsg_lines().len();
    assert_eq!(boot(&t, &["finish"]).0, 0);
    assert_eq!(t.kmsg_lines().len(), before);
    assert_eq!(
        t.read("modprobe.log").lines().count(),
        1,
        "vfio-pci loaded once"
    );
}

#[test]
fn finish_refuses_changed_settings_and_a_handoff_it_cannot_read() {
    let t = machine(0, "");
    assert_eq!(boot(&t, &["fence"]).0, 0);
    // The command line cannot change, but a cmdline.d file could: the rest does not act on
    // settings other than the fence's.
    t.file("etc/cmdline.d/50-late.conf", "vfio-early.on-fail=fence\n");
    assert_eq!(boot(&t, &["finish"]).0, 0);
    let log = t.kmsg_lines();
    assert!(
        has(&log, "the settings changed since the fence"),
        "{log:#?}"
    );
    assert_eq!(state(&t)["stage"], "incomplete");
    assert!(!t.exists("modprobe.log"), "nothing loaded");
    assert_eq!(t.override_of("01:00.0").trim(), "vfio-pci", "stays fenced");

    // Garbage, a cut file, items the plan lacks: named, marked incomplete, nothing written.
    for garbage in [
        "".to_string(),
        "vfio-early handoff 1\nstart 1\n".to_string(),
        "vfio-early handoff 1\nstart 1\ndeadline 2\nfenced 40\nstopped 0\nend\n".to_string(),
        "x".repeat(70 * 1024),
    ] {
        let t = machine(0, "");
        assert_eq!(boot(&t, &["fence"]).0, 0);
        t.file("run/vfio-early/handoff", &garbage);
        assert_eq!(boot(&t, &["finish"]).0, 0);
        assert_eq!(state(&t)["stage"], "incomplete", "{:.60}", garbage);
        assert!(
            has(&t.kmsg_lines(), "the rest of this boot's run cannot go on"),
            "{:?}",
            t.kmsg_lines()
        );
        assert!(
            !t.exists("modprobe.log"),
            "nothing loaded on a handoff not read"
        );
        assert_eq!(t.override_of("01:00.0").trim(), "vfio-pci", "stays fenced");
    }
}

#[test]
fn wait_with_no_handoff_garbage_or_a_stranger_pid_never_blocks_or_kills() {
    let t = FakeTree::new();
    // No run in this boot: nothing to say.
    assert_eq!(boot(&t, &["wait"]).0, 0);
    assert!(t.kmsg_lines().is_empty(), "{:?}", t.kmsg_lines());

    // A pending run handed off (nothing spawned), then a pid that is another program's.
    let t = machine(0, "vfio-early.timeout=1");
    assert_eq!(boot(&t, &["fence"]).0, 0);
    let handoff = t.read("run/vfio-early/handoff");
    for garbage in ["", "vfio-early handoff 1\n", "x y\n"] {
        t.file("run/vfio-early/handoff", garbage);
        assert_eq!(boot(&t, &["wait"]).0, 0);
        assert!(
            has(&t.kmsg_lines(), "cannot tell how long to wait"),
            "{garbage:?}: {:?}",
            t.kmsg_lines()
        );
        assert_eq!(state(&t)["stage"], "pending", "garbage changes nothing");
    }
    t.file("run/vfio-early/handoff", &handoff);
    let mut stranger = Command::new("sleep").arg("30").spawn().unwrap();
    t.file("run/vfio-early/finish.pid", &format!("{}\n", stranger.id()));
    assert_eq!(boot(&t, &["wait"]).0, 0);
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "a process that is not ours was signalled"
    );
    stranger.kill().unwrap();
    let _ = stranger.wait();
    assert_eq!(state(&t)["stage"], "incomplete");
    assert!(has(
        &t.kmsg_lines(),
        "0000:01:00.0 0000:01:00.1 stay fenced"
    ));

    // A FIFO for a pid file is not waited on.
    let t = machine(0, "vfio-early.timeout=1");
    assert_eq!(boot(&t, &["fence"]).0, 0);
    let made = Command::new("mkfifo")
        .arg(t.path("run/vfio-early/finish.pid"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    assert_eq!(boot(&t, &["wait"]).0, 0);
    assert_eq!(state(&t)["stage"], "incomplete");
}

#[test]
fn wait_outside_an_initramfs_refuses() {
    let t = FakeTree::new();
    t.remove("etc/initrd-release");
    let (code, _) = boot(&t, &["wait"]);
    assert_eq!(code, 1);
}
