// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bounded reads: every input (configuration, command line, procfs and sysfs files) is opened
//! without blocking, required to be a regular file and read up to a cap, or streamed through one
//! buffer; its errors name the path.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::sys::stat::{fstat, SFlag};

use vfio_early_core::text::find_byte;

#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {what}")]
    Malformed { path: PathBuf, what: &'static str },
    #[error("more than {cap} {what}: the rest is not considered")]
    Capacity { what: &'static str, cap: usize },
}

pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SysError + '_ {
    move |source| SysError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes of an input file, at most its cap, and whether there was more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub bytes: Vec<u8>,
    pub cut: bool,
}

impl Input {
    /// The text, for line-oriented inputs (invalid UTF-8 shown as U+FFFD).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Opens a file with `flags | O_CLOEXEC` through `openat` (musl's `open()` adds an
/// `fcntl(F_SETFD)` call for kernels older than 2.6.23; `openat` does not). `mode` applies with
/// `O_CREAT`.
pub fn open_file(path: &Path, flags: nix::fcntl::OFlag, mode: u32) -> io::Result<fs::File> {
    use nix::fcntl::{openat, OFlag};
    use std::os::fd::{FromRawFd, OwnedFd};
    let mode = nix::sys::stat::Mode::from_bits_truncate(mode);
    let fd = openat(None, path, flags | OFlag::O_CLOEXEC, mode).map_err(io::Error::from)?;
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    Ok(fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Opens a file read-only (`extra` adds flags).
pub fn open_ro(path: &Path, extra: nix::fcntl::OFlag) -> io::Result<fs::File> {
    open_file(path, nix::fcntl::OFlag::O_RDONLY | extra, 0)
}

/// Reads an input file (configuration, command line, modprobe.d): at most `cap` bytes kept,
/// `cut` set when there was more. Opened without blocking and required to be a regular file
/// (procfs files are), so a FIFO or a device in its place is an error, never a hang; the read
/// itself stops at `cap + 1` bytes whatever the file claims.
pub fn read_input(path: &Path, cap: usize) -> Result<Input, SysError> {
    let file = open_ro(path, nix::fcntl::OFlag::O_NONBLOCK).map_err(io_err(path))?;
    crate::read::read_regular(file, path, cap)
}

/// Like `read_input` for files that may legitimately be absent: `Ok(None)` then. A symbolic
/// link to nothing is not absence (someone meant a file there): an error.
pub fn read_input_optional(path: &Path, cap: usize) -> Result<Option<Input>, SysError> {
    match read_input(path, cap) {
        Err(SysError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            match fs::symlink_metadata(path) {
                Ok(_) => Err(SysError::Malformed {
                    path: path.to_path_buf(),
                    what: "a symbolic link to nothing",
                }),
                Err(_) => Ok(None),
            }
        }
        other => other.map(Some),
    }
}

/// Streams an input's lines through one bounded buffer ([`for_each_line`]),
/// opened without blocking and required to be a regular file; `Ok(false)` when it does not exist.
pub fn read_lines(path: &Path, f: impl FnMut(&[u8])) -> Result<bool, SysError> {
    match open_ro(path, nix::fcntl::OFlag::O_NONBLOCK) {
        Ok(file) => for_each_line(file, path, f).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// A FIFO or a device in place of an input is an error, never a wait (procfs files are regular).
/// Returns the size the file claims (procfs files claim 0).
fn require_regular(file: &File, path: &Path) -> Result<usize, SysError> {
    let st = fstat(file.as_raw_fd()).map_err(|e| SysError::Io {
        path: path.to_path_buf(),
        source: io::Error::from(e),
    })?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(SysError::Malformed {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    Ok(usize::try_from(st.st_size).unwrap_or(0))
}

/// A regular file of any size through one buffer of `LINE_BUFFER` bytes: the memory stays
/// bounded however long the file (`/proc/iomem` and `/proc/bus/pci/devices` grow with the bus).
/// `f(data, last)` takes what it can of `data` (whole lines; everything when `last`) and says how
/// many bytes; the rest is kept for the next call. Data `f` cannot take from a full buffer (a
/// line longer than it) is passed again with `last`, so it is taken in pieces.
pub fn for_each_chunk(
    mut file: File,
    path: &Path,
    mut f: impl FnMut(&[u8], bool) -> usize,
) -> Result<(), SysError> {
    require_regular(&file, path)?;
    let mut buf = vec![0u8; LINE_BUFFER];
    // Bytes not taken yet, kept at the front.
    let mut kept = 0;
    loop {
        let n = match file.read(&mut buf[kept..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(SysError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        let end = kept + n;
        if n == 0 {
            f(&buf[..end], true);
            return Ok(());
        }
        let mut taken = f(&buf[..end], false).min(end);
        if taken == 0 && end == buf.len() {
            taken = f(&buf[..end], true).min(end);
        }
        buf.copy_within(taken..end, 0);
        kept = end - taken;
    }
}

/// Lines of a regular file of any size ([`for_each_chunk`]); `f` gets each line without its
/// `\n`, a line longer than the buffer in pieces.
pub fn for_each_line(file: File, path: &Path, mut f: impl FnMut(&[u8])) -> Result<(), SysError> {
    for_each_chunk(file, path, |data, last| {
        let mut start = 0;
        while let Some(nl) = find_byte(b'\n', &data[start..]) {
            f(&data[start..start + nl]);
            start += nl + 1;
        }
        if last && start < data.len() {
            f(&data[start..]);
            start = data.len();
        }
        start
    })
}

/// The buffer [`for_each_line`] reads through.
pub const LINE_BUFFER: usize = 64 << 10;

/// Reads an open file whole up to `cap` bytes (`cut` when there was more); it must be a regular
/// file (procfs files are). The buffer is the size the file claims plus one (procfs claims 0:
/// then 16 KiB), doubled when full, up to one byte past the cap: no probing reads. Buffers are
/// made zeroed and copied whole (memset, memcpy), never grown byte by byte.
pub fn read_regular(mut file: File, path: &Path, cap: usize) -> Result<Input, SysError> {
    let claimed = require_regular(&file, path)?;
    let limit = cap.saturating_add(1);
    let mut bytes = vec![0u8; claimed.saturating_add(1).max(16 << 10).min(limit)];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            if len == limit {
                break;
            }
            let mut bigger = vec![0u8; len.saturating_mul(2).min(limit)];
            bigger[..len].copy_from_slice(&bytes);
            bytes = bigger;
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(SysError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        }
    }
    let cut = len > cap;
    bytes.truncate(len.min(cap));
    Ok(Input { bytes, cut })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_any_length_through_one_buffer() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        // Lines that straddle every buffer boundary, one longer than the buffer, no final newline.
        let mut text = String::new();
        for n in 0..20_000 {
            text += &format!("line {n} {}\n", "x".repeat(n % 97));
        }
        text += &"y".repeat(LINE_BUFFER + 10);
        text += "\nlast";
        fs::write(&p, &text).unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        for_each_line(File::open(&p).unwrap(), &p, |l| got.push(l.to_vec())).unwrap();
        let want: Vec<&str> = text.split('\n').collect();
        assert_eq!(
            got.len(),
            want.len() + 1,
            "the long line comes in two pieces"
        );
        assert_eq!(got[1234], want[1234].as_bytes());
        assert_eq!(got.last().unwrap(), b"last");
        let long: usize = got[20_000..20_002].iter().map(Vec::len).sum();
        assert_eq!(long, LINE_BUFFER + 10);
        assert!(
            for_each_line(File::open(t.path()).unwrap(), t.path(), |_| {}).is_err(),
            "a directory"
        );
    }
}
