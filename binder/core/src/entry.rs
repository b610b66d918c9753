// SPDX-License-Identifier: MIT OR Apache-2.0
//! One device entry of `vfio-early.devices=` / `devices =`: what to take and what it may override.
//!
//! ```text
//! entry    = selector *("+" flag)
//! selector = BDF | BDF "@" ID | ID          BDF = [DDDD:]BB:DD.F   ID = vvvv:dddd[:ssss:ssss]
//! flag     = "unbind" | "boot-vga" | "guarded" | "reset=" METHOD
//! METHOD   = "flr" | "af_flr" | "pm" | "bus" | "cxl_bus" | "acpi" | "device_specific" | "default"
//! ```

use core::fmt;

use crate::pci::{Bdf, IdMatch, PciId};
use crate::text::Token;

/// What an entry selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    /// One address, optionally pinned to the identity it must have.
    Bdf { bdf: Bdf, pin: Option<IdMatch> },
    /// Every device with this identity.
    Id(IdMatch),
}

/// Per-entry permissions; they also cover the companions the entry brings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Take the device even if a driver holds it (unbind first).
    pub unbind: bool,
    /// Take the device even though it is the boot display.
    pub boot_vga: bool,
    /// Take a storage, network, input, USB or SMBus device (needs an ID pin).
    pub guarded: bool,
    /// The reset method to set on the entry's own device before vfio-pci probes it (not on the
    /// companions it brings).
    pub reset: Option<Reset>,
}

/// A reset method the kernel's `reset_method` attribute takes (drivers/pci/pci.c,
/// `pci_reset_fn_methods`), or `default` (the kernel's own order back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    DeviceSpecific,
    Acpi,
    Flr,
    AfFlr,
    Pm,
    Bus,
    CxlBus,
    Default,
}

impl Reset {
    pub const ALL: [Reset; 8] = [
        Reset::Flr,
        Reset::AfFlr,
        Reset::Pm,
        Reset::Bus,
        Reset::CxlBus,
        Reset::Acpi,
        Reset::DeviceSpecific,
        Reset::Default,
    ];

    /// The kernel's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reset::DeviceSpecific => "device_specific",
            Reset::Acpi => "acpi",
            Reset::Flr => "flr",
            Reset::AfFlr => "af_flr",
            Reset::Pm => "pm",
            Reset::Bus => "bus",
            Reset::CxlBus => "cxl_bus",
            Reset::Default => "default",
        }
    }

    pub fn parse(s: &str) -> Option<Reset> {
        Reset::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub selector: Selector,
    pub flags: Flags,
    /// The entry as written, for log lines and the state file.
    pub text: Token,
}

impl Entry {
    /// Whether the entry states the identity of what it selects (an ID entry, or a pinned BDF).
    pub fn pins_id(&self) -> bool {
        !matches!(self.selector, Selector::Bdf { pin: None, .. })
    }

    pub fn selects(&self, bdf: &Bdf, id: &PciId) -> bool {
        match &self.selector {
            Selector::Bdf { bdf: b, .. } => b == bdf,
            Selector::Id(m) => m.matches(id),
        }
    }
}

/// Why an entry was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    Address,
    /// An address whose function is not 0-7.
    Function,
    /// An address whose device number is over 1f.
    Device,
    Id,
    Flag(Token),
    GuardedWithoutPin,
    /// `+reset=` with no method: the kernel would take that as "no reset at all".
    ResetEmpty,
    ResetMethod(Token),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Address => f.write_str(
                "expected a PCI address such as 0000:01:00.0 or 01:00.0, optionally @vendor:device",
            ),
            EntryError::Function => f.write_str("the function (after the dot) must be 0-7"),
            EntryError::Device => {
                f.write_str("the device number (before the dot) must be 00-1f")
            }
            EntryError::Id => f.write_str(
                "expected vendor:device such as 10de:1c03 (four hex digits each), optionally :subvendor:subdevice",
            ),
            EntryError::Flag(flag) => write!(
                f,
                "unknown flag \"+{flag}\" (known: +unbind, +boot-vga, +guarded, +reset=METHOD)"
            ),
            EntryError::ResetEmpty => f.write_str(
                "+reset= needs a method: an empty reset_method would leave the device with no reset at all (known: flr, af_flr, pm, bus, cxl_bus, acpi, device_specific, default)",
            ),
            EntryError::ResetMethod(m) => write!(
                f,
                "unknown reset method \"{m}\" (known: flr, af_flr, pm, bus, cxl_bus, acpi, device_specific, default)"
            ),
            EntryError::GuardedWithoutPin => f.write_str(
                "+guarded needs the expected ID, e.g. 00:1f.2@8086:2922+guarded",
            ),
        }
    }
}

/// Parses one entry (already split off its list and trimmed).
pub fn parse(token: &str) -> Result<Entry, EntryError> {
    let mut parts = token.split('+');
    let selector = parse_selector(parts.next().unwrap_or(""))?;
    let mut flags = Flags::default();
    for flag in parts {
        match flag {
            "unbind" => flags.unbind = true,
            "boot-vga" | "boot_vga" => flags.boot_vga = true,
            "guarded" => flags.guarded = true,
            "reset=" => return Err(EntryError::ResetEmpty),
            other => match other.strip_prefix("reset=") {
                Some(m) => {
                    flags.reset = Some(
                        Reset::parse(m).ok_or_else(|| EntryError::ResetMethod(Token::new(m)))?,
                    )
                }
                None => return Err(EntryError::Flag(Token::new(other))),
            },
        }
    }
    let entry = Entry {
        selector,
        flags,
        text: Token::new(token),
    };
    if flags.guarded && !entry.pins_id() {
        return Err(EntryError::GuardedWithoutPin);
    }
    Ok(entry)
}

/// Why an address-shaped token is not an address: the common slips get their own words.
fn address_error(s: &str) -> EntryError {
    let Some((rest, function)) = s.rsplit_once('.') else {
        return EntryError::Address;
    };
    // Everything but the function is right: the function is the slip.
    if !function.is_empty() && Bdf::parse(&format!("{rest}.0")).is_some() {
        return EntryError::Function;
    }
    let device = rest.rsplit(':').next().unwrap_or("");
    let head = &rest[..rest.len() - device.len()];
    let too_high = device.len() <= 2 && u8::from_str_radix(device, 16).is_ok_and(|d| d > 0x1f);
    if too_high && Bdf::parse(&format!("{head}00.0")).is_some() {
        return EntryError::Device;
    }
    EntryError::Address
}

fn parse_selector(s: &str) -> Result<Selector, EntryError> {
    if let Some((bdf, id)) = s.split_once('@') {
        let bdf = Bdf::parse(bdf).ok_or_else(|| address_error(bdf))?;
        let pin = IdMatch::parse(id).ok_or(EntryError::Id)?;
        return Ok(Selector::Bdf {
            bdf,
            pin: Some(pin),
        });
    }
    // Only addresses have a dot; an ID never does.
    if s.contains('.') {
        let bdf = Bdf::parse(s).ok_or_else(|| address_error(s))?;
        return Ok(Selector::Bdf { bdf, pin: None });
    }
    if s.bytes().filter(|&b| b == b':').count() % 2 == 1 {
        return IdMatch::parse(s).map(Selector::Id).ok_or(EntryError::Id);
    }
    Err(EntryError::Address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reset_methods_by_the_kernel_s_names() {
        for r in Reset::ALL {
            let e = parse(&format!("01:00.0+reset={}", r.as_str())).unwrap();
            assert_eq!(e.flags.reset, Some(r));
        }
        let e = parse("01:00.0@10de:1e84+unbind+reset=bus").unwrap();
        assert!(e.flags.unbind && e.flags.reset == Some(Reset::Bus));
        assert_eq!(parse("01:00.0+reset="), Err(EntryError::ResetEmpty));
        let err = parse("01:00.0+reset=warm").unwrap_err();
        assert_eq!(err, EntryError::ResetMethod(Token::new("warm")));
        assert!(err
            .to_string()
            .contains("unknown reset method \"warm\" (known: flr,"));
        assert!(EntryError::ResetEmpty
            .to_string()
            .contains("no reset at all"));
        // The kernel's spelling only: `reset=FLR` and `reset=device-specific` are not its names.
        assert!(parse("01:00.0+reset=FLR").is_err());
        assert!(parse("01:00.0+reset=device-specific").is_err());
    }

    #[test]
    fn address_slips_are_named() {
        for (t, want) in [
            ("01:00.9", EntryError::Function),
            ("0000:01:00.8+unbind", EntryError::Function),
            ("01:00.10", EntryError::Function),
            ("01:20.0", EntryError::Device),
            ("01:ff.1@10de:1c03", EntryError::Device),
            ("zz:00.9", EntryError::Address),
            ("01:00.", EntryError::Address),
            ("1:2:3:4.0", EntryError::Address),
        ] {
            assert_eq!(parse(t).err(), Some(want), "{t}");
        }
    }

    #[test]
    fn forms() {
        let e = parse("01:00.0").unwrap();
        assert!(matches!(e.selector, Selector::Bdf { pin: None, .. }));
        assert!(!e.pins_id());
        let e = parse("0000:01:00.0@10de:1c03+unbind+boot-vga").unwrap();
        assert!(e.pins_id() && e.flags.unbind && e.flags.boot_vga && !e.flags.guarded);
        let e = parse("10de:1c03:1043:85f4").unwrap();
        assert!(matches!(
            e.selector,
            Selector::Id(IdMatch {
                subsystem: Some(_),
                ..
            })
        ));
        assert!(parse("00:1f.2@8086:2922+guarded").unwrap().flags.guarded);
        assert!(parse("8086:2922+guarded").unwrap().flags.guarded);
    }

    #[test]
    fn rejections_say_why() {
        let table = [
            ("zz:00.0", EntryError::Address),
            ("../../x", EntryError::Address),
            ("/sys/bus", EntryError::Address),
            ("", EntryError::Address),
            ("10de", EntryError::Address),
            ("10de:1c0", EntryError::Id),
            ("01:00.0@10de", EntryError::Id),
            ("01:00.0+bogus", EntryError::Flag(Token::new("bogus"))),
            ("00:1f.2+guarded", EntryError::GuardedWithoutPin),
        ];
        for (tok, want) in table {
            assert_eq!(parse(tok), Err(want), "{tok:?}");
        }
        assert!(EntryError::Flag(Token::new("bogus"))
            .to_string()
            .contains("\"+bogus\""));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        // Whatever is accepted as an address, its canonical spelling parses to the same entry.
        #[test]
        fn address_roundtrip(d in 0u32..0x10000, b in 0u8.., dev in 0u8..0x20, f in 0u8..8) {
            let text = format!("{d:04x}:{b:02x}:{dev:02x}.{f}");
            let e = parse(&text).unwrap();
            let Selector::Bdf { bdf, pin: None } = e.selector else { panic!("not a BDF") };
            prop_assert_eq!(bdf.to_string(), text);
        }
    }
}
