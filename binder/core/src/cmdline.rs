// SPDX-License-Identifier: MIT OR Apache-2.0
//! The kernel's command-line tokenizer, reproduced.
//!
//! A generic shell-words crate gets this wrong: the kernel only knows double quotes, a quote may
//! open in the middle of a word, only a leading quote of the value is stripped, and `--` ends the
//! kernel's part (what follows belongs to init). This follows `next_arg()` and `parse_args()` in
//! the kernel's `kernel/params.c` and `lib/cmdline.c` byte for byte.

/// One `param[=value]` argument; `value` is `None` when there is no `=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg<'a> {
    pub param: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// The kernel's `isspace()`: its ctype table is Latin-1, so NBSP (0xa0) counts too.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// Iterator over the kernel's part of a command line.
pub struct Args<'a> {
    rest: &'a [u8],
}

/// Tokenizes `line` the way the kernel does; stops at a bare `--`.
pub fn args(line: &[u8]) -> Args<'_> {
    Args {
        rest: skip_spaces(line),
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = Arg<'a>;

    fn next(&mut self) -> Option<Arg<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (arg, rest) = next_arg(self.rest);
        self.rest = skip_spaces(rest);
        if arg.value.is_none() && arg.param == b"--" {
            self.rest = &[];
            return None;
        }
        Some(arg)
    }
}

/// Splits one argument off `s` (which starts at a non-space byte).
fn next_arg(s: &[u8]) -> (Arg<'_>, &[u8]) {
    let (quoted, args) = match s.first() {
        Some(b'"') => (true, &s[1..]),
        _ => (false, s),
    };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut i = 0;
    while i < args.len() {
        let b = args[i];
        if is_space(b) && !in_quote {
            break;
        }
        // The kernel keeps `equals` as an index where 0 means "none": an `=` that opens the
        // argument is part of the name, and a later one still splits it (fuzz finding).
        if equals.is_none() && b == b'=' && i > 0 {
            equals = Some(i);
        }
        if b == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let rest = if i < args.len() {
        &args[i + 1..]
    } else {
        &args[i..]
    };
    // The kernel cuts a trailing quote when the value began with one, or the whole arg did.
    let mut end = i;
    let arg = match equals {
        None => {
            if quoted && end > 0 && args[end - 1] == b'"' {
                end -= 1;
            }
            Arg {
                param: &args[..end],
                value: None,
            }
        }
        Some(eq) => {
            let mut start = eq + 1;
            let value_quoted = args.get(start) == Some(&b'"');
            if value_quoted {
                start += 1;
            }
            if (value_quoted || quoted) && end > start && args[end - 1] == b'"' {
                end -= 1;
            }
            Arg {
                param: &args[..eq],
                value: Some(&args[start.min(end)..end]),
            }
        }
    };
    (arg, rest)
}

/// The kernel's `parameq()`: `-` and `_` are the same character in parameter names.
pub fn param_eq(a: &[u8], b: &[u8]) -> bool {
    let norm = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| norm(x) == norm(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Toks = Vec<(String, Option<String>)>;

    fn toks(line: &str) -> Toks {
        args(line.as_bytes())
            .map(|a| {
                (
                    String::from_utf8_lossy(a.param).into_owned(),
                    a.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect()
    }

    fn kv(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_string(), v.map(str::to_string))
    }

    #[test]
    fn a_leading_equals_sign_is_part_of_the_name() {
        let t = |p: &str, v: Option<&str>| (p.to_string(), v.map(String::from));
        assert_eq!(toks("=a"), vec![t("=a", None)]);
        assert_eq!(toks("=a=b"), vec![t("=a", Some("b"))]);
        assert_eq!(toks("\"=a\""), vec![t("=a", None)]);
    }

    #[test]
    fn kernel_quoting_rules() {
        let table: &[(&str, Toks)] = &[
            ("", vec![]),
            ("  \n", vec![]),
            ("ro quiet\n", vec![kv("ro", None), kv("quiet", None)]),
            ("a=b c=d", vec![kv("a", Some("b")), kv("c", Some("d"))]),
            ("a=\"b c\" d", vec![kv("a", Some("b c")), kv("d", None)]),
            ("\"a b\" c", vec![kv("a b", None), kv("c", None)]),
            ("\"a=b c\"", vec![kv("a", Some("b c"))]),
            // A quote opened mid-value keeps both quotes: only a leading one is stripped.
            (
                "a=b\"c d\" e",
                vec![kv("a", Some("b\"c d\"")), kv("e", None)],
            ),
            ("a=", vec![kv("a", Some(""))]),
            ("a==b", vec![kv("a", Some("=b"))]),
            ("a=\"\"", vec![kv("a", Some(""))]),
            ("a=\"", vec![kv("a", Some(""))]),
            ("x -- vfio-early.devices=01:00.0", vec![kv("x", None)]),
            ("--=1 y", vec![kv("--", Some("1")), kv("y", None)]),
            ("a\tb\u{a0}", vec![kv("a", None), kv("b\u{fffd}", None)]),
        ];
        for (line, want) in table {
            assert_eq!(&toks(line), want, "line {line:?}");
        }
    }

    #[test]
    fn dash_and_underscore_are_equal() {
        assert!(param_eq(b"vfio-early.devices", b"vfio_early.devices"));
        assert!(!param_eq(b"vfio-early.device", b"vfio-early.devices"));
    }

    proptest! {
        // Any input terminates, never panics, and yields no empty-and-valueless argument.
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            for a in args(&line) {
                prop_assert!(!(a.param.is_empty() && a.value.is_none() && !line.contains(&b'"')));
            }
        }

        // Plain words separated by spaces come back unchanged.
        #[test]
        fn plain_words_roundtrip(words in proptest::collection::vec("[a-z0-9._:,-]{1,12}(=[a-z0-9._:,+@-]{0,12})?", 0..20)) {
            let words: Vec<_> = words.into_iter().filter(|w| w != "--").collect();
            let line = words.join(" ");
            let got: Vec<String> = args(line.as_bytes())
                .map(|a| match a.value {
                    Some(v) => format!("{}={}", String::from_utf8_lossy(a.param), String::from_utf8_lossy(v)),
                    None => String::from_utf8_lossy(a.param).into_owned(),
                })
                .collect();
            prop_assert_eq!(got, words);
        }
    }
}
