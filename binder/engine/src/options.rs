// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a boot-build command was asked (its options and exit codes), and what every step of one
//! run shares: the root, the start, the run's directory, its deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::apply::{self, Kernel};
use vfio_early_core::config::Settings;
use vfio_early_core::outcome::Deadline;
use vfio_early_system::files::Dir;
use vfio_early_system::read::SysError;
use vfio_early_system::sysfs::Root;

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

/// Exit codes of `plan` (boot mode exits 0 inside an initramfs).
pub const EXIT_OK: i32 = 0;
pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// What every step of one run shares.
pub struct Run<'a> {
    pub opts: &'a Options,
    pub root: Root,
    pub start: Instant,
    /// `/run/vfio-early` in boot mode, opened once: the state file and modprobe's log.
    pub dir: Option<Result<Dir, SysError>>,
    /// The run went on after a handover: udev may have changed what the plan read.
    pub split: bool,
}

pub fn deadline(run: &Run, settings: &Settings) -> Deadline {
    Deadline {
        start: run.start,
        limit: Duration::from_millis(settings.timeout_ms.into()),
    }
}

pub fn ctx<'a, K: Kernel>(
    run: &'a Run,
    kernel: &'a mut K,
    settings: &Settings,
) -> apply::Ctx<'a, K> {
    apply::Ctx {
        root: &run.root,
        kernel,
        deadline: deadline(run, settings),
        on_fail: settings.on_fail,
        log_dir: run.dir.as_ref().and_then(|d| d.as_ref().ok()),
    }
}
