// SPDX-License-Identifier: MIT OR Apache-2.0
//! PCI addresses, IDs and classes: the vocabulary of every other module.

use core::fmt;

/// A PCI function address, `domain:bus:device.function`.
///
/// Paths are only ever built from this parsed value, never from user text, so a token such as
/// `../../x` cannot reach the filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    /// Parses `[DDDD:]BB:DD.F` (hex, any case); the domain defaults to 0.
    pub fn parse(s: &str) -> Option<Bdf> {
        let (rest, function) = s.rsplit_once('.')?;
        let mut parts = rest.rsplitn(3, ':');
        let device = hex_field(parts.next()?, 2)?;
        let bus = hex_field(parts.next()?, 2)?;
        let domain = match parts.next() {
            Some(d) => hex_field(d, 8)?,
            None => 0,
        };
        let function = match function.as_bytes() {
            [f @ b'0'..=b'7'] => f - b'0',
            _ => return None,
        };
        if device > 0x1f {
            return None;
        }
        Some(Bdf {
            domain,
            bus: bus as u8,
            device: device as u8,
            function,
        })
    }

    /// Same physical slot (all functions of one card).
    pub fn same_slot(&self, other: &Bdf) -> bool {
        (self.domain, self.bus, self.device) == (other.domain, other.bus, other.device)
    }
}

impl fmt::Display for Bdf {
    /// The kernel's own spelling (`pci_name()`), which is also the sysfs directory name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// 1..=max hex digits, nothing else.
fn hex_field(s: &str, max: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Exactly four hex digits, as lspci prints IDs.
fn hex4(s: &str) -> Option<u16> {
    if s.len() != 4 {
        return None;
    }
    hex_field(s, 4).map(|v| v as u16)
}

/// Vendor and device, optionally with the subsystem vendor and device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMatch {
    pub vendor: u16,
    pub device: u16,
    pub subsystem: Option<(u16, u16)>,
}

impl IdMatch {
    /// Parses `vvvv:dddd` or `vvvv:dddd:ssss:ssss`.
    pub fn parse(s: &str) -> Option<IdMatch> {
        let mut it = s.split(':');
        let vendor = hex4(it.next()?)?;
        let device = hex4(it.next()?)?;
        let subsystem = match (it.next(), it.next()) {
            (None, _) => None,
            (Some(sv), Some(sd)) => Some((hex4(sv)?, hex4(sd)?)),
            (Some(_), None) => return None,
        };
        if it.next().is_some() {
            return None;
        }
        Some(IdMatch {
            vendor,
            device,
            subsystem,
        })
    }

    pub fn matches(&self, id: &PciId) -> bool {
        self.vendor == id.vendor
            && self.device == id.device
            && self
                .subsystem
                .map_or(true, |s| s == (id.subvendor, id.subdevice))
    }
}

impl fmt::Display for IdMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)?;
        if let Some((sv, sd)) = self.subsystem {
            write!(f, ":{sv:04x}:{sd:04x}")?;
        }
        Ok(())
    }
}

/// The identity a device reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
    pub subvendor: u16,
    pub subdevice: u16,
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

/// The 24-bit class code, `0xCCSSPP`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Class(pub u32);

impl Class {
    pub fn base(self) -> u8 {
        (self.0 >> 16) as u8
    }
    pub fn base_sub(self) -> u16 {
        (self.0 >> 8) as u16
    }
    pub fn is_display(self) -> bool {
        self.base() == 0x03
    }
    pub fn is_audio(self) -> bool {
        self.base_sub() == 0x0403
    }
    pub fn is_bridge(self) -> bool {
        self.base() == 0x06
    }

    /// Classes whose loss can take the root disk, the network or the keyboard away: bound only when
    /// their entry pins the ID and says `+guarded`.
    pub fn guarded_kind(self) -> Option<&'static str> {
        match (self.base(), self.base_sub()) {
            (0x01, _) => Some("storage controller"),
            (0x02, _) => Some("network controller"),
            (0x09, _) => Some("input device"),
            (_, 0x0c03) => Some("USB controller"),
            (_, 0x0c05) => Some("SMBus controller"),
            _ => None,
        }
    }

    /// A short human name for log lines.
    pub fn kind(self) -> &'static str {
        if let Some(k) = self.guarded_kind() {
            return k;
        }
        match (self.base(), self.base_sub()) {
            (0x03, _) => "display controller",
            (_, 0x0403) => "audio device",
            (0x04, _) => "multimedia device",
            (0x06, _) => "bridge",
            (0x0c, 0x0c80) => "serial bus controller (UCSI)",
            (0x0c, _) => "serial bus controller",
            _ => "device",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:06x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_forms() {
        let b = Bdf::parse("0000:01:00.0").unwrap();
        assert_eq!(b, Bdf::parse("01:00.0").unwrap());
        assert_eq!(b.to_string(), "0000:01:00.0");
        assert_eq!(
            Bdf::parse("1:A.7").unwrap().to_string(),
            "0000:01:0a.7",
            "short and upper-case fields are accepted and canonicalised"
        );
        assert_eq!(
            Bdf::parse("10000:e1:1f.3").unwrap().to_string(),
            "10000:e1:1f.3",
            "VMD domains have five digits"
        );
        for bad in [
            "",
            "01:00",
            "01:00.8",
            "01:20.0",
            "001:00.0",
            "0000:01:00.0.0",
            "../../x",
            "g1:00.0",
            "01:00.",
            ":01:00.0",
            "1:2:3:4.0",
            "/sys/bus",
            "01:00.0 ",
        ] {
            assert_eq!(Bdf::parse(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn id_forms() {
        let id = PciId {
            vendor: 0x10de,
            device: 0x1c03,
            subvendor: 0x1043,
            subdevice: 0x85f4,
        };
        assert!(IdMatch::parse("10de:1c03").unwrap().matches(&id));
        assert!(IdMatch::parse("10DE:1C03:1043:85f4").unwrap().matches(&id));
        assert!(!IdMatch::parse("10de:1c03:1043:0000").unwrap().matches(&id));
        for bad in [
            "10de",
            "10de:1c0",
            "10de:1c03:1043",
            "10de:1c03:1043:85f4:1",
            "zzzz:1c03",
        ] {
            assert_eq!(IdMatch::parse(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn classes() {
        assert_eq!(Class(0x010601).guarded_kind(), Some("storage controller"));
        assert_eq!(Class(0x0c0330).guarded_kind(), Some("USB controller"));
        assert_eq!(Class(0x0c0500).guarded_kind(), Some("SMBus controller"));
        assert_eq!(Class(0x0c8000).guarded_kind(), None);
        assert!(Class(0x060400).is_bridge());
        assert!(Class(0x040300).is_audio() && !Class(0x040100).is_audio());
    }
}
