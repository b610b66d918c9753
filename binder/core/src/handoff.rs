// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the fence hands to the rest of its run (`vfio-early finish`, another process): the
//! settings as read, the scan's view of the bus, what became of every plan item so far, and the
//! deadline. The rest plans again on exactly that view (udev may have changed the bus since), so
//! its plan is the fence's, and goes on where the fence stopped.
//!
//! One line per fact, written and read by this module only; a file that does not read back
//! whole is refused whole. Versioned: version 2 adds the fence's settings (`set` lines), which
//! the settle needs when the rest never ran; a version 1 file (an older image's binder, seen by
//! the host's commands) reads as one without them.

use core::fmt::Write as _;

use crate::config::{OnFail, Settings};
use crate::device::{Device, Inventory, Name, MAX_DEVICES};
use crate::iomem::Framebuffer;
use crate::outcome::{Failure, Fenced, Left, Outcome};
use crate::pci::{Bdf, Class, PciId};
use crate::text::bounded;

/// A handoff at the capacities (64 devices, 64 entries) is about 10 KiB.
pub const CAP: usize = 64 * 1024;
/// The first line, and the version it names.
const MAGIC: &str = "vfio-early handoff ";
pub const VERSION: u32 = 2;

/// A handoff, read back.
#[derive(Debug)]
pub struct Handoff {
    /// When the fence's run started, and its deadline (CLOCK_MONOTONIC, ns).
    pub start_ns: u64,
    pub deadline_ns: u64,
    /// The digest of the settings' sources the fence read (`vfio_early_engine::sources::Sources::digest`).
    pub inputs: u64,
    pub inv: Inventory,
    pub fenced: Fenced,
    /// The fenced addresses, in plan order.
    pub fenced_bdfs: heapless::Vec<Bdf, MAX_DEVICES>,
    /// The fence's settings (`None` from a version 1 file).
    pub settings: Option<Settings>,
}

impl Handoff {
    /// What to do with a fenced device vfio-pci did not take: the fence's setting, or the
    /// default when the file predates it.
    pub fn on_fail(&self) -> OnFail {
        self.settings
            .as_ref()
            .map_or_else(OnFail::default, |s| s.on_fail)
    }

    /// The fenced addresses, for messages.
    pub fn fenced_list(&self) -> String {
        list(&self.fenced_bdfs)
    }
}

/// Addresses as a message lists them: `0000:01:00.0, 0000:01:00.1`.
pub fn list(bdfs: &[Bdf]) -> String {
    let mut t = String::new();
    for b in bdfs {
        let sep = if t.is_empty() { "" } else { ", " };
        let _ = write!(t, "{sep}{b}");
    }
    t
}

/// The handoff text; `None` when something in it would not read back (a driver name with a
/// space): the rest then runs in the fence's own process.
pub fn render(
    inputs: u64,
    settings: &Settings,
    inv: &Inventory,
    fenced: &Fenced,
    bdfs: &[Bdf],
    start_ns: u64,
    deadline_ns: u64,
) -> Option<String> {
    let mut t = String::with_capacity(1024 + 160 * inv.devices.len());
    let _ = writeln!(
        t,
        "{MAGIC}{VERSION}\nstart {start_ns}\ndeadline {deadline_ns}\ninputs {inputs:x}"
    );
    for line in crate::config::FileForm(settings).to_string().lines() {
        let _ = writeln!(t, "set {line}");
    }
    let _ = writeln!(t, "iommu {}", u8::from(inv.iommu_on));
    for d in &inv.devices {
        let id = d.id;
        let driver = d.driver.as_deref().unwrap_or("-");
        if driver.is_empty() || driver.contains(char::is_whitespace) {
            return None;
        }
        let _ = write!(
            t,
            "dev {} {:04x}:{:04x}:{:04x}:{:04x} {:x} {driver} {} {}",
            d.bdf,
            id.vendor,
            id.device,
            id.subvendor,
            id.subdevice,
            d.class.0,
            d.group.map_or("-".into(), |g| g.to_string()),
            // Bit 0: boot_vga; bit 1: an SR-IOV virtual function.
            u8::from(d.boot_vga) | u8::from(d.virtfn) << 1
        );
        for (s, e) in &d.bars {
            let _ = write!(t, " {s:x}-{e:x}");
        }
        t.push('\n');
    }
    for fb in &inv.framebuffers {
        let owner = fb.owner.map_or("-".into(), |b| b.to_string());
        let _ = writeln!(t, "fb {:x} {:x} {owner}", fb.start, fb.end);
    }
    for g in &inv.unseen.groups {
        let _ = writeln!(t, "unseen-group {g}");
    }
    for b in &inv.unseen.listed {
        let _ = writeln!(t, "unseen-listed {b}");
    }
    if inv.unseen.id_matches {
        t.push_str("unseen-ids\n");
    }
    t.push_str("fenced");
    for n in &fenced.items {
        let _ = write!(t, " {n}");
    }
    t.push_str("\nfenced-bdfs");
    for b in bdfs {
        let _ = write!(t, " {b}");
    }
    let _ = writeln!(t, "\nstopped {}", u8::from(fenced.stopped));
    for (n, o) in fenced.out.iter().enumerate() {
        match o {
            Outcome::AsPlanned => {}
            Outcome::NotDone => {
                let _ = writeln!(t, "not-done {n}");
            }
            Outcome::Failed { reason, left, .. } => {
                let (tag, why) = match reason {
                    Failure::Write(e) => ("write", e.to_string()),
                    Failure::Lead(b) => ("lead", b.to_string()),
                    _ => return None,
                };
                let left_text = match left {
                    Left::ReleasedUnprobed(e) | Left::Stuck(e) => e.as_str(),
                    _ => "",
                };
                if [&why[..], left_text]
                    .iter()
                    .any(|s| s.contains(['\t', '\n']))
                {
                    return None;
                }
                let _ = writeln!(t, "failed {n} {tag} {}\t{why}\t{left_text}", left.as_str());
            }
            // The fence makes no other outcome.
            _ => return None,
        }
    }
    t.push_str("end\n");
    Some(t)
}

/// Reads a handoff back; `Err` names the first line that does not read.
pub fn parse(text: &str) -> Result<Handoff, String> {
    let mut lines = text.lines();
    let version = match lines.next().and_then(|l| l.strip_prefix(MAGIC)) {
        Some("1") => 1,
        Some("2") => 2,
        Some(other) => {
            return Err(format!(
                "version {}; this vfio-early reads 1 and 2",
                bounded::<16>(format_args!("{other}"))
            ))
        }
        None => return Err("not a vfio-early handoff (first line)".into()),
    };
    let mut set_lines = String::new();
    let mut h = Handoff {
        start_ns: 0,
        deadline_ns: 0,
        inputs: 0,
        inv: Inventory::default(),
        fenced: Fenced {
            out: heapless::Vec::new(),
            items: heapless::Vec::new(),
            stopped: false,
        },
        fenced_bdfs: heapless::Vec::new(),
        settings: None,
    };
    let mut ended = false;
    // Every file has these: one missing is a file cut or made by hand, not the fence's.
    let mut needed = [
        "start",
        "deadline",
        "inputs",
        "iommu",
        "fenced",
        "fenced-bdfs",
        "stopped",
    ];
    for (i, line) in lines.enumerate() {
        let bad = || format!("line {}: {}", i + 2, bounded::<80>(format_args!("{line}")));
        if ended {
            return Err(bad());
        }
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        if let Some(k) = needed.iter_mut().find(|k| **k == key) {
            *k = "";
        }
        let ok = match key {
            "start" => rest.parse().map(|v| h.start_ns = v).is_ok(),
            "deadline" => rest.parse().map(|v| h.deadline_ns = v).is_ok(),
            "inputs" => u64::from_str_radix(rest, 16).map(|v| h.inputs = v).is_ok(),
            "iommu" => match rest {
                "0" | "1" => {
                    h.inv.iommu_on = rest == "1";
                    true
                }
                _ => false,
            },
            "dev" => device(rest).is_some_and(|d| h.inv.devices.push(d).is_ok()),
            "fb" => framebuffer(rest).is_some_and(|f| h.inv.framebuffers.push(f).is_ok()),
            "unseen-group" => rest
                .parse()
                .is_ok_and(|g| h.inv.unseen.groups.push(g).is_ok()),
            "unseen-listed" => {
                Bdf::parse(rest).is_some_and(|b| h.inv.unseen.listed.push(b).is_ok())
            }
            "unseen-ids" => {
                h.inv.unseen.id_matches = true;
                true
            }
            "fenced" => rest.split_whitespace().all(|n| {
                n.parse()
                    .is_ok_and(|n: usize| h.fenced.items.push(n).is_ok())
            }),
            "fenced-bdfs" => rest
                .split_whitespace()
                .all(|b| Bdf::parse(b).is_some_and(|b| h.fenced_bdfs.push(b).is_ok())),
            "set" if version >= 2 => {
                set_lines.push_str(rest);
                set_lines.push('\n');
                true
            }
            "stopped" => {
                h.fenced.stopped = rest == "1";
                rest == "0" || rest == "1"
            }
            "not-done" => rest
                .parse()
                .is_ok_and(|n| set(&mut h.fenced.out, n, Outcome::NotDone)),
            "failed" => outcome(rest).is_some_and(|(n, o)| set(&mut h.fenced.out, n, o)),
            "end" => {
                ended = true;
                rest.is_empty()
            }
            _ => false,
        };
        if !ok {
            return Err(bad());
        }
    }
    if !ended {
        return Err("cut short (no end line)".into());
    }
    if let Some(k) = needed.iter().find(|k| !k.is_empty()) {
        return Err(format!("no {k} line"));
    }
    if version >= 2 && set_lines.is_empty() {
        return Err("no set lines (the fence's settings)".into());
    }
    if version >= 2 {
        // Written from what the fence's own parser read: anything it does not read back
        // whole is not the fence's settings.
        let mut settings = Settings::default();
        let mut problems = crate::config::Problems::default();
        settings.apply_file(&set_lines, &mut problems);
        if !problems.is_empty() {
            return Err("its settings do not read back".into());
        }
        h.settings = Some(settings);
    }
    Ok(h)
}

/// Sets outcome `n` (index-aligned with the plan; the plan's length is known only once the rest
/// plans again), the ones before it as planned; false past the capacity or out of order.
fn set(out: &mut crate::outcome::Outcomes, n: usize, o: Outcome) -> bool {
    if n < out.len() {
        return false;
    }
    while out.len() < n {
        if out.push(Outcome::AsPlanned).is_err() {
            return false;
        }
    }
    out.push(o).is_ok()
}

impl Handoff {
    /// The fence's state, made to fit a plan of `items` items; false if it names items the plan
    /// lacks.
    pub fn fit(&mut self, items: usize) -> bool {
        let f = &mut self.fenced;
        if f.out.len() > items || f.items.iter().any(|&n| n >= items) {
            return false;
        }
        while f.out.len() < items {
            let _ = f.out.push(Outcome::AsPlanned);
        }
        true
    }
}

fn device(rest: &str) -> Option<Device> {
    let mut w = rest.split(' ');
    let bdf = Bdf::parse(w.next()?)?;
    let mut id = w
        .next()?
        .split(':')
        .map(|h| u16::from_str_radix(h, 16).ok());
    let id = PciId {
        vendor: id.next()??,
        device: id.next()??,
        subvendor: id.next()??,
        subdevice: id.next()??,
    };
    let class = Class(u32::from_str_radix(w.next()?, 16).ok()?);
    let driver = match w.next()? {
        "-" => None,
        d => Some(Name::try_from(d).ok()?),
    };
    let group = match w.next()? {
        "-" => None,
        g => Some(g.parse().ok()?),
    };
    let (boot_vga, virtfn) = match w.next()? {
        "0" => (false, false),
        "1" => (true, false),
        "2" => (false, true),
        "3" => (true, true),
        _ => return None,
    };
    let mut bars = heapless::Vec::new();
    for bar in w {
        let (s, e) = bar.split_once('-')?;
        let pair = (
            u64::from_str_radix(s, 16).ok()?,
            u64::from_str_radix(e, 16).ok()?,
        );
        bars.push(pair).ok()?;
    }
    Some(Device {
        bdf,
        id,
        class,
        driver,
        group,
        boot_vga,
        virtfn,
        bars,
    })
}

fn framebuffer(rest: &str) -> Option<Framebuffer> {
    let mut w = rest.split(' ');
    let start = u64::from_str_radix(w.next()?, 16).ok()?;
    let end = u64::from_str_radix(w.next()?, 16).ok()?;
    let owner = match w.next()? {
        "-" => None,
        b => Some(Bdf::parse(b)?),
    };
    w.next()
        .is_none()
        .then_some(Framebuffer { start, end, owner })
}

/// `N TAG LEFT\tREASON\tLEFT-TEXT`.
fn outcome(rest: &str) -> Option<(usize, Outcome)> {
    let (head, texts) = rest.split_once('\t')?;
    let (why, left_text) = texts.split_once('\t')?;
    let mut w = head.split(' ');
    let n = w.next()?.parse().ok()?;
    let reason = match w.next()? {
        "write" => Failure::Write(heapless::String::try_from(why).ok()?),
        "lead" => Failure::Lead(Bdf::parse(why)?),
        _ => return None,
    };
    let text = || heapless::String::try_from(left_text).ok();
    let left = match w.next()? {
        "untouched" => Left::Untouched,
        "released" => Left::Released,
        "released-unprobed" => Left::ReleasedUnprobed(text()?),
        "fenced" => Left::Fenced,
        "stuck" => Left::Stuck(text()?),
        "deadline" => Left::Deadline,
        _ => return None,
    };
    if w.next().is_some() {
        return None;
    }
    Some((
        n,
        Outcome::Failed {
            reason,
            left,
            now: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf(s: &str) -> Bdf {
        Bdf::parse(s).unwrap()
    }

    fn sample() -> (u64, Inventory, Fenced) {
        let mut inv = Inventory {
            iommu_on: true,
            ..Default::default()
        };
        let mut bars = heapless::Vec::new();
        bars.push((0xfd00_0000, 0xfdff_ffff)).unwrap();
        bars.push((0xfebf_0000, 0xfebf_0fff)).unwrap();
        for (b, driver, group, vga, virtfn) in [
            ("0000:01:00.0", Some("bochs-drm"), Some(1), true, false),
            ("0001:02:00.1", None, None, false, true),
        ] {
            inv.devices
                .push(Device {
                    bdf: bdf(b),
                    id: PciId {
                        vendor: 0x1234,
                        device: 0x1111,
                        subvendor: 0x1af4,
                        subdevice: 0x1100,
                    },
                    class: Class(0x030000),
                    driver: driver.map(|d| Name::try_from(d).unwrap()),
                    group,
                    boot_vga: vga,
                    virtfn,
                    bars: bars.clone(),
                })
                .unwrap();
        }
        inv.framebuffers
            .push(Framebuffer {
                start: 0xfd00_0000,
                end: 0xfd2f_ffff,
                owner: Some(bdf("01:00.0")),
            })
            .unwrap();
        inv.framebuffers
            .push(Framebuffer {
                start: 0xe000_0000,
                end: 0xe0ff_ffff,
                owner: None,
            })
            .unwrap();
        inv.unseen.groups.push(9).unwrap();
        inv.unseen.listed.push(bdf("05:00.0")).unwrap();
        inv.unseen.id_matches = true;
        let mut out: crate::outcome::Outcomes = (0..5).map(|_| Outcome::AsPlanned).collect();
        out[1] = Outcome::NotDone;
        out[2] = Outcome::Failed {
            reason: Failure::Write(
                "sys/bus/pci/devices/x/driver_override: EIO"
                    .try_into()
                    .unwrap(),
            ),
            left: Left::Stuck("unbind: EBUSY".try_into().unwrap()),
            now: None,
        };
        out[3] = Outcome::Failed {
            reason: Failure::Lead(bdf("01:00.0")),
            left: Left::Untouched,
            now: None,
        };
        let mut items = heapless::Vec::new();
        items.push(0).unwrap();
        (
            0xfeed_f00d,
            inv,
            Fenced {
                out,
                items,
                stopped: true,
            },
        )
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let (inputs, inv, fenced) = sample();
        let settings = settings();
        let text = render(inputs, &settings, &inv, &fenced, &[bdf("01:00.0")], 11, 22).unwrap();
        let h = parse(&text).unwrap();
        assert_eq!((h.start_ns, h.deadline_ns, h.inputs), (11, 22, inputs));
        assert_eq!(h.settings.as_ref(), Some(&settings));
        assert_eq!(h.on_fail(), OnFail::Fence);
        assert_eq!(h.inv.devices, inv.devices);
        assert_eq!(h.inv.framebuffers, inv.framebuffers);
        assert_eq!(h.inv.unseen, inv.unseen);
        assert!(h.inv.iommu_on);
        assert_eq!(h.fenced_list(), "0000:01:00.0");
        // A plan shorter than what the handoff names is not the fence's.
        let mut short = parse(&text).unwrap();
        assert!(!short.fit(3));
        let mut h = h;
        assert!(h.fit(5));
        let f = h.fenced;
        assert_eq!(
            (f.out, f.items, f.stopped),
            (fenced.out, fenced.items, true)
        );
    }

    #[test]
    fn anything_else_is_refused_whole_naming_the_line() {
        let (inputs, inv, fenced) = sample();
        let text = render(inputs, &settings(), &inv, &fenced, &[], 1, 2).unwrap();
        assert!(parse("").is_err());
        assert!(parse(&text.replace("end\n", ""))
            .unwrap_err()
            .contains("cut short"));
        for (from, to) in [
            ("iommu 1", "iommu 2"),
            ("dev 0000:01:00.0 1234:1111", "dev 0000:01:00.0 1234:zz"),
            ("fenced 0", "fenced 0 x"),
            ("stopped 1", "stopped yes"),
            ("not-done 1", "not-done 99999999"),
            ("fb e0000000", "fb e000000g"),
            ("end", "end\nmore"),
            ("inputs feedf00d", "inputs feedf00x"),
            ("set on-fail = fence", "set on-fail = maybe"),
            ("set devices = 01:00.0", "set colour = blue"),
        ] {
            assert!(text.contains(from), "{from}");
            let e = parse(&text.replacen(from, to, 1)).unwrap_err();
            assert!(
                e.starts_with("line ") || e.contains("capacity") || e.contains("settings"),
                "{from}: {e}"
            );
        }
        // A name the format cannot carry: the rest runs in the fence's process instead.
        let mut odd = inv.clone();
        odd.devices[0].driver = Some(Name::try_from("two words").unwrap());
        assert!(render(inputs, &settings(), &odd, &fenced, &[], 1, 2).is_none());
        // A version this build does not know is named as such.
        let later = text.replacen("handoff 2", "handoff 9", 1);
        assert!(parse(&later).unwrap_err().starts_with("version 9"));
    }

    fn settings() -> Settings {
        let mut s = Settings::default();
        let mut p = crate::config::Problems::default();
        s.apply_file("devices = 01:00.0\non-fail = fence\ntimeout = 30\n", &mut p);
        assert!(p.is_empty());
        s
    }

    /// A handoff an older release wrote (version 1: no settings) reads as one with the
    /// defaults: the settle gives fenced devices back, as on-fail's default says.
    #[test]
    fn reads_a_version_1_handoff() {
        let v1 = "vfio-early handoff 1\nstart 5\ndeadline 9\ninputs 1f\niommu 1\n\
            dev 0000:01:00.0 1234:1111:1af4:1100 30000 bochs-drm 1 1 fd000000-fdffffff\n\
            fenced 0\nfenced-bdfs 0000:01:00.0\nstopped 0\nend\n";
        let h = parse(v1).unwrap();
        assert!(h.settings.is_none());
        assert_eq!(h.on_fail(), OnFail::Release);
        assert_eq!(h.fenced_list(), "0000:01:00.0");
        assert_eq!((h.start_ns, h.deadline_ns, h.inputs), (5, 9, 0x1f));
        // `set` lines are version 2's: in a version 1 file they are not the format.
        assert!(parse(&v1.replace("iommu 1", "iommu 1\nset off = yes")).is_err());
    }
}
