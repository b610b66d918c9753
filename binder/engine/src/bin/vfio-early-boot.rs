// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early-boot`: the build that goes into every initramfs (as `/usr/bin/vfio-early`). It
//! binds and nothing else; the commands people run on the host (`plan`, `config`, `rom`, ...)
//! live in `vfio-early`, so they never grow what every image carries.
//!
//! `no_main`: the C runtime calls `main` directly. std's start-up (probing fds 0-2, a guard page
//! and signal stack for stack-overflow messages) is a dozen syscalls every boot pays for nothing
//! here; the one part that matters, SIGPIPE ignored, is done by hand.
#![no_main]
// The C entry point (no_main) reads argv by pointer: the only unsafe outside vfio-early-system.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_char, c_int, CStr};
use std::path::PathBuf;

use vfio_early_engine::options::{Mode, Options, EXIT_USAGE};
use vfio_early_system::arena::Arena;

/// A boot run's heap: 1 MiB of `.bss` (pages the kernel maps at exec, touched only as used;
/// the largest users are the 64 KiB buffer files are streamed through and the state file); past
/// it, the system allocator.
#[global_allocator]
static HEAP: Arena<{ 1 << 20 }> = Arena::new();
use vfio_early_system::{errln, out, outln};

const HELP: &str = "\
vfio-early (boot build): bind chosen PCI devices to vfio-pci from the initramfs

Usage:
  vfio-early [bind] [--root DIR]   the whole run (systemd initrds; inside an initramfs only,
                                   always exits 0 there)
  vfio-early fence [--root DIR]    before udev (shell inits): write the overrides, start
                                   `finish` for the rest (load vfio-pci, check the binds,
                                   report) and return
  vfio-early fence --unit          the same in a systemd initrd, where `finish` is
                                   vfio-early-finish.service
  vfio-early finish [--root DIR]   the rest of a run `fence` handed off (beside udev)
  vfio-early settle [--root DIR]   after `finish`, whatever became of it (systemd's
                                   ExecStopPost=): every fenced device not on vfio-pci is given
                                   back (or kept, on-fail=fence) and named
  vfio-early wait [--root DIR]     shell inits, before the switch to the real root: wait for
                                   `finish` up to the deadline, stop it past it, settle
  vfio-early --help | --version

The devices come from vfio-early.devices= on the kernel command line or /etc/vfio-early.conf;
see vfio-early(8). On the host, `vfio-early plan`, `status` and `check` say what a boot would do.
";

/// Called by the C runtime with the process's arguments.
///
/// # Safety
/// `argv` holds `argc` pointers to NUL-terminated strings, as the C runtime passes them.
#[no_mangle]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // A log write to a closed stderr (a journal that went away) must not kill a run half-way.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_IGN) };
    let count = usize::try_from(argc).unwrap_or(0);
    let args = (1..count).filter_map(|i| {
        // SAFETY: the C runtime passes `argc` pointers to NUL-terminated strings.
        let arg = unsafe { *argv.add(i) };
        (!arg.is_null()).then(|| {
            // SAFETY: as above: a non-null entry is a NUL-terminated string.
            unsafe { CStr::from_ptr(arg) }
                .to_string_lossy()
                .into_owned()
        })
    });
    bind(args)
}

fn bind(args: impl Iterator<Item = String>) -> c_int {
    let mut root = PathBuf::from("/");
    let mut args = args;
    let mut command = None;
    let mut unit = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                out!("{HELP}");
                return exit(0);
            }
            "-V" | "--version" => {
                outln!("{}", vfio_early_engine::BOOT_VERSION_LINE);
                return exit(0);
            }
            "--root" => match args.next() {
                Some(dir) => root = dir.into(),
                None => return usage("--root needs a directory"),
            },
            "--unit" if command.as_deref() == Some("fence") => unit = true,
            "bind" | "fence" | "finish" | "settle" | "wait" if command.is_none() => {
                command = Some(arg)
            }
            other => return usage(&format!("unknown argument \"{other}\"")),
        }
    }
    let opts = Options {
        root,
        mode: Mode::Boot,
        cmdline: None,
        split: command.as_deref() == Some("fence"),
        finish_unit: unit,
    };
    use vfio_early_engine::split;
    exit(match command.as_deref() {
        Some("wait") => split::wait(&vfio_early_system::sysfs::Root::new(&opts.root)),
        Some("finish") => split::finish(&opts),
        Some("settle") => split::settle(&opts),
        _ => vfio_early_engine::boot::run(&opts),
    })
}

fn usage(msg: &str) -> c_int {
    errln!("vfio-early: {msg}\nTry 'vfio-early --help'; the host commands are in the full build.");
    exit(EXIT_USAGE)
}

/// Anything stdout could not take is exit code 2, not a signal.
fn exit(code: i32) -> c_int {
    vfio_early_system::out::exit_code(code)
}
