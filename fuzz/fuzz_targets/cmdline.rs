// SPDX-License-Identifier: MIT OR Apache-2.0
//! The command-line tokenizer against a reference model: a line-by-line transliteration of the
//! kernel's `next_arg()` and `parse_args()` (kernel/params.c), working in place on a
//! NUL-terminated buffer as the C does. Any difference in the arguments is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfio_early_core::cmdline;

type Args = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn isspace(c: u8) -> bool {
    // lib/ctype.c: _S for \t \n \v \f \r, space (_SP) and 0xa0 (_S|_SP).
    matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0xa0)
}

fn skip_spaces(buf: &[u8], mut p: usize) -> usize {
    while isspace(buf[p]) {
        p += 1;
    }
    p
}

fn cstr(buf: &[u8], p: usize) -> Vec<u8> {
    buf[p..].iter().take_while(|&&b| b != 0).copied().collect()
}

/// next_arg(): returns (param, val) offsets and the next position.
fn next_arg(buf: &mut [u8], mut args: usize) -> (usize, Option<usize>, usize) {
    let mut equals = 0usize;
    let mut in_quote = false;
    let mut quoted = false;
    if buf[args] == b'"' {
        args += 1;
        in_quote = true;
        quoted = true;
    }
    let mut i = 0usize;
    while buf[args + i] != 0 {
        if isspace(buf[args + i]) && !in_quote {
            break;
        }
        if equals == 0 && buf[args + i] == b'=' {
            equals = i;
        }
        if buf[args + i] == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let param = args;
    let val = if equals == 0 {
        None
    } else {
        buf[args + equals] = 0;
        let mut v = args + equals + 1;
        if buf[v] == b'"' {
            v += 1;
            if buf[args + i - 1] == b'"' {
                buf[args + i - 1] = 0;
            }
        }
        Some(v)
    };
    if quoted && i > 0 && buf[args + i - 1] == b'"' {
        buf[args + i - 1] = 0;
    }
    let next = if buf[args + i] != 0 {
        buf[args + i] = 0;
        args + i + 1
    } else {
        args + i
    };
    (param, val, skip_spaces(buf, next))
}

/// parse_args(): every argument up to a bare `--`.
fn reference(line: &[u8]) -> Args {
    let mut buf = line.to_vec();
    buf.push(0);
    let mut out = Vec::new();
    let mut args = skip_spaces(&buf, 0);
    while buf[args] != 0 {
        let (param, val, next) = next_arg(&mut buf, args);
        let p = cstr(&buf, param);
        let v = val.map(|v| cstr(&buf, v));
        if v.is_none() && p == b"--" {
            break;
        }
        out.push((p, v));
        args = next;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // A command line is a C string: nothing after a NUL exists for the kernel.
    let line = &data[..data.iter().position(|&b| b == 0).unwrap_or(data.len())];
    let ours: Args = cmdline::args(line)
        .map(|a| (a.param.to_vec(), a.value.map(<[u8]>::to_vec)))
        .collect();
    let want = reference(line);
    assert_eq!(ours, want, "line {:?}", String::from_utf8_lossy(line));
});
