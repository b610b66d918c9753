// SPDX-License-Identifier: MIT OR Apache-2.0
//! The split run with the real boot build on fake trees (issue 26): `fence` returns once the
//! overrides are written, having started `finish` with the run's lock (shell inits) or left it
//! to the unit (`fence --unit`); `finish` acts on the handoff whatever the state file says;
//! `settle` (systemd's ExecStopPost=) and `wait` (shell inits) leave every fenced device on
//! vfio-pci, given back, or fenced on purpose, and name each; one finish at a time; only the
//! settings the plan depends on are compared. Real boots: tests/qemu rows 6*, and
//! tests/generators (every generator flavour).

mod common;
#[path = "common/exe.rs"]
mod exe;

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Dev, FakeTree};
use exe::has;

fn boot(t: &FakeTree, args: &[&str]) -> (i32, String) {
    let (code, _, err) = exe::run(exe::boot_exe(), t, args);
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

/// The settle's last record.
fn settled(t: &FakeTree) -> String {
    t.kmsg_lines()
        .into_iter()
        .rfind(|l| l.contains("settle: fenced devices at the end of the run: "))
        .unwrap_or_else(|| panic!("no settle record: {:#?}", t.kmsg_lines()))
}

#[test]
fn fence_starts_the_rest_and_wait_settles_after_it() {
    let t = machine(3, "");
    let (code, err) = boot(&t, &["fence"]);
    assert_eq!(code, 0, "{err}");
    // Returned while modprobe still sleeps: fenced, nothing bound yet, the state says pending.
    assert_eq!(state(&t)["stage"], "pending");
    assert_eq!(state(&t)["version"], 2);
    assert_eq!(
        results(&t),
        ["0000:01:00.0 pending", "0000:01:00.1 pending"]
    );
    assert_eq!(t.override_of("01:00.0").trim(), "vfio-pci");
    assert_eq!(t.driver_of("01:00.0"), None);
    let pid = pid_of(&t);
    assert!(running(pid), "the fence started the rest as process {pid}");
    let log = t.kmsg_lines();
    assert!(
        has(
            &log,
            "vfio-early: fence: fenced 2 devices (0000:01:00.0, 0000:01:00.1) in"
        ),
        "{log:#?}"
    );

    let (code, err) = boot(&t, &["wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(!running(pid), "wait returned before the rest ended");
    assert_eq!(state(&t)["stage"], "done", "{:#?}", t.kmsg_lines());
    assert_eq!(results(&t), ["0000:01:00.0 bound", "0000:01:00.1 bound"]);
    assert!(t.exists("run/vfio-early/handoff.done"));
    let log = t.kmsg_lines();
    assert!(
        has(&log, "vfio-early: finish: 0000:01:00.0 [1234:1111] display controller (entry 01:00.0): bound to vfio-pci via modprobe"),
        "{log:#?}"
    );
    assert!(
        has(
            &log,
            "vfio-early: finish: summary: 2 bound, 0 refused, 0 failed"
        ),
        "{log:#?}"
    );
    assert!(
        settled(&t).ends_with(
            "fenced devices at the end of the run: 0000:01:00.0 on vfio-pci, 0000:01:00.1 on vfio-pci"
        ),
        "{log:#?}"
    );
    assert!(!has(&log, "did not report"), "{log:#?}");
}

#[test]
fn a_hung_modprobe_past_the_deadline_is_settled_after_it() {
    let t = machine(30, "vfio-early.timeout=1");
    assert_eq!(boot(&t, &["fence"]).0, 0);
    let (code, err) = boot(&t, &["wait"]);
    assert_eq!(code, 0, "{err}");
    // The rest reported "unknown" at its deadline; the settle gave both back.
    let log = t.kmsg_lines();
    assert!(has(&log, "outcome unknown"), "{log:#?}");
    for b in ["01:00.0", "01:00.1"] {
        assert_eq!(t.override_of(b).trim(), "", "{b} given back");
    }
    assert!(
        has(&log, "settle: 0000:01:00.0: not on vfio-pci at the settle: override cleared and re-probed so the host keeps it; now no driver"),
        "{log:#?}"
    );
    assert!(settled(&t).contains("0000:01:00.0 no driver, 0000:01:00.1 no driver"));
    // Rewritten whole from what is known.
    assert_eq!(state(&t)["stage"], "settled");
    assert_eq!(results(&t), ["0000:01:00.0 failed", "0000:01:00.1 failed"]);
}

#[test]
fn a_rest_stuck_past_its_deadline_is_killed_then_settled() {
    // vfio-pci registered: the rest writes drivers_probe, here a FIFO nobody reads, so the
    // write blocks as one stuck in a driver's probe does.
    let t = machine(0, "vfio-early.timeout=1");
    t.driver_registered("vfio-pci");
    let probe = t.path("sys/bus/pci/drivers_probe");
    std::fs::remove_file(&probe).unwrap();
    let made = Command::new("mkfifo").arg(&probe).status().expect("mkfifo");
    assert!(made.success());
    // Once the rest is killed (1 s deadline + 2 s grace), the settle's own probe write needs a
    // reader: it comes well after the kill.
    let fifo = probe.clone();
    let start = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(4500).saturating_sub(start.elapsed()));
        loop {
            let _ = std::fs::read(&fifo);
        }
    });

    assert_eq!(boot(&t, &["fence"]).0, 0);
    let pid = pid_of(&t);
    assert!(running(pid));
    let (code, err) = boot(&t, &["wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(!running(pid), "the stuck rest was stopped");
    let log = t.kmsg_lines();
    assert!(
        has(
            &log,
            "had not reported by its deadline: stopped before the switch to the real root"
        ),
        "{log:#?}"
    );
    assert!(
        has(&log, "the rest of this boot's run did not report: settling the 2 devices the fence took (0000:01:00.0, 0000:01:00.1, on-fail=release)"),
        "{log:#?}"
    );
    assert_eq!(t.override_of("01:00.0").trim(), "", "given back");
    assert_eq!(state(&t)["stage"], "settled");
}

#[test]
fn an_unwritable_state_file_stops_nothing_and_the_log_tells_it_all() {
    // A directory where the state file goes (as a full /run would refuse it).
    let t = machine(0, "");
    t.mkdir("run/vfio-early/state.json");
    assert_eq!(boot(&t, &["fence"]).0, 0);
    assert_eq!(boot(&t, &["wait"]).0, 0);
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(t.driver_of("01:00.1").as_deref(), Some("vfio-pci"));
    let log = t.kmsg_lines();
    assert!(has(&log, "state file not written"), "{log:#?}");
    assert!(has(&log, "finish: summary: 2 bound"), "{log:#?}");
    assert!(settled(&t).contains("0000:01:00.0 on vfio-pci, 0000:01:00.1 on vfio-pci"));
    // The host's status, with no state file to read, still names what the fence took.
    let (_, out, err) = exe::run(exe::HOST, &t, &["status"]);
    assert!(
        (out.clone() + &err).contains("the split run's handoff names the fenced devices: 0000:01:00.0, 0000:01:00.1 (the rest of the run reported"),
        "{out}{err}"
    );
}

#[test]
fn the_host_reads_a_handoff_an_older_release_wrote() {
    let t = machine(0, "");
    t.file(
        "run/vfio-early/handoff",
        "vfio-early handoff 1\nstart 5\ndeadline 9\ninputs 1f\niommu 1\nfenced 0\n\
         fenced-bdfs 0000:01:00.0 0000:01:00.1\nstopped 0\nend\n",
    );
    let (_, out, err) = exe::run(exe::HOST, &t, &["status"]);
    assert!(
        (out.clone() + &err).contains("the split run's handoff names the fenced devices: 0000:01:00.0, 0000:01:00.1 (the rest of the run did not report"),
        "{out}{err}"
    );
}

#[test]
fn sync_keeps_the_whole_run_before_the_init_goes_on() {
    let t = machine(1, "vfio-early.sync");
    assert_eq!(boot(&t, &["fence"]).0, 0);
    assert_eq!(state(&t)["stage"], "done");
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
    assert!(!t.exists("run/vfio-early/handoff"), "nothing handed off");
    assert!(!t.exists("run/vfio-early/finish.pid"), "nothing started");
    let (code, _) = boot(&t, &["wait"]);
    assert_eq!(code, 0);
}

#[test]
fn nothing_to_take_means_nothing_left_for_later() {
    // The only listed device is refused (no IOMMU group): nothing is fenced, nothing started.
    let t = FakeTree::new();
    t.device(Dev::new("01:00.0", 0x1234, 0x1111, 0x030000))
        .cmdline("vfio-early.devices=01:00.0");
    assert_eq!(boot(&t, &["fence"]).0, 0);
    assert_eq!(state(&t)["stage"], "done");
    assert_eq!(results(&t), ["0000:01:00.0 refused"]);
    assert!(!t.exists("run/vfio-early/handoff"));
}

#[test]
fn a_unit_fence_leaves_the_rest_to_the_unit_and_the_settle_is_idempotent() {
    let t = machine(0, "");
    let (code, err) = boot(&t, &["fence", "--unit"]);
    assert_eq!(code, 0, "{err}");
    // Nothing started: the unit does the rest.
    assert!(!t.exists("run/vfio-early/finish.pid"));
    assert!(t.exists("run/vfio-early/handoff"));
    assert_eq!(state(&t)["stage"], "pending");
    let (code, err) = boot(&t, &["finish"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(state(&t)["stage"], "done");
    assert_eq!(results(&t), ["0000:01:00.0 bound", "0000:01:00.1 bound"]);
    // A second start of the unit finds the run done and does nothing.
    let before = t.kmsg_lines().len();
    assert_eq!(boot(&t, &["finish"]).0, 0);
    assert_eq!(t.kmsg_lines().len(), before);
    // ExecStopPost=, after the unit and again when it is stopped: the same answer, no change.
    let doc = t.read("run/vfio-early/state.json");
    for _ in 0..2 {
        assert_eq!(boot(&t, &["settle"]).0, 0);
        assert!(settled(&t).ends_with("0000:01:00.0 on vfio-pci, 0000:01:00.1 on vfio-pci"));
        assert_eq!(t.read("run/vfio-early/state.json"), doc);
    }
    assert_eq!(
        t.read("modprobe.log").lines().count(),
        1,
        "vfio-pci loaded once"
    );
}

#[test]
fn two_finishes_at_once_take_turns() {
    let t = machine(1, "");
    assert_eq!(boot(&t, &["fence", "--unit"]).0, 0);
    let start = || {
        Command::new(exe::boot_exe())
            .arg("--root")
            .arg(&t.root)
            .arg("finish")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start finish")
    };
    let (mut a, mut b) = (start(), start());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    assert_eq!(t.driver_of("01:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(t.driver_of("01:00.1").as_deref(), Some("vfio-pci"));
    let log = t.kmsg_lines();
    let summaries = log
        .iter()
        .filter(|l| l.contains("finish: summary:"))
        .count();
    assert_eq!(
        summaries, 1,
        "one rest ran, the other found it done: {log:#?}"
    );
    assert_eq!(
        t.read("modprobe.log").lines().count(),
        1,
        "vfio-pci loaded once"
    );
}

#[test]
fn finish_compares_only_the_settings_the_plan_depends_on() {
    // Another dracut module's cmdline.d file between the phases (rd.neednet, ip=): bound.
    let t = machine(0, "");
    assert_eq!(boot(&t, &["fence", "--unit"]).0, 0);
    t.file("etc/cmdline.d/99-other.conf", "rd.neednet=1 ip=dhcp\n");
    assert_eq!(boot(&t, &["finish"]).0, 0);
    assert_eq!(results(&t), ["0000:01:00.0 bound", "0000:01:00.1 bound"]);

    // A vfio-early setting that changes the plan: refused, and settled at once (the fence's
    // on-fail, release: given back), the state rewritten whole over whatever it held.
    let t = machine(0, "");
    assert_eq!(boot(&t, &["fence", "--unit"]).0, 0);
    t.file("etc/cmdline.d/50-late.conf", "vfio-early.on-fail=fence\n");
    t.file(
        "run/vfio-early/state.json",
        "{\"version\":1,\"stage\":\"pend",
    );
    assert_eq!(boot(&t, &["finish"]).0, 0);
    let log = t.kmsg_lines();
    assert!(
        has(
            &log,
            "finish: /run/vfio-early/handoff: the vfio-early settings changed since the fence"
        ),
        "{log:#?}"
    );
    assert!(!t.exists("modprobe.log"), "nothing loaded");
    assert_eq!(t.override_of("01:00.0").trim(), "", "given back");
    assert_eq!(state(&t)["stage"], "settled");
    assert_eq!(results(&t), ["0000:01:00.0 failed", "0000:01:00.1 failed"]);
    assert!(settled(&t).contains("0000:01:00.0 no driver"));

    // The fence asked on-fail=fence: kept fenced on purpose, and named.
    let t = machine(0, "vfio-early.on-fail=fence");
    assert_eq!(boot(&t, &["fence", "--unit"]).0, 0);
    t.file("etc/cmdline.d/50-late.conf", "vfio-early.devices=01:00.1\n");
    assert_eq!(boot(&t, &["finish"]).0, 0);
    assert_eq!(
        t.override_of("01:00.0").trim(),
        "vfio-pci",
        "fenced on purpose"
    );
    assert!(
        has(&t.kmsg_lines(), "settle: 0000:01:00.0: not on vfio-pci at the settle: left fenced (vfio-early.on-fail=fence); now no driver"),
        "{:#?}",
        t.kmsg_lines()
    );
}

#[test]
fn a_handoff_that_does_not_read_names_the_fenced_devices_and_touches_nothing() {
    for garbage in [
        "".to_string(),
        "vfio-early handoff 2\nstart 1\n".to_string(),
        "vfio-early handoff 2\nstart 1\ndeadline 2\nfenced 40\nstopped 0\nend\n".to_string(),
        "vfio-early handoff 7\nend\n".to_string(),
        "x".repeat(70 * 1024),
    ] {
        let t = machine(0, "");
        assert_eq!(boot(&t, &["fence", "--unit"]).0, 0);
        t.file("run/vfio-early/handoff", &garbage);
        assert_eq!(boot(&t, &["finish"]).0, 0);
        let log = t.kmsg_lines();
        let rec = log.iter().find(|l| {
            l.contains("which devices the fence took is not known; fenced with no driver now: ")
        });
        assert!(
            rec.is_some_and(|r| r.contains("0000:01:00.0") && r.contains("0000:01:00.1")),
            "{:.60}: {log:#?}",
            garbage
        );
        assert!(
            !t.exists("modprobe.log"),
            "nothing loaded on a handoff not read"
        );
        assert_eq!(t.override_of("01:00.0").trim(), "vfio-pci", "left as it is");
    }
}

#[test]
fn wait_never_waits_past_its_bound_nor_signals_a_stranger() {
    let t = FakeTree::new();
    // No run in this boot: nothing to say.
    assert_eq!(boot(&t, &["wait"]).0, 0);
    assert!(t.kmsg_lines().is_empty(), "{:?}", t.kmsg_lines());

    // A lock someone else holds past the deadline, and a pid that is another program's.
    let t = machine(0, "vfio-early.timeout=1");
    assert_eq!(boot(&t, &["fence", "--unit"]).0, 0);
    let dir = std::fs::File::open(t.path("run/vfio-early")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { nix::libc::flock(dir.as_raw_fd(), nix::libc::LOCK_EX) },
        0
    );
    let mut stranger = Command::new("sleep").arg("30").spawn().unwrap();
    t.file("run/vfio-early/finish.pid", &format!("{}\n", stranger.id()));
    // Returns (exe::run's guard fails a wait that does not): the deadline and the grace.
    assert_eq!(boot(&t, &["wait"]).0, 0);
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "a process that is not ours was signalled"
    );
    stranger.kill().unwrap();
    let _ = stranger.wait();
    assert!(
        has(&t.kmsg_lines(), "could not be stopped: the fenced devices (0000:01:00.0, 0000:01:00.1) are left as they are"),
        "{:#?}",
        t.kmsg_lines()
    );
    assert_eq!(
        t.override_of("01:00.0").trim(),
        "vfio-pci",
        "nothing written under another's lock"
    );
    drop(dir);

    // A FIFO for a pid file is not waited on.
    let t = machine(0, "vfio-early.timeout=1");
    assert_eq!(boot(&t, &["fence", "--unit"]).0, 0);
    let made = Command::new("mkfifo")
        .arg(t.path("run/vfio-early/finish.pid"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    assert_eq!(boot(&t, &["wait"]).0, 0);
    // No rest ran (a unit fence, no unit): the settle stood in for it.
    assert_eq!(state(&t)["stage"], "settled");
}

#[test]
fn wait_outside_an_initramfs_refuses() {
    let t = FakeTree::new();
    t.remove("etc/initrd-release");
    let (code, _) = boot(&t, &["wait"]);
    assert_eq!(code, 1);
}
