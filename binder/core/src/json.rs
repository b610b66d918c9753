// SPDX-License-Identifier: MIT OR Apache-2.0
//! `/run/vfio-early/state.json`: what was asked, what was done per device, and why.
//!
//! Hand-written JSON: the document is small and flat, and serde would double the binary.

use core::fmt::{self, Write as _};

/// A JSON string literal.
pub struct Str<T: fmt::Display>(pub T);

impl<T: fmt::Display> fmt::Display for Str<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut esc = Escaper(f);
        esc.0.write_char('"')?;
        write!(esc, "{}", self.0)?;
        esc.0.write_char('"')
    }
}

struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Builds a JSON document into a `String`.
#[derive(Default)]
pub struct Json {
    pub out: String,
    /// Whether the next value in the open container needs a comma.
    comma: bool,
}

impl Json {
    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
    }

    pub fn open(&mut self, key: Option<&str>, bracket: char) -> &mut Self {
        self.sep();
        if let Some(k) = key {
            let _ = write!(self.out, "{}:", Str(k));
        }
        self.out.push(bracket);
        self.comma = false;
        self
    }

    pub fn close(&mut self, bracket: char) -> &mut Self {
        self.out.push(bracket);
        self.comma = true;
        self
    }

    /// `"key":value` where value is already JSON (a number, `true`, or a `Str`).
    pub fn raw(&mut self, key: Option<&str>, value: impl fmt::Display) -> &mut Self {
        self.sep();
        match key {
            Some(k) => write!(self.out, "{}:{value}", Str(k)),
            None => write!(self.out, "{value}"),
        }
        .ok();
        self
    }

    pub fn str(&mut self, key: Option<&str>, value: impl fmt::Display) -> &mut Self {
        self.raw(key, Str(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_valid_json() {
        let mut j = Json::default();
        j.open(None, '{')
            .raw(Some("version"), 1)
            .str(Some("text"), "a \"q\" \\ \n")
            .open(Some("list"), '[')
            .str(None, "x")
            .raw(None, true)
            .close(']')
            .close('}');
        assert_eq!(
            j.out,
            r#"{"version":1,"text":"a \"q\" \\ \u000a","list":["x",true]}"#
        );
    }
}
