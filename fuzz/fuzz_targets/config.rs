// SPDX-License-Identifier: MIT OR Apache-2.0
//! The settings parsers on any input: the file and the command line never panic, what they
//! keep stays within its capacities, every device taken comes from a well-formed entry, a
//! malformed or cut kill switch means off, and the file form of the result reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfio_early_core::config::{FileForm, Origin, Problems, Settings, MAX_ENTRIES, MAX_PROBLEMS};
use vfio_early_core::entry;

fuzz_target!(|data: &[u8]| {
    // First byte: where the input goes; the rest is the input.
    let Some((&how, input)) = data.split_first() else {
        return;
    };
    let mut s = Settings::default();
    let mut p = Problems::default();
    let text = String::from_utf8_lossy(input);
    match how % 3 {
        0 => s.apply_file(&text, &mut p),
        1 => s.apply_cmdline(input, Origin::Cmdline, &mut p),
        _ => {
            let (a, b) = input.split_at(input.len() / 2);
            s.apply_file(&String::from_utf8_lossy(a), &mut p);
            s.apply_cmdline(b, Origin::Cmdline, &mut p);
        }
    }
    assert!(s.entries.len() <= MAX_ENTRIES && p.kept.len() <= MAX_PROBLEMS);
    // Every entry kept parses on its own to the same thing: nothing malformed slips in.
    for e in &s.entries {
        assert_eq!(
            entry::parse(e.text.as_str()).as_ref(),
            Ok(e),
            "{:?}",
            e.text
        );
    }
    // A malformed kill switch blocks binding for the whole run, whatever comes after it.
    if p.kept
        .iter()
        .any(|x| matches!(x.error, vfio_early_core::config::InputError::KillSwitch(_)))
    {
        assert!(p.blocked);
    }
    // Texts longer than a token are cut in messages; a round trip needs whole tokens.
    if s.entries
        .iter()
        .all(|e| e.text.as_str().len() < vfio_early_core::text::TOKEN_CAP)
    {
        let form = FileForm(&s).to_string();
        let mut back = Settings::default();
        let mut q = Problems::default();
        back.apply_file(&form, &mut q);
        assert!(q.is_empty(), "{form}: {q:?}");
        assert_eq!(back, s, "{form}");
    }
});
