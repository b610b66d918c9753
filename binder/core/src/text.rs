// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bounded text: user tokens quoted in messages, and writers that cannot overflow.

use core::fmt;

/// Longest piece of user input kept verbatim in a message.
pub const TOKEN_CAP: usize = 64;

/// A copy of a user token for messages: bounded, control bytes replaced, cut with `...` when long.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Token(heapless::String<TOKEN_CAP>);

impl Token {
    pub fn new(s: &str) -> Token {
        Token::from_bytes(s.as_bytes())
    }

    pub fn from_bytes(b: &[u8]) -> Token {
        let mut t = Bounded::<TOKEN_CAP>::new();
        for ch in String::from_utf8_lossy(b).chars() {
            let _ = match ch {
                _ if ch.is_control() => fmt::Write::write_char(&mut t, '?'),
                // Invisible in a log line, yet part of the token: shown by their code point.
                '\u{a0}'
                | '\u{ad}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{feff}' => {
                    fmt::Write::write_fmt(&mut t, format_args!("\\u{{{:x}}}", ch as u32))
                }
                _ => fmt::Write::write_char(&mut t, ch),
            };
        }
        Token(t.finish())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

/// A `fmt::Write` into a fixed string that keeps what fits and marks a cut with `...`.
pub struct Bounded<const N: usize> {
    s: heapless::String<N>,
    cut: bool,
}

impl<const N: usize> Default for Bounded<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Bounded<N> {
    pub fn new() -> Self {
        Bounded {
            s: heapless::String::new(),
            cut: false,
        }
    }

    pub fn finish(mut self) -> heapless::String<N> {
        if self.cut {
            while self.s.len() + 3 > N {
                self.s.pop();
            }
            let _ = self.s.push_str("...");
        }
        self.s
    }
}

impl<const N: usize> fmt::Write for Bounded<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for ch in text.chars() {
            if self.cut || self.s.push(ch).is_err() {
                self.cut = true;
                break;
            }
        }
        Ok(())
    }
}

/// Formats into a bounded string.
pub fn bounded<const N: usize>(args: fmt::Arguments<'_>) -> heapless::String<N> {
    let mut b = Bounded::<N>::new();
    let _ = fmt::write(&mut b, args);
    b.finish()
}

/// The first `needle` in `hay`, eight bytes a step (std keeps its memchr to itself): the line
/// readers go through files that grow with the bus.
pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let x = word ^ pattern;
        // The classic has-zero-byte test: its lowest flag is the first needle (a borrow only
        // ever flags a later byte falsely).
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|p| p + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bounded_and_printable() {
        assert_eq!(Token::new("a\nb").as_str(), "a?b");
        let long = "x".repeat(200);
        let t = Token::new(&long);
        assert_eq!(t.as_str().len(), TOKEN_CAP);
        assert!(t.as_str().ends_with("..."));
        let s: heapless::String<8> = bounded(format_args!("{}", "ééééé"));
        assert!(s.ends_with("..."), "cut on a char boundary: {s}");
    }

    #[test]
    fn finds_bytes_at_every_offset() {
        for len in 0..40 {
            let mut hay = vec![b'x'; len];
            assert_eq!(find_byte(b'\n', &hay), None);
            for at in 0..len {
                hay.fill(b'x');
                hay[at] = b'\n';
                if at + 3 < len {
                    hay[at + 3] = b'\n';
                }
                assert_eq!(find_byte(b'\n', &hay), Some(at), "len {len}");
            }
        }
        // Bytes near the needle's value do not match (0x0b, 0x8a).
        assert_eq!(find_byte(b'\n', &[0x0b, 0x8a, 0x09, 0x0a]), Some(3));
        assert_eq!(find_byte(b'\n', &[0x8a; 16]), None);
    }
}
