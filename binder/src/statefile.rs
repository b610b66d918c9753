// SPDX-License-Identifier: MIT OR Apache-2.0
//! What this boot's binder recorded (`/run/vfio-early/state.json`), read back by the host
//! commands. A missing file, one from a later version, or garbage is named, never a crash.
//! Every older version is read and brought up to this one (an image built before an upgrade
//! still boots the old binder: initramfs-tools rebuilds only the newest kernel's image).

use core::fmt;

use serde_json::Value;

use vfio_early_core::layout::STATE_FILE;
use vfio_early_core::pci::Bdf;
use vfio_early_system::read::SysError;
use vfio_early_system::sysfs::Root;

/// The state file the binder writes is a few KiB; a cap far above it bounds a planted one.
pub const CAP: usize = 1 << 20;
/// The version this build writes; it reads this one and every one before it.
pub const VERSION: u64 = vfio_early_engine::summary::STATE_VERSION as u64;

/// One device's record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub bdf: String,
    /// `bound`, `refused`, `failed`, `unknown`, ... (report::Verdict).
    pub result: String,
    pub why: String,
    pub detail: String,
    pub driver_now: String,
    /// How a failed device was left.
    pub left: Option<String>,
}

/// The file, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootState {
    /// No state file: the binder did not run in this boot (or /run was not kept).
    Absent,
    /// It exists but could not be read (e.g. permissions, a FIFO, over the cap).
    Unreadable(String),
    /// Written by another version of vfio-early.
    OtherVersion(String),
    /// Not the binder's JSON.
    Garbage(String),
    Read {
        /// The schema version the file was written in (brought up to [`VERSION`] on read).
        version: u64,
        /// The vfio-early release that wrote it (`None` before version 2).
        binary: Option<String>,
        /// `done`; `pending` while a split run's second phase has not reported; `settled` when
        /// it never did and the settle wrote what it found (version 2); `incomplete` when it was
        /// stopped at the switch to the real root (version 1); files before stages: done.
        stage: String,
        off: bool,
        dry_run: bool,
        problems: Vec<String>,
        warnings: Vec<String>,
        devices: Vec<Record>,
    },
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn texts(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Parses the file's bytes.
pub fn parse(bytes: &[u8]) -> BootState {
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return BootState::Garbage(format!("not JSON: {e}")),
    };
    let version = match v.get("version").and_then(Value::as_u64) {
        Some(n @ 1..=VERSION) => n,
        Some(other) => {
            return BootState::OtherVersion(format!(
                "version {other}; this vfio-early reads versions 1 to {VERSION}"
            ))
        }
        None => return BootState::Garbage("no \"version\" number".into()),
    };
    let Some(list) = v.get("devices").and_then(Value::as_array) else {
        return BootState::Garbage("no \"devices\" list".into());
    };
    let stage = v
        .get("stage")
        .and_then(Value::as_str)
        .unwrap_or("done")
        .to_string();
    let mut devices = Vec::new();
    for d in list {
        let bdf = text(d, "bdf");
        if Bdf::parse(&bdf).is_none() {
            return BootState::Garbage(format!("a device record without an address: {d}"));
        }
        let (mut result, mut detail) = (text(d, "result"), text(d, "detail"));
        if stage == "incomplete" && result == "pending" {
            result = "incomplete".into();
            detail = INCOMPLETE.into();
        }
        devices.push(Record {
            bdf,
            result,
            why: text(d, "why"),
            detail,
            driver_now: text(d, "driver_now"),
            left: d.get("left").and_then(Value::as_str).map(str::to_string),
        });
    }
    BootState::Read {
        version,
        binary: v.get("binary").and_then(Value::as_str).map(str::to_string),
        stage,
        off: v.get("off").and_then(Value::as_bool).unwrap_or(false),
        dry_run: v.get("dry_run").and_then(Value::as_bool).unwrap_or(false),
        problems: texts(&v, "problems"),
        warnings: texts(&v, "warnings"),
        devices,
    }
}

/// What a device fenced by a split run that never reported is left as.
pub const INCOMPLETE: &str = "fenced, but loading vfio-pci and checking the bind had not finished at the deadline and were stopped before the switch to the real root: it stays fenced with no driver; hint: `modprobe vfio-pci` binds it now, vfio-early.sync does it all before udev";

/// Reads `/run/vfio-early/state.json` under the root. Without a readable one, a split run's
/// handoff (any version) still says which devices the fence took.
pub fn read(root: &Root) -> BootState {
    match read_state(root) {
        BootState::Absent => match handoff_note(root) {
            Some(note) => BootState::Unreadable(format!("absent; {note}")),
            None => BootState::Absent,
        },
        BootState::Unreadable(why) => match handoff_note(root) {
            Some(note) => BootState::Unreadable(format!("{why}; {note}")),
            None => BootState::Unreadable(why),
        },
        other => other,
    }
}

/// What this boot's handoff says, for a boot whose state file cannot be read.
fn handoff_note(root: &Root) -> Option<String> {
    for (name, how) in [
        (
            vfio_early_core::layout::HANDOFF_DONE_NAME,
            "the rest of the run reported",
        ),
        (
            vfio_early_core::layout::HANDOFF_NAME,
            "the rest of the run did not report",
        ),
    ] {
        let path = root.path(vfio_early_core::layout::RUN_DIR).join(name);
        if let Ok(Some(input)) =
            vfio_early_system::read::read_input_optional(&path, vfio_early_core::handoff::CAP)
        {
            return Some(match vfio_early_core::handoff::parse(&input.text()) {
                Ok(h) => format!(
                    "the split run's handoff names the fenced devices: {} ({how}; the kernel log has its records: journalctl -k -b | grep vfio-early)",
                    h.fenced_list()
                ),
                Err(e) => format!("/run/vfio-early/{name} does not read either: {e}"),
            });
        }
    }
    None
}

fn read_state(root: &Root) -> BootState {
    match vfio_early_system::read::read_input_optional(&root.path(STATE_FILE), CAP) {
        Ok(None) => BootState::Absent,
        Ok(Some(input)) if input.cut => {
            BootState::Unreadable(format!("longer than {CAP} bytes: not the binder's"))
        }
        Ok(Some(input)) => parse(&input.bytes),
        Err(SysError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            BootState::Unreadable("needs root".into())
        }
        Err(e) => BootState::Unreadable(e.to_string()),
    }
}

impl BootState {
    /// The record of one device, when the binder considered it.
    pub fn record(&self, bdf: &Bdf) -> Option<&Record> {
        match self {
            BootState::Read { devices, .. } => devices
                .iter()
                .find(|r| Bdf::parse(&r.bdf).as_ref() == Some(bdf)),
            _ => None,
        }
    }
}

impl fmt::Display for BootState {
    /// How the file stands, for a person.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootState::Absent => write!(
                f,
                "no /{STATE_FILE}: vfio-early did not run in this boot (is it in the initramfs?)"
            ),
            BootState::Unreadable(why) => write!(f, "/{STATE_FILE}: {why}"),
            BootState::OtherVersion(why) => {
                write!(f, "/{STATE_FILE} was written by another vfio-early ({why})")
            }
            BootState::Garbage(why) => write!(f, "/{STATE_FILE} is not vfio-early's: {why}"),
            BootState::Read {
                stage,
                off,
                dry_run,
                devices,
                ..
            } => {
                let bound = devices.iter().filter(|d| d.result == "bound").count();
                write!(
                    f,
                    "this boot: {} devices considered, {bound} bound",
                    devices.len()
                )?;
                match (off, dry_run, stage.as_str()) {
                    (true, _, _) => f.write_str(" (vfio-early.off was set)"),
                    (_, true, _) => f.write_str(" (a dry run)"),
                    (_, _, "incomplete") => {
                        f.write_str(" (incomplete: loading vfio-pci was stopped at the deadline)")
                    }
                    (_, _, "pending") => {
                        f.write_str(" (pending: loading vfio-pci has not reported yet)")
                    }
                    (_, _, "settled") => f.write_str(
                        " (settled: loading vfio-pci did not complete; each fenced device was given back or kept as on-fail says)",
                    ),
                    _ => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_binders_file_and_names_everything_else() {
        // Version 1 (no stage, no binary): read, brought up to this version.
        let good = br#"{"version":1,"off":false,"dry_run":false,"elapsed_ms":3,"asked":["01:00.0"],"problems":[],"warnings":["w"],"devices":[{"bdf":"0000:01:00.0","id":"1234:1111","class":"0x030000","driver_before":"","why":"entry 01:00.0","result":"bound","detail":"bound to vfio-pci via modprobe","driver_now":"vfio-pci"}]}"#;
        let s = parse(good);
        let r = s.record(&Bdf::parse("01:00.0").unwrap()).unwrap();
        assert_eq!(
            (r.result.as_str(), r.driver_now.as_str()),
            ("bound", "vfio-pci")
        );
        assert!(s.to_string().contains("1 bound"));
        // A split run stopped before it reported: its fenced devices say so.
        let stopped = br#"{"version":1,"stage":"incomplete","devices":[{"bdf":"0000:01:00.0","result":"pending","detail":"fenced"}]}"#;
        let s = parse(stopped);
        let r = s.record(&Bdf::parse("01:00.0").unwrap()).unwrap();
        assert_eq!(
            (r.result.as_str(), r.detail.as_str()),
            ("incomplete", INCOMPLETE)
        );
        assert!(
            s.to_string()
                .contains("incomplete: loading vfio-pci was stopped"),
            "{s}"
        );
        assert!(matches!(
            parse(br#"{"version":3,"devices":[]}"#),
            BootState::OtherVersion(_)
        ));
        // This version's file, with the release that wrote it; a settled run says so.
        let settled = br#"{"version":2,"binary":"0.1.0","stage":"settled","devices":[{"bdf":"0000:01:00.0","result":"failed","left":"released","detail":"d","driver_now":"bochs-drm"}]}"#;
        let s = parse(settled);
        assert!(
            matches!(&s, BootState::Read { version: 2, binary: Some(b), .. } if b == "0.1.0"),
            "{s:?}"
        );
        assert!(s
            .to_string()
            .contains("settled: loading vfio-pci did not complete"));
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"[1,2]",
            br#"{"devices":[]}"#,
            br#"{"version":1}"#,
            br#"{"version":1,"devices":[{"bdf":"../x"}]}"#,
            br#"{"version":"1","devices":[]}"#,
        ] {
            let got = parse(bad);
            assert!(matches!(got, BootState::Garbage(_)), "{bad:?}: {got:?}");
            assert!(got.to_string().contains("not vfio-early's"));
        }
    }
}
