// SPDX-License-Identifier: MIT OR Apache-2.0
//! `rom::clean_range` on any bytes: never panics, and what it keeps is a ROM that
//! `rom::inspect` accepts whole (what `rom clean` writes must pass `rom inspect`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfio_early_core::rom;

fuzz_target!(|data: &[u8]| {
    let Some(range) = rom::clean_range(data) else {
        return;
    };
    assert!(
        range.start < range.end && range.end <= data.len(),
        "{range:?} of {}",
        data.len()
    );
    let kept = &data[range.clone()];
    assert_eq!(&kept[..2], &[0x55, 0xAA]);
    let r = rom::inspect(kept, None);
    assert!(
        r.ok() && r.chain_end == Some(kept.len()),
        "clean kept {range:?} but inspect of it says chain_end {:?}, findings {:?}",
        r.chain_end,
        r.findings
    );
});
