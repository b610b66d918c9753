// SPDX-License-Identifier: MIT OR Apache-2.0
//! Printing for the commands people and scripts run: stdout and stderr that never panic.
//! `print!` panics when its stream cannot be written (a closed pipe, a full disk), which kills
//! the process by a signal (SIGABRT, or SIGILL in the size-tuned build). Here the first stdout
//! error is kept and [`exit_code`] turns it into exit code 2 with a message on stderr; stderr
//! errors are dropped (there is nowhere left to say them).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicI32, Ordering};

/// 0: no stdout error yet; otherwise the OS error number (-1 when there was none).
static STDOUT_ERROR: AtomicI32 = AtomicI32::new(0);

fn record(e: &io::Error) {
    let code = e.raw_os_error().unwrap_or(-1);
    let _ = STDOUT_ERROR.compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
}

pub fn stdout(args: fmt::Arguments<'_>) {
    if STDOUT_ERROR.load(Ordering::Relaxed) != 0 {
        return;
    }
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        record(&e);
    }
}

pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// The exit code, once stdout is flushed: 2 if anything could not be written to it.
pub fn exit_code(code: i32) -> i32 {
    if let Err(e) = io::stdout().lock().flush() {
        record(&e);
    }
    match STDOUT_ERROR.load(Ordering::Relaxed) {
        0 => code,
        -1 => {
            stderr(format_args!("vfio-early: cannot write the output\n"));
            2
        }
        errno => {
            let e = io::Error::from_raw_os_error(errno);
            stderr(format_args!("vfio-early: cannot write the output: {e}\n"));
            2
        }
    }
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::out::stdout(format_args!($($t)*)) };
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($t)*))) };
}
