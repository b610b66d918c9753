// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the fence hands to the rest of its run (`vfio-early finish`, another process): the
//! settings as read, the scan's view of the bus, what became of every plan item so far, and the
//! deadline. The rest plans again on exactly that view (udev may have changed the bus since), so
//! its plan is the fence's, and goes on where the fence stopped.
//!
//! One line per fact, written and read by this module only; a file that does not read back
//! whole is refused whole.

use core::fmt::Write as _;

use crate::apply::{Failure, Fenced, Left, Outcome};
use crate::device::{Device, Inventory, Name};
use crate::iomem::Framebuffer;
use crate::pci::{Bdf, Class, PciId};
use crate::text::bounded;

pub const NAME: &str = "handoff";
/// A handoff at the capacities (64 devices, 64 entries) is about 10 KiB.
pub const CAP: usize = 64 * 1024;
const MAGIC: &str = "vfio-early handoff 1";

/// A handoff, read back.
#[derive(Debug)]
pub struct Handoff {
    /// When the fence's run started, and its deadline (CLOCK_MONOTONIC, ns).
    pub start_ns: u64,
    pub deadline_ns: u64,
    /// The digest of the settings' sources the fence read (`run::Input::digest`).
    pub inputs: u64,
    pub inv: Inventory,
    pub fenced: Fenced,
    /// The fenced addresses, for messages.
    pub fenced_bdfs: String,
}

/// The handoff text; `None` when something in it would not read back (a driver name with a
/// space): the rest then runs in the fence's own process.
pub fn render(
    inputs: u64,
    inv: &Inventory,
    fenced: &Fenced,
    bdfs: &[Bdf],
    start_ns: u64,
    deadline_ns: u64,
) -> Option<String> {
    let mut t = String::with_capacity(1024 + 160 * inv.devices.len());
    let _ = writeln!(
        t,
        "{MAGIC}\nstart {start_ns}\ndeadline {deadline_ns}\ninputs {inputs:x}"
    );
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
            u8::from(d.boot_vga)
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
    if lines.next() != Some(MAGIC) {
        return Err("not a vfio-early handoff (first line)".into());
    }
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
        fenced_bdfs: String::new(),
    };
    let mut ended = false;
    for (i, line) in lines.enumerate() {
        let bad = || format!("line {}: {}", i + 2, bounded::<80>(format_args!("{line}")));
        if ended {
            return Err(bad());
        }
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
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
            "fenced-bdfs" => {
                h.fenced_bdfs = rest.trim().into();
                rest.split_whitespace().all(|b| Bdf::parse(b).is_some())
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
    Ok(h)
}

/// Sets outcome `n` (index-aligned with the plan; the plan's length is known only once the rest
/// plans again), the ones before it as planned; false past the capacity or out of order.
fn set(out: &mut crate::apply::Outcomes, n: usize, o: Outcome) -> bool {
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
    let boot_vga = match w.next()? {
        "0" => false,
        "1" => true,
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
        for (b, driver, group, vga) in [
            ("0000:01:00.0", Some("bochs-drm"), Some(1), true),
            ("0001:02:00.1", None, None, false),
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
        let mut out: crate::apply::Outcomes = (0..5).map(|_| Outcome::AsPlanned).collect();
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
        let text = render(inputs, &inv, &fenced, &[bdf("01:00.0")], 11, 22).unwrap();
        let h = parse(&text).unwrap();
        assert_eq!((h.start_ns, h.deadline_ns, h.inputs), (11, 22, inputs));
        assert_eq!(h.inv.devices, inv.devices);
        assert_eq!(h.inv.framebuffers, inv.framebuffers);
        assert_eq!(h.inv.unseen, inv.unseen);
        assert!(h.inv.iommu_on);
        assert_eq!(h.fenced_bdfs, "0000:01:00.0");
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
        let text = render(inputs, &inv, &fenced, &[], 1, 2).unwrap();
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
        ] {
            assert!(text.contains(from), "{from}");
            let e = parse(&text.replacen(from, to, 1)).unwrap_err();
            assert!(
                e.starts_with("line ") || e.contains("capacity"),
                "{from}: {e}"
            );
        }
        // A name the format cannot carry: the rest runs in the fence's process instead.
        let mut odd = inv.clone();
        odd.devices[0].driver = Some(Name::try_from("two words").unwrap());
        assert!(render(inputs, &odd, &fenced, &[], 1, 2).is_none());
    }
}
