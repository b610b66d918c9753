// SPDX-License-Identifier: MIT OR Apache-2.0
//! One run, start to summary: read the settings, scan, plan, act (or not), tell.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{error, info, log, warn, LevelFilter};

use crate::apply::{self, Deadline, Kernel, Outcome, Outcomes, RealKernel};
use crate::config::{InputError, Origin, Problems, RomWant, Settings};
use crate::files::{Dir, Replace};
use crate::kmsg::{self, SUMMARY};
use crate::layout::{CONFIG_FILE, STATE_FILE, STATE_NAME};
use crate::legacy;
use crate::plan::{self, Decision, Plan};
use crate::read::SysError;
use crate::report::{Counts, DeviceReport};
use crate::romread;
use crate::scan;
use crate::state::Json;
use crate::sysfs::{self, Root};
use crate::text::Token;

/// Caps on the input files: a command line is at most a few KiB on every architecture.
pub const CMDLINE_CAP: usize = 8192;
pub const CONFIG_CAP: usize = 16384;
/// dracut's `/etc/cmdline.d/*.conf` files read.
pub const MAX_CMDLINE_D: usize = 16;

/// The state file's schema (docs/interface.md); `bootstate` reads this one and every older one.
pub const STATE_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Act (inside an initramfs only); always exits 0.
    Boot,
    /// Dry run for people: read everything, print the plan, change nothing.
    Plan,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub root: PathBuf,
    pub mode: Mode,
    /// Used instead of `/proc/cmdline` (`plan --cmdline`).
    pub cmdline: Option<String>,
    /// Boot mode, `vfio-early fence`: once every override is written, hand the rest of the
    /// run (load vfio-pci, verify, settle, report) to `vfio-early finish` and return (the
    /// `sync` setting keeps it in this run).
    pub split: bool,
    /// With `split`: the rest is a unit of its own (`fence --unit`, systemd initrds), not a
    /// process the fence starts.
    pub finish_unit: bool,
}

/// Where the rest of a split run goes on after the fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// In this process (a test, or a handoff that could not be written).
    Finish,
    /// Elsewhere: this process is done and the boot goes on.
    Return,
}

/// What the handover knows of a fenced run.
pub struct Pending<'a> {
    /// The run's directory (`/run/vfio-early`).
    pub dir: &'a Dir,
    pub deadline: Deadline,
    /// The addresses fenced, in plan order.
    pub fenced: &'a [crate::pci::Bdf],
    /// [`Input::digest`] of the sources the fence read.
    pub digest: u64,
    pub settings: &'a Settings,
    pub inv: &'a crate::device::Inventory,
    pub state: &'a apply::Fenced,
}

impl Pending<'_> {
    /// The handoff for `vfio-early finish`; `None` when it cannot be written whole.
    pub fn handoff(&self) -> Option<String> {
        crate::handoff::render(
            self.digest,
            self.settings,
            self.inv,
            self.state,
            self.fenced,
            crate::split::monotonic_ns(self.deadline.start),
            crate::split::monotonic_ns(self.deadline.end()),
        )
    }
}

/// Exit codes of `plan` (boot mode exits 0 inside an initramfs).
pub const EXIT_OK: i32 = 0;
pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Everything the configuration sources say, with the problems found in them.
pub struct Input {
    pub settings: Settings,
    pub problems: Problems,
    pub cmdline_ids: bool,
    /// [`plan_digest`] of what was read: the rest of a split run compares it with the fence's.
    pub digest: u64,
}

/// Folds `bytes` (and a separator) into an FNV-1a hash.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes.iter().chain(&[0xff]) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The settings keys a plan depends on (`timeout`, `rom`, `sync`, `debug` do not change what
/// the rest of a split run does with the fence's devices).
const PLAN_KEYS: [&str; 5] = ["devices ", "off ", "group ", "on-fail ", "dry-run "];

/// A hash of what the plan depends on: those settings, as the config file would spell them,
/// and whether the sources were read whole. Another dracut module writing its own
/// `/etc/cmdline.d` file between the fence and the rest changes no vfio-early setting, so it
/// changes nothing here.
pub fn plan_digest(settings: &Settings, blocked: bool) -> u64 {
    let form = crate::config::FileForm(settings).to_string();
    let kept = form
        .lines()
        .filter(|l| PLAN_KEYS.iter().any(|k| l.starts_with(k)));
    kept.fold(fnv(0xcbf2_9ce4_8422_2325, &[u8::from(blocked)]), |h, l| {
        fnv(h, l.as_bytes())
    })
}

/// Reads the config file, dracut's cmdline.d and the command line, in that order of precedence.
/// An input longer than its cap, or more cmdline.d files than are read, blocks binding: what
/// was not read may hold a device entry or the kill switch.
pub fn read_input(root: &Root, cmdline: Option<&str>) -> Input {
    let mut settings = Settings::default();
    let mut problems = Problems::default();
    apply_config_file(&root.path(CONFIG_FILE), &mut settings, &mut problems);
    // dracut's getcmdline(): cmdline.d in name order first, /proc/cmdline last (it wins).
    let confs = cmdline_d_files(root, &mut problems);
    let mut cmdline_ids = false;
    for name in &confs {
        let path = root.path(crate::layout::CMDLINE_D).join(name.as_str());
        let origin = Origin::CmdlineD(Token::new(name));
        cmdline_ids |= apply_cmdline_file(&path, origin, &mut settings, &mut problems);
    }
    cmdline_ids |= match cmdline {
        Some(c) => {
            settings.apply_cmdline(c.as_bytes(), Origin::Cmdline, &mut problems);
            legacy::cmdline_has_ids(c.as_bytes())
        }
        None => apply_cmdline_file(
            &root.path("proc/cmdline"),
            Origin::Cmdline,
            &mut settings,
            &mut problems,
        ),
    };
    let digest = plan_digest(&settings, problems.blocked);
    Input {
        settings,
        problems,
        cmdline_ids,
        digest,
    }
}

/// Applies one command-line file (cut: a blocking problem); true when it has `vfio-pci.ids=`.
fn apply_cmdline_file(
    path: &std::path::Path,
    origin: Origin,
    settings: &mut Settings,
    problems: &mut Problems,
) -> bool {
    match crate::read::read_input(path, CMDLINE_CAP) {
        Ok(input) => {
            settings.apply_cmdline(&input.bytes, origin.clone(), problems);
            if input.cut {
                problems.push(origin, InputError::Cut(CMDLINE_CAP));
            }
            legacy::cmdline_has_ids(&input.bytes)
        }
        Err(e) => {
            problems.push(origin, unreadable(&e));
            false
        }
    }
}

/// The message of a read error, bounded (the path is in the problem's origin).
fn unreadable(e: &crate::read::SysError) -> InputError {
    let why = match e {
        crate::read::SysError::Io { source, .. } => source.to_string(),
        crate::read::SysError::Malformed { what, .. } => (*what).to_string(),
        other => other.to_string(),
    };
    InputError::Unreadable(Token::new(&why))
}

/// The names of the first `MAX_CMDLINE_D` `*.conf` entries of `/etc/cmdline.d` in name order
/// (dracut's order): the smallest names are kept whatever order the directory lists them in.
/// Every file that is not read is a blocking problem.
fn cmdline_d_files(root: &Root, problems: &mut Problems) -> heapless::Vec<FileName, MAX_CMDLINE_D> {
    let mut names: heapless::Vec<FileName, MAX_CMDLINE_D> = heapless::Vec::new();
    let unreadable_dir = |problems: &mut Problems, e: &std::io::Error| {
        let origin = Origin::CmdlineD(Token::new("*.conf"));
        problems.push(origin, InputError::Unreadable(Token::new(&e.to_string())));
    };
    // Absent: dracut reads none. Anything else it cannot list (a loop, a file there, EIO) may
    // hide a file dracut's shell would still read: nothing is bound.
    let dir = match std::fs::read_dir(root.path(crate::layout::CMDLINE_D)) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return names,
        Err(e) => {
            unreadable_dir(problems, &e);
            return names;
        }
    };
    let mut more = false;
    for e in dir {
        let e = match e {
            Ok(e) => e,
            Err(e) => {
                unreadable_dir(problems, &e);
                break;
            }
        };
        let name = e.file_name();
        if !name.as_encoded_bytes().ends_with(b".conf") {
            continue;
        }
        let Some(name) = name.to_str().and_then(|n| FileName::try_from(n).ok()) else {
            let origin = Origin::CmdlineD(Token::from_bytes(name.as_encoded_bytes()));
            problems.push(origin, InputError::NameNotRead);
            continue;
        };
        let at = names.partition_point(|n| n.as_str() < name.as_str());
        if names.is_full() {
            more = true;
            if at == names.len() {
                continue;
            }
            names.pop();
        }
        let _ = names.insert(at, name);
    }
    if more {
        let origin = Origin::CmdlineD(Token::new("*.conf"));
        problems.push(origin, InputError::TooManyFiles(MAX_CMDLINE_D));
    }
    names
}

/// A cmdline.d file name kept for reading.
type FileName = heapless::String<128>;

/// Applies `/etc/vfio-early.conf` (or `path`); absent is fine, unreadable or cut is a problem.
fn apply_config_file(path: &std::path::Path, settings: &mut Settings, problems: &mut Problems) {
    match crate::read::read_input_optional(path, CONFIG_CAP) {
        Ok(None) => {}
        Ok(Some(input)) => {
            settings.apply_file(&input.text(), problems);
            if input.cut {
                problems.push(Origin::Config, InputError::Cut(CONFIG_CAP));
            }
        }
        Err(e) => problems.push(Origin::Config, unreadable(&e)),
    }
}

/// `vfio-early config`: what the config file (`/etc/vfio-early.conf`, or the hooks' own path)
/// sets, read by the boot's own parser, one `key = value` line per key on stdout, every problem
/// named on stderr. The generator hooks ask it for `build-strict`. Exit 0 clean, 1 problems (the
/// output is what a boot would apply), 2 unreadable file or unwritable output.
pub fn config(path: &std::path::Path) -> i32 {
    use std::io::Write;
    let mut settings = Settings::default();
    let mut problems = Problems::default();
    apply_config_file(path, &mut settings, &mut problems);
    if let Some(p) = problems
        .kept
        .iter()
        .find(|p| matches!(p.error, InputError::Unreadable(_)))
    {
        errln!("vfio-early: {p}");
        return EXIT_USAGE;
    }
    for p in &problems.kept {
        errln!("vfio-early: {p}");
    }
    if problems.dropped > 0 {
        errln!("vfio-early: {} more problems not shown", problems.dropped);
    }
    let text = crate::config::FileForm(&settings).to_string();
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        errln!("vfio-early: cannot write the settings: {e}");
        return EXIT_USAGE;
    }
    if problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_REFUSED
    }
}

/// The hacks vfio-early replaces, where they linger: read only when there is something to bind.
fn warn_legacy(root: &Root, input: &Input) {
    if input.cmdline_ids {
        warn!("the command line also has vfio-pci.ids=: vfio-pci will grab every device with those IDs, identical twins included; vfio-early selects by address, so drop vfio-pci.ids=");
    }
    for rel in crate::modopts::conf_files(root) {
        let Ok(input) = crate::read::read_input(&root.path(&rel), CONFIG_CAP) else {
            continue;
        };
        let h = legacy::scan_modprobe_conf(&input.text());
        if h.ids {
            warn!("/{rel}: `options vfio-pci ids=` grabs every device with those IDs, identical twins included; remove it");
        }
        if h.install {
            warn!("/{rel}: an `install vfio-pci` directive (the old override-script hack) runs when vfio-early loads vfio-pci; remove it");
        }
    }
}

/// The whole run; returns the exit code. Never inlined (see [`finish`]).
#[inline(never)]
pub fn run(opts: &Options) -> i32 {
    let root = Root::new(&opts.root);
    let mut kernel = RealKernel::new(&root);
    run_split_with(opts, &mut kernel, |_, pending| {
        crate::split::hand_off(pending, &root, opts.finish_unit)
    })
}

/// The rest of a split run, from the fence's state (`vfio-early finish`, under the run's lock;
/// see [`crate::split`]): load, verify, settle what vfio-pci did not take, report.
pub fn finish_rest<K: Kernel>(
    opts: &Options,
    kernel: &mut K,
    start: Instant,
    dir: &Dir,
    input: &Input,
    plan: &Plan,
    fenced: &mut apply::Fenced,
) {
    let run = Run {
        opts,
        root: Root::new(&opts.root),
        start,
        dir: Some(dir.try_clone()),
        split: true,
    };
    let mut ctx = ctx(&run, kernel, &input.settings);
    apply::finish(&mut ctx, plan, fenced);
    settle_rest(&run, plan, &mut fenced.out);
    let bad = input.problems.len();
    tell(&run, input, Some((plan, &fenced.out)), bad);
}

/// After a split: what failed in the fence was settled before udev ran; where it is now.
fn settle_rest(run: &Run, plan: &Plan, out: &mut Outcomes) {
    for (item, o) in plan.items.iter().zip(out.iter_mut()) {
        if let Outcome::Failed { now, .. } = o {
            *now = run.root.driver_of(&item.bdf);
        }
    }
}

/// What every step of one run shares.
struct Run<'a> {
    opts: &'a Options,
    root: Root,
    start: Instant,
    /// `/run/vfio-early` in boot mode, opened once: the state file and modprobe's log.
    dir: Option<Result<Dir, SysError>>,
    /// The run went on after a handover: udev may have changed what the plan read.
    split: bool,
}

/// The start of every boot-build command: the kernel log as the logger, and false (said, with
/// `why` it refuses) outside an initramfs.
pub fn boot_start(root: &Root, why: &str) -> bool {
    boot_logger(root);
    if root.in_initrd() {
        return true;
    }
    error!("not inside an initramfs (no /etc/initrd-release): {why}");
    false
}

/// Log records go to the kernel log (stderr where printk_devkmsg=off swallows them).
pub fn boot_logger(root: &Root) {
    let devkmsg = sysfs::read_attr::<64>(&root.path("proc/sys/kernel/printk_devkmsg"))
        .ok()
        .flatten();
    kmsg::init(
        kmsg::Target::Kmsg {
            path: &root.path("dev/kmsg"),
            printk_devkmsg: devkmsg.as_deref(),
        },
        LevelFilter::Info,
    );
}

/// `run` with the given kernel interface (tests inject faults through it); a split run goes on
/// in this process.
pub fn run_with<K: Kernel>(opts: &Options, kernel: &mut K) -> i32 {
    run_split_with(opts, kernel, |_, _| Handover::Finish)
}

/// `run_with`, where `handover` decides, once a split run has fenced, which process does the
/// rest (it may change the kernel in between: tests play udev there).
pub fn run_split_with<K: Kernel>(
    opts: &Options,
    kernel: &mut K,
    handover: impl FnOnce(&mut K, &Pending<'_>) -> Handover,
) -> i32 {
    let start = kernel.now();
    let root = Root::new(&opts.root);
    let mut dir = None;
    match opts.mode {
        Mode::Boot => {
            if opts.split {
                kmsg::set_phase(kmsg::Phase::Fence);
            }
            let why = "boot mode refuses to act on a running system; use `vfio-early plan` to see what it would do";
            if !boot_start(&root, why) {
                return EXIT_REFUSED;
            }
            // /run is the system's own mount (trusted, as the root is); vfio-early/ below it is
            // opened without following a symlink.
            dir = Some(
                Dir::open(
                    &root.path(crate::layout::RUN_PARENT),
                    crate::layout::RUN_NAME,
                    true,
                )
                .map(Dir::volatile),
            );
        }
        Mode::Plan => kmsg::init(kmsg::Target::Stderr, LevelFilter::Info),
    }
    let mut run = Run {
        opts,
        root,
        start,
        dir,
        split: false,
    };
    let root = &run.root;

    let input = read_input(root, opts.cmdline.as_deref());
    let settings = &input.settings;
    if opts.mode == Mode::Boot {
        // Started by the rdinit shim: it waits for us by this deadline, not its default.
        crate::shim::tell_deadline(settings.timeout_ms);
    }
    if settings.debug {
        log::set_max_level(LevelFilter::Debug);
    }
    for p in &input.problems.kept {
        error!("{p}");
    }
    if input.problems.dropped > 0 {
        error!("{} more input problems not shown", input.problems.dropped);
    }
    let bad = input.problems.len();

    if settings.off {
        info!("disabled by vfio-early.off; nothing done");
        return tell(&run, &input, None, bad);
    }
    if input.problems.blocked {
        error!("the settings were not read whole (see above): nothing is bound in this boot");
        return tell(&run, &input, None, bad);
    }
    if settings.entries.is_empty() {
        return tell(&run, &input, None, bad);
    }
    warn_legacy(root, &input);

    let (inv, errors) = scan::scan(root, &settings.entries);
    for e in &errors.kept {
        error!("{e}");
    }
    let plan = plan::plan(settings, &inv);
    let act = opts.mode == Mode::Boot && !settings.dry_run;
    // One slot for the outcomes, filled in place (see apply::fence).
    let mut state = apply::Fenced::default();
    if act {
        let fenced = &mut state;
        apply_fence(&run, kernel, settings, &plan, fenced);
        let split = opts.split && !settings.sync && !fenced.items.is_empty();
        if let (true, Some(Ok(dir))) = (split, &run.dir) {
            let bdfs: heapless::Vec<crate::pci::Bdf, { crate::device::MAX_DEVICES }> =
                fenced.items.iter().map(|&n| plan.items[n].bdf).collect();
            let ms = elapsed_ms(run.start);
            let done = Some((&plan, &fenced.out));
            write_state(&run, &input, done, Stage::Pending(&fenced.items), ms);
            info!(
                "fenced {} device{} ({}) in {ms} ms; loading vfio-pci and checking the binds follow beside udev",
                bdfs.len(),
                plural(bdfs.len()),
                crate::handoff::list(&bdfs)
            );
            let pending = Pending {
                dir,
                deadline: deadline(&run, settings),
                fenced: &bdfs,
                digest: input.digest,
                settings,
                inv: &inv,
                state: fenced,
            };
            if handover(kernel, &pending) == Handover::Return {
                return EXIT_OK;
            }
            kmsg::set_phase(kmsg::Phase::Finish);
            run.split = true;
        }
        let mut ctx = ctx(&run, kernel, settings);
        apply::finish(&mut ctx, &plan, fenced);
        if run.split {
            settle_rest(&run, &plan, &mut fenced.out);
        }
    } else {
        for i in &plan.items {
            let _ = state.out.push(match i.decision {
                Decision::Bind { .. } => Outcome::WouldBind,
                _ => Outcome::AsPlanned,
            });
        }
    }
    let outcomes = &state.out;
    if outcomes.contains(&Outcome::Unknown) {
        error!("modprobe vfio-pci still running at the deadline: outcome unknown; it was left running (a kill between two module loads can leave a half-loaded stack) and nothing more was written");
    }
    if settings.dry_run && opts.mode == Mode::Boot {
        info!("dry run (vfio-early.dry-run): nothing written");
    }
    let scan_errors = errors.kept.len() + errors.dropped;
    tell(&run, &input, Some((&plan, outcomes)), bad + scan_errors)
}

fn deadline(run: &Run, settings: &Settings) -> Deadline {
    Deadline {
        start: run.start,
        limit: Duration::from_millis(settings.timeout_ms.into()),
    }
}

fn ctx<'a, K: Kernel>(run: &'a Run, kernel: &'a mut K, settings: &Settings) -> apply::Ctx<'a, K> {
    apply::Ctx {
        root: &run.root,
        kernel,
        deadline: deadline(run, settings),
        on_fail: settings.on_fail,
        log_dir: run.dir.as_ref().and_then(|d| d.as_ref().ok()),
    }
}

/// The fence, with the ROM reads asked for.
fn apply_fence<K: Kernel>(
    run: &Run,
    kernel: &mut K,
    settings: &Settings,
    plan: &Plan,
    state: &mut apply::Fenced,
) {
    let root = &run.root;
    let mut ctx = ctx(run, kernel, settings);
    if settings.rom == RomWant::None {
        return apply::fence(&mut ctx, plan, state, |_, _| {});
    }
    // Built into the image by the hooks: the captures already stored in /var/lib.
    let known = crate::read::read_input_optional(&root.path(crate::layout::ROMS_KNOWN), 64 * 1024)
        .ok()
        .flatten()
        .map(|i| i.text().into_owned())
        .unwrap_or_default();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    apply::fence(&mut ctx, plan, state, |ctx, fenced| {
        romread::capture_fenced(ctx, plan, fenced, &settings.rom, &known, &release)
    });
}

/// Where a boot's run stands, as the state file says (`stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage<'a> {
    /// Fenced (these plan items); the rest of a split run has not reported yet.
    Pending(&'a [usize]),
    /// The run reported.
    Done,
    /// The rest of a split run did not report; the settle wrote what it found.
    Settled,
}

impl Stage<'_> {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pending(_) => "pending",
            Stage::Done => "done",
            Stage::Settled => "settled",
        }
    }
}

/// Writes the state file (boot mode only).
/// Milliseconds since `start` (u64: formatting a u128 costs the boot build a kilobyte).
fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn write_state(run: &Run, input: &Input, done: Option<(&Plan, &Outcomes)>, stage: Stage, ms: u64) {
    let Some(dir) = &run.dir else {
        return;
    };
    let doc = state_json(run, input, done, stage, ms);
    let written = dir
        .as_ref()
        .map(|d| d.write(STATE_NAME, doc.as_bytes(), Replace::Yes));
    match &written {
        Ok(Ok(())) => {}
        Err(e) => warn!("state file not written: {e}"),
        Ok(Err(e)) => warn!("state file not written: {e}"),
    }
}

/// Per-device lines, the state file and the summary; returns the exit code.
fn tell(run: &Run, input: &Input, done: Option<(&Plan, &Outcomes)>, bad: usize) -> i32 {
    let opts = run.opts;
    let settings = &input.settings;
    let mut counts = Counts::default();
    let mut unmatched = 0;
    if let Some((plan, outcomes)) = done {
        for (item, outcome) in plan.items.iter().zip(outcomes.iter()) {
            let r = DeviceReport {
                item,
                outcome,
                settings,
            };
            counts.add(&r);
            match opts.mode {
                Mode::Plan => outln!("{r}"),
                Mode::Boot => log!(r.level(), "{r}"),
            }
        }
        for text in unmatched_texts(plan, settings) {
            warn!("entry \"{text}\" matches no device on the bus: check its ID with `lspci -nn`");
        }
        unmatched = plan.unmatched.len();
        // After the device lines: under the kernel's log budget those matter most.
        for o in &plan.outside {
            warn!("{o}");
        }
    }
    let ms = elapsed_ms(run.start);
    write_state(run, input, done, Stage::Done, ms);
    let what = if settings.off {
        "disabled"
    } else if input.problems.blocked {
        "nothing bound: the settings were not read whole"
    } else if settings.entries.is_empty() && bad == 0 {
        "nothing configured (vfio-early.devices= or /etc/vfio-early.conf)"
    } else {
        ""
    };
    let suppressed = kmsg::suppressed();
    let more = if suppressed > 0 {
        format!("; {suppressed} records over the kernel log budget are in /{STATE_FILE}")
    } else {
        String::new()
    };
    // Device-entry problems are "bad entries"; other input problems are counted apart (scan
    // errors have their own records and count only in plan's exit code), and a dry run or a
    // plan says "would bind", never "bound".
    let entries_bad = input.problems.entries;
    let other = input.problems.len() - entries_bad;
    let mut extra = String::new();
    if other > 0 {
        extra += &format!(", {other} other input problem{}", plural(other));
    }
    if unmatched > 0 {
        extra += &format!(
            ", {unmatched} entr{} matching nothing",
            if unmatched == 1 { "y" } else { "ies" }
        );
    }
    if counts.unknown > 0 {
        extra += &format!(", {} unknown (modprobe still running)", counts.unknown);
    }
    let bound = if settings.dry_run || opts.mode == Mode::Plan {
        format!("{} would bind", counts.bound + counts.would_bind)
    } else {
        format!("{} bound", counts.bound)
    };
    log!(
        target: SUMMARY,
        if counts.failed + counts.unknown > 0 || input.problems.blocked { log::Level::Error } else { log::Level::Info },
        "summary: {bound}, {} refused, {} failed, {entries_bad} bad entries{extra} in {ms} ms{}{what}{more}",
        counts.refused,
        counts.failed,
        if what.is_empty() { "" } else { "; " },
    );
    match opts.mode {
        Mode::Boot => EXIT_OK,
        Mode::Plan if counts.refused + counts.failed + bad + unmatched > 0 => EXIT_REFUSED,
        Mode::Plan => EXIT_OK,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The texts of the ID entries that matched no device.
fn unmatched_texts<'a>(plan: &'a Plan, settings: &'a Settings) -> impl Iterator<Item = &'a str> {
    plan.unmatched
        .iter()
        .filter_map(|&n| settings.entries.get(n))
        .map(|e| e.text.as_str())
}

/// The whole state document for a plan and its outcomes, as a settle knows them (no input
/// problems: the fence's records named them).
pub fn state_document(
    root: &Root,
    settings: &Settings,
    plan: &Plan,
    out: &Outcomes,
    stage: Stage,
) -> String {
    let opts = Options {
        root: root.path(""),
        mode: Mode::Boot,
        cmdline: None,
        split: true,
        finish_unit: false,
    };
    let run = Run {
        opts: &opts,
        root: root.clone(),
        start: Instant::now(),
        dir: None,
        split: true,
    };
    let input = Input {
        settings: settings.clone(),
        problems: Problems::default(),
        cmdline_ids: false,
        digest: 0,
    };
    state_json(&run, &input, Some((plan, out)), stage, 0)
}

fn state_json(
    run: &Run,
    input: &Input,
    done: Option<(&Plan, &Outcomes)>,
    stage: Stage,
    ms: u64,
) -> String {
    let s = &input.settings;
    let mut j = Json::default();
    // About 300 bytes a device: one allocation, not a series of doublings.
    j.out
        .reserve(1024 + 320 * done.map_or(0, |(p, _)| p.items.len()));
    j.open(None, '{')
        .raw(Some("version"), STATE_VERSION)
        .str(Some("binary"), env!("CARGO_PKG_VERSION"))
        .str(Some("stage"), stage.as_str())
        .raw(Some("off"), s.off)
        .raw(Some("dry_run"), s.dry_run)
        .raw(Some("elapsed_ms"), ms);
    j.open(Some("asked"), '[');
    for e in &s.entries {
        j.str(None, &e.text);
    }
    j.close(']').open(Some("problems"), '[');
    for p in &input.problems.kept {
        j.str(None, p);
    }
    j.close(']').open(Some("warnings"), '[');
    if let Some((plan, _)) = done {
        for text in unmatched_texts(plan, s) {
            j.str(
                None,
                format_args!("entry \"{text}\" matches no device on the bus"),
            );
        }
        for o in &plan.outside {
            j.str(None, o);
        }
    }
    j.close(']').open(Some("devices"), '[');
    if let Some((plan, outcomes)) = done {
        for (n, (item, outcome)) in plan.items.iter().zip(outcomes.iter()).enumerate() {
            // Between the phases the fenced items are pending, whatever the fence left.
            let outcome = match stage {
                Stage::Pending(fenced) if fenced.contains(&n) => &Outcome::Pending,
                _ => outcome,
            };
            let r = DeviceReport {
                item,
                outcome,
                settings: s,
            };
            j.open(None, '{').str(Some("bdf"), item.bdf);
            if let Some(d) = &item.dev {
                j.str(Some("id"), d.id)
                    .str(Some("class"), d.class)
                    .str(Some("driver_before"), d.driver.as_deref().unwrap_or(""));
            }
            j.str(Some("why"), r.why())
                .str(Some("result"), r.verdict().as_str());
            if let Outcome::Failed { left, .. } = outcome {
                j.str(Some("left"), left.as_str());
            }
            // What the run last saw: the verified link, or the plan's reading where nothing was
            // written; read again when modprobe or udev (a split run) may have changed it.
            let now = match outcome {
                Outcome::Bound { .. } => Some(plan::VFIO.try_into().unwrap_or_default()),
                Outcome::Failed { now, .. } => now.clone(),
                _ if run.split || *outcome == Outcome::Unknown => run.root.driver_of(&item.bdf),
                _ => item.dev.as_ref().and_then(|d| d.driver.clone()),
            };
            j.str(Some("detail"), r.detail())
                .str(Some("driver_now"), now.as_deref().unwrap_or(""));
            j.close('}');
        }
    }
    j.close(']').close('}');
    j.out.push('\n');
    j.out
}
