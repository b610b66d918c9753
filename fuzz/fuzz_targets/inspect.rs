// SPDX-License-Identifier: MIT OR Apache-2.0
//! `rom::inspect` on any bytes: never panics, and what it says holds together. The first two
//! bytes of the input also pick an expected vendor:device (the IDs check), the rest is the ROM.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfio_early_engine::romstore::report_json;
use vfio_early_core::pci::PciId;
use vfio_early_core::rom::{self, MAX_FINDINGS, MAX_IMAGES};
use vfio_early::romcli::human;

fuzz_target!(|input: &[u8]| {
    for (data, expect) in [(input, None), split(input)] {
        let r = rom::inspect(data, expect.as_ref());
        assert_eq!(r.size, data.len());
        assert!(r.images.len() <= MAX_IMAGES && r.findings.len() <= MAX_FINDINGS);
        if let Some(end) = r.chain_end {
            assert!(
                end > 0 && end <= data.len(),
                "chain end {end} of {}",
                data.len()
            );
            let last = r.images.last().expect("a chain end without images");
            assert!(last.last && last.offset + last.length == end);
        }
        let mut at = 0;
        for img in &r.images {
            // Images follow each other from offset 0, each inside the data where it starts.
            assert_eq!(img.offset, at);
            assert!(img.offset < data.len() && img.pcir < data.len() && img.length > 0);
            assert_eq!(
                data.get(img.offset..img.offset + 2),
                Some(&[0x55, 0xAA][..])
            );
            assert_eq!(data.get(img.pcir..img.pcir + 4), Some(&b"PCIR"[..]));
            at = img.offset + img.length;
        }
        // A usable ROM with a complete chain is its own clean range.
        if let (true, Some(end)) = (r.ok(), r.chain_end) {
            assert_eq!(rom::clean_range(data), Some(0..end));
        }
        // The JSON shared by the sidecar and `rom inspect --json` is always JSON.
        let j = report_json(&r);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_else(|e| panic!("{e}: {j}"));
        assert_eq!(v["ok"].as_bool(), Some(r.ok()));
        assert_eq!(v["images"].as_array().map(Vec::len), Some(r.images.len()));
        let _ = human("fuzz", &r);
    }
});

fn split(input: &[u8]) -> (&[u8], Option<PciId>) {
    match input {
        [a, b, c, d, rest @ ..] => (
            rest,
            Some(PciId {
                vendor: u16::from_le_bytes([*a, *b]),
                device: u16::from_le_bytes([*c, *d]),
                ..PciId::default()
            }),
        ),
        _ => (input, None),
    }
}
