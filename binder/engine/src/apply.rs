// SPDX-License-Identifier: MIT OR Apache-2.0
//! Carrying out a plan: every write to the kernel goes through [`Kernel`].
//!
//! Order per boot: write every override, then unbind where allowed (a device whose override is
//! set can go to no driver but vfio-pci), then one probe step (modprobe when vfio-pci is not
//! registered yet, `drivers_probe` otherwise), then re-read every `driver` link: only that
//! counts. What vfio-pci did not take is given back (`on-fail=release`), and so are the audio
//! companions and group members of a display that failed. Writes to sysfs can block
//! uninterruptibly, so no outside timeout can stop us: the deadline is ours, checked before
//! every write, and past it nothing more is written.

use core::fmt;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Instant;

use log::{info, warn};
use nix::fcntl::OFlag;
use vfio_early_core::config::OnFail;
use vfio_early_core::device::MAX_DEVICES;
use vfio_early_core::entry::Reset;
use vfio_early_core::layout::MODPROBE_LOG_NAME;
use vfio_early_core::outcome::{Deadline, Failure, Fenced, Left, Outcome, Outcomes, Via};
use vfio_early_core::pci::Bdf;
use vfio_early_core::plan::{Decision, Plan, Why, VFIO};
use vfio_early_core::text::bounded;
use vfio_early_system::files::Dir;
use vfio_early_system::read::open_file;
use vfio_early_system::sysfs::Root;

/// The side effects, behind one interface so tests can record them and inject faults.
pub trait Kernel {
    /// Writes `value` to an existing attribute in one `write()`.
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()>;
    /// Loads a module with the system's modprobe, waiting for it until `until` at most; its
    /// messages go to `modprobe.log` in `log` (the run's directory) when there is one.
    fn modprobe(
        &mut self,
        module: &str,
        until: Instant,
        log: Option<&Dir>,
    ) -> Result<(), ModprobeError>;
    /// Loads vfio-pci from the initrd add-on's own modules (see `modload`), when modprobe found
    /// none: `Ok(false)` when there is no add-on.
    fn load_addon(&mut self, _until: Instant) -> Result<bool, heapless::String<200>> {
        Ok(false)
    }
    /// The clock the deadline is measured with.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModprobeError {
    Failed(heapless::String<200>),
    /// Still running at the deadline: not killed, outcome unknown.
    StillRunning,
}

/// Where systems keep modprobe, in the order tried.
const MODPROBE_PATHS: [&str; 4] = [
    "sbin/modprobe",
    "usr/sbin/modprobe",
    "bin/modprobe",
    "usr/bin/modprobe",
];

/// The real thing, under a root.
pub struct RealKernel {
    root: Root,
}

impl RealKernel {
    pub fn new(root: &Root) -> RealKernel {
        RealKernel { root: root.clone() }
    }
}

impl Kernel for RealKernel {
    fn load_addon(&mut self, until: Instant) -> Result<bool, heapless::String<200>> {
        vfio_early_system::modload::load(&self.root, until)
            .map_err(|e| bounded(format_args!("{e}")))
    }

    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT: a missing attribute must be an error, not a new file that hides a bug.
        let mut f = open_file(path, OFlag::O_WRONLY | OFlag::O_TRUNC, 0)?;
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        Ok(())
    }

    fn modprobe(
        &mut self,
        module: &str,
        until: Instant,
        log_dir: Option<&Dir>,
    ) -> Result<(), ModprobeError> {
        let failed = |args: fmt::Arguments<'_>| ModprobeError::Failed(bounded(args));
        // The system's own modprobe, by absolute path (the admin's modprobe.d applies): the
        // first of the usual places that spawns, tried in order (no stat before each).
        // stdin /dev/null; stdout and stderr a file, not a pipe, so a modprobe that outlives
        // us never gets SIGPIPE, opened through the safe writer's directory handle (no symlink
        // followed); both go there (modprobe -v, install commands write to either). Without
        // the log, /dev/null too.
        let null = vfio_early_system::read::open_file(Path::new("/dev/null"), OFlag::O_RDWR, 0)
            .map_err(|e| failed(format_args!("/dev/null: {e}")))?;
        let mut spawned = None;
        for rel in MODPROBE_PATHS {
            let path = self.root.path(rel);
            let log = log_dir.and_then(|d| d.create_truncated(MODPROBE_LOG_NAME).ok());
            let out = log.as_ref().map_or(null.as_fd(), |l| l.as_fd());
            let child =
                vfio_early_system::spawn::spawn(&path, &[module], null.as_fd(), out, out, None);
            match child {
                Ok(c) => {
                    spawned = Some((c, path));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(failed(format_args!("{}: {e}", path.display()))),
            }
        }
        let Some((mut child, path)) = spawned else {
            return Err(failed(format_args!("no modprobe found")));
        };
        let status = match child.wait_until(until) {
            Ok(Some(status)) => status,
            Ok(None) => return Err(ModprobeError::StillRunning),
            Err(e) => return Err(failed(format_args!("waiting for {}: {e}", path.display()))),
        };
        if status.success() {
            return Ok(());
        }
        // Its last line says why (kmod ends with the FATAL one).
        let said = log_dir
            .and_then(|d| d.read(MODPROBE_LOG_NAME, 4096).ok().flatten())
            .unwrap_or_default();
        let last = said
            .bytes
            .split(|&b| b == b'\n')
            .rfind(|l| !l.trim_ascii().is_empty())
            .unwrap_or_default();
        let msg: String = String::from_utf8_lossy(last.trim_ascii())
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        Err(failed(format_args!(
            "{} {module}: {status} {msg}",
            path.display()
        )))
    }
}

pub struct Ctx<'a, K: Kernel> {
    pub root: &'a Root,
    pub kernel: &'a mut K,
    pub deadline: Deadline,
    pub on_fail: OnFail,
    /// The run's directory (`/run/vfio-early`), for modprobe's log.
    pub log_dir: Option<&'a Dir>,
}

impl<K: Kernel> Ctx<'_, K> {
    pub fn passed(&self) -> bool {
        self.deadline.passed_at(self.kernel.now())
    }

    /// Writes unless the deadline passed; `Err(None)` means the deadline stopped it.
    fn write(&mut self, path: &Path, value: &str) -> Result<(), Option<heapless::String<160>>> {
        if self.passed() {
            return Err(None);
        }
        self.kernel
            .write(path, value)
            .map_err(|e| Some(bounded(format_args!("{}: {e}", path.display()))))
    }

    fn probe(&mut self, bdf: &Bdf) -> Result<(), Option<heapless::String<160>>> {
        self.write(
            &self.root.path("sys/bus/pci/drivers_probe"),
            &bdf.to_string(),
        )
    }

    fn set_override(
        &mut self,
        bdf: &Bdf,
        value: &str,
    ) -> Result<(), Option<heapless::String<160>>> {
        self.write(&self.root.attr(bdf, "driver_override"), value)
    }
}

pub fn apply<K: Kernel>(ctx: &mut Ctx<'_, K>, plan: &Plan) -> Outcomes {
    apply_with(ctx, plan, |_, _| {})
}

/// The item a companion or group member follows.
fn lead_of(plan: &Plan, n: usize) -> Option<(usize, Bdf)> {
    let (Why::Companion(lead, _) | Why::GroupMember(lead)) = plan.items[n].why else {
        return None;
    };
    let at = plan.items.iter().position(|i| i.bdf == lead)?;
    Some((at, lead))
}

/// A failure, with the driver the device has now.
fn failed<K: Kernel>(ctx: &Ctx<'_, K>, bdf: &Bdf, reason: Failure, left: Left) -> Outcome {
    Outcome::Failed {
        reason,
        left,
        now: ctx.root.driver_of(bdf),
    }
}

/// As `apply`, calling `fenced_hook` with the items fenced (override written, nothing probed
/// yet): the moment a ROM is cleanest to read.
pub fn apply_with<K: Kernel>(
    ctx: &mut Ctx<'_, K>,
    plan: &Plan,
    fenced_hook: impl FnMut(&mut Ctx<'_, K>, &[usize]),
) -> Outcomes {
    let mut state = Fenced::default();
    fence(ctx, plan, &mut state, fenced_hook);
    load_and_verify(ctx, plan, &mut state);
    state.out
}

/// Step 1, the part that must precede udev: every override written, unbound where allowed,
/// then `fenced_hook` (the ROM reads). Once an override is written the PCI core gives that
/// device to no driver but vfio-pci, so the rest ([`load_and_verify`]) may run beside udev.
pub fn fence<K: Kernel>(
    ctx: &mut Ctx<'_, K>,
    plan: &Plan,
    state: &mut Fenced,
    mut fenced_hook: impl FnMut(&mut Ctx<'_, K>, &[usize]),
) {
    // In place: the outcomes are tens of KiB, and every copy of them is stack the boot touches.
    state.out.clear();
    state.items.clear();
    for _ in &plan.items {
        // MAX_ITEMS holds every item of a plan.
        let _ = state.out.push(Outcome::AsPlanned);
    }
    let Fenced {
        out,
        items: fenced,
        stopped,
    } = state;
    *stopped = false;
    load_vendor_reset(ctx, plan);

    // 1. Fence, then unbind where allowed. Companions come after their leads in the plan.
    for (n, item) in plan.items.iter().enumerate() {
        let Decision::Bind { unbind } = &item.decision else {
            continue;
        };
        if let Some((at, lead)) = lead_of(plan, n) {
            if out[at] != Outcome::AsPlanned && !fenced.contains(&at) {
                out[n] = match out[at] {
                    Outcome::NotDone => Outcome::NotDone,
                    _ => failed(ctx, &item.bdf, Failure::Lead(lead), Left::Untouched),
                };
                continue;
            }
        }
        if *stopped || ctx.passed() {
            *stopped = true;
            out[n] = Outcome::NotDone;
            continue;
        }
        match ctx.set_override(&item.bdf, VFIO) {
            Ok(()) => {}
            Err(e) => {
                let reason = Failure::Write(e.unwrap_or_default());
                out[n] = failed(ctx, &item.bdf, reason, Left::Untouched);
                continue;
            }
        }
        if unbind.is_some() {
            // The override is set: once unbound, the device can go nowhere but vfio-pci. No
            // deadline check between the two: the pair is one step.
            let unbound = ctx.kernel.write(
                &ctx.root.attr(&item.bdf, "driver/unbind"),
                &item.bdf.to_string(),
            );
            if let Err(e) = unbound {
                // Still on its driver: settled like any device vfio-pci did not take (the
                // re-probe of a bound device changes nothing).
                let reason = Failure::Write(bounded(format_args!("unbind: {e}")));
                out[n] = give_back(ctx, &item.bdf, reason, false, false);
                continue;
            }
        }
        if let (Why::Listed(_), Some(method)) = (item.why, item.flags.reset) {
            set_reset(ctx, &item.bdf, method);
        }
        // MAX_DEVICES holds every item that binds (they all come from the inventory).
        let _ = fenced.push(n);
    }
    // Called even when nothing was fenced: the hook also says why it read nothing.
    fenced_hook(ctx, fenced);
}

/// `device_specific` resets of AMD cards come from the vendor-reset module: loaded before the
/// first such write when an entry asks for one (a failure is said, and the write still tried:
/// the kernel's own quirks may cover the card).
fn load_vendor_reset<K: Kernel>(ctx: &mut Ctx<'_, K>, plan: &Plan) {
    let asked = plan.items.iter().any(|i| {
        matches!(i.why, Why::Listed(_))
            && matches!(i.decision, Decision::Bind { .. })
            && i.flags.reset == Some(Reset::DeviceSpecific)
    });
    if !asked {
        return;
    }
    match ctx
        .kernel
        .modprobe(VENDOR_RESET, ctx.deadline.end(), ctx.log_dir)
    {
        Ok(()) => info!("{VENDOR_RESET} loaded for the device_specific reset asked for"),
        Err(e) => {
            let why = match &e {
                ModprobeError::Failed(e) => e.as_str(),
                ModprobeError::StillRunning => "still loading at the deadline",
            };
            warn!("{VENDOR_RESET} not loaded ({why}); hint: install it (a dkms package) and rebuild the image; under lockdown it must be signed");
        }
    }
}

/// The module that provides `device_specific` resets for AMD cards.
const VENDOR_RESET: &str = "vendor-reset";

/// Writes an entry's reset method to the device's `reset_method` (after its override, before
/// vfio-pci probes it), reads it back and says what it reads; a method the kernel cannot take
/// is named with the reason and the device is still taken.
fn set_reset<K: Kernel>(ctx: &mut Ctx<'_, K>, bdf: &Bdf, method: Reset) {
    let path = ctx.root.attr(bdf, "reset_method");
    let m = method.as_str();
    match ctx.kernel.write(&path, m) {
        Ok(()) => {
            let now = vfio_early_system::sysfs::read_attr::<64>(&path).ok().flatten();
            let now = now.as_deref().map_or("(unreadable)", str::trim);
            info!("{bdf}: reset method {m} set; reset_method reads \"{now}\"");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => warn!("{bdf}: reset method {m} not set: there is no reset_method attribute (a kernel before 5.15, or no reset method at all); taken with its default reset"),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
            let hint = match method {
                Reset::Bus => "a bus reset needs the device alone on its bus (the card's other functions share it); try flr or pm",
                Reset::DeviceSpecific => "it needs a quirk for the card, or vendor-reset loaded",
                _ => "`cat reset_method` lists what the device supports",
            };
            warn!("{bdf}: reset method {m} not set: the kernel refused it ({e}); taken with its default reset; hint: {hint}");
        }
        Err(e) => warn!("{bdf}: reset method {m} not set: {e}; taken with its default reset"),
    }
}

/// Steps 2-4: load or probe vfio-pci, verify every fenced item, settle what it did not take;
/// within the same deadline as the fence.
/// The outcomes are settled in place: a plan's outcomes are tens of KiB, and every copy of
/// them is stack the boot touches.
pub fn load_and_verify<K: Kernel>(ctx: &mut Ctx<'_, K>, plan: &Plan, state: &mut Fenced) {
    let Fenced {
        out,
        items: fenced,
        stopped,
    } = state;
    let (out, fenced) = (out, &*fenced);
    let mut stopped = *stopped;
    if fenced.is_empty() {
        return;
    }

    // 2. Probe: at module init vfio-pci binds every fenced device by itself; once registered,
    //    only drivers_probe makes the kernel look again.
    let mut via = Via::DriversProbe;
    let mut modprobe_failed = None;
    let mut hung = false;
    if !ctx.root.driver_registered(VFIO) {
        via = Via::Modprobe;
        if ctx.passed() {
            stopped = true;
        } else {
            match ctx.kernel.modprobe(VFIO, ctx.deadline.end(), ctx.log_dir) {
                Ok(()) => {}
                Err(ModprobeError::Failed(e)) => match ctx.kernel.load_addon(ctx.deadline.end()) {
                    Ok(false) => modprobe_failed = Some(Failure::Modprobe(e)),
                    Ok(true) => via = Via::Addon,
                    Err(e) => modprobe_failed = Some(Failure::Addon(e)),
                },
                Err(ModprobeError::StillRunning) => hung = true,
            }
        }
    }
    // vfio-pci's module init probed every fenced device; a registered driver needs asking.
    let mut probe_failed: heapless::Vec<(usize, heapless::String<160>), MAX_DEVICES> =
        heapless::Vec::new();
    if via == Via::DriversProbe {
        for &n in fenced {
            if stopped || ctx.passed() {
                stopped = true;
                break;
            }
            if let Err(Some(e)) = ctx.probe(&plan.items[n].bdf) {
                let _ = probe_failed.push((n, e));
            }
        }
    }
    // Time spent inside modprobe or a probe counts too.
    stopped |= hung || ctx.passed();

    // 3. Verify: only the kernel's links count: vfio-pci's own list of its devices, read once,
    //    and the `driver` link of each device it does not list (what holds it instead).
    let bdfs: heapless::Vec<Bdf, MAX_DEVICES> = fenced.iter().map(|&n| plan.items[n].bdf).collect();
    let held = ctx.root.held_by(VFIO, &bdfs);
    for (k, &n) in fenced.iter().enumerate() {
        let item = &plan.items[n];
        let now = match held.as_ref().and_then(|h| h.get(k)) {
            Some(true) => Some(VFIO.try_into().unwrap_or_default()),
            _ => ctx.root.driver_of(&item.bdf),
        };
        if now.as_deref() == Some(VFIO) {
            let unbound_from = match &item.decision {
                Decision::Bind { unbind } => unbind.clone(),
                _ => None,
            };
            out[n] = Outcome::Bound { via, unbound_from };
            continue;
        }
        if hung {
            out[n] = Outcome::Unknown;
            continue;
        }
        let probe_error = probe_failed.iter().find(|(m, _)| *m == n);
        let reason = match (&modprobe_failed, probe_error) {
            (Some(f), _) => f.clone(),
            (None, Some((_, e))) => Failure::Write(e.clone()),
            (None, None) if stopped && now.is_none() => Failure::Deadline,
            (None, None) => Failure::NotTaken(now),
        };
        out[n] = give_back(ctx, &item.bdf, reason, stopped, false);
    }

    // 4. What followed a display that was not bound goes back with it (on-fail=release).
    if ctx.on_fail == OnFail::Release && !stopped {
        for &n in fenced {
            let Some((at, lead)) = lead_of(plan, n) else {
                continue;
            };
            let lead_bound = matches!(out[at], Outcome::Bound { .. } | Outcome::AsPlanned);
            if !lead_bound && matches!(out[n], Outcome::Bound { .. }) {
                out[n] = give_back(ctx, &plan.items[n].bdf, Failure::Lead(lead), false, true);
            }
        }
    }
}

fn stuck(e: Option<heapless::String<160>>) -> Left {
    match e {
        Some(e) => Left::Stuck(e),
        None => Left::Deadline,
    }
}

/// Settles a fenced device vfio-pci does not keep: per `on-fail`, and never past the deadline.
/// `from_vfio`: it is on vfio-pci and must be unbound from it first.
fn give_back<K: Kernel>(
    ctx: &mut Ctx<'_, K>,
    bdf: &Bdf,
    reason: Failure,
    stopped: bool,
    from_vfio: bool,
) -> Outcome {
    let left = if stopped {
        Left::Deadline
    } else if ctx.on_fail == OnFail::Fence {
        Left::Fenced
    } else {
        release(ctx, bdf, from_vfio)
    };
    failed(ctx, bdf, reason, left)
}

/// Gives a device back to the host: clear the override (unbind it from vfio-pci if it is
/// there), let the kernel look for its driver.
pub fn release<K: Kernel>(ctx: &mut Ctx<'_, K>, bdf: &Bdf, from_vfio: bool) -> Left {
    if let Err(e) = ctx.set_override(bdf, "\n") {
        return stuck(e);
    }
    if from_vfio {
        let unbind = ctx.root.attr(bdf, "driver/unbind");
        if let Err(e) = ctx.write(&unbind, &bdf.to_string()) {
            return match e {
                Some(e) => Left::ReleasedUnprobed(bounded(format_args!("unbind from {VFIO}: {e}"))),
                None => Left::Deadline,
            };
        }
    }
    match ctx.probe(bdf) {
        Ok(()) => Left::Released,
        Err(Some(e)) => Left::ReleasedUnprobed(e),
        Err(None) => Left::ReleasedUnprobed(bounded(format_args!("the deadline passed"))),
    }
}
