// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early-boot`: the build that goes into every initramfs (as `/usr/bin/vfio-early`). It
//! binds and nothing else; the commands people run on the host (`plan`, `config`, `rom`, ...)
//! live in `vfio-early`, so they never grow what every image carries.

use std::path::PathBuf;
use std::process::ExitCode;

use vfio_early::run::{self, Mode, Options, EXIT_USAGE};
use vfio_early::{errln, out, outln};

const HELP: &str = "\
vfio-early (boot build): bind chosen PCI devices to vfio-pci from the initramfs

Usage:
  vfio-early [bind] [--root DIR]   act (inside an initramfs only; always exits 0 there)
  vfio-early --help | --version

The devices come from vfio-early.devices= on the kernel command line or /etc/vfio-early.conf;
see vfio-early(8). On the host, `vfio-early plan`, `status` and `check` say what a boot would do.
";

fn main() -> ExitCode {
    let mut root = PathBuf::from("/");
    let mut args = std::env::args().skip(1);
    let mut command = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                out!("{HELP}");
                return exit(0);
            }
            "-V" | "--version" => {
                outln!("vfio-early {} (boot build)", env!("CARGO_PKG_VERSION"));
                return exit(0);
            }
            "--root" => match args.next() {
                Some(dir) => root = dir.into(),
                None => return usage("--root needs a directory"),
            },
            "bind" if !command => command = true,
            other => return usage(&format!("unknown argument \"{other}\"")),
        }
    }
    let opts = Options {
        root,
        mode: Mode::Boot,
        cmdline: None,
    };
    exit(run::run(&opts))
}

fn usage(msg: &str) -> ExitCode {
    errln!("vfio-early: {msg}\nTry 'vfio-early --help'; the host commands are in the full build.");
    exit(EXIT_USAGE)
}

/// Anything stdout could not take is exit code 2, not a signal.
fn exit(code: i32) -> ExitCode {
    ExitCode::from(vfio_early::out::exit_code(code) as u8)
}
