// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early`: arguments in, exit code out; everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use vfio_early::run::{self, Mode, Options, EXIT_USAGE};
use vfio_early::sysfs::Root;
use vfio_early::{errln, out, outln, romcli};

const HELP: &str = "\
vfio-early: bind chosen PCI devices to vfio-pci from the initramfs, before any native driver

Usage:
  vfio-early [bind] [--root DIR]              act (inside an initramfs only; always exits 0 there)
  vfio-early plan [--root DIR] [--cmdline S]  show what a boot would do; change nothing
  vfio-early config [--root DIR]              what /etc/vfio-early.conf sets, read by the boot's parser
  vfio-early rom COMMAND [--root DIR] ...     inspect, clean, persist ROMs (vfio-early rom --help)
  vfio-early --help | --version

Options:
  --root DIR      read and write every /proc, /sys, /etc, /run and /dev path under DIR (default /)
  --cmdline S     plan for this kernel command line instead of /proc/cmdline

Kernel command line (the same keys work in /etc/vfio-early.conf without the prefix):
  vfio-early.devices=LIST   comma-separated entries, may repeat:
                              01:00.0 or 0000:01:00.0     one device by PCI address
                              01:00.0@10de:1c03[:ssss:ssss] ...that must have this ID
                              10de:1c03[:ssss:ssss]        every device with this ID
                            flags after an entry: +unbind +boot-vga +guarded
  vfio-early.off            do nothing (kill switch)
  vfio-early.group=companions|whole|strict   what else of the IOMMU group is taken
  vfio-early.on-fail=release|fence           what to do with a device vfio-pci did not take
  vfio-early.timeout=SECONDS                 the run's own deadline (default 10)
  vfio-early.dry-run        plan and log at boot, write nothing
  vfio-early.debug          more log records
  vfio-early.rom=display|BDF,...             capture these expansion ROMs at boot (once)

Exit codes of plan: 0 every entry would be bound, 1 something is refused or malformed, 2 usage.
Exit codes of config: 0 clean, 1 a problem (named on stderr), 2 unreadable file or usage.
The kernel log (dmesg | grep vfio-early) and /run/vfio-early/state.json say what happened.
";

/// What the command line asks for.
enum Cmd {
    Run(Options),
    Config(PathBuf),
    Rom(PathBuf, Vec<String>),
}

fn main() -> ExitCode {
    let code = match parse(std::env::args().skip(1)) {
        Ok(Some(Cmd::Run(opts))) => run::run(&opts),
        Ok(Some(Cmd::Config(root))) => run::config(&Root::new(root)),
        Ok(Some(Cmd::Rom(root, args))) => romcli::main(&Root::new(root), &args),
        Ok(None) => 0,
        Err(msg) => {
            errln!("vfio-early: {msg}\nTry 'vfio-early --help'.");
            EXIT_USAGE
        }
    };
    // Anything stdout could not take (a closed pipe, a full disk) is exit code 2, not a signal.
    ExitCode::from(vfio_early::out::exit_code(code) as u8)
}

/// `Ok(None)`: help or version was printed.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Cmd>, String> {
    let mut opts = Options {
        root: PathBuf::from("/"),
        mode: Mode::Boot,
        cmdline: None,
    };
    let mut command = None;
    let mut rom_args = None::<Vec<String>>;
    while let Some(arg) = args.next() {
        if let Some(rest) = rom_args.as_mut() {
            match arg.as_str() {
                "--root" => opts.root = args.next().ok_or("--root needs a directory")?.into(),
                "-h" | "--help" | "help" => {
                    out!("{}", romcli::USAGE);
                    return Ok(None);
                }
                _ => rest.push(arg),
            }
            continue;
        }
        match arg.as_str() {
            "rom" if command.is_none() => rom_args = Some(Vec::new()),
            "-h" | "--help" | "help" => {
                out!("{HELP}");
                return Ok(None);
            }
            "-V" | "--version" => {
                outln!("vfio-early {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--root" => opts.root = args.next().ok_or("--root needs a directory")?.into(),
            "--cmdline" => opts.cmdline = Some(args.next().ok_or("--cmdline needs a string")?),
            "bind" | "plan" | "config" if command.is_none() => {
                command = Some(arg.clone());
                if arg == "plan" {
                    opts.mode = Mode::Plan;
                }
            }
            other => return Err(format!("unknown argument \"{other}\"")),
        }
    }
    if let Some(rest) = rom_args {
        return Ok(Some(Cmd::Rom(opts.root, rest)));
    }
    if opts.cmdline.is_some() && opts.mode != Mode::Plan {
        return Err("--cmdline goes with plan".into());
    }
    if command.as_deref() == Some("config") {
        return Ok(Some(Cmd::Config(opts.root)));
    }
    Ok(Some(Cmd::Run(opts)))
}
