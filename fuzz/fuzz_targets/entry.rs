// SPDX-License-Identifier: MIT OR Apache-2.0
//! `entry::parse` on any token: never panics, and an entry it accepts is what its text says
//! (parsing the kept text again gives the same entry; an address entry names one address).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfio_early_core::entry::{self, Selector};
use vfio_early_core::pci::Bdf;

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let Ok(e) = entry::parse(&token) else {
        return;
    };
    if token.len() < vfio_early_core::text::TOKEN_CAP {
        assert_eq!(e.text.as_str(), token);
        assert_eq!(entry::parse(e.text.as_str()), Ok(e.clone()));
    }
    if let Selector::Bdf { bdf, .. } = e.selector {
        let shown = bdf.to_string();
        assert_eq!(Bdf::parse(&shown), Some(bdf));
        assert!(bdf.function <= 7 && bdf.device <= 0x1f);
    }
});
