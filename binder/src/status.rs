// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early status` and `vfio-early cmdline`: the host's view of every candidate device, its
//! IOMMU group, what this boot's binder did with it and what the next boot would do, for people
//! (a table by group) and scripts (`--json`, a versioned schema in docs/interface.md).
//!
//! Gathering (sysfs, the state file, the ROM store, pci.ids) is apart from rendering; the next
//! boot's fate comes from the boot's own planner (`nextboot`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::nextboot::{self, NextBoot};
use crate::pciids::{self, Names};
use crate::statefile::{self, BootState, Record};
use vfio_early_core::config::MAX_ENTRIES;
use vfio_early_core::device::Device;
use vfio_early_core::entry::Entry;
use vfio_early_core::iomem::{self, Framebuffer};
use vfio_early_core::layout::ROMS_VAR_DIR;
use vfio_early_core::outcome::Outcome;
use vfio_early_core::pci::Bdf;
use vfio_early_core::plan::{Decision, Item, Why};
use vfio_early_core::report::DeviceReport;
use vfio_early_engine::romstore;
use vfio_early_system::read::SysError;
use vfio_early_system::sysfs::{self, Root};

/// The JSON schema's version (docs/interface.md, "status --json").
pub const SCHEMA_VERSION: u64 = 1;

/// An attribute as an unprivileged or privileged reader finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr {
    Value(String),
    /// The kernel has no such attribute for this device.
    Absent,
    NeedsRoot,
}

/// Whether the host console is on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDisplay {
    No,
    /// `boot_vga` is 1.
    BootVga,
    /// /proc/iomem lists a firmware framebuffer in one of its BARs.
    Framebuffer,
    /// A framebuffer exists that only root can place.
    NeedsRoot,
}

/// What the next boot would do with a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fate {
    /// `would-bind`, `already`, `refused`, or `not-asked`.
    pub word: &'static str,
    /// Why it is considered (`entry 01:00.0`, `audio companion of ...`).
    pub why: Option<String>,
    /// The boot's own words.
    pub detail: Option<String>,
}

/// One PCI function as the host sees it now.
#[derive(Clone, Debug)]
pub struct Row {
    pub dev: Device,
    pub driver_override: Attr,
    pub reset_method: Attr,
    pub boot_display: BootDisplay,
    pub names: Names,
    pub this_boot: Option<Record>,
    pub next_boot: Fate,
    /// Clean captures stored for its IDs.
    pub roms: Vec<String>,
}

/// Everything `status` shows.
pub struct Status {
    pub rows: Vec<Row>,
    /// Indexes into `rows`, in display order (by group).
    pub shown: Vec<usize>,
    pub iommu_on: bool,
    pub state: BootState,
    /// The pci.ids used, or why there are no names.
    pub pci_ids: Result<String, String>,
    /// Problems of the configuration (the boot parser's words), and devices not read.
    pub problems: Vec<String>,
}

fn attr(root: &Root, bdf: &Bdf, name: &str) -> Attr {
    match sysfs::read_attr::<256>(&root.attr(bdf, name)) {
        Ok(Some(v)) => Attr::Value(v.trim().to_string()),
        Ok(None) => Attr::Absent,
        Err(SysError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Attr::NeedsRoot
        }
        Err(_) => Attr::Absent,
    }
}

/// `(null)` (most kernels) and an empty value both mean no override.
fn override_value(a: Attr) -> Attr {
    match a {
        Attr::Value(v) if v.is_empty() || v == "(null)" => Attr::Absent,
        other => other,
    }
}

/// Every PCI function under the root, sorted by address; the ones that could not be read are
/// named in `problems`.
fn devices(root: &Root, problems: &mut Vec<String>) -> Vec<Device> {
    let mut bdfs = Vec::new();
    if let Err(e) = sysfs::for_each_bdf(&root.devices_dir(), |b| bdfs.push(b)) {
        problems.push(format!("the PCI devices cannot be listed: {e}"));
    }
    bdfs.sort();
    let mut out = Vec::new();
    for bdf in bdfs {
        match sysfs::read_device(root, &bdf, None) {
            Ok(Some(d)) => out.push(d),
            Ok(None) => {}
            Err(e) => problems.push(format!("{bdf}: {e}")),
        }
    }
    out
}

fn boot_display(d: &Device, fbs: &[Framebuffer], root: &Root) -> BootDisplay {
    if d.boot_vga {
        return BootDisplay::BootVga;
    }
    if !d.class.is_display() {
        return BootDisplay::No;
    }
    let bars = if iomem::needs_bars(fbs) {
        sysfs::read_bars(root, &d.bdf).unwrap_or_default()
    } else {
        heapless::Vec::new()
    };
    if iomem::shows(fbs, &d.bdf, &bars) {
        BootDisplay::Framebuffer
    } else if iomem::hidden(fbs) {
        BootDisplay::NeedsRoot
    } else {
        BootDisplay::No
    }
}

/// The next boot's fate of a device, in the boot's own words.
fn fate(next: &NextBoot, bdf: &Bdf) -> Fate {
    let Some(item) = next.plan.items.iter().find(|i| i.bdf == *bdf) else {
        return Fate {
            word: "not-asked",
            why: None,
            detail: None,
        };
    };
    let outcome = match item.decision {
        Decision::Bind { .. } => Outcome::WouldBind,
        _ => Outcome::AsPlanned,
    };
    let r = DeviceReport {
        item,
        outcome: &outcome,
        settings: next.settings(),
    };
    let (why, detail) = (r.why().to_string(), r.detail().to_string());
    Fate {
        word: r.verdict().as_str(),
        why: Some(why),
        detail: Some(detail),
    }
}

/// Clean captures in the store, by file name (a capture's name carries its four IDs).
fn stored_roms(root: &Root) -> Vec<String> {
    std::fs::read_dir(root.path(ROMS_VAR_DIR))
        .map(|d| {
            let mut names: Vec<String> = d
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.ends_with(".rom") && !n.starts_with('.'))
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default()
}

/// Reads the database of names; the text, or why there is none.
fn read_pci_ids(root: &Root) -> Result<(String, String), String> {
    let Some(rel) = pciids::PATHS.iter().find(|p| root.path(p).exists()) else {
        return Err(format!(
            "no pci.ids ({}): IDs only; install the pci.ids (Debian) or hwdata (Fedora) package for names",
            pciids::PATHS.map(|p| format!("/{p}")).join(", ")
        ));
    };
    match vfio_early_system::read::read_input(&root.path(rel), pciids::CAP) {
        Ok(input) if input.cut => Err(format!(
            "/{rel} is longer than {} bytes: not a pci.ids; IDs only",
            pciids::CAP
        )),
        Ok(input) => Ok((format!("/{rel}"), input.text().into_owned())),
        Err(e) => Err(format!("{e}: IDs only")),
    }
}

/// Gathers the table: every device, and which of them to show (`all`, or the display and audio
/// functions, the devices the configuration names, and everything that shares their groups).
pub fn gather(root: &Root, all: bool) -> Status {
    let mut problems = Vec::new();
    let next = nextboot::plan(root, None);
    for p in &next.input.problems.kept {
        problems.push(format!("configuration: {p}"));
    }
    for e in &next.errors.kept {
        problems.push(format!("scan: {e}"));
    }
    for (bdf, names) in next.inputs_behind_taken_usb(root) {
        problems.push(format!(
            "{}; hint: {}",
            nextboot::input_warning(&bdf, &names),
            nextboot::INPUT_FIX
        ));
    }
    let devs = devices(root, &mut problems);
    let fbs = sysfs::framebuffers(root).unwrap_or_default();
    let state = statefile::read(root);
    let roms = stored_roms(root);
    let mut pci_ids = read_pci_ids(root);
    let lookup = pci_ids.as_ref().ok().map(|(_, text)| {
        let ids: Vec<_> = devs.iter().map(|d| (d.id, d.class)).collect();
        pciids::lookup(text, &ids)
    });
    if lookup.as_ref().is_some_and(|l| l.entries == 0) {
        if let Ok((path, _)) = &pci_ids {
            pci_ids = Err(format!(
                "{path} has no entry that parses: not a pci.ids; IDs only"
            ));
        }
    }
    let mut rows = Vec::new();
    for (n, dev) in devs.into_iter().enumerate() {
        let prefix = romstore::id_prefix(&dev.id);
        rows.push(Row {
            driver_override: override_value(attr(root, &dev.bdf, "driver_override")),
            reset_method: attr(root, &dev.bdf, "reset_method"),
            boot_display: boot_display(&dev, &fbs, root),
            names: match (&lookup, &pci_ids) {
                (Some(l), Ok(_)) => l.names[n].clone(),
                _ => Names::default(),
            },
            this_boot: state.record(&dev.bdf).cloned(),
            next_boot: fate(&next, &dev.bdf),
            roms: roms
                .iter()
                .filter(|r| r.starts_with(&prefix))
                .cloned()
                .collect(),
            dev,
        });
    }
    let iommu_on = rows.iter().any(|r| r.dev.group.is_some())
        || sysfs::dir_has_entries(&root.path(vfio_early_core::layout::IOMMU_GROUPS));
    let shown = select(&rows, all);
    Status {
        rows,
        shown,
        iommu_on,
        state,
        pci_ids: pci_ids.map(|(path, _)| path),
        problems,
    }
}

/// The rows to show, ordered by group (devices without one last), then address.
fn select(rows: &[Row], all: bool) -> Vec<usize> {
    let wanted = |r: &Row| {
        all || r.dev.class.is_display()
            || r.dev.class.is_audio()
            || r.next_boot.word != "not-asked"
            || r.this_boot.is_some()
    };
    let groups: Vec<u32> = rows
        .iter()
        .filter(|r| wanted(r))
        .filter_map(|r| r.dev.group)
        .collect();
    let mut shown: Vec<usize> = (0..rows.len())
        .filter(|&n| wanted(&rows[n]) || rows[n].dev.group.is_some_and(|g| groups.contains(&g)))
        .collect();
    shown.sort_by_key(|&n| {
        (
            rows[n].dev.group.is_none(),
            rows[n].dev.group,
            rows[n].dev.bdf,
        )
    });
    shown
}

fn attr_text(a: &Attr) -> &str {
    match a {
        Attr::Value(v) => v,
        Attr::Absent => "none",
        Attr::NeedsRoot => "needs root",
    }
}

fn attr_json(a: &Attr) -> Value {
    match a {
        Attr::Value(v) => json!(v),
        Attr::Absent => Value::Null,
        Attr::NeedsRoot => json!("needs root"),
    }
}

/// `Class [cccc]: Vendor Device [vvvv:dddd] (rev)`, lspci's words where pci.ids has them.
fn title(r: &Row) -> String {
    let d = &r.dev;
    let class = r
        .names
        .class
        .clone()
        .unwrap_or_else(|| d.class.kind().to_string());
    // As lspci: "Device" stands for a name pci.ids does not have.
    let name = match (&r.names.vendor, &r.names.device) {
        (Some(v), Some(dev)) => format!("{v} {dev}"),
        (Some(v), None) => format!("{v} Device"),
        _ => "Device".into(),
    };
    let mut t = format!("{class} [{:04x}]: {name} [{}]", d.class.0 >> 8, d.id);
    if d.id.subvendor != 0 || d.id.subdevice != 0 {
        let _ = write!(
            t,
            " (subsystem {:04x}:{:04x}",
            d.id.subvendor, d.id.subdevice
        );
        if let Some(s) = &r.names.subsystem {
            let _ = write!(t, " {s}");
        }
        t.push(')');
    }
    t
}

fn boot_display_text(b: BootDisplay) -> &'static str {
    match b {
        BootDisplay::No => "no",
        BootDisplay::BootVga => "yes (boot_vga)",
        BootDisplay::Framebuffer => "yes (firmware framebuffer)",
        BootDisplay::NeedsRoot => "needs root (a firmware framebuffer is listed)",
    }
}

fn this_boot_text(r: &Row, state: &BootState) -> String {
    match (&r.this_boot, state) {
        (Some(rec), _) => {
            let mut t = format!("{} ({})", rec.result, rec.why);
            if rec.result != "bound" && !rec.detail.is_empty() {
                let _ = write!(t, ": {}", rec.detail);
            }
            t
        }
        (None, BootState::Read { .. }) => "not asked".into(),
        (None, BootState::Absent) => "no record (vfio-early did not run)".into(),
        (None, BootState::Unreadable(w)) if w == "needs root" => "needs root".into(),
        (None, _) => "unknown (no usable state file)".into(),
    }
}

fn next_boot_text(f: &Fate) -> String {
    match (&f.why, &f.detail) {
        (Some(why), Some(detail)) => format!("{detail} ({why})"),
        _ => "not asked".into(),
    }
}

impl Status {
    /// The table for people.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let groups = {
            let mut g: Vec<u32> = self.rows.iter().filter_map(|r| r.dev.group).collect();
            g.sort_unstable();
            g.dedup();
            g.len()
        };
        let _ = writeln!(
            o,
            "IOMMU: {}",
            if self.iommu_on {
                format!("on, {groups} groups")
            } else {
                "off (no IOMMU groups): add intel_iommu=on or amd_iommu=on, and enable VT-d / AMD-Vi in the firmware".into()
            }
        );
        let _ = writeln!(o, "{}", self.state);
        if let Err(why) = &self.pci_ids {
            let _ = writeln!(o, "names: {why}");
        }
        for p in &self.problems {
            let _ = writeln!(o, "problem: {p}");
        }
        let mut last: Option<Option<u32>> = None;
        for &n in &self.shown {
            let r = &self.rows[n];
            if last != Some(r.dev.group) {
                match r.dev.group {
                    Some(g) => {
                        let _ = writeln!(o, "\nIOMMU group {g}");
                    }
                    None => {
                        let _ = writeln!(o, "\nno IOMMU group");
                    }
                }
                last = Some(r.dev.group);
            }
            let _ = writeln!(o, "  {}  {}", r.dev.bdf, title(r));
            let pad = " ".repeat(16);
            if r.dev.class.is_bridge() {
                let _ = writeln!(
                    o,
                    "{pad}bridge: never a candidate; driver {}",
                    r.dev.driver.as_deref().unwrap_or("none")
                );
                continue;
            }
            let _ = writeln!(
                o,
                "{pad}driver {}; override {}; reset {}; boot display {}",
                r.dev.driver.as_deref().unwrap_or("none"),
                attr_text(&r.driver_override),
                attr_text(&r.reset_method),
                boot_display_text(r.boot_display)
            );
            let _ = writeln!(o, "{pad}this boot: {}", this_boot_text(r, &self.state));
            let _ = writeln!(o, "{pad}next boot: {}", next_boot_text(&r.next_boot));
            if !r.roms.is_empty() {
                let _ = writeln!(
                    o,
                    "{pad}ROM: stored in /{ROMS_VAR_DIR}/ ({})",
                    r.roms.join(", ")
                );
            }
        }
        if self.shown.is_empty() {
            let _ = writeln!(o, "\nno display or audio device (--all shows every device)");
        }
        o
    }

    /// The documented JSON (docs/interface.md).
    pub fn json(&self) -> Value {
        let state = match &self.state {
            BootState::Read { .. } => json!({"status": "read"}),
            BootState::Absent => json!({"status": "absent", "message": self.state.to_string()}),
            BootState::Unreadable(_) => {
                json!({"status": "unreadable", "message": self.state.to_string()})
            }
            BootState::OtherVersion(_) => {
                json!({"status": "other-version", "message": self.state.to_string()})
            }
            BootState::Garbage(_) => {
                json!({"status": "garbage", "message": self.state.to_string()})
            }
        };
        let devices: Vec<Value> = self
            .shown
            .iter()
            .map(|&n| {
                let r = &self.rows[n];
                let d = &r.dev;
                json!({
                    "bdf": d.bdf.to_string(),
                    "group": d.group,
                    "vendor": format!("{:04x}", d.id.vendor),
                    "device": format!("{:04x}", d.id.device),
                    "subvendor": format!("{:04x}", d.id.subvendor),
                    "subdevice": format!("{:04x}", d.id.subdevice),
                    "class": format!("{:06x}", d.class.0),
                    "kind": d.class.kind(),
                    "bridge": d.class.is_bridge(),
                    "names": {
                        "vendor": r.names.vendor,
                        "device": r.names.device,
                        "subsystem": r.names.subsystem,
                        "class": r.names.class,
                    },
                    "driver": d.driver.as_deref(),
                    "driver_override": attr_json(&r.driver_override),
                    "reset_method": attr_json(&r.reset_method),
                    "boot_display": match r.boot_display {
                        BootDisplay::No => json!(false),
                        BootDisplay::NeedsRoot => json!("needs root"),
                        _ => json!(true),
                    },
                    "boot_display_by": match r.boot_display {
                        BootDisplay::BootVga => json!("boot_vga"),
                        BootDisplay::Framebuffer => json!("firmware framebuffer"),
                        _ => Value::Null,
                    },
                    "this_boot": r.this_boot.as_ref().map(|rec| json!({
                        "result": rec.result,
                        "why": rec.why,
                        "detail": rec.detail,
                        "left": rec.left,
                        "driver_now": rec.driver_now,
                    })),
                    "next_boot": {
                        "fate": r.next_boot.word,
                        "why": r.next_boot.why,
                        "detail": r.next_boot.detail,
                    },
                    "roms": r.roms,
                })
            })
            .collect();
        json!({
            "schema": "vfio-early-status",
            "version": SCHEMA_VERSION,
            "iommu": self.iommu_on,
            "state": state,
            "pci_ids": match &self.pci_ids {
                Ok(p) => json!({"path": p}),
                Err(why) => json!({"path": null, "message": why}),
            },
            "problems": self.problems,
            "devices": devices,
        })
    }
}

/// `vfio-early status [--json] [--all]`; returns the exit code.
pub fn status(root: &Root, json: bool, all: bool) -> i32 {
    let s = gather(root, all);
    if json {
        outln!("{}", s.json());
    } else {
        out!("{}", s.human());
    }
    0
}

/// The entry that pins a device's identity: address, vendor:device, and subsystem when the card
/// has one (a renumbered bus or a swapped card then never hands the wrong device to vfio).
pub fn pinned_entry(d: &Device) -> String {
    let mut e = format!("{}@{}", d.bdf, d.id);
    if d.id.subvendor != 0 || d.id.subdevice != 0 {
        let _ = write!(e, ":{:04x}:{:04x}", d.id.subvendor, d.id.subdevice);
    }
    e
}

/// The IOMMU argument for this machine's CPU.
pub fn iommu_argument(root: &Root) -> &'static str {
    let cpu = vfio_early_system::read::read_input(&root.path("proc/cpuinfo"), 1 << 20)
        .map(|i| i.text().contains("AuthenticAMD"))
        .unwrap_or(false);
    if cpu {
        "amd_iommu=on"
    } else {
        "intel_iommu=on"
    }
}

/// What `cmdline` decided: the argument, or the refusals.
pub struct Argument {
    pub text: Option<String>,
    /// One line per device the next boot would refuse, in the boot's words.
    pub refused: Vec<String>,
    /// Devices that come along, and group warnings.
    pub notes: Vec<String>,
}

/// The kernel argument for `words` (addresses), judged as the next boot will see the devices.
pub fn argument(root: &Root, words: &[String]) -> Result<Argument, String> {
    let mut entries: heapless::Vec<Entry, MAX_ENTRIES> = heapless::Vec::new();
    let mut texts = Vec::new();
    let mut bdfs = Vec::new();
    for w in words {
        let Some(bdf) = Bdf::parse(w) else {
            return Err(format!(
                "\"{w}\" is not a PCI address (DDDD:BB:DD.F or BB:DD.F; `vfio-early status` lists them)"
            ));
        };
        // Named twice (01:00.0 and 0000:01:00.0): one entry.
        if bdfs.contains(&bdf) {
            continue;
        }
        let dev = sysfs::read_device(root, &bdf, None)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("{bdf}: no such PCI device (`vfio-early status --all` lists them)")
            })?;
        let text = pinned_entry(&dev);
        // Through the boot's own parser: what is printed is what the boot will read.
        let entry = vfio_early_core::entry::parse(&text).map_err(|e| format!("{text}: {e}"))?;
        entries
            .push(entry)
            .map_err(|_| format!("more than {MAX_ENTRIES} devices"))?;
        texts.push(text);
        bdfs.push(bdf);
    }
    let next = nextboot::plan(root, Some(entries));
    let mut refused = Vec::new();
    let mut notes = Vec::new();
    for item in &next.plan.items {
        let listed = matches!(item.why, vfio_early_core::plan::Why::Listed(_));
        match (&item.decision, listed) {
            // Every device is refused for that with the IOMMU off: the argument turns it on.
            (Decision::Refuse(vfio_early_core::plan::Refusal::NoGroup { iommu_off: true }), _) => {
                notes.push(line(&next, item))
            }
            (Decision::Refuse(_), _) => refused.push(line(&next, item)),
            (_, false) => notes.push(format!("{} comes along: {}", item.bdf, line(&next, item))),
            _ => {}
        }
    }
    for o in &next.plan.outside {
        notes.push(o.to_string());
    }
    for (bdf, names) in next.inputs_behind_taken_usb(root) {
        notes.push(nextboot::input_warning(&bdf, &names));
    }
    notes.extend(nextboot::source_warnings(root, &next, false));
    let mut text = None;
    if refused.is_empty() {
        let mut t = String::new();
        if !next.inventory.iommu_on {
            let _ = write!(t, "{} ", iommu_argument(root));
        }
        let _ = write!(
            t,
            "vfio-early.devices={}",
            whole_cards(&next, &bdfs, &texts).join(",")
        );
        text = Some(t);
    }
    Ok(Argument {
        text,
        refused,
        notes,
    })
}

/// Each listed device's entry followed by those of the functions that come along with it, each
/// pinned to its ID as the listed one is: a renumbered bus then hands vfio none of the card. The
/// card's USB controller says `+guarded`, which a listed USB controller needs.
fn whole_cards(next: &NextBoot, listed: &[Bdf], texts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (bdf, text) in listed.iter().zip(texts) {
        out.push(text.clone());
        for item in &next.plan.items {
            let follows =
                matches!(item.why, Why::Companion(l, _) | Why::GroupMember(l) if l == *bdf);
            if let (true, Decision::Bind { .. }, Some(d)) = (follows, &item.decision, &item.dev) {
                let mut e = pinned_entry(d);
                if d.class.guarded_kind().is_some() {
                    e.push_str("+guarded");
                }
                out.push(e);
            }
        }
    }
    out
}

/// One device's line in the boot's words.
pub fn line(next: &NextBoot, item: &Item) -> String {
    let outcome = match item.decision {
        Decision::Bind { .. } => Outcome::WouldBind,
        _ => Outcome::AsPlanned,
    };
    DeviceReport {
        item,
        outcome: &outcome,
        settings: next.settings(),
    }
    .to_string()
}

/// `vfio-early cmdline BDF...`; returns the exit code (0 printed, 1 refused, 2 usage).
pub fn cmdline(root: &Root, words: &[String]) -> i32 {
    if words.is_empty() {
        errln!("vfio-early cmdline: which devices? (addresses, e.g. 01:00.0; `vfio-early status` lists them)");
        return 2;
    }
    let arg = match argument(root, words) {
        Ok(a) => a,
        Err(e) => {
            errln!("vfio-early cmdline: {e}");
            return 2;
        }
    };
    for n in &arg.notes {
        errln!("vfio-early: {n}");
    }
    for r in &arg.refused {
        errln!("vfio-early: the next boot would refuse {r}");
    }
    match arg.text {
        Some(t) => {
            outln!("{t}");
            0
        }
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfio_early_core::pci::{Class, PciId};

    fn dev(bdf: &str, class: u32, sub: (u16, u16)) -> Device {
        Device {
            bdf: Bdf::parse(bdf).unwrap(),
            id: PciId {
                vendor: 0x10de,
                device: 0x1c03,
                subvendor: sub.0,
                subdevice: sub.1,
            },
            class: Class(class),
            driver: None,
            group: Some(1),
            boot_vga: false,
            virtfn: false,
            bars: heapless::Vec::new(),
        }
    }

    #[test]
    fn pinned_entries_carry_the_subsystem_only_when_there_is_one() {
        assert_eq!(
            pinned_entry(&dev("01:00.0", 0x030000, (0x1043, 0x85f4))),
            "0000:01:00.0@10de:1c03:1043:85f4"
        );
        assert_eq!(
            pinned_entry(&dev("01:00.0", 0x030000, (0, 0))),
            "0000:01:00.0@10de:1c03"
        );
        for e in ["0000:01:00.0@10de:1c03:1043:85f4", "0000:01:00.0@10de:1c03"] {
            assert!(vfio_early_core::entry::parse(e).is_ok(), "{e} re-parses");
        }
    }
}
