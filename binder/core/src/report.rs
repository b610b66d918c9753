// SPDX-License-Identifier: MIT OR Apache-2.0
//! The words: one line per device, shared by the kernel log, `plan` and the state file.

use core::fmt;

use log::Level;

use crate::config::Settings;
use crate::outcome::Outcome;
use crate::plan::{Decision, Item, Why, VFIO};

/// One device's story.
pub struct DeviceReport<'a> {
    pub item: &'a Item,
    pub outcome: &'a Outcome,
    pub settings: &'a Settings,
}

/// What became of a device, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Bound,
    Already,
    WouldBind,
    Planned,
    Refused,
    Failed,
    NotDone,
    Unknown,
    /// Fenced, the rest of the run not done yet (between the phases; `incomplete` if it never
    /// reported).
    Pending,
}

impl Verdict {
    /// The word machines read (state.json `result`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Bound => "bound",
            Verdict::Already => "already",
            Verdict::WouldBind => "would-bind",
            Verdict::Planned => "planned",
            Verdict::Refused => "refused",
            Verdict::Failed => "failed",
            Verdict::NotDone => "not-done",
            Verdict::Unknown => "unknown",
            Verdict::Pending => "pending",
        }
    }

    pub fn level(self) -> Level {
        match self {
            Verdict::Failed | Verdict::NotDone | Verdict::Unknown => Level::Error,
            Verdict::Refused => Level::Warn,
            _ => Level::Info,
        }
    }
}

impl DeviceReport<'_> {
    pub fn verdict(&self) -> Verdict {
        match (&self.item.decision, self.outcome) {
            (_, Outcome::Bound { .. }) => Verdict::Bound,
            (_, Outcome::WouldBind) => Verdict::WouldBind,
            (_, Outcome::Failed { .. }) => Verdict::Failed,
            (_, Outcome::NotDone) => Verdict::NotDone,
            (_, Outcome::Unknown) => Verdict::Unknown,
            (_, Outcome::Pending) => Verdict::Pending,
            (Decision::Already, _) => Verdict::Already,
            (Decision::Refuse(_), _) => Verdict::Refused,
            (Decision::Bind { .. }, Outcome::AsPlanned) => Verdict::Planned,
        }
    }

    pub fn level(&self) -> Level {
        self.verdict().level()
    }

    /// What happened, without the device and the reason it was considered.
    pub fn detail(&self) -> impl fmt::Display + '_ {
        Detail(self)
    }

    /// Why it was considered.
    pub fn why(&self) -> impl fmt::Display + '_ {
        WhyText(self)
    }
}

struct Detail<'a, 'b>(&'a DeviceReport<'b>);
struct WhyText<'a, 'b>(&'a DeviceReport<'b>);

impl fmt::Display for Detail<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        match (&r.item.decision, r.outcome) {
            (_, Outcome::Bound { via, unbound_from }) => {
                if let Some(d) = unbound_from {
                    write!(f, "unbound from {d}, ")?;
                }
                write!(f, "bound to {VFIO} via {via}")
            }
            (Decision::Bind { unbind }, Outcome::WouldBind) => {
                f.write_str("would bind to vfio-pci")?;
                if let Some(d) = unbind {
                    write!(f, " after unbinding it from {d}")?;
                }
                Ok(())
            }
            (_, Outcome::Failed { reason, left, now }) => {
                write!(f, "not bound: {reason}; {left}; now ")?;
                match now {
                    Some(d) => write!(f, "on {d}"),
                    None => f.write_str("with no driver"),
                }
            }
            (_, Outcome::Unknown) => write!(
                f,
                "outcome unknown: modprobe {VFIO} was still running at the deadline ({} s, vfio-early.timeout); it was left running and nothing more was written",
                r.settings.timeout_ms / 1000
            ),
            (_, Outcome::NotDone) => write!(
                f,
                "not handled: the deadline ({} s, vfio-early.timeout) passed first; nothing written for it",
                r.settings.timeout_ms / 1000
            ),
            (_, Outcome::Pending) => f.write_str(
                "fenced (driver_override = vfio-pci); loading vfio-pci and checking the bind follow beside udev",
            ),
            (Decision::Already, _) => f.write_str("already on vfio-pci; nothing to do"),
            (Decision::Refuse(why), _) => write!(f, "refused: {why}"),
            (Decision::Bind { .. }, _) => f.write_str("to be bound to vfio-pci"),
        }
    }
}

impl fmt::Display for WhyText<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        match r.item.why {
            Why::Listed(n) => match r.settings.entries.get(n) {
                Some(e) => write!(f, "entry {}", e.text),
                None => f.write_str("listed"),
            },
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Display for DeviceReport<'_> {
    /// `0000:01:00.0 [1234:1111] display controller (entry 01:00.0): bound to vfio-pci via modprobe`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.item.bdf)?;
        if let Some(d) = &self.item.dev {
            write!(f, " [{}] {}", d.id, d.class.kind())?;
        }
        write!(f, " ({}): {}", self.why(), self.detail())
    }
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// On vfio-pci now (bound in this run, or already there).
    pub bound: usize,
    /// Would be bound (a dry run, or `plan`): nothing was written for them.
    pub would_bind: usize,
    pub refused: usize,
    pub failed: usize,
    /// modprobe still running at the deadline: not known.
    pub unknown: usize,
    /// Fenced, the rest of the run still to come.
    pub pending: usize,
}

impl Counts {
    pub fn add(&mut self, r: &DeviceReport<'_>) {
        match r.verdict() {
            Verdict::Bound | Verdict::Already => self.bound += 1,
            Verdict::WouldBind | Verdict::Planned => self.would_bind += 1,
            Verdict::Refused => self.refused += 1,
            Verdict::Failed | Verdict::NotDone => self.failed += 1,
            Verdict::Unknown => self.unknown += 1,
            Verdict::Pending => self.pending += 1,
        }
    }
}
