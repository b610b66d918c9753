// SPDX-License-Identifier: MIT OR Apache-2.0
//! The end of every run: one line per device, the summary record and the state file
//! (`/run/vfio-early/state.json`, docs/interface.md), rewritten whole from what is known.

use std::time::Instant;

use log::{log, warn};

use crate::options::{Mode, Options, Run, EXIT_OK, EXIT_REFUSED};
use crate::sources::Sources;
use vfio_early_core::config::{Problems, Settings};
use vfio_early_core::json::Json;
use vfio_early_core::layout::{STATE_FILE, STATE_NAME};
use vfio_early_core::outcome::{Outcome, Outcomes};
use vfio_early_core::plan::{self, Plan};
use vfio_early_core::report::{Counts, DeviceReport};
use vfio_early_system::files::Replace;
use vfio_early_system::kmsg::{self, SUMMARY};
use vfio_early_system::sysfs::Root;

/// The state file's schema (docs/interface.md); `statefile` reads this one and every older one.
pub const STATE_VERSION: u32 = 2;

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
pub fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub fn write_state(
    run: &Run,
    input: &Sources,
    done: Option<(&Plan, &Outcomes)>,
    stage: Stage,
    ms: u64,
) {
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
pub fn tell(run: &Run, input: &Sources, done: Option<(&Plan, &Outcomes)>, bad: usize) -> i32 {
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

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The texts of the ID entries that matched no device.
pub fn unmatched_texts<'a>(
    plan: &'a Plan,
    settings: &'a Settings,
) -> impl Iterator<Item = &'a str> {
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
    let input = Sources {
        settings: settings.clone(),
        problems: Problems::default(),
        cmdline_ids: false,
        digest: 0,
    };
    state_json(&run, &input, Some((plan, out)), stage, 0)
}

pub fn state_json(
    run: &Run,
    input: &Sources,
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
