// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early`, the host build: every command. Arguments in, exit code out; everything else is
//! in the library. The initramfs carries `vfio-early-boot` (bind only) instead.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::ExitCode;

use vfio_early::{addon, check, confedit, help, romcli, status};
use vfio_early_engine::options::{Mode, Options, EXIT_USAGE};
use vfio_early_system::sysfs::Root;
use vfio_early_system::{errln, out, outln};

const HELP: &str = "\
vfio-early: bind chosen PCI devices to vfio-pci from the initramfs, before any native driver

Usage:
  vfio-early bind [--root DIR]                act (inside an initramfs only; always exits 0 there;
                                              also with no command)
  vfio-early plan [--root DIR] [--cmdline S]  show what a boot would do; change nothing
  vfio-early config [--root DIR] [--file F]   what /etc/vfio-early.conf sets, read by the boot's parser
  vfio-early status [--json] [--all] [--root DIR]
                                              every display and audio device, its IOMMU group and
                                              what this boot and the next one do with it
  vfio-early cmdline BDF... [--root DIR]      the kernel argument for these devices, ID-pinned,
                                              or why the next boot would refuse them
  vfio-early check [--json] [--image F] [--root DIR]
                                              whether the next boot will work: one finding a line
                                              (ok, warn, error, needs root), each with its fix;
                                              --image: this image, not the running kernel's
  vfio-early add BDF[+flags]... [--dry-run]   put these devices, ID-pinned, into /etc/vfio-early.conf
                                              (refused if the next boot would refuse them)
  vfio-early remove BDF... [--dry-run]        take them out of it
  vfio-early rom COMMAND [--root DIR] ...     inspect, clean, persist ROMs (vfio-early rom --help)
  vfio-early addon -o FILE [--kver K] [--conf F] [--binary B] [--init B | --no-init]
                                              an initrd add-on for a systemd initrd built without
                                              vfio-early: loaded after it, it binds as the hooks do
                                              (kernel K, default the running one; F's settings);
                                              with the rdinit shim, for any image booted with
                                              rdinit=/usr/lib/vfio-early/init
  vfio-early --help | --version

Options:
  --root DIR      read and write every /proc, /sys, /etc, /run and /dev path under DIR (default /)
  --cmdline S     plan for this kernel command line instead of /proc/cmdline
  --file F        read this file instead of /etc/vfio-early.conf (the hooks pass their own path)

Kernel command line (the same keys work in /etc/vfio-early.conf without the prefix):
  vfio-early.devices=LIST   comma-separated entries, may repeat:
                              01:00.0 or 0000:01:00.0     one device by PCI address
                              01:00.0@10de:1c03[:ssss:ssss] ...that must have this ID
                              10de:1c03[:ssss:ssss]        every device with this ID
                            flags after an entry: +unbind +boot-vga +guarded
                            +reset=flr|af_flr|pm|bus|cxl_bus|acpi|device_specific|default
  vfio-early.off            do nothing (kill switch)
  vfio-early.group=companions|whole|strict   what else of the IOMMU group is taken
  vfio-early.on-fail=release|fence           what to do with a device vfio-pci did not take
  vfio-early.timeout=SECONDS                 the run's own deadline (default 10)
  vfio-early.dry-run        plan and log at boot, write nothing
  vfio-early.debug          more log records
  vfio-early.rom=display|BDF,...             capture these expansion ROMs at boot (once)
  vfio-early.sync           the whole run before udev (no split run beside it)
  vfio-early.init=PATH      the init the rdinit shim starts (command line only)
In /etc/vfio-early.conf only:
  build-strict = yes        the initramfs hooks fail the image build when vfio-early cannot go in
Per command: vfio-early COMMAND --help.

Exit codes of plan: 0 every entry would be bound, 1 something is refused or malformed, 2 usage.
Exit codes of cmdline: 0 printed, 1 the next boot would refuse a device (named on stderr), 2 usage.
Exit codes of add/remove: 0 written (or nothing to do), 1 refused or not listed, 2 usage or unwritable.
Exit codes of check: 0 ready, 1 warnings (or what only root can read), 2 errors.
Exit codes of addon: 0 written, 1 refused (why on stderr), 2 usage or unwritable.
Exit codes of config: 0 clean, 1 a problem (named on stderr), 2 unreadable file or usage.
The kernel log (dmesg | grep vfio-early) and /run/vfio-early/state.json say what happened.
";

/// The command and its words, with the options every command takes already taken out. Words
/// stay OS strings (a file name may be any bytes); each command reads as text only what is text.
struct Args {
    root: PathBuf,
    command: String,
    rest: Vec<OsString>,
}

/// `Ok(None)`: help or version was printed.
fn split(args: impl Iterator<Item = OsString>) -> Result<Option<Args>, String> {
    let mut root = PathBuf::from("/");
    let mut command: Option<String> = None;
    let mut rest = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--root") => root = args.next().ok_or("--root needs a directory")?.into(),
            Some("-h" | "--help") | Some("help") if command.as_deref() != Some("help") => {
                // `help COMMAND` and `COMMAND --help` alike.
                let named = match command.as_deref() {
                    None if arg == "help" => args.next().map(|a| text(&a)).transpose()?,
                    c => c.map(str::to_string),
                };
                match named.as_deref().map(|c| (c, help::of(c))) {
                    None => out!("{HELP}"),
                    Some((_, Some(h))) => out!("{h}"),
                    Some((c, None)) => return Err(format!("unknown command \"{c}\"")),
                }
                return Ok(None);
            }
            Some("-V" | "--version") if command.is_none() => {
                outln!("vfio-early {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ if command.is_none() && !arg.as_encoded_bytes().starts_with(b"-") => {
                command = Some(text(&arg).map_err(|e| format!("unknown command {e}"))?)
            }
            // A value that looks like an option (`--cmdline "--x"`) stays with its option.
            word => {
                let takes_value = matches!(
                    word,
                    Some(
                        "--cmdline"
                            | "--file"
                            | "--image"
                            | "--kver"
                            | "-o"
                            | "--conf"
                            | "--binary"
                            | "--init"
                    )
                );
                rest.push(arg);
                if takes_value {
                    rest.extend(args.next());
                }
            }
        }
    }
    Ok(Some(Args {
        root,
        command: command.unwrap_or_else(|| "bind".into()),
        rest,
    }))
}

/// A word as text, or why not (its bytes shown, the invalid ones as U+FFFD).
fn text(word: &OsStr) -> Result<String, String> {
    word.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("\"{}\" (not UTF-8)", word.to_string_lossy()))
}

/// Every word as text (addresses, entries), or the first that is not.
fn texts(words: &[OsString]) -> Result<Vec<String>, String> {
    words
        .iter()
        .map(|w| text(w).map_err(|e| format!("{e} is not a PCI address")))
        .collect()
}

/// The value of option `name` in `rest` (taken out), and whatever else is left.
fn take_value(rest: &mut Vec<OsString>, name: &str) -> Result<Option<OsString>, String> {
    let Some(at) = rest.iter().position(|a| a == name) else {
        return Ok(None);
    };
    if at + 1 >= rest.len() {
        return Err(format!("{name} needs a value"));
    }
    let value = rest.remove(at + 1);
    rest.remove(at);
    Ok(Some(value))
}

/// Whether flag `name` is in `rest` (taken out).
fn take_flag(rest: &mut Vec<OsString>, name: &str) -> bool {
    let before = rest.len();
    rest.retain(|a| a != name);
    rest.len() != before
}

fn no_more(rest: &[OsString]) -> Result<(), String> {
    match rest.first() {
        Some(other) => Err(format!("unknown argument \"{}\"", other.to_string_lossy())),
        None => Ok(()),
    }
}

/// The first word that looks like an option, as an error.
fn no_options(rest: &[OsString]) -> Result<(), String> {
    match rest.iter().find(|a| a.as_encoded_bytes().starts_with(b"-")) {
        Some(flag) => Err(format!("unknown argument \"{}\"", flag.to_string_lossy())),
        None => Ok(()),
    }
}

fn dispatch(a: Args) -> Result<i32, String> {
    let mut rest = a.rest;
    let root = Root::new(&a.root);
    match a.command.as_str() {
        "bind" | "plan" => {
            let cmdline = take_value(&mut rest, "--cmdline")?
                .map(|c| text(&c).map_err(|e| format!("--cmdline {e}")))
                .transpose()?;
            no_more(&rest)?;
            if cmdline.is_some() && a.command != "plan" {
                return Err("--cmdline goes with plan".into());
            }
            if a.command == "bind" && !root.in_initrd() {
                errln!("{OUTSIDE}");
                return Ok(EXIT_USAGE);
            }
            let mode = match a.command.as_str() {
                "plan" => Mode::Plan,
                _ => Mode::Boot,
            };
            Ok(vfio_early_engine::boot::run(&Options {
                root: a.root,
                mode,
                cmdline,
                split: false,
                finish_unit: false,
            }))
        }
        "config" => {
            let file = take_value(&mut rest, "--file")?;
            no_more(&rest)?;
            let path = match file {
                Some(f) => PathBuf::from(f),
                None => root.path(vfio_early_core::layout::CONFIG_FILE),
            };
            Ok(crate::confedit::config(&path))
        }
        "rom" => Ok(romcli::main(&root, &rest)),
        "status" => {
            let json = take_flag(&mut rest, "--json");
            let all = take_flag(&mut rest, "--all");
            no_more(&rest)?;
            Ok(status::status(&root, json, all))
        }
        "check" => {
            let json = take_flag(&mut rest, "--json");
            let image = take_value(&mut rest, "--image")?;
            no_more(&rest)?;
            Ok(check::check(
                &root,
                json,
                image.as_deref().map(std::path::Path::new),
            ))
        }
        "add" | "remove" => {
            let dry_run = take_flag(&mut rest, "--dry-run");
            no_options(&rest)?;
            let words = texts(&rest)?;
            Ok(match a.command.as_str() {
                "add" => confedit::add(&root, &words, dry_run),
                _ => confedit::remove(&root, &words, dry_run),
            })
        }
        "cmdline" => {
            no_options(&rest)?;
            Ok(status::cmdline(&root, &texts(&rest)?))
        }
        "addon" => {
            let kver = take_value(&mut rest, "--kver")?
                .map(|k| text(&k).map_err(|e| format!("--kver {e}")))
                .transpose()?;
            let out = take_value(&mut rest, "-o")?.ok_or("addon needs -o FILE")?;
            let conf = take_value(&mut rest, "--conf")?.map(PathBuf::from);
            let binary = take_value(&mut rest, "--binary")?.map_or_else(
                || root.path(vfio_early_core::layout::BOOT_BINARY),
                PathBuf::from,
            );
            // The packaged shim rides along when installed; --init names another (it must be
            // there), --no-init leaves it out.
            let init = match (
                take_value(&mut rest, "--init")?,
                take_flag(&mut rest, "--no-init"),
            ) {
                (Some(_), true) => return Err("--init and --no-init exclude each other".into()),
                (Some(p), false) => Some(PathBuf::from(p)),
                (None, true) => None,
                (None, false) => {
                    Some(root.path(vfio_early_core::layout::SHIM)).filter(|p| p.exists())
                }
            };
            no_more(&rest)?;
            let kver = kver.unwrap_or_else(|| vfio_early_system::modload::running_kernel(&root));
            if kver.is_empty() || kver.contains('/') || kver.starts_with('.') {
                return Err(format!("\"{kver}\" is not a kernel release (--kver)"));
            }
            // Reproducible: SOURCE_DATE_EPOCH when set, else 0 (no file in an initrd needs a time).
            let mtime = std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let req = addon::Request {
                root: &root,
                kver: &kver,
                binary,
                init,
                conf,
                mtime,
            };
            Ok(addon::main(&req, std::path::Path::new(&out)))
        }
        other => Err(format!("unknown command \"{other}\"")),
    }
}

/// What `bind` says on a running system (it acts only inside an initramfs).
const OUTSIDE: &str = "\
vfio-early: bind acts only inside an initramfs, before udev, where the hooks run it at boot; on a
running system it changes nothing. At the next boot it would put the devices of
vfio-early.devices= and /etc/vfio-early.conf on vfio-pci:
  vfio-early plan      shows what it would do, device by device, without acting
  vfio-early status    every device, and what this boot and the next one do with it
  vfio-early check     whether the next boot will work";

fn main() -> ExitCode {
    let code = match split(std::env::args_os().skip(1)).and_then(|a| a.map(dispatch).transpose()) {
        Ok(Some(code)) => code,
        Ok(None) => 0,
        Err(msg) => {
            errln!("vfio-early: {msg}\nTry 'vfio-early --help'.");
            EXIT_USAGE
        }
    };
    // Anything stdout could not take (a closed pipe, a full disk) is exit code 2, not a signal.
    ExitCode::from(vfio_early_system::out::exit_code(code) as u8)
}
