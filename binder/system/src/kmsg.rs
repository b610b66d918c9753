// SPDX-License-Identifier: MIT OR Apache-2.0
//! A `log` backend for the kernel log that cannot fail.
//!
//! Written here rather than taken from a crate because it needs what none offers together: one
//! `write()` per record (the kernel makes each write one record), records cut below the kernel's
//! ~1 KiB limit, a per-run record budget under the kernel's rate limit (a burst of 10 per open
//! file by default) with the last slot kept for the summary, and a silent fall back to stderr.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::sysfs::{self, Root};
use vfio_early_core::text::Bounded;

/// Longest record: the kernel rejects longer ones (LOG_LINE_MAX is 1024 minus its prefix).
pub const RECORD_MAX: usize = 976;
/// Records per run while the kernel rate-limits /dev/kmsg writers (`printk_devkmsg=ratelimit`).
pub const RECORD_BUDGET: u32 = 10;
/// Log target of the summary record, which always gets the last slot.
pub const SUMMARY: &str = "summary";

/// Which part of a split run writes the records: named after the `vfio-early:` prefix users grep
/// for, so the kernel log alone tells the story of a boot whose phases ran in three processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// A run in one process (`vfio-early`, the shim's, `plan`): no phase named.
    Whole,
    Fence,
    Finish,
    Settle,
}

impl Phase {
    fn prefix(self) -> &'static str {
        match self {
            Phase::Whole => "",
            Phase::Fence => "fence: ",
            Phase::Finish => "finish: ",
            Phase::Settle => "settle: ",
        }
    }
}

static PHASE: AtomicU8 = AtomicU8::new(Phase::Whole as u8);

/// Names the phase in every record from now on.
pub fn set_phase(phase: Phase) {
    PHASE.store(phase as u8, Ordering::Relaxed);
}

fn phase() -> Phase {
    match PHASE.load(Ordering::Relaxed) {
        1 => Phase::Fence,
        2 => Phase::Finish,
        3 => Phase::Settle,
        _ => Phase::Whole,
    }
}

struct Sink {
    kmsg: Option<File>,
    /// `None`: no budget (stderr, or `printk_devkmsg=on`).
    budget: Option<u32>,
}

pub struct KmsgLogger {
    sink: Mutex<Sink>,
    written: AtomicU32,
    suppressed: AtomicU32,
}

static LOGGER: KmsgLogger = KmsgLogger {
    sink: Mutex::new(Sink {
        kmsg: None,
        budget: None,
    }),
    written: AtomicU32::new(0),
    suppressed: AtomicU32::new(0),
};

/// Where records go.
pub enum Target<'a> {
    /// `/dev/kmsg` under the root (stderr if it cannot be opened or printk_devkmsg is off);
    /// `printk_devkmsg` is the content of `/proc/sys/kernel/printk_devkmsg` when readable.
    Kmsg {
        path: &'a Path,
        printk_devkmsg: Option<&'a str>,
    },
    Stderr,
}

/// Installs the logger once; later calls only change the target.
pub fn init(target: Target<'_>, level: LevelFilter) {
    let sink = match target {
        Target::Kmsg {
            path,
            printk_devkmsg,
        } => {
            let mode = printk_devkmsg.map(str::trim);
            // With printk_devkmsg=off the kernel swallows writes silently: use stderr.
            let kmsg = (mode != Some("off"))
                .then(|| {
                    use nix::fcntl::OFlag;
                    crate::read::open_file(path, OFlag::O_WRONLY | OFlag::O_APPEND, 0).ok()
                })
                .flatten();
            let budget = (kmsg.is_some() && mode != Some("on")).then_some(RECORD_BUDGET);
            Sink { kmsg, budget }
        }
        Target::Stderr => Sink {
            kmsg: None,
            budget: None,
        },
    };
    if let Ok(mut s) = LOGGER.sink.lock() {
        *s = sink;
    }
    LOGGER.written.store(0, Ordering::Relaxed);
    LOGGER.suppressed.store(0, Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Records dropped to stay within the budget.
pub fn suppressed() -> u32 {
    LOGGER.suppressed.load(Ordering::Relaxed)
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Formats one record into a bounded buffer: `<N>vfio-early: [phase: ]message`.
pub fn format(level: Level, args: &core::fmt::Arguments<'_>) -> heapless::String<RECORD_MAX> {
    let mut b = Bounded::<{ RECORD_MAX - 1 }>::new();
    let _ = core::fmt::write(
        &mut b,
        format_args!(
            "<{}>vfio-early: {}{}",
            priority(level),
            phase().prefix(),
            args
        ),
    );
    let mut line = heapless::String::new();
    let _ = line.push_str(&b.finish());
    let _ = line.push('\n');
    line
}

impl Log for KmsgLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format(record.level(), record.args());
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        if let Some(budget) = sink.budget {
            // The last slot belongs to the summary, so it is never the record the kernel drops.
            let limit = if record.target() == SUMMARY {
                budget
            } else {
                budget - 1
            };
            if self.written.load(Ordering::Relaxed) >= limit {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let to_kmsg = match sink.kmsg.as_mut() {
            Some(f) => f.write(line.as_bytes()).is_ok(),
            None => false,
        };
        if to_kmsg {
            self.written.fetch_add(1, Ordering::Relaxed);
        } else {
            // Skip the `<N>` priority prefix on a terminal.
            let text = line.split_once('>').map_or(line.as_str(), |(_, t)| t);
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// The start of every boot-build command: the kernel log as the logger, and false (said, with
/// `why` it refuses) outside an initramfs.
pub fn boot_start(root: &Root, why: &str) -> bool {
    boot_logger(root);
    if root.in_initrd() {
        return true;
    }
    log::error!("not inside an initramfs (no /etc/initrd-release): {why}");
    false
}

/// Log records go to the kernel log (stderr where printk_devkmsg=off swallows them).
pub fn boot_logger(root: &Root) {
    let devkmsg = sysfs::read_attr::<64>(&root.path("proc/sys/kernel/printk_devkmsg"))
        .ok()
        .flatten();
    init(
        Target::Kmsg {
            path: &root.path("dev/kmsg"),
            printk_devkmsg: devkmsg.as_deref(),
        },
        LevelFilter::Info,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bounded_lines() {
        let long = "x".repeat(5000);
        let line = format(Level::Warn, &format_args!("{long}"));
        assert!(line.len() <= RECORD_MAX);
        assert!(line.starts_with("<4>vfio-early: xxx"));
        assert!(line.ends_with("...\n"), "cut visibly and still one line");
        assert_eq!(
            format(Level::Info, &format_args!("hello")).as_str(),
            "<6>vfio-early: hello\n"
        );
    }
}
