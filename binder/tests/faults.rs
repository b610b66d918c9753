// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fault injection: a simulated kernel over a fake tree that fails the Nth write or modprobe
//! (ENODEV, EBUSY, EINVAL, EIO, ENOSPC) or blocks it past the deadline, at every position of a
//! run, on generated machines and plans. Each device must end where the run says it left it,
//! and only in a place the rules allow: on vfio-pci; back with the host; fenced only under
//! `on-fail=fence`; "unknown" only after a hung modprobe. Half the machines run split (`fence`):
//! between the phases udev loads every native driver, which takes every free device that is not
//! fenced, and the state file says `pending`. A rest from the handoff may be killed at any of its
//! calls (a panic unwound to the caller: the process ends, its lock goes with it), the state
//! file may be unwritable (a directory in its place), and the settle always follows, as systemd's
//! `ExecStopPost=` and the shell inits' `wait` run it: afterwards every device the fence took
//! is on vfio-pci, given back, or fenced on purpose (`on-fail=fence`), and the settle's last
//! record names each with its driver. What the kernel really does is proven by the QEMU
//! fault matrix (tests/qemu, rows 30* and 6*).

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{full_bdf, Dev, FakeTree};
use proptest::prelude::*;
use vfio_early_engine::apply::{Kernel, ModprobeError};
use vfio_early_engine::options::{Mode, Options};
use vfio_early_engine::split;
use vfio_early_engine::split::Rest;
use vfio_early_system::files::Dir;

/// The logger is process-wide: one run at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Errno(i32),
    /// The call takes effect, but returns after the deadline (a write stuck in a probe, a
    /// modprobe still running).
    Block,
    /// The rest from the handoff is killed before the call (machines with a handoff only).
    Kill,
}

/// What a killed rest unwinds with.
const KILLED: &str = "vfio-early finish killed (fault injection)";

const FAULTS: [Fault; 6] = [
    Fault::Errno(19), // ENODEV
    Fault::Errno(16), // EBUSY
    Fault::Errno(22), // EINVAL
    Fault::Errno(5),  // EIO
    Fault::Errno(28), // ENOSPC
    Fault::Block,
];

/// One device of the simulated machine: the driver it would get from the host.
#[derive(Clone, Debug)]
struct SimDev {
    native: &'static str,
    /// The native driver is loaded (registered), so a probe can bind it.
    native_loaded: bool,
}

/// The kernel, as far as binding goes: driver_override, unbind, drivers_probe and vfio-pci's
/// module init, all on the fake tree (so the binder's own reads see the truth).
struct Sim<'a> {
    tree: &'a FakeTree,
    devs: BTreeMap<String, SimDev>,
    /// Calls so far, and the one to fail.
    calls: usize,
    fault_at: Option<usize>,
    fault: Fault,
    /// What the fault hit: "write PATH VALUE" or "modprobe".
    hit: Option<String>,
    skew: Cell<Duration>,
    deadline: Duration,
    /// The rest from the handoff is running (a kill applies only there).
    in_finish: bool,
}

impl Sim<'_> {
    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.tree.root)
            .unwrap_or(path)
            .to_path_buf()
    }

    /// Counts a call; returns the fault to apply to it, if this is the one.
    fn next(&mut self, what: String) -> Option<Fault> {
        let n = self.calls;
        self.calls += 1;
        if self.fault_at == Some(n) {
            if self.fault == Fault::Kill {
                if !self.in_finish {
                    return None;
                }
                self.hit = Some(what);
                self.fault_at = None;
                std::panic::panic_any(KILLED);
            }
            self.hit = Some(what);
            if self.fault == Fault::Block {
                self.skew.set(self.deadline + Duration::from_secs(1));
            }
            return Some(self.fault);
        }
        None
    }

    fn probe(&self, bdf: &str) {
        if self.tree.driver_of(bdf).is_some() {
            return;
        }
        let o = self.tree.override_of(bdf);
        let o = o.trim_end();
        let vfio_loaded = self.tree.exists("sys/bus/pci/drivers/vfio-pci");
        let dev = &self.devs[bdf];
        if o == "vfio-pci" {
            if vfio_loaded {
                self.tree.set_driver(bdf, Some("vfio-pci"));
            }
        } else if dev.native_loaded {
            self.tree.set_driver(bdf, Some(dev.native));
        }
    }
}

impl Kernel for Sim<'_> {
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let rel = self.rel(path);
        let fault = self.next(format!("write {} {value:?}", rel.display()));
        if let Some(Fault::Errno(e)) = fault {
            return Err(io::Error::from_raw_os_error(e));
        }
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        match parts.as_slice() {
            ["sys", "bus", "pci", "drivers_probe"] => self.probe(value.trim()),
            ["sys", "bus", "pci", "devices", bdf, "driver_override"] => {
                let v = value.trim_end_matches('\n');
                let shown = if v.is_empty() { "(null)" } else { v };
                self.tree.file(
                    &format!("sys/bus/pci/devices/{bdf}/driver_override"),
                    &format!("{shown}\n"),
                );
            }
            ["sys", "bus", "pci", "devices", bdf, "driver", "unbind"] => {
                assert_eq!(value, *bdf, "unbind names the device itself");
                self.tree.set_driver(bdf, None);
            }
            other => panic!("unexpected write {other:?} <- {value:?}"),
        }
        Ok(())
    }

    fn modprobe(
        &mut self,
        module: &str,
        _until: Instant,
        _log: Option<&Dir>,
    ) -> Result<(), ModprobeError> {
        assert_eq!(module, "vfio-pci");
        match self.next("modprobe".into()) {
            Some(Fault::Errno(e)) => {
                let msg = format!("modprobe: exit 1 ({})", io::Error::from_raw_os_error(e));
                return Err(ModprobeError::Failed(
                    msg.as_str().try_into().unwrap_or_default(),
                ));
            }
            // Hung inside module init, before it bound anything.
            Some(Fault::Block) => return Err(ModprobeError::StillRunning),
            // `next` unwinds instead of returning a kill.
            Some(Fault::Kill) | None => {}
        }
        self.tree.vfio_pci_init();
        Ok(())
    }

    fn now(&self) -> Instant {
        Instant::now() + self.skew.get()
    }
}

/// A generated machine: cards of display + audio (+ USB), each in its own group.
#[derive(Clone, Debug)]
struct Machine {
    cards: Vec<Card>,
    group_whole: bool,
    fence: bool,
    vfio_loaded: bool,
    /// `vfio-early fence`: udev runs between the phases.
    split: bool,
    /// ...and the rest is `vfio-early finish`, from the fence's handoff.
    handoff: bool,
    /// A directory where the state file goes: no state file is ever written.
    state_ro: bool,
}

#[derive(Clone, Debug)]
struct Card {
    display_bound: bool,
    audio_bound: bool,
    usb: bool,
    natives_loaded: bool,
    listed: bool,
    unbind: bool,
}

fn card() -> impl Strategy<Value = Card> {
    (any::<[bool; 6]>()).prop_map(|b| Card {
        display_bound: b[0],
        audio_bound: b[1],
        usb: b[2],
        natives_loaded: b[3],
        listed: b[4] || !(b[0] || b[1]),
        unbind: b[5],
    })
}

fn machine() -> impl Strategy<Value = Machine> {
    (prop::collection::vec(card(), 1..=3), any::<[bool; 6]>()).prop_map(|(cards, b)| Machine {
        cards,
        group_whole: b[0],
        fence: b[1],
        vfio_loaded: b[2],
        split: b[3],
        handoff: b[3] && b[4],
        state_ro: b[3] && b[4] && b[5],
    })
}

/// Builds the machine; returns the tree and the simulated devices.
fn build(m: &Machine) -> (FakeTree, BTreeMap<String, SimDev>) {
    // Thousands of trees: on a tmpfs when there is one (the state file is fsynced).
    let t = FakeTree::new_in(Path::new("/dev/shm"));
    t.file("proc/sys/kernel/printk_devkmsg", "on\n");
    let mut devs = BTreeMap::new();
    let mut entries = Vec::new();
    for (n, c) in m.cards.iter().enumerate() {
        let bus = n + 1;
        let group = bus as u32;
        let fns: [(u8, u32, &'static str, bool); 3] = [
            (0, 0x030000, "bochs-drm", c.display_bound),
            (1, 0x040300, "snd_hda_intel", c.audio_bound),
            (2, 0x0c0330, "xhci_hcd", false),
        ];
        for (f, class, native, bound) in fns {
            if f == 2 && !c.usb {
                continue;
            }
            let bdf = format!("{bus:02x}:00.{f}");
            let mut d = Dev::new(&bdf, 0x1234, 0x1110 + f as u16, class).group(group);
            if bound {
                d = d.driver(native);
            }
            t.device(d);
            devs.insert(
                full_bdf(&bdf),
                SimDev {
                    native,
                    native_loaded: bound || c.natives_loaded,
                },
            );
            if c.natives_loaded {
                t.driver_registered(native);
            }
        }
        if c.listed {
            entries.push(format!(
                "{bus:02x}:00.0{}",
                if c.unbind { "+unbind" } else { "" }
            ));
        }
    }
    if m.vfio_loaded {
        t.driver_registered("vfio-pci");
    }
    if m.state_ro {
        t.mkdir("run/vfio-early/state.json");
    }
    t.cmdline(&format!(
        "vfio-early.devices={} vfio-early.group={} vfio-early.on-fail={} vfio-early.timeout=5",
        entries.join(","),
        if m.group_whole { "whole" } else { "companions" },
        if m.fence { "fence" } else { "release" },
    ));
    (t, devs)
}

/// udev's coldplug between the phases: every native module loads, and its driver takes every
/// device with no driver whose override does not name another (a fenced one stays fenced).
fn udev(sim: &mut Sim<'_>) {
    for (bdf, dev) in sim.devs.iter_mut() {
        dev.native_loaded = true;
        sim.tree.driver_registered(dev.native);
        let o = sim.tree.override_of(bdf);
        if sim.tree.driver_of(bdf).is_none() && o.trim_end() != "vfio-pci" {
            sim.tree.set_driver(bdf, Some(dev.native));
        }
    }
}

/// What one device looks like after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
struct End {
    driver: Option<String>,
    fenced: bool,
}

fn end(t: &FakeTree, bdf: &str) -> End {
    End {
        driver: t.driver_of(bdf),
        fenced: t.override_of(bdf).trim_end() == "vfio-pci",
    }
}

/// What one run did.
struct Ran {
    /// The rest was killed, and the settle stood in for it.
    killed: bool,
    calls: usize,
    devices: usize,
    not_bound: usize,
}

/// One run with a fault at call `at` (or none).
fn run_once(m: &Machine, at: Option<usize>, fault: Fault) -> Result<Ran, TestCaseError> {
    let (t, devs) = build(m);
    let before: BTreeMap<String, End> = devs.keys().map(|b| (b.clone(), end(&t, b))).collect();
    let mut sim = Sim {
        tree: &t,
        devs: devs.clone(),
        calls: 0,
        fault_at: at,
        fault,
        hit: None,
        skew: Cell::new(Duration::ZERO),
        deadline: Duration::from_secs(5),
        in_finish: false,
    };
    let opts = Options {
        root: t.root.clone(),
        mode: Mode::Boot,
        cmdline: None,
        split: m.split,
        finish_unit: true,
    };
    // Between the phases: what the state file said, and every device as udev left it.
    let mut between = None;
    let code = {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        vfio_early_engine::boot::run_split_with(&opts, &mut sim, |sim, pending| {
            let state = if m.state_ro {
                String::new()
            } else {
                t.read("run/vfio-early/state.json")
            };
            let fenced: Vec<String> = pending.fenced.iter().map(|b| b.to_string()).collect();
            udev(sim);
            let ends: BTreeMap<String, End> =
                devs.keys().map(|b| (b.clone(), end(&t, b))).collect();
            between = Some((state, fenced, ends));
            if m.handoff {
                let h = pending
                    .handoff()
                    .expect("every fake tree's state fits a handoff");
                t.file("run/vfio-early/handoff", &h);
                Rest::Elsewhere
            } else {
                Rest::Here
            }
        })
    };
    // The rest from the handoff, in another "process" on the same kernel (killed, maybe), then
    // the settle, as whatever started the rest runs it.
    let mut killed = false;
    let handed = m.handoff && t.exists("run/vfio-early/handoff");
    let code = match (code, handed) {
        (0, true) => {
            let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            sim.in_finish = true;
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                split::finish_with(&opts, &mut sim)
            }));
            sim.in_finish = false;
            killed = ran.is_err();
            let code = ran.unwrap_or(0);
            let settled = split::settle_with(&opts, &mut sim);
            code.max(settled)
        }
        (code, _) => code,
    };
    let ctx = format!(
        "machine {m:?}, fault {fault:?} at {at:?} hit {:?} killed {killed}",
        sim.hit
    );
    prop_assert_eq!(code, 0, "boot mode exits 0; {}", ctx);
    let log = t.kmsg_lines();
    // Every device the fence took: named by the settle's last record with its driver now, and
    // never fenced with no driver unless on-fail=fence asks.
    if handed {
        let fenced = between.as_ref().map(|b| b.1.clone()).unwrap_or_default();
        let last = log
            .iter()
            .rfind(|l| l.contains("settle: fenced devices at the end of the run: "))
            .cloned();
        let Some(last) = last else {
            return Err(TestCaseError::fail(format!(
                "no settle record: {log:#?}; {ctx}"
            )));
        };
        for bdf in &fenced {
            let now = end(&t, bdf);
            let said = match &now.driver {
                Some(d) => format!("{bdf} on {d}"),
                None => format!("{bdf} no driver"),
            };
            prop_assert!(
                last.contains(&said),
                "{} not named as {:?}: {}; {}",
                bdf,
                said,
                last,
                ctx
            );
            prop_assert!(
                !(now.fenced && now.driver.is_none()) || m.fence,
                "{} fenced with no driver after the settle; {}",
                bdf,
                ctx
            );
        }
    }
    if m.state_ro {
        prop_assert!(
            t.path("run/vfio-early/state.json").is_dir(),
            "the directory in the state file's place stays; {}",
            ctx
        );
        return Ok(Ran {
            killed,
            calls: sim.calls,
            devices: 0,
            not_bound: 0,
        });
    }
    let state: serde_json::Value = serde_json::from_str(&t.read("run/vfio-early/state.json"))
        .map_err(|e| TestCaseError::fail(format!("state.json: {e}; {ctx}")))?;
    // A settle that stood in for the rest (or changed what it left) rewrote the file whole.
    let stage = state["stage"].as_str().unwrap_or("");
    prop_assert!(
        stage == "done" || (handed && stage == "settled"),
        "stage {}; {}",
        stage,
        ctx
    );
    prop_assert!(
        !killed || stage == "settled",
        "killed but {}; {}",
        stage,
        ctx
    );
    // What no write of ours touched ends as udev left it in a split run.
    let mut untouched = before.clone();
    if let Some((doc, fenced, ends)) = &between {
        prop_assert!(m.split, "a handover without a split; {}", ctx);
        let doc: serde_json::Value = serde_json::from_str(doc)
            .map_err(|e| TestCaseError::fail(format!("pending state.json: {e}; {ctx}")))?;
        prop_assert_eq!(&doc["stage"], "pending", "{}", ctx);
        let empty = Vec::new();
        for d in doc["devices"].as_array().unwrap_or(&empty) {
            let fenced_here = fenced.iter().any(|b| d["bdf"] == b.as_str());
            prop_assert_eq!(
                d["result"] == "pending",
                fenced_here,
                "pending record {:?}; {}",
                d,
                ctx
            );
        }
        untouched = ends.iter().map(|(b, e)| (b.clone(), e.clone())).collect();
    }
    let hung = sim.hit.as_deref() == Some("modprobe") && fault == Fault::Block;
    let blocked = sim.hit.is_some() && fault == Fault::Block;
    let empty = Vec::new();
    let listed = state["devices"].as_array().unwrap_or(&empty);
    for (bdf, was) in &untouched {
        let now = end(&t, bdf);
        let rec = listed.iter().find(|d| d["bdf"] == bdf.as_str());
        let Some(rec) = rec else {
            // Not in the plan: never touched.
            prop_assert_eq!(&now, was, "{} not planned but changed; {}", bdf, ctx);
            continue;
        };
        let result = rec["result"].as_str().unwrap_or("");
        let left = rec["left"].as_str().unwrap_or("");
        let detail = rec["detail"].as_str().unwrap_or("");
        // The log says the same as the state file (a settled one: the settle's records do).
        prop_assert!(
            stage == "settled"
                || log
                    .iter()
                    .any(|l| l.contains(bdf.as_str()) && l.ends_with(detail)),
            "{} log does not say {:?}: {:#?}; {}",
            bdf,
            detail,
            log,
            ctx
        );
        // ...and says where it is now.
        prop_assert_eq!(
            rec["driver_now"].as_str().unwrap_or("?"),
            now.driver.as_deref().unwrap_or(""),
            "{} driver_now; {}",
            bdf,
            ctx
        );
        let vfio = now.driver.as_deref() == Some("vfio-pci");
        match result {
            "bound" | "already" => prop_assert!(vfio, "{} said bound: {:?}; {}", bdf, now, ctx),
            "refused" => prop_assert_eq!(&now, was, "{} refused but changed; {}", bdf, ctx),
            "unknown" => {
                prop_assert!(hung, "{} unknown without a hung modprobe; {}", bdf, ctx);
                prop_assert!(!vfio, "{} unknown but on vfio-pci; {}", bdf, ctx);
            }
            "not-done" => {
                prop_assert!(blocked, "{} not done without a block; {}", bdf, ctx);
                prop_assert_eq!(&now, was, "{} not done but changed; {}", bdf, ctx);
            }
            "failed" => {
                prop_assert!(
                    !vfio || left == "stuck",
                    "{} failed on vfio-pci; {}",
                    bdf,
                    ctx
                );
                match left {
                    "untouched" => {
                        prop_assert_eq!(&now, was, "{} untouched but changed; {}", bdf, ctx)
                    }
                    "released" | "released-unprobed" => {
                        prop_assert!(!now.fenced, "{} released but fenced; {}", bdf, ctx)
                    }
                    "fenced" => {
                        prop_assert!(m.fence && now.fenced, "{} fenced: {:?}; {}", bdf, now, ctx)
                    }
                    "stuck" => {
                        let hit = sim.hit.as_deref().unwrap_or("");
                        let give_back = hit.ends_with("driver_override \"\\n\"")
                            || (hit.contains("/driver/unbind") && sim.fault != Fault::Block);
                        prop_assert!(
                            give_back,
                            "{} stuck without a failed give-back; {}",
                            bdf,
                            ctx
                        );
                    }
                    "deadline" => {
                        prop_assert!(blocked, "{} deadline without a block; {}", bdf, ctx)
                    }
                    other => prop_assert!(false, "{} left {:?}; {}", bdf, other, ctx),
                }
            }
            other => prop_assert!(false, "{} result {:?}; {}", bdf, other, ctx),
        }
        // What follows a display goes back with it when the display was not bound.
        let why = rec["why"].as_str().unwrap_or("");
        let lead = why.rsplit(' ').next().filter(|_| why.contains(" of "));
        if let (Some(lead), false, false) = (lead, m.fence, blocked) {
            let lead_rec = listed.iter().find(|d| d["bdf"] == lead);
            let lead_result = lead_rec.map_or("", |d| d["result"].as_str().unwrap_or(""));
            if lead_result == "failed" {
                prop_assert!(
                    !vfio,
                    "{} stays on vfio-pci although {} failed; {}",
                    bdf,
                    lead,
                    ctx
                );
            }
        }
        // Never stranded: fenced with no driver only where the rules allow it.
        if now.fenced && now.driver.is_none() {
            let allowed = (m.fence && result == "failed")
                || matches!(left, "stuck" | "deadline")
                || result == "unknown";
            prop_assert!(allowed, "{} stranded ({} {}); {}", bdf, result, left, ctx);
        }
        // A device that was free or on its native driver and is not bound now is back with
        // the host, unless a fault or the rules say otherwise.
        if result == "failed" && left == "released" {
            // In a split run udev loaded every native driver before the release.
            let native = &sim.devs[bdf];
            if native.native_loaded {
                prop_assert_eq!(
                    now.driver.as_deref(),
                    Some(native.native),
                    "{} released but not re-probed; {}",
                    bdf,
                    ctx
                );
            }
        }
    }
    let not_bound = listed
        .iter()
        .filter(|d| {
            matches!(
                d["result"].as_str(),
                Some("failed" | "unknown" | "not-done")
            )
        })
        .count();
    Ok(Ran {
        killed,
        calls: sim.calls,
        devices: listed.len(),
        not_bound,
    })
}

/// Every position of a run, every fault, on generated machines; prints the figures the README
/// quotes.
#[test]
fn a_fault_at_any_call_never_strands_a_device() {
    // A killed rest unwinds quietly; any other panic still says what it was.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&KILLED) {
            hook(info);
        }
    }));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    let (machines, runs, calls_total) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let (devices, not_bound, split) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let (handoffs, kills, unwritable) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let add = |c: &Cell<usize>, n: usize| c.set(c.get() + n);
    let result = runner.run(&machine(), |m| {
        let clean = run_once(&m, None, Fault::Block)?;
        add(&machines, 1);
        add(&split, usize::from(m.split));
        add(&handoffs, usize::from(m.handoff));
        add(&unwritable, usize::from(m.state_ro));
        add(&runs, 1);
        add(&calls_total, clean.calls);
        let kill = m.handoff.then_some(Fault::Kill);
        for at in 0..clean.calls {
            for fault in FAULTS.into_iter().chain(kill) {
                let r = run_once(&m, Some(at), fault)?;
                add(&runs, 1);
                add(&devices, r.devices);
                add(&not_bound, r.not_bound);
                add(&kills, usize::from(r.killed));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (machines, runs) = (machines.get(), runs.get());
    eprintln!(
        "fault injection: {machines} machines ({} split, udev between the phases, {} of them \
         finished from the handoff, {} with no state file), {runs} runs, {} faults injected \
         (one per run, at each of {} calls x {} kinds, and a kill of the rest at each of its \
         calls: {} rests killed, then settled), {} planned devices checked, {} left off \
         vfio-pci by a fault, none stranded (a stranded device fails the run)",
        split.get(),
        handoffs.get(),
        unwritable.get(),
        runs - machines,
        calls_total.get(),
        FAULTS.len(),
        kills.get(),
        devices.get(),
        not_bound.get(),
    );
    assert!(runs > machines * 4, "faults were injected");
    assert!(
        split.get() > 0 && split.get() < machines,
        "both whole and split runs"
    );
    assert!(
        handoffs.get() > 0 && handoffs.get() < split.get(),
        "split runs finished in the fence's process and from the handoff"
    );
    assert!(kills.get() > 0, "rests were killed");
    assert!(
        unwritable.get() > 0 && unwritable.get() < handoffs.get(),
        "handed-off runs with and without a state file"
    );
}
