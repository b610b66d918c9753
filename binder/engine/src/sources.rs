// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where the settings come from: `/etc/vfio-early.conf`, dracut's `/etc/cmdline.d/*.conf` and the
//! kernel command line, each read whole under its cap or named as a problem; the digest of what a
//! plan depends on; the hacks vfio-early replaces, where they linger.

use log::warn;

use vfio_early_core::config::{InputError, Origin, Problems, Settings, MAX_CMDLINE_D};
use vfio_early_core::config::{CMDLINE_CAP, CONFIG_CAP};
use vfio_early_core::layout::CONFIG_FILE;
use vfio_early_core::legacy;
use vfio_early_core::text::Token;
use vfio_early_system::sysfs::Root;

/// Everything the configuration sources say, with the problems found in them.
pub struct Sources {
    pub settings: Settings,
    pub problems: Problems,
    pub cmdline_ids: bool,
    /// [`plan_digest`] of what was read: the rest of a split run compares it with the fence's.
    pub digest: u64,
}

/// Folds `bytes` (and a separator) into an FNV-1a hash.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes.iter().chain(&[0xff]) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The settings keys a plan depends on (`timeout`, `rom`, `sync`, `debug` do not change what
/// the rest of a split run does with the fence's devices).
pub const PLAN_KEYS: [&str; 5] = ["devices ", "off ", "group ", "on-fail ", "dry-run "];

/// A hash of what the plan depends on: those settings, as the config file would spell them,
/// and whether the sources were read whole. Another dracut module writing its own
/// `/etc/cmdline.d` file between the fence and the rest changes no vfio-early setting, so it
/// changes nothing here.
pub fn plan_digest(settings: &Settings, blocked: bool) -> u64 {
    let form = vfio_early_core::config::FileForm(settings).to_string();
    let kept = form
        .lines()
        .filter(|l| PLAN_KEYS.iter().any(|k| l.starts_with(k)));
    kept.fold(fnv(0xcbf2_9ce4_8422_2325, &[u8::from(blocked)]), |h, l| {
        fnv(h, l.as_bytes())
    })
}

/// Reads the config file, dracut's cmdline.d and the command line, in that order of precedence.
/// An input longer than its cap, or more cmdline.d files than are read, blocks binding: what
/// was not read may hold a device entry or the kill switch.
pub fn read(root: &Root, cmdline: Option<&str>) -> Sources {
    let mut settings = Settings::default();
    let mut problems = Problems::default();
    apply_config_file(&root.path(CONFIG_FILE), &mut settings, &mut problems);
    // dracut's getcmdline(): cmdline.d in name order first, /proc/cmdline last (it wins).
    let confs = cmdline_d_files(root, &mut problems);
    let mut cmdline_ids = false;
    for name in &confs {
        let path = root
            .path(vfio_early_core::layout::CMDLINE_D)
            .join(name.as_str());
        let origin = Origin::CmdlineD(Token::new(name));
        cmdline_ids |= apply_cmdline_file(&path, origin, &mut settings, &mut problems);
    }
    cmdline_ids |= match cmdline {
        Some(c) => {
            settings.apply_cmdline(c.as_bytes(), Origin::Cmdline, &mut problems);
            legacy::cmdline_has_ids(c.as_bytes())
        }
        None => apply_cmdline_file(
            &root.path(vfio_early_core::layout::PROC_CMDLINE),
            Origin::Cmdline,
            &mut settings,
            &mut problems,
        ),
    };
    let digest = plan_digest(&settings, problems.blocked);
    Sources {
        settings,
        problems,
        cmdline_ids,
        digest,
    }
}

/// Applies one command-line file (cut: a blocking problem); true when it has `vfio-pci.ids=`.
pub fn apply_cmdline_file(
    path: &std::path::Path,
    origin: Origin,
    settings: &mut Settings,
    problems: &mut Problems,
) -> bool {
    match vfio_early_system::read::read_input(path, CMDLINE_CAP) {
        Ok(input) => {
            settings.apply_cmdline(&input.bytes, origin.clone(), problems);
            if input.cut {
                problems.push(origin, InputError::Cut(CMDLINE_CAP));
            }
            legacy::cmdline_has_ids(&input.bytes)
        }
        Err(e) => {
            problems.push(origin, unreadable(&e));
            false
        }
    }
}

/// The message of a read error, bounded (the path is in the problem's origin).
pub fn unreadable(e: &vfio_early_system::read::SysError) -> InputError {
    let why = match e {
        vfio_early_system::read::SysError::Io { source, .. } => source.to_string(),
        vfio_early_system::read::SysError::Malformed { what, .. } => (*what).to_string(),
        other => other.to_string(),
    };
    InputError::Unreadable(Token::new(&why))
}

/// The names of the first `MAX_CMDLINE_D` `*.conf` entries of `/etc/cmdline.d` in name order
/// (dracut's order): the smallest names are kept whatever order the directory lists them in.
/// Every file that is not read is a blocking problem.
pub fn cmdline_d_files(
    root: &Root,
    problems: &mut Problems,
) -> heapless::Vec<FileName, MAX_CMDLINE_D> {
    let mut names: heapless::Vec<FileName, MAX_CMDLINE_D> = heapless::Vec::new();
    let unreadable_dir = |problems: &mut Problems, e: &std::io::Error| {
        let origin = Origin::CmdlineD(Token::new("*.conf"));
        problems.push(origin, InputError::Unreadable(Token::new(&e.to_string())));
    };
    // Absent: dracut reads none. Anything else it cannot list (a loop, a file there, EIO) may
    // hide a file dracut's shell would still read: nothing is bound.
    let dir = match std::fs::read_dir(root.path(vfio_early_core::layout::CMDLINE_D)) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return names,
        Err(e) => {
            unreadable_dir(problems, &e);
            return names;
        }
    };
    let mut more = false;
    for e in dir {
        let e = match e {
            Ok(e) => e,
            Err(e) => {
                unreadable_dir(problems, &e);
                break;
            }
        };
        let name = e.file_name();
        if !name.as_encoded_bytes().ends_with(b".conf") {
            continue;
        }
        let Some(name) = name.to_str().and_then(|n| FileName::try_from(n).ok()) else {
            let origin = Origin::CmdlineD(Token::from_bytes(name.as_encoded_bytes()));
            problems.push(origin, InputError::NameNotRead);
            continue;
        };
        let at = names.partition_point(|n| n.as_str() < name.as_str());
        if names.is_full() {
            more = true;
            if at == names.len() {
                continue;
            }
            names.pop();
        }
        let _ = names.insert(at, name);
    }
    if more {
        let origin = Origin::CmdlineD(Token::new("*.conf"));
        problems.push(origin, InputError::TooManyFiles(MAX_CMDLINE_D));
    }
    names
}

/// A cmdline.d file name kept for reading.
type FileName = heapless::String<128>;

/// Applies `/etc/vfio-early.conf` (or `path`); absent is fine, unreadable or cut is a problem.
pub fn apply_config_file(path: &std::path::Path, settings: &mut Settings, problems: &mut Problems) {
    match vfio_early_system::read::read_input_optional(path, CONFIG_CAP) {
        Ok(None) => {}
        Ok(Some(input)) => {
            settings.apply_file(&input.text(), problems);
            if input.cut {
                problems.push(Origin::Config, InputError::Cut(CONFIG_CAP));
            }
        }
        Err(e) => problems.push(Origin::Config, unreadable(&e)),
    }
}

/// The hacks vfio-early replaces, where they linger: read only when there is something to bind.
pub fn warn_legacy(root: &Root, input: &Sources) {
    if input.cmdline_ids {
        warn!("the command line also has vfio-pci.ids=: vfio-pci will grab every device with those IDs, identical twins included; vfio-early selects by address, so drop vfio-pci.ids=");
    }
    for rel in vfio_early_system::modopts::conf_files(root) {
        let Ok(input) = vfio_early_system::read::read_input(&root.path(&rel), CONFIG_CAP) else {
            continue;
        };
        let h = legacy::scan_modprobe_conf(&input.text());
        if h.ids {
            warn!("/{rel}: `options vfio-pci ids=` grabs every device with those IDs, identical twins included; remove it");
        }
        if h.install {
            warn!("/{rel}: an `install vfio-pci` directive (the old override-script hack) runs when vfio-early loads vfio-pci; remove it");
        }
    }
}
