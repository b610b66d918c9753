// SPDX-License-Identifier: MIT OR Apache-2.0
//! The words: one line per device, shared by the kernel log, `plan` and the state file.

use core::fmt;

use log::Level;

use crate::apply::{Failure, Outcome};
use crate::config::{OnFail, Settings};
use crate::plan::{Decision, Item, Why, VFIO};

/// One device's story.
pub struct DeviceReport<'a> {
    pub item: &'a Item,
    pub outcome: &'a Outcome,
    pub settings: &'a Settings,
}

impl DeviceReport<'_> {
    /// A one-word result for machines.
    pub fn result(&self) -> &'static str {
        match (&self.item.decision, self.outcome) {
            (_, Outcome::Bound { .. }) => "bound",
            (_, Outcome::WouldBind) => "would-bind",
            (_, Outcome::Failed { .. }) => "failed",
            (_, Outcome::NotDone) => "not-done",
            (Decision::Already, _) => "already",
            (Decision::Refuse(_), _) => "refused",
            (Decision::Bind { .. }, Outcome::AsPlanned) => "planned",
        }
    }

    pub fn level(&self) -> Level {
        match self.result() {
            "failed" | "not-done" => Level::Error,
            "refused" => Level::Warn,
            _ => Level::Info,
        }
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
            (_, Outcome::Failed { reason: reason @ Failure::Deadline, .. }) => {
                write!(f, "not bound: {reason}")
            }
            (_, Outcome::Failed { reason, released }) => {
                write!(f, "not bound: {reason}; ")?;
                match (r.settings.on_fail, released) {
                    (OnFail::Release, true) => {
                        f.write_str("override cleared and re-probed so the host keeps it")
                    }
                    (OnFail::Release, false) => {
                        f.write_str("could not clear its override: it stays fenced")
                    }
                    (OnFail::Fence, _) => {
                        f.write_str("left fenced with no driver (vfio-early.on-fail=fence)")
                    }
                }
            }
            (_, Outcome::NotDone) => write!(
                f,
                "not handled: the deadline ({} s, vfio-early.timeout) passed first; nothing written for it",
                r.settings.timeout_ms / 1000
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
}

impl Counts {
    pub fn add(&mut self, r: &DeviceReport<'_>) {
        match r.result() {
            "bound" | "already" => self.bound += 1,
            "would-bind" | "planned" => self.would_bind += 1,
            "refused" => self.refused += 1,
            _ => self.failed += 1,
        }
    }
}
