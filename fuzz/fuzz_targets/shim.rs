// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the rdinit shim still reads as PID 1 (issue 23): the kernel command line, for
//! `vfio-early.init=`, and the binder's deadline line. Neither may panic (a panic in PID 1 is a
//! kernel panic), every init tried is an absolute path of at most 255 bytes, at most six are
//! tried, and no told deadline exceeds the maximum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfio_early_engine::shim;

fuzz_target!(|data: &[u8]| {
    let (inits, _why) = shim::inits(data);
    assert!(!inits.is_empty() && inits.len() <= 6);
    for i in &inits {
        assert!(i.starts_with('/') && i.len() <= shim::PATH_MAX, "{i:?}");
    }
    if let Ok(d) = shim::parse_deadline(data) {
        assert!(d <= shim::MAX_DEADLINE);
    }
});
