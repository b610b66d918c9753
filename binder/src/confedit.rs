// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early add` and `vfio-early remove`: the one safe way to say what to take. The entry
//! written is pinned to the device's IDs, judged by the next boot's own planner first, and the
//! file is replaced atomically (the safe writer: a temporary name, fsync, rename), under a lock,
//! keeping every other line and comment as it was. Each line is read by the boot's own parser,
//! so what is written is what the boot reads.

use std::fmt::Write as _;
use std::path::Path;

use crate::imagetool;
use crate::nextboot;
use crate::status::{line as device_line, pinned_entry};
use vfio_early_core::config::InputError;
use vfio_early_core::config::CONFIG_CAP;
use vfio_early_core::config::{Problems, Settings, MAX_ENTRIES};
use vfio_early_core::entry::{self, Entry, Selector};
use vfio_early_core::layout::CONFIG_FILE;
use vfio_early_core::pci::Bdf;
use vfio_early_core::plan::{Decision, Refusal, Why};
use vfio_early_engine::options::{EXIT_OK, EXIT_REFUSED, EXIT_USAGE};
use vfio_early_engine::sources::apply_config_file;
use vfio_early_system::files::Dir;
use vfio_early_system::sysfs::{self, Root};

/// The device entries one line of the file contributes, by the boot's parser.
fn line_entries(line: &str) -> heapless::Vec<Entry, MAX_ENTRIES> {
    let mut s = Settings::default();
    s.apply_file(line, &mut Problems::default());
    s.entries
}

/// The file's text ("" when absent); an unreadable or cut file is an error: never rewrite what
/// was not read whole.
fn read(root: &Root) -> Result<String, String> {
    let path = root.path(CONFIG_FILE);
    match vfio_early_system::read::read_input_optional(&path, CONFIG_CAP) {
        Ok(None) => Ok(String::new()),
        Ok(Some(i)) if i.cut => Err(format!(
            "{}: longer than {CONFIG_CAP} bytes: not rewritten",
            path.display()
        )),
        Ok(Some(i)) => String::from_utf8(i.bytes)
            .map_err(|_| format!("{}: not UTF-8: not rewritten", path.display())),
        Err(e) => Err(e.to_string()),
    }
}

/// The problems the boot's parser finds in a text, as lines.
fn problems(text: &str) -> Vec<String> {
    let mut p = Problems::default();
    Settings::default().apply_file(text, &mut p);
    p.kept.iter().map(|p| p.to_string()).collect()
}

/// A unified-diff-like view of the change, for --dry-run.
fn diff(old: &str, new: &str) -> String {
    let mut out = String::new();
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[common..]
        .iter()
        .rev()
        .zip(b[common..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    for l in &a[common..a.len() - tail] {
        let _ = writeln!(out, "-{l}");
    }
    for l in &b[common..b.len() - tail] {
        let _ = writeln!(out, "+{l}");
    }
    out
}

/// Writes `text` as the config file, atomically, unless it would add a problem the boot's
/// parser names.
fn write(root: &Root, old: &str, text: &str) -> Result<(), String> {
    let before = problems(old);
    let new: Vec<String> = problems(text)
        .into_iter()
        .filter(|p| {
            !before
                .iter()
                .any(|b| b.split_once(": ").map(|x| x.1) == p.split_once(": ").map(|x| x.1))
        })
        .collect();
    if let Some(p) = new.first() {
        return Err(format!(
            "the result would not read cleanly ({p}): nothing written"
        ));
    }
    let path = root.path(CONFIG_FILE);
    let (dir, name) = Dir::of_user_path(&path).map_err(|e| e.to_string())?;
    // A run killed before its rename left its temporary file; under the lock none is live.
    let _ = dir.remove_stale_temps();
    // Over a regular file only (a symlink from config management is not replaced by a file
    // behind its back); its mode, owner and group stay.
    dir.replace_regular(&name, text.as_bytes(), 0o644)
        .map_err(|e| e.to_string())
}

/// Holds the lock that serialises `add` and `remove` (on `/etc` itself).
fn locked(root: &Root) -> Result<(Dir, impl Drop), String> {
    let path = root.path(CONFIG_FILE);
    let dir =
        Dir::open(path.parent().unwrap_or(Path::new("/")), "", false).map_err(|e| e.to_string())?;
    let guard = dir.lock().map_err(|e| e.to_string())?;
    Ok((dir, guard))
}

/// What to tell after a change: the rebuild command, and the IOMMU argument if it is missing.
fn next_steps(root: &Root) -> Vec<String> {
    let mut out = Vec::new();
    match imagetool::detect(root) {
        Some(g) => out.push(format!(
            "the file goes into the initramfs: rebuild it with `{}`",
            g.rebuild()
        )),
        None => out.push("no initramfs generator found (update-initramfs, dracut, mkinitcpio): put the file into your image yourself".into()),
    }
    if !sysfs::dir_has_entries(&root.path(vfio_early_core::layout::IOMMU_GROUPS)) {
        out.push(format!(
            "the IOMMU is off: add {} to the kernel command line (README, \"3. Take it\")",
            crate::status::iommu_argument(root)
        ));
    }
    out
}

/// The exit code of a command whose errors are usage or I/O: 2, said on stderr.
fn edge(command: &str, result: Result<i32, String>) -> i32 {
    result.unwrap_or_else(|e| {
        errln!("vfio-early {command}: {e}");
        2
    })
}

/// `vfio-early add BDF[+flags]... [--dry-run]`; returns the exit code (0 written or nothing to
/// do, 1 refused, 2 usage or unwritable).
pub fn add(root: &Root, words: &[String], dry_run: bool) -> i32 {
    edge("add", add_inner(root, words, dry_run))
}

fn add_inner(root: &Root, words: &[String], dry_run: bool) -> Result<i32, String> {
    if words.is_empty() {
        return Err("which devices? (addresses with optional flags, e.g. 01:00.0 or 05:00.0+guarded; `vfio-early status` lists them)".into());
    }
    let (_dir, _guard) = locked(root)?;
    let old = read(root)?;
    // What the next boot reads: the file, dracut's cmdline.d and the command line together.
    let before = nextboot::plan(root, None);
    let mut added = Vec::new();
    for w in words {
        let (addr, flags) = w.split_once('+').map_or((w.as_str(), ""), |(a, f)| (a, f));
        let bdf = Bdf::parse(addr).ok_or_else(|| {
            format!("\"{w}\" is not a PCI address with optional +flags (e.g. 01:00.0+unbind)")
        })?;
        if let Some(item) = before.plan.items.iter().find(|i| i.bdf == bdf) {
            let line = device_line(&before, item);
            match (&item.decision, item.why) {
                (d, _) if d.takes() => {
                    outln!("{bdf} is taken already: {line}; nothing to add");
                    continue;
                }
                (_, Why::Listed(_)) => {
                    errln!("vfio-early add: an entry names {bdf} already, and the next boot would refuse it: {line}; `vfio-early remove {bdf}` first (or fix the command line)");
                    return Ok(1);
                }
                _ => {}
            }
        }
        let dev = sysfs::read_device(root, &bdf, None)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("{bdf}: no such PCI device (`vfio-early status --all` lists them)")
            })?;
        let mut text = pinned_entry(&dev);
        if !flags.is_empty() {
            text += "+";
            text += flags;
        }
        // The boot's own parser: a flag it does not know is refused here, not at boot.
        entry::parse(&text).map_err(|e| format!("\"{text}\": {e}"))?;
        added.push((bdf, text));
    }
    if added.is_empty() {
        return Ok(0);
    }
    // Judged as the next boot would judge every source with these entries added.
    let mut entries = before.input.settings.entries.clone();
    for (_, text) in &added {
        let e = entry::parse(text).map_err(|e| e.to_string())?;
        entries
            .push(e)
            .map_err(|_| format!("the file would hold more than {MAX_ENTRIES} entries"))?;
    }
    let next = nextboot::plan(root, Some(entries));
    let mut refused = 0;
    for item in &next.plan.items {
        let ours = added.iter().any(|(b, _)| *b == item.bdf);
        let follows = matches!(item.why, Why::Companion(l, _) | Why::GroupMember(l) if added.iter().any(|(b, _)| *b == l));
        match &item.decision {
            // With the IOMMU off every device is refused for it: the entry is written, and the
            // argument that turns the IOMMU on is printed with the next steps.
            Decision::Refuse(Refusal::NoGroup { iommu_off: true }) if ours || follows => {
                errln!("vfio-early: {}", device_line(&next, item));
            }
            Decision::Refuse(_) if ours || follows => {
                errln!(
                    "vfio-early: the next boot would refuse {}",
                    device_line(&next, item)
                );
                refused += 1;
            }
            _ if follows => errln!(
                "vfio-early: {} comes along: {}",
                item.bdf,
                device_line(&next, item)
            ),
            _ => {}
        }
    }
    for (bdf, names) in next.inputs_behind_taken_usb(root) {
        errln!("vfio-early: {}", nextboot::input_warning(&bdf, &names));
    }
    for w in nextboot::source_warnings(root, &next, true) {
        errln!("vfio-early: {w}");
    }
    for o in &next.plan.outside {
        errln!("vfio-early: {o}");
    }
    if refused > 0 {
        errln!("vfio-early add: nothing written");
        return Ok(1);
    }
    let mut new = old.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    for (_, text) in &added {
        let _ = writeln!(new, "devices = {text}");
    }
    if dry_run {
        out!("{}", diff(&old, &new));
        return Ok(0);
    }
    write(root, &old, &new)?;
    for (_, text) in &added {
        outln!("added to /{CONFIG_FILE}: devices = {text}");
    }
    for s in next_steps(root) {
        outln!("{s}");
    }
    Ok(0)
}

/// The device's IDs (zeros when it cannot be read: only ID entries look at them).
fn id_of(root: &Root, bdf: &Bdf) -> vfio_early_core::pci::PciId {
    sysfs::read_device(root, bdf, None)
        .ok()
        .flatten()
        .map(|d| d.id)
        .unwrap_or_default()
}

/// `vfio-early remove BDF... [--dry-run]`; returns the exit code (0 removed, 1 refused or not
/// listed, 2 usage or unwritable).
pub fn remove(root: &Root, words: &[String], dry_run: bool) -> i32 {
    edge("remove", remove_inner(root, words, dry_run))
}

fn remove_inner(root: &Root, words: &[String], dry_run: bool) -> Result<i32, String> {
    if words.is_empty() {
        return Err("which devices? (addresses, as `vfio-early status` shows them)".into());
    }
    let mut bdfs = Vec::new();
    for w in words {
        bdfs.push(Bdf::parse(w).ok_or_else(|| format!("\"{w}\" is not a PCI address"))?);
    }
    let (_dir, _guard) = locked(root)?;
    let old = read(root)?;
    let mut new = String::with_capacity(old.len());
    let mut removed = Vec::new();
    let mut code = 0;
    for line in old.split_inclusive('\n') {
        let named =
            |e: &Entry| matches!(e.selector, Selector::Bdf { bdf, .. } if bdfs.contains(&bdf));
        if !line_entries(line).iter().any(named) {
            new.push_str(line);
            continue;
        }
        // Only the named entries go: every other word of the list (a bad entry too: the user
        // fixes it, we do not drop it), the key as written and the comment stay.
        let end = if line.ends_with('\n') { "\n" } else { "" };
        let (body, comment) = match line.trim_end_matches('\n').split_once('#') {
            Some((b, c)) => (b, Some(c)),
            None => (line.trim_end_matches('\n'), None),
        };
        let (key, value) = body.split_once('=').unwrap_or(("devices", body));
        let mut kept = Vec::new();
        for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match entry::parse(word) {
                Ok(e) if named(&e) => removed.push(e.text.to_string()),
                _ => kept.push(word),
            }
        }
        if kept.is_empty() && comment.is_none() {
            continue; // the whole line was these devices
        }
        if kept.is_empty() {
            // The comment was the user's: it stays, on a line of its own.
            let _ = write!(new, "#{}{end}", comment.unwrap_or_default());
            continue;
        }
        let _ = write!(new, "{} = {}", key.trim(), kept.join(", "));
        if let Some(c) = comment {
            let _ = write!(new, " #{}", c.trim_end());
        }
        new.push_str(end);
    }
    // An ID entry still takes the device: removing its address would change nothing.
    let left = line_entries(&new);
    for bdf in &bdfs {
        let id = id_of(root, bdf);
        if let Some(e) = left
            .iter()
            .find(|e| matches!(e.selector, Selector::Id(_)) && e.selects(bdf, &id))
        {
            errln!(
                "vfio-early remove: {bdf} is also taken by the ID entry \"{}\": remove that entry (it takes every device with these IDs) or leave {bdf}",
                e.text
            );
            return Ok(1);
        }
        if !removed
            .iter()
            .any(|t| entry::parse(t).is_ok_and(|e| e.selects(bdf, &id)))
        {
            errln!("vfio-early remove: {bdf} is not listed in /{CONFIG_FILE}");
            code = 1;
        }
    }
    if removed.is_empty() {
        return Ok(code);
    }
    if dry_run {
        out!("{}", diff(&old, &new));
        return Ok(code);
    }
    write(root, &old, &new)?;
    for t in &removed {
        outln!("removed from /{CONFIG_FILE}: {t}");
    }
    for s in next_steps(root) {
        outln!("{s}");
    }
    Ok(code)
}

/// `vfio-early config`: what the config file (`/etc/vfio-early.conf`, or the hooks' own path)
/// sets, read by the boot's own parser, one `key = value` line per key on stdout, every problem
/// named on stderr. The generator hooks ask it for `build-strict`. Exit 0 clean, 1 problems (the
/// output is what a boot would apply), 2 unreadable file or unwritable output.
pub fn config(path: &std::path::Path) -> i32 {
    use std::io::Write;
    let mut settings = Settings::default();
    let mut problems = Problems::default();
    apply_config_file(path, &mut settings, &mut problems);
    if let Some(p) = problems
        .kept
        .iter()
        .find(|p| matches!(p.error, InputError::Unreadable(_)))
    {
        errln!("vfio-early: {p}");
        return EXIT_USAGE;
    }
    for p in &problems.kept {
        errln!("vfio-early: {p}");
    }
    if problems.dropped > 0 {
        errln!("vfio-early: {} more problems not shown", problems.dropped);
    }
    let text = vfio_early_core::config::FileForm(&settings).to_string();
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        errln!("vfio-early: cannot write the settings: {e}");
        return EXIT_USAGE;
    }
    if problems.is_empty() {
        EXIT_OK
    } else {
        EXIT_REFUSED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_show_only_what_changed() {
        assert_eq!(diff("a\nb\nc\n", "a\nb\nc\nd\n"), "+d\n");
        assert_eq!(diff("a\nx\nc\n", "a\nc\n"), "-x\n");
        assert_eq!(diff("", "d\n"), "+d\n");
    }

    #[test]
    fn one_line_is_read_by_the_boot_parser() {
        let e = line_entries("devices = 01:00.0, 10de:1c03+guarded # mine\n");
        let texts: Vec<&str> = e.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["01:00.0", "10de:1c03+guarded"]);
        assert!(line_entries("# devices = 01:00.0\n").is_empty());
        assert!(line_entries("group = whole\n").is_empty());
    }
}
