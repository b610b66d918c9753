// SPDX-License-Identifier: MIT OR Apache-2.0
//! What became of each device of a plan: the outcomes a run records, logs, hands to the rest of a
//! split run and writes to the state file, and the run's deadline.

use core::fmt;
use std::time::{Duration, Instant};

use crate::device::{Name, MAX_DEVICES};
use crate::layout::MODPROBE_LOG;
use crate::pci::Bdf;
use crate::plan::MAX_ITEMS;

/// The run's own deadline.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    pub start: Instant,
    pub limit: Duration,
}

impl Deadline {
    pub fn end(&self) -> Instant {
        self.start + self.limit
    }

    pub fn passed_at(&self, now: Instant) -> bool {
        now > self.end()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Modprobe,
    DriversProbe,
    /// The initrd add-on's own modules (modprobe found no vfio-pci in the image).
    Addon,
    /// Found on vfio-pci by the settle, after a rest of the run that did not report.
    Unreported,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Modprobe => "modprobe",
            Via::DriversProbe => "drivers_probe",
            Via::Addon => "the add-on's modules",
            Via::Unreported => "a load the run did not see end (found so at the settle)",
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
        left: Left,
        /// Its driver when the run ended.
        now: Option<Name>,
    },
    /// The deadline passed before anything was written for it.
    NotDone,
    /// modprobe was still running at the deadline: whether vfio-pci takes it is not known.
    Unknown,
    /// Fenced; the rest of the run (load, verify) has not reported yet (the state file between
    /// the two phases).
    Pending,
}

/// Why a device is not on vfio-pci.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Write(heapless::String<160>),
    Modprobe(heapless::String<200>),
    /// modprobe found no vfio-pci and the add-on's modules did not load either.
    Addon(heapless::String<200>),
    /// vfio-pci did not take it; the driver it has now.
    NotTaken(Option<Name>),
    /// The deadline passed before it was probed.
    Deadline,
    /// It followed a display that was not bound.
    Lead(Bdf),
    /// The rest of a split run (load vfio-pci, check the bind) did not complete: refused,
    /// killed, or stopped at its deadline; the settle found it so.
    Unfinished,
}

/// How a device that was not bound was left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Left {
    /// Nothing of ours remains: its override was never written.
    Untouched,
    /// Override cleared and the kernel asked to find its driver again: the host keeps it.
    Released,
    /// Override cleared, but asking the kernel to probe it again failed: a driver that loads
    /// later (udev's coldplug) can still take it.
    ReleasedUnprobed(heapless::String<160>),
    /// Override kept, as `on-fail=fence` asks.
    Fenced,
    /// Giving it back failed: its override stays against `on-fail=release`.
    Stuck(heapless::String<160>),
    /// The deadline passed: nothing more was written for it; its override stays.
    Deadline,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Write(e) => write!(f, "write failed: {e}"),
            Failure::Modprobe(e) => write!(f, "loading vfio-pci failed: {e}; hint: is the vfio-pci module in the initramfs? (see also /{MODPROBE_LOG})"),
            Failure::Addon(e) => write!(f, "loading vfio-pci failed: modprobe found none in the image (see /{MODPROBE_LOG}), and {e}"),
            Failure::NotTaken(None) => f.write_str("vfio-pci did not take it (no driver); hint: see vfio-pci's own kernel log lines just above"),
            Failure::NotTaken(Some(d)) => write!(f, "vfio-pci did not take it ({d} holds it)"),
            Failure::Deadline => f.write_str("the deadline passed before it was probed"),
            Failure::Lead(lead) => write!(f, "{lead}, the display it goes with, was not bound"),
            Failure::Unfinished => f.write_str("the rest of the run (loading vfio-pci, checking the bind) did not complete; see the finish's record above"),
        }
    }
}

impl Left {
    /// The word machines read (state.json `left`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Left::Untouched => "untouched",
            Left::Released => "released",
            Left::ReleasedUnprobed(_) => "released-unprobed",
            Left::Fenced => "fenced",
            Left::Stuck(_) => "stuck",
            Left::Deadline => "deadline",
        }
    }
}

impl fmt::Display for Left {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Left::Untouched => f.write_str("nothing was changed for it"),
            Left::Released => f.write_str("override cleared and re-probed so the host keeps it"),
            Left::ReleasedUnprobed(e) => write!(f, "override cleared, but the re-probe failed ({e}): a driver loaded later can still take it"),
            Left::Fenced => f.write_str("left fenced (vfio-early.on-fail=fence)"),
            Left::Stuck(e) => write!(f, "giving it back failed ({e}): its override stays, so no host driver will take it; hint: echo > driver_override and echo BDF > /sys/bus/pci/drivers_probe"),
            Left::Deadline => f.write_str("the deadline passed, so nothing more was written: its override stays"),
        }
    }
}

/// Result of `apply`, index-aligned with `plan.items`.
pub type Outcomes = heapless::Vec<Outcome, MAX_ITEMS>;

/// What the fence leaves for the rest of the run.
#[derive(Clone, Debug, Default)]
pub struct Fenced {
    /// Outcomes so far: the fenced items are still `AsPlanned`.
    pub out: Outcomes,
    /// The items whose override is written (and unbound where asked), in plan order.
    pub items: heapless::Vec<usize, MAX_DEVICES>,
    /// The deadline stopped the fence.
    pub stopped: bool,
}
