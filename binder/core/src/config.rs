// SPDX-License-Identifier: MIT OR Apache-2.0
//! Settings from the kernel command line and `/etc/vfio-early.conf`: pure parsing, no I/O.
//!
//! Every key of both sources goes through one function (`apply_key`), so the file has exactly
//! the command line's power. The
//! command line is applied after the file: it adds devices and overrides every other key,
//! including the kill switch.

use core::fmt;

use crate::cmdline::{self, param_eq};
use crate::entry::{self, Entry, EntryError};
use crate::pci::Bdf;
use crate::text::Token;

/// Device entries kept per boot (all sources together).
pub const MAX_ENTRIES: usize = 32;
/// Input problems kept for the log and the state file; more are counted.
pub const MAX_PROBLEMS: usize = 16;
/// Default deadline of the whole run.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// The longest deadline the settings accept (`timeout = 600`): every wait of ours is bounded by
/// it, whatever a file says.
pub const MAX_TIMEOUT_S: u32 = 600;

/// The command-line namespace.
pub const PREFIX: &[u8] = b"vfio-early.";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupPolicy {
    /// A display function brings the audio functions of its slot in its IOMMU group.
    #[default]
    Companions,
    /// Every endpoint of the group is taken (the usual refusals still apply).
    Whole,
    /// A group that is not fully covered is refused.
    Strict,
}

/// Devices named in `rom=` at most.
pub const MAX_ROM_DEVICES: usize = 8;

/// Which expansion ROMs to capture at boot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RomWant {
    #[default]
    None,
    /// Every display device vfio-early binds in this boot.
    Display,
    /// These addresses (when vfio-early binds them in this boot).
    Devices(heapless::Vec<Bdf, MAX_ROM_DEVICES>),
}

impl RomWant {
    pub fn wants(&self, bdf: &Bdf, class: crate::pci::Class) -> bool {
        match self {
            RomWant::None => false,
            RomWant::Display => class.is_display(),
            RomWant::Devices(list) => list.contains(bdf),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFail {
    /// Clear the override and re-probe, so the host keeps the device.
    #[default]
    Release,
    /// Leave the device fenced, with no driver.
    Fence,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub entries: heapless::Vec<Entry, MAX_ENTRIES>,
    pub off: bool,
    pub group: GroupPolicy,
    pub on_fail: OnFail,
    pub timeout_ms: u32,
    pub dry_run: bool,
    /// The whole run before the init system goes on (`vfio-early.sync`): no second phase.
    pub sync: bool,
    pub debug: bool,
    /// Read by the initramfs generator hooks, not at boot: a missing piece fails the image build.
    pub build_strict: bool,
    pub rom: RomWant,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            entries: heapless::Vec::new(),
            off: false,
            group: GroupPolicy::default(),
            on_fail: OnFail::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            dry_run: false,
            sync: false,
            debug: false,
            build_strict: false,
            rom: RomWant::None,
        }
    }
}

/// Where a piece of input came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Cmdline,
    /// A dracut `/etc/cmdline.d` file, by name.
    CmdlineD(Token),
    /// `/etc/vfio-early.conf` as a whole.
    Config,
    ConfigLine(u32),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Cmdline => f.write_str("kernel command line"),
            Origin::CmdlineD(name) => write!(f, "/{}/{name}", crate::layout::CMDLINE_D),
            Origin::Config => write!(f, "/{}", crate::layout::CONFIG_FILE),
            Origin::ConfigLine(n) => write!(f, "/{} line {n}", crate::layout::CONFIG_FILE),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("bad device entry \"{token}\": {why}")]
    Entry { token: Token, why: EntryError },
    #[error("unknown key \"{0}\" (known: devices, off, group, on-fail, timeout, dry-run, sync, debug, rom, build-strict, init)")]
    // The list above is KEYS (a test holds them together).
    UnknownKey(Token),
    #[error("bad value \"{value}\" for {key}: expected {expected}")]
    Value {
        key: &'static str,
        value: Token,
        expected: &'static str,
    },
    #[error(
        "bad value \"{0}\" for off: expected yes or no; taken as off (the kill switch fails safe)"
    )]
    KillSwitch(Token),
    #[error("\"{0}\" is not `key = value`")]
    Line(Token),
    #[error("devices= lists no device")]
    EmptyList,
    #[error("empty entry in the devices list \"{0}\" (two commas in a row, or one at an end)")]
    EmptyEntry(Token),
    #[error("starts with a UTF-8 byte-order mark: ignored (save the file without it)")]
    ByteOrderMark,
    #[error(
        "cannot be read: {0}; so nothing is bound (it may hold a device entry or the kill switch)"
    )]
    Unreadable(Token),
    #[error("too many device entries (capacity {MAX_ENTRIES}): \"{0}\" not applied, so nothing is bound")]
    TooManyEntries(Token),
    #[error("longer than {0} bytes (the cap): the rest is not read, so nothing is bound")]
    Cut(usize),
    #[error(
        "more than {0} files: those after the first {0} by name are not read, so nothing is bound"
    )]
    TooManyFiles(usize),
    #[error("its name is not UTF-8 or longer than 128 bytes: not read, so nothing is bound")]
    NameNotRead,
    #[error("init is the rdinit shim's and read only from the kernel command line (vfio-early.init=PATH): ignored here")]
    InitKey,
}

impl InputError {
    /// Whether the settings are incomplete or unsafe as read: then nothing may be bound (a
    /// device entry or a kill switch may be in what was not applied).
    pub fn blocks(&self) -> bool {
        matches!(
            self,
            InputError::TooManyEntries(_)
                | InputError::Unreadable(_)
                | InputError::Cut(_)
                | InputError::TooManyFiles(_)
                | InputError::NameNotRead
                | InputError::KillSwitch(_)
        )
    }

    /// A problem with a device entry (the summary's "bad entries"), not with another key.
    pub fn is_entry(&self) -> bool {
        matches!(
            self,
            InputError::Entry { .. }
                | InputError::EmptyList
                | InputError::EmptyEntry(_)
                | InputError::TooManyEntries(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub error: InputError,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.error)
    }
}

/// Problems found while reading input; bounded, with a count of those not kept. A problem that
/// blocks binding is always kept (it takes the place of the newest one that does not), so the
/// log says why nothing was bound however many problems came first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub kept: heapless::Vec<Problem, MAX_PROBLEMS>,
    pub dropped: usize,
    /// Device-entry problems among all (kept or not).
    pub entries: usize,
    /// Set by any problem that blocks binding.
    pub blocked: bool,
}

impl Problems {
    pub fn push(&mut self, origin: Origin, error: InputError) {
        self.entries += usize::from(error.is_entry());
        let blocks = error.blocks();
        self.blocked |= blocks;
        let problem = Problem { origin, error };
        let Err(problem) = self.kept.push(problem) else {
            return;
        };
        self.dropped += 1;
        if blocks {
            if let Some(i) = self.kept.iter().rposition(|p| !p.error.blocks()) {
                self.kept[i] = problem;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.kept.len() + self.dropped
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Settings {
    /// Applies the `vfio-early.*` arguments of a command line; other arguments are ignored.
    pub fn apply_cmdline(&mut self, line: &[u8], origin: Origin, problems: &mut Problems) {
        for arg in cmdline::args(line) {
            let Some(key) = strip_prefix(arg.param) else {
                continue;
            };
            let value = arg.value.map(String::from_utf8_lossy);
            let key = String::from_utf8_lossy(key);
            self.apply_key(&key, value.as_deref(), origin.clone(), problems);
        }
    }

    /// Applies `/etc/vfio-early.conf`: `key = value` lines, `#` comments; a bare boolean key means yes.
    pub fn apply_file(&mut self, text: &str, problems: &mut Problems) {
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => {
                problems.push(Origin::Config, InputError::ByteOrderMark);
                rest
            }
            None => text,
        };
        for (n, raw) in text.lines().enumerate() {
            let origin = Origin::ConfigLine(n as u32 + 1);
            let line = raw.split_once('#').map_or(raw, |(l, _)| l).trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = match line.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (line, None),
            };
            if key.is_empty() || key.contains(char::is_whitespace) {
                problems.push(origin, InputError::Line(Token::new(line)));
                continue;
            }
            self.apply_key(key, value, origin, problems);
        }
    }

    /// Every key of both sources goes through here; a bad key or value leaves the setting as it was.
    fn apply_key(
        &mut self,
        key: &str,
        value: Option<&str>,
        origin: Origin,
        problems: &mut Problems,
    ) {
        if param_eq(key.as_bytes(), b"devices") {
            self.add_devices(value.unwrap_or(""), origin, problems);
        } else if param_eq(key.as_bytes(), b"init") {
            // The rdinit shim's (the init it starts), read by it from the command line only.
            if origin != Origin::Cmdline {
                problems.push(origin, InputError::InitKey);
            }
        } else if let Err(e) = self.apply_scalar(key, value) {
            problems.push(origin, e);
        }
    }

    fn apply_scalar(&mut self, key: &str, value: Option<&str>) -> Result<(), InputError> {
        let k = key.as_bytes();
        if param_eq(k, b"off") {
            // A kill switch that cannot be read is on: taking a device is never the safe guess.
            let Ok(off) = boolean("off", value) else {
                self.off = true;
                return Err(InputError::KillSwitch(Token::new(value.unwrap_or(""))));
            };
            self.off = off;
        } else if param_eq(k, b"dry-run") {
            self.dry_run = boolean("dry-run", value)?;
        } else if param_eq(k, b"sync") {
            self.sync = boolean("sync", value)?;
        } else if param_eq(k, b"debug") {
            self.debug = boolean("debug", value)?;
        } else if param_eq(k, b"rom") {
            self.rom = rom_want(value.unwrap_or(""))?;
        } else if param_eq(k, b"build-strict") {
            self.build_strict = boolean("build-strict", value)?;
        } else if param_eq(k, b"group") {
            self.group = match value {
                Some("companions") => GroupPolicy::Companions,
                Some("whole") => GroupPolicy::Whole,
                Some("strict") => GroupPolicy::Strict,
                v => return Err(bad("group", v.unwrap_or(""), "companions, whole or strict")),
            };
        } else if param_eq(k, b"on-fail") {
            self.on_fail = match value {
                Some("release") => OnFail::Release,
                Some("fence") => OnFail::Fence,
                v => return Err(bad("on-fail", v.unwrap_or(""), "release or fence")),
            };
        } else if param_eq(k, b"timeout") {
            let v = value.unwrap_or("");
            self.timeout_ms = match v.parse::<u32>() {
                Ok(s @ 1..=MAX_TIMEOUT_S) => s * 1000,
                _ => return Err(bad("timeout", v, "whole seconds from 1 to 600")),
            };
        } else {
            return Err(InputError::UnknownKey(Token::new(key)));
        }
        Ok(())
    }

    /// Adds a comma-separated list; each bad entry is reported, every good one is kept.
    fn add_devices(&mut self, list: &str, origin: Origin, problems: &mut Problems) {
        let items = || list.split(',').map(str::trim);
        if items().all(str::is_empty) {
            problems.push(origin, InputError::EmptyList);
            return;
        }
        if items().any(str::is_empty) {
            problems.push(origin.clone(), InputError::EmptyEntry(Token::new(list)));
        }
        for token in items().filter(|t| !t.is_empty()) {
            let result = match entry::parse(token) {
                Ok(e) => self
                    .entries
                    .push(e)
                    .map_err(|_| InputError::TooManyEntries(Token::new(token))),
                Err(why) => Err(InputError::Entry {
                    token: Token::new(token),
                    why,
                }),
            };
            if let Err(e) = result {
                problems.push(origin.clone(), e);
            }
        }
    }
}

fn strip_prefix(param: &[u8]) -> Option<&[u8]> {
    let (head, tail) = param.split_at_checked(PREFIX.len())?;
    param_eq(head, PREFIX).then_some(tail)
}

fn bad(key: &'static str, value: &str, expected: &'static str) -> InputError {
    InputError::Value {
        key,
        value: Token::new(value),
        expected,
    }
}

/// `display`, `none`, or a comma-separated list of addresses.
fn rom_want(v: &str) -> Result<RomWant, InputError> {
    match v {
        "display" | "all" => return Ok(RomWant::Display),
        "none" | "no" | "0" => return Ok(RomWant::None),
        _ => {}
    }
    let mut list = heapless::Vec::new();
    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let bdf = Bdf::parse(t).ok_or_else(|| bad("rom", t, "display, none, or PCI addresses"))?;
        list.push(bdf)
            .map_err(|_| bad("rom", t, "at most 8 addresses"))?;
    }
    if list.is_empty() {
        return Err(bad("rom", v, "display, none, or PCI addresses"));
    }
    Ok(RomWant::Devices(list))
}

/// A bare key means yes; values in any case, as the kernel's own `kstrtobool()` takes them.
fn boolean(key: &'static str, value: Option<&str>) -> Result<bool, InputError> {
    let Some(v) = value else { return Ok(true) };
    let is = |words: &[&str]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
    if is(&["1", "y", "yes", "on", "true"]) {
        Ok(true)
    } else if is(&["0", "n", "no", "off", "false"]) {
        Ok(false)
    } else {
        Err(bad(key, v, "yes or no (1/0, on/off, true/false)"))
    }
}

/// Every key the settings parser knows, as the configuration file spells them (on the command
/// line each takes the `vfio-early.` prefix; `build-strict` is the file's only, `init` the
/// command line's only).
pub const KEYS: [&str; 11] = [
    "devices",
    "off",
    "group",
    "on-fail",
    "timeout",
    "dry-run",
    "sync",
    "debug",
    "rom",
    "build-strict",
    "init",
];

/// The settings as `/etc/vfio-early.conf` lines (`vfio-early config`): every key with its
/// effective value, in a form `apply_file` reads back to the same settings.
pub struct FileForm<'a>(pub &'a Settings);

impl fmt::Display for FileForm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let yn = |b: bool| if b { "yes" } else { "no" };
        for e in &s.entries {
            writeln!(f, "devices = {}", e.text.as_str())?;
        }
        writeln!(f, "off = {}", yn(s.off))?;
        let group = match s.group {
            GroupPolicy::Companions => "companions",
            GroupPolicy::Whole => "whole",
            GroupPolicy::Strict => "strict",
        };
        writeln!(f, "group = {group}")?;
        let on_fail = match s.on_fail {
            OnFail::Release => "release",
            OnFail::Fence => "fence",
        };
        writeln!(f, "on-fail = {on_fail}")?;
        writeln!(f, "timeout = {}", s.timeout_ms / 1000)?;
        writeln!(f, "dry-run = {}", yn(s.dry_run))?;
        writeln!(f, "sync = {}", yn(s.sync))?;
        writeln!(f, "debug = {}", yn(s.debug))?;
        match &s.rom {
            RomWant::None => writeln!(f, "rom = none")?,
            RomWant::Display => writeln!(f, "rom = display")?,
            RomWant::Devices(list) => {
                f.write_str("rom = ")?;
                for (i, b) in list.iter().enumerate() {
                    write!(f, "{}{b}", if i == 0 { "" } else { "," })?;
                }
                writeln!(f)?;
            }
        }
        writeln!(f, "build-strict = {}", yn(s.build_strict))
    }
}

/// Caps on the input files: a command line is at most a few KiB on every architecture.
pub const CMDLINE_CAP: usize = 8192;
pub const CONFIG_CAP: usize = 16384;
/// dracut's `/etc/cmdline.d/*.conf` files read.
pub const MAX_CMDLINE_D: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_key_message_names_every_key() {
        let text = InputError::UnknownKey(Token::new("x")).to_string();
        assert!(
            text.ends_with(&format!("(known: {})", KEYS.join(", "))),
            "{text}"
        );
        let mut p = Problems::default();
        let mut s = Settings::default();
        for k in KEYS.iter().filter(|k| **k != "init") {
            s.apply_file(&format!("{k} = 1\n"), &mut p);
            assert!(
                p.kept
                    .iter()
                    .all(|e| !e.to_string().contains("unknown key")),
                "{k}: {p:?}"
            );
        }
    }

    fn from(cmdline: &str, file: &str) -> (Settings, Problems) {
        let mut s = Settings::default();
        let mut p = Problems::default();
        s.apply_file(file, &mut p);
        s.apply_cmdline(cmdline.as_bytes(), Origin::Cmdline, &mut p);
        (s, p)
    }

    #[test]
    fn init_is_the_shims_on_the_command_line_only() {
        let (s, p) = from("vfio-early.init=/sbin/x vfio-early.devices=01:00.0", "");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.entries.len(), 1);
        let (_, p) = from("", "init = /sbin/x\n");
        assert_eq!(p.len(), 1);
        assert!(format!("{p:?}").contains("InitKey"), "{p:?}");
    }

    #[test]
    fn booleans_take_any_case_and_a_bare_key() {
        for (file, want) in [
            ("build-strict", true),
            ("build-strict = YES", true),
            ("build_strict = On", true),
            ("build-strict = N", false),
            ("build-strict = False", false),
        ] {
            let (s, p) = from("", file);
            assert!(p.is_empty(), "{file}: {p:?}");
            assert_eq!(s.build_strict, want, "{file}");
        }
        let (s, p) = from("", "build-strict = ture");
        assert!(!s.build_strict && p.len() == 1, "{p:?}");
    }

    #[test]
    fn file_form_reads_back_to_the_same_settings() {
        for (cmdline, file) in [
            ("", ""),
            (
                "vfio-early.devices=01:00.0@10de:1c03+unbind,10de:1c03:1043:85f4 vfio-early.rom=01:00.0,2:0.1",
                "group = strict\non-fail = fence\ntimeout = 3\ndry-run\ndebug = yes\noff = 1\nbuild-strict = on",
            ),
            ("vfio-early.rom=display vfio-early.group=whole", "devices = 0000:05:00.0@1b21:2142+guarded"),
        ] {
            let (s, p) = from(cmdline, file);
            assert!(p.is_empty(), "{p:?}");
            let text = FileForm(&s).to_string();
            let (back, p) = from("", &text);
            assert!(p.is_empty(), "{text}: {p:?}");
            assert_eq!(back, s, "{text}");
        }
    }

    fn texts(s: &Settings) -> Vec<&str> {
        s.entries.iter().map(|e| e.text.as_str()).collect()
    }

    #[test]
    fn lists_merge_and_names_fold() {
        let (s, p) = from(
            "ro vfio-early.devices=01:00.0 root=/dev/sda vfio_early.devices=10de:1c03,02:00.0+unbind",
            "devices = 03:00.0 # a comment\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            texts(&s),
            ["03:00.0", "01:00.0", "10de:1c03", "02:00.0+unbind"]
        );
    }

    #[test]
    fn bad_tokens_are_named_and_good_ones_kept() {
        let (s, p) = from(
            "vfio-early.devices=zz:00.0,../../x,01:00.0,/sys/bus vfio-early.bogus=1 vfio-early.group=most",
            "",
        );
        assert_eq!(texts(&s), ["01:00.0"]);
        let msgs: Vec<String> = p.kept.iter().map(|p| p.to_string()).collect();
        for needle in [
            "\"zz:00.0\"",
            "\"../../x\"",
            "\"/sys/bus\"",
            "unknown key \"bogus\"",
            "\"most\"",
        ] {
            assert!(
                msgs.iter().any(|m| m.contains(needle)),
                "{needle} missing in {msgs:?}"
            );
        }
        assert!(msgs.iter().all(|m| m.starts_with("kernel command line: ")));
    }

    #[test]
    fn file_lines_are_located() {
        let (s, p) = from(
            "",
            "# header\n\ndevices = 01:00.0\ngarbage line here\ncolour = blue\noff\n",
        );
        assert_eq!(texts(&s), ["01:00.0"]);
        assert!(s.off, "a bare boolean key means yes");
        let msgs: Vec<String> = p.kept.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("/etc/vfio-early.conf line 4: \"garbage line here\""));
        assert!(msgs[1].contains("line 5: unknown key \"colour\""));
    }

    #[test]
    fn cmdline_overrides_scalars_and_its_kill_switch_wins() {
        let (s, p) = from(
            "vfio-early.off",
            "off = no\ngroup = strict\nbuild-strict = yes\n",
        );
        assert!(p.is_empty() && s.build_strict, "{p:?}");
        assert!(s.off);
        assert_eq!(s.group, GroupPolicy::Strict);
        let (s, _) = from("vfio-early.off=0 vfio-early.group=whole", "off = yes\n");
        assert!(!s.off);
        assert_eq!(s.group, GroupPolicy::Whole);
        let (s, p) = from("vfio-early.timeout=0 vfio-early.on-fail=fence", "");
        assert_eq!(s.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(s.on_fail, OnFail::Fence);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn rom_capture_requests() {
        let (s, p) = from("vfio-early.rom=01:00.0,0000:02:00.0", "rom = display\n");
        assert!(p.is_empty(), "{p:?}");
        let RomWant::Devices(list) = &s.rom else {
            panic!("{:?}", s.rom)
        };
        assert_eq!(list.len(), 2);
        let (s, p) = from("vfio-early.rom=01:00.0,../x", "rom = display\n");
        assert_eq!(
            s.rom,
            RomWant::Display,
            "a bad value leaves the setting as it was"
        );
        assert!(p.kept[0].to_string().contains("bad value \"../x\" for rom"));
    }

    #[test]
    fn everything_after_double_dash_belongs_to_init() {
        let (s, _) = from("quiet -- vfio-early.devices=01:00.0", "");
        assert!(s.entries.is_empty());
    }

    #[test]
    fn capacity_is_an_error_not_a_silent_cut() {
        let list: Vec<String> = (0..MAX_ENTRIES + 2)
            .map(|i| format!("{i:02x}:00.0"))
            .collect();
        let (s, p) = from(&format!("vfio-early.devices={}", list.join(",")), "");
        assert_eq!(s.entries.len(), MAX_ENTRIES);
        assert_eq!(p.len(), 2);
        assert!(p.kept[0].to_string().contains("capacity 32"));
    }

    #[test]
    fn quoted_values_follow_the_kernel() {
        let (s, p) = from("\"vfio-early.devices=01:00.0, 02:00.0\"", "");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(texts(&s), ["01:00.0", "02:00.0"]);
    }
}
