// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early-init`, installed as `/usr/lib/vfio-early/init`: the rdinit shim (see `shim`).
//! Booted as `rdinit=/usr/lib/vfio-early/init`, it is PID 1: it runs the binder in a child,
//! then execs the image's real init with its own arguments and environment. It writes only to
//! the kernel log (its stdout may be no terminal, or closed), and never returns while an init
//! can be started: returning from PID 1 panics the kernel.
#![no_main]
// The C entry point (no_main) reads argv by pointer: the only unsafe outside vfio-early-system.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_char, c_int, CString};
use std::path::Path;

use log::{error, warn};
use nix::libc;

use vfio_early_engine::shim::{self, Identity};
use vfio_early_system::sysfs::{self, Root};

const HELP: &str = "\
vfio-early init: the rdinit shim of vfio-early

Boot with rdinit=/usr/lib/vfio-early/init on the boot entry whose initrd carries it (the
add-on, or the image's own files): it mounts /dev, /proc and /sys, runs the binder
(vfio-early bind) up to its deadline, unmounts them and starts the image's init
(vfio-early.init=PATH, else /init) with the same arguments. It runs only as PID 1.
See vfio-early(8).
";

/// Called by the C runtime with the process's arguments.
///
/// # Safety
/// `argv` holds `argc` pointers to NUL-terminated strings, as the C runtime passes them.
#[no_mangle]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    if std::process::id() != 1 {
        // By hand on a running system: say what it is, and touch nothing.
        vfio_early_system::errln!("{HELP}\nvfio-early init: not PID 1: nothing done");
        // SAFETY: argv holds argc pointers; argv[1] exists when argc > 1.
        let help = argc > 1
            && matches!(
                unsafe { std::ffi::CStr::from_ptr(*argv.add(1)) }.to_bytes(),
                b"--help" | b"-h"
            );
        return vfio_early_system::out::exit_code(if help {
            0
        } else {
            vfio_early_engine::options::EXIT_USAGE
        });
    }
    shim::fill_stdio();
    let root = Root::new("/");
    let mounted = shim::prepare(&root);
    vfio_early_system::kmsg::boot_logger(&root);
    shim::report_mounts(&mounted);
    // PID 1 parses only what decides which init to start; the binder reads the settings.
    let line = sysfs::read_attr::<4096>(&root.path(vfio_early_core::layout::PROC_CMDLINE))
        .ok()
        .flatten()
        .unwrap_or_default();
    let (inits, why) = shim::inits(line.as_bytes());
    if let Some(why) = why {
        warn!("shim: {why}; hint: vfio-early.init= names the image's init by its absolute path");
    }
    let own = Identity::own(&root);
    if own.is_none() {
        warn!("shim: cannot tell which file this shim is (no /proc/self/exe, no AT_EXECFN): only an init named {} is known to be the shim", vfio_early_core::layout::SHIM_PATH);
    }
    let binder = shim::binder(&root);
    let ran = binder.as_deref().map(shim::run_binder);
    shim::restore(&mounted);
    // The same file as the shim (through a link, `//`, `..` or a hard link) would start the
    // shim again, for ever: skipped. Without our own identity the name is all there is.
    let inits: heapless::Vec<&str, 6> = inits
        .iter()
        .map(String::as_str)
        .filter(|init| {
            let is_shim = match own {
                Some(_) => Identity::of(Path::new(init)) == own,
                None => *init == vfio_early_core::layout::SHIM_PATH,
            };
            if is_shim {
                warn!("shim: {init} is this shim itself (the same file): skipped");
            }
            !is_shim
        })
        .collect();
    let outcome = binder.as_deref().zip(ran.as_ref());
    shim::report(
        outcome.map(|(b, (r, t))| (b, r, t)),
        inits.first().copied().unwrap_or("no init"),
    );
    for (i, init) in inits.iter().enumerate() {
        // SAFETY: argv as the C runtime passed it.
        let e = unsafe { exec(init, argc, argv) };
        match inits.get(i + 1) {
            Some(next) => warn!("shim: cannot start {init}: {e}; starting {next}"),
            None => error!("shim: cannot start {init}: {e}"),
        }
    }
    error!(
        "shim: no init could be started (tried {}): the kernel panics now, as it would itself",
        inits.join(", ")
    );
    1
}

/// execve()s `path` with argv[0] set to it, the rest of our arguments and our environment;
/// returns only when it failed, with why.
///
/// # Safety
/// `argv` holds `argc` pointers to NUL-terminated strings.
unsafe fn exec(path: &str, argc: c_int, argv: *const *const c_char) -> std::io::Error {
    extern "C" {
        static environ: *const *const c_char;
    }
    let Ok(p) = CString::new(path) else {
        return std::io::ErrorKind::InvalidInput.into();
    };
    let count = usize::try_from(argc).unwrap_or(0);
    let mut args: Vec<*const c_char> = Vec::with_capacity(count + 1);
    args.push(p.as_ptr());
    // SAFETY: the C runtime passes `argc` pointers.
    args.extend((1..count).map(|i| unsafe { *argv.add(i) }));
    args.push(std::ptr::null());
    // SAFETY: a NUL-terminated path and a null-terminated argv whose strings outlive the call;
    // environ is the C runtime's.
    unsafe { libc::execve(p.as_ptr(), args.as_ptr(), environ) };
    std::io::Error::last_os_error()
}
