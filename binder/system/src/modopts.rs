// SPDX-License-Identifier: MIT OR Apache-2.0
//! modprobe.d as kmod reads it, for the modules vfio-early loads itself (the add-on's, see
//! `modload`): which `*.conf` files count (one name in an earlier directory masks the same name
//! in a later one; the rest in name order), their `options MODULE PARAMS...` lines, and the
//! kernel command line's `MODULE.PARAM=VALUE` words, so what the admin set stays in force.

use crate::sysfs::Root;
use vfio_early_core::cmdline::{self, param_eq};
use vfio_early_core::legacy::{MODPROBE_DIRS, MODPROBE_DIRS_USR};

/// modprobe.d files read, at most (kmod has no limit; a system has a few dozen).
pub const MAX_FILES: usize = 64;
/// One modprobe.d file, at most (they are a few hundred bytes).
pub const FILE_CAP: usize = 64 << 10;

/// The `*.conf` files kmod reads under `root`, as paths relative to it, in the order it applies
/// them; at most [`MAX_FILES`].
pub fn conf_files(root: &Root) -> Vec<String> {
    // (name, path) kept in name order as they come (an insertion, not a sort: small code).
    let mut seen: Vec<(String, String)> = Vec::new();
    for dir in MODPROBE_DIRS.iter().chain([&MODPROBE_DIRS_USR]) {
        let Ok(entries) = std::fs::read_dir(root.path(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let at = seen.partition_point(|(n, _)| *n < name);
            if name.ends_with(".conf") && seen.get(at).map_or(true, |(n, _)| *n != name) {
                let rel = format!("{dir}/{name}");
                seen.insert(at, (name, rel));
            }
        }
    }
    seen.truncate(MAX_FILES);
    seen.into_iter().map(|(_, rel)| rel).collect()
}

/// The parameters `options` lines of one modprobe.d text give `module` (`-` and `_` alike), in
/// order, joined by spaces. Lines ending in `\` continue; `#` starts a comment line only at its
/// start (kmod takes a later `#` as a parameter, and so do we).
pub fn options_in(text: &str, module: &str, out: &mut String) {
    let mut line = String::new();
    for part in text.lines() {
        if let Some(head) = part.strip_suffix('\\') {
            line.push_str(head);
            line.push(' ');
            continue;
        }
        line.push_str(part);
        options_line(&line, module, out);
        line.clear();
    }
    options_line(&line, module, out);
}

fn options_line(line: &str, module: &str, out: &mut String) {
    let mut words = line.split_whitespace();
    if words.next() != Some("options") {
        return;
    }
    if !words
        .next()
        .is_some_and(|m| param_eq(m.as_bytes(), module.as_bytes()))
    {
        return;
    }
    for w in words {
        push_word(out, w);
    }
}

/// The command line's `MODULE.PARAM[=VALUE]` words for `module`, as `PARAM[=VALUE]`.
pub fn options_on_cmdline(line: &[u8], module: &str, out: &mut String) {
    for a in cmdline::args(line) {
        let Some(dot) = a.param.iter().position(|&b| b == b'.') else {
            continue;
        };
        if !param_eq(&a.param[..dot], module.as_bytes()) || dot + 1 == a.param.len() {
            continue;
        }
        let Ok(param) = core::str::from_utf8(&a.param[dot + 1..]) else {
            continue;
        };
        let mut w = param.to_string();
        if let Some(v) = a.value.and_then(|v| core::str::from_utf8(v).ok()) {
            w.push('=');
            // A value with spaces was quoted on the command line; keep it one parameter.
            if v.contains(' ') {
                w.push('"');
                w.push_str(v);
                w.push('"');
            } else {
                w.push_str(v);
            }
        }
        push_word(out, &w);
    }
}

fn push_word(out: &mut String, w: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(w);
}

/// What modprobe would pass `module` under `root`: modprobe.d's options, then the command
/// line's (`cmdline`, the text of /proc/cmdline). Unreadable files are skipped: options are
/// the admin's wish, never a reason not to load.
pub fn options(root: &Root, files: &[String], cmdline: &[u8], module: &str) -> String {
    let mut out = String::new();
    for rel in files {
        if let Ok(i) = crate::read::read_input(&root.path(rel), FILE_CAP) {
            options_in(&i.text(), module, &mut out);
        }
    }
    options_on_cmdline(cmdline, module, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_lines_and_the_command_line() {
        let mut o = String::new();
        options_in(
            "# options vfio_pci nope=1\noptions vfio_pci disable_vga=1\noptions vfio-pci \\\n  disable_idle_d3=1\noptions snd_hda_intel x=1\nblacklist vfio_pci\noptions\n",
            "vfio-pci",
            &mut o,
        );
        assert_eq!(o, "disable_vga=1 disable_idle_d3=1");
        options_on_cmdline(
            b"quiet vfio_pci.ids=1:2 vfio-pci.x=\"a b\" vfio_pcix.y=1 vfio_pci. vfio_pci.flag",
            "vfio_pci",
            &mut o,
        );
        assert_eq!(o, "disable_vga=1 disable_idle_d3=1 ids=1:2 x=\"a b\" flag");
    }

    #[test]
    fn earlier_directories_mask_the_same_name() {
        let t = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("etc/modprobe.d/vfio.conf", "options vfio_pci a=etc\n");
        put("usr/lib/modprobe.d/vfio.conf", "options vfio_pci a=lib\n");
        put("usr/lib/modprobe.d/00-first.conf", "options vfio_pci b=1\n");
        put("run/modprobe.d/readme.txt", "options vfio_pci c=1\n");
        let root = Root::new(t.path());
        let files = conf_files(&root);
        assert_eq!(
            files,
            [
                "usr/lib/modprobe.d/00-first.conf",
                "etc/modprobe.d/vfio.conf"
            ]
        );
        assert_eq!(
            options(&root, &files, b"vfio_pci.d=2", "vfio_pci"),
            "b=1 a=etc d=2"
        );
    }
}
