// SPDX-License-Identifier: MIT OR Apache-2.0
//! Carrying out a plan: the only module that writes to the kernel.
//!
//! Order per boot: unbind where allowed, write every override, then one probe step (modprobe when
//! vfio-pci is not registered yet, `drivers_probe` otherwise), then re-read every `driver` link:
//! only that counts. Writes to sysfs can block uninterruptibly, so no outside timeout can stop us;
//! the deadline is ours and is checked before every write.

use core::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::OnFail;
use crate::device::{Name, MAX_DEVICES};
use crate::pci::Bdf;
use crate::plan::{Decision, Plan, MAX_ITEMS, VFIO};
use crate::sysfs::Root;
use crate::text::{bounded, Token};

/// The two side effects, behind one interface so tests can record them.
pub trait Kernel {
    /// Writes `value` to an existing attribute in one `write()`.
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()>;
    /// Loads a module with the system's modprobe.
    fn modprobe(&mut self, module: &str) -> Result<(), String>;
}

/// The real thing, under a root.
pub struct RealKernel {
    pub modprobe: Option<PathBuf>,
}

impl RealKernel {
    /// The system's modprobe, by absolute path, so the admin's modprobe.d applies.
    pub fn new(root: &Root) -> RealKernel {
        let modprobe = [
            "sbin/modprobe",
            "usr/sbin/modprobe",
            "bin/modprobe",
            "usr/bin/modprobe",
        ]
        .iter()
        .map(|p| root.path(p))
        .find(|p| p.exists());
        RealKernel { modprobe }
    }
}

impl Kernel for RealKernel {
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT: a missing attribute must be an error, not a new file that hides a bug.
        let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        Ok(())
    }

    fn modprobe(&mut self, module: &str) -> Result<(), String> {
        let path = self.modprobe.as_ref().ok_or("no modprobe found")?;
        let out = Command::new(path)
            .arg(module)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let msg = Token::from_bytes(out.stderr.trim_ascii());
        Err(format!("{} {module}: {} {msg}", path.display(), out.status))
    }
}

/// The run's own deadline.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    pub start: Instant,
    pub limit: Duration,
}

impl Deadline {
    pub fn passed(&self) -> bool {
        self.start.elapsed() > self.limit
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Modprobe,
    DriversProbe,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Modprobe => "modprobe",
            Via::DriversProbe => "drivers_probe",
        })
    }
}

/// What became of one plan item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The plan refused it or it was already done: nothing written.
    AsPlanned,
    /// Dry run: this would be written.
    WouldBind,
    Bound {
        via: Via,
        unbound_from: Option<Name>,
    },
    Failed {
        reason: Failure,
        /// Override cleared and re-probed, so the host keeps it.
        released: bool,
    },
    /// The deadline passed before anything was written for it.
    NotDone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Write(heapless::String<160>),
    Modprobe(heapless::String<200>),
    /// vfio-pci did not take it; the driver it has now.
    NotTaken(Option<Name>),
    /// The deadline passed between steps: it is fenced but was not probed.
    Deadline,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Write(e) => write!(f, "write failed: {e}"),
            Failure::Modprobe(e) => write!(f, "loading vfio-pci failed: {e}; hint: is the vfio-pci module in the initramfs?"),
            Failure::NotTaken(None) => f.write_str("vfio-pci did not take it (no driver); hint: see vfio-pci's own kernel log lines just above"),
            Failure::NotTaken(Some(d)) => write!(f, "vfio-pci did not take it ({d} holds it)"),
            Failure::Deadline => f.write_str("the deadline passed before it was probed; it is fenced with no driver"),
        }
    }
}

/// Result of `apply`, index-aligned with `plan.items`.
pub type Outcomes = heapless::Vec<Outcome, MAX_ITEMS>;

pub struct Ctx<'a, K: Kernel> {
    pub root: &'a Root,
    pub kernel: &'a mut K,
    pub deadline: Deadline,
    pub on_fail: OnFail,
}

impl<K: Kernel> Ctx<'_, K> {
    /// Writes unless the deadline passed; `Err(None)` means the deadline stopped it.
    fn write(&mut self, path: &Path, value: &str) -> Result<(), Option<Failure>> {
        if self.deadline.passed() {
            return Err(None);
        }
        self.kernel.write(path, value).map_err(|e| {
            Some(Failure::Write(bounded(format_args!(
                "{}: {e}",
                path.display()
            ))))
        })
    }

    fn probe(&mut self, bdf: &Bdf) -> Result<(), Option<Failure>> {
        self.write(
            &self.root.path("sys/bus/pci/drivers_probe"),
            &bdf.to_string(),
        )
    }
}

pub fn apply<K: Kernel>(ctx: &mut Ctx<'_, K>, plan: &Plan) -> Outcomes {
    apply_with(ctx, plan, |_, _| {})
}

/// As `apply`, calling `fenced_hook` with the items fenced (override written, nothing probed
/// yet): the moment a ROM is cleanest to read.
pub fn apply_with<K: Kernel>(
    ctx: &mut Ctx<'_, K>,
    plan: &Plan,
    mut fenced_hook: impl FnMut(&mut Ctx<'_, K>, &[usize]),
) -> Outcomes {
    let mut out: Outcomes = plan.items.iter().map(|_| Outcome::AsPlanned).collect();
    let mut fenced: heapless::Vec<usize, MAX_DEVICES> = heapless::Vec::new();
    let mut stopped = false;

    // 1. Unbind where allowed, then fence.
    for (n, item) in plan.items.iter().enumerate() {
        let Decision::Bind { unbind } = &item.decision else {
            continue;
        };
        if stopped {
            out[n] = Outcome::NotDone;
            continue;
        }
        let result = match unbind {
            Some(_) => ctx.write(
                &ctx.root.attr(&item.bdf, "driver/unbind"),
                &item.bdf.to_string(),
            ),
            None => Ok(()),
        }
        .and_then(|_| ctx.write(&ctx.root.attr(&item.bdf, "driver_override"), VFIO));
        match result {
            Ok(()) => {
                let _ = fenced.push(n);
            }
            Err(None) => {
                stopped = true;
                out[n] = Outcome::NotDone;
            }
            Err(Some(reason)) => {
                out[n] = Outcome::Failed {
                    reason,
                    released: false,
                }
            }
        }
    }
    // Called even when nothing was fenced: the hook also says why it read nothing.
    fenced_hook(ctx, &fenced);
    if fenced.is_empty() {
        return out;
    }

    // 2. Probe: at module init vfio-pci binds every fenced device by itself; once registered,
    //    only drivers_probe makes the kernel look again.
    let mut via = Via::DriversProbe;
    let mut failure = None;
    if !ctx.root.driver_registered(VFIO) {
        via = Via::Modprobe;
        if ctx.deadline.passed() {
            stopped = true;
        } else if let Err(e) = ctx.kernel.modprobe(VFIO) {
            failure = Some(Failure::Modprobe(bounded(format_args!("{e}"))));
        }
    }
    // Time spent inside modprobe counts too.
    stopped |= ctx.deadline.passed();
    for &n in &fenced {
        let bdf = plan.items[n].bdf;
        if stopped {
            break;
        }
        let unprobed = ctx.root.driver_of(&bdf).is_none() && ctx.root.driver_registered(VFIO);
        if unprobed && ctx.probe(&bdf) == Err(None) {
            stopped = true;
        }
    }

    // 3. Verify: only the driver link counts.
    for &n in &fenced {
        let item = &plan.items[n];
        let now = ctx.root.driver_of(&item.bdf);
        if now.as_deref() == Some(VFIO) {
            let unbound_from = match &item.decision {
                Decision::Bind { unbind } => unbind.clone(),
                _ => None,
            };
            out[n] = Outcome::Bound { via, unbound_from };
            continue;
        }
        let reason = match (&failure, stopped) {
            (Some(f), _) => f.clone(),
            (None, true) if now.is_none() => Failure::Deadline,
            _ => Failure::NotTaken(now),
        };
        let released = ctx.on_fail == OnFail::Release && !stopped && release(ctx, &item.bdf);
        out[n] = Outcome::Failed { reason, released };
    }
    out
}

/// Gives a device back to the host: clear the override, let the kernel look for its driver.
fn release<K: Kernel>(ctx: &mut Ctx<'_, K>, bdf: &Bdf) -> bool {
    ctx.write(&ctx.root.attr(bdf, "driver_override"), "\n")
        .is_ok()
        && ctx.probe(bdf).is_ok()
}
