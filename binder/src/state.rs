// SPDX-License-Identifier: MIT OR Apache-2.0
//! `/run/vfio-early/state.json`: what was asked, what was done per device, and why.
//!
//! Hand-written JSON: the document is small and flat, and serde would double the binary.

use core::fmt::{self, Write as _};
use std::fs;
use std::io::Write as _;
use std::path::Path;

use crate::sysfs::{io_err, SysError};

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

/// Whether publishing may replace an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// The state file: the last run wins.
    Yes,
    /// Stored ROMs: never replaced (`AlreadyExists`).
    No,
}

/// Writes atomically: a temporary file in the target directory, fsync, publish, directory fsync.
/// Publishing without replacing uses `link()`, which fails with EEXIST where `rename()` would
/// overwrite (nix wraps `renameat2(RENAME_NOREPLACE)` only for glibc).
pub fn write_file(path: &Path, bytes: &[u8], replace: Replace) -> Result<(), SysError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    drop(f);
    let published = match replace {
        Replace::Yes => fs::rename(&tmp, path),
        Replace::No => fs::hard_link(&tmp, path).and_then(|()| fs::remove_file(&tmp)),
    };
    if published.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    published.map_err(io_err(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
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

    #[test]
    fn atomic_writes_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.rom");
        write_file(&p, b"one", Replace::No).unwrap();
        assert!(write_file(&p, b"two", Replace::No).is_err());
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert!(!p.with_extension("tmp").exists());
    }

    #[test]
    fn the_state_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_file(&p, b"one", Replace::Yes).unwrap();
        write_file(&p, b"two", Replace::Yes).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
    }
}
