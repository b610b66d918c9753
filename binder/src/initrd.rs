// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading an initramfs image, for `vfio-early check`: the names it holds and the bytes of the
//! few files asked for. An image is a series of newc cpio archives (an early one, uncompressed,
//! for microcode; then the main one, compressed), each padded to 4 bytes, as the kernel's
//! unpacker takes them. Compressed parts go through the system's own decompressor (`zstd`,
//! `gzip`, `xz`, `lz4`, `bzip2`: what the generators compress with and their listers use).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};

/// A cpio member's name is bounded by PATH_MAX; one file asked for is a config or a unit.
const NAME_MAX: usize = 4096;
const WANTED_MAX: u64 = 1 << 20;

/// What a scan of an image keeps: the files asked for, the parts, a count of the members (every
/// name is looked at once and handed to the caller, none kept: memory is bounded whatever the
/// image holds).
#[derive(Debug, Default)]
pub struct Scan {
    pub members: u64,
    /// The bytes of the members asked for that are regular files.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The compressions met, in order (`none` for an uncompressed archive).
    pub parts: Vec<&'static str>,
}

/// What an image holds, every member kept (for archives we made ourselves: tests, the add-on).
#[derive(Debug, Default)]
pub struct Listing {
    /// Every member, by path without a leading `./` or `/`, with its mode.
    pub members: BTreeMap<String, u32>,
    /// The bytes of the members asked for that are regular files.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The compressions met, in order (`none` for an uncompressed archive).
    pub parts: Vec<&'static str>,
}

impl Listing {
    pub fn has(&self, path: &str) -> bool {
        self.members.contains_key(path)
    }

    /// Members whose path ends with `suffix`.
    pub fn ending(&self, suffix: &str) -> impl Iterator<Item = &str> + '_ {
        let suffix = suffix.to_string();
        self.members
            .keys()
            .map(String::as_str)
            .filter(move |p| p.ends_with(&suffix))
    }
}

/// The decompressor for a compressed part, by its magic bytes.
fn decompressor(magic: &[u8]) -> Option<(&'static str, &'static [&'static str])> {
    match magic {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(("zstd", &["zstd", "-dcq"])),
        [0x1f, 0x8b, ..] => Some(("gzip", &["gzip", "-dc"])),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Some(("xz", &["xz", "-dc"])),
        [0x02, 0x21, 0x4c, 0x18, ..] | [0x04, 0x22, 0x4d, 0x18, ..] => {
            Some(("lz4", &["lz4", "-dc"]))
        }
        [b'B', b'Z', b'h', ..] => Some(("bzip2", &["bzip2", "-dc"])),
        _ => None,
    }
}

fn hex8(b: &[u8]) -> io::Result<u64> {
    core::str::from_utf8(b)
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a cpio header field is not hex"))
}

/// Reads `n` bytes and drops them.
fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    let got = io::copy(&mut r.take(n), &mut io::sink())?;
    if got != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

/// One newc archive from `r`, up to its trailer; returns the bytes it took. Each member's path
/// and mode go to `each`.
fn archive(
    r: &mut impl Read,
    want: &[&str],
    out: &mut Scan,
    each: &mut dyn FnMut(&str, u32),
) -> io::Result<u64> {
    let mut used = 0;
    loop {
        let mut head = [0u8; 110];
        r.read_exact(&mut head)?;
        if &head[..6] != b"070701" && &head[..6] != b"070702" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a newc cpio header",
            ));
        }
        let field = |i: usize| hex8(&head[6 + 8 * i..14 + 8 * i]);
        let (mode, size, namesize) = (field(1)? as u32, field(6)?, field(11)? as usize);
        if namesize == 0 || namesize > NAME_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a cpio name of no or absurd length",
            ));
        }
        let mut name = vec![0u8; namesize];
        r.read_exact(&mut name)?;
        let name_pad = pad4(110 + namesize as u64);
        skip(r, name_pad)?;
        name.pop(); // its NUL
        let name = String::from_utf8_lossy(&name);
        let path = name
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let data_pad = pad4(size);
        used += 110 + namesize as u64 + name_pad + size + data_pad;
        if path == "TRAILER!!!" {
            return Ok(used);
        }
        let regular = mode & 0o170000 == 0o100000;
        if regular && size <= WANTED_MAX && want.contains(&path.as_str()) {
            let mut data = vec![0u8; size as usize];
            r.read_exact(&mut data)?;
            out.files.insert(path.clone(), data);
        } else {
            skip(r, size)?;
        }
        skip(r, data_pad)?;
        if !path.is_empty() && path != "." {
            out.members += 1;
            each(&path, mode);
        }
    }
}

/// Every archive of one stream, the NUL padding between them skipped (the kernel's unpacker takes
/// archives one after another, and a later one overrides an earlier one's files).
fn archives(
    r: &mut impl io::BufRead,
    want: &[&str],
    out: &mut Scan,
    each: &mut dyn FnMut(&str, u32),
) -> io::Result<()> {
    loop {
        let zeros = {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            buf.iter().take_while(|&&b| b == 0).count()
        };
        if zeros > 0 {
            r.consume(zeros);
            continue;
        }
        archive(r, want, out, each)?;
    }
}

/// Lists the image at `path`, keeping the bytes of the members named in `want`, every member
/// with it.
pub fn read(path: &Path, want: &[&str]) -> Result<Listing, String> {
    let mut members = BTreeMap::new();
    let s = scan(path, want, &mut |p, mode| {
        members.insert(p.to_string(), mode);
    })?;
    Ok(Listing {
        members,
        files: s.files,
        parts: s.parts,
    })
}

/// The first offset at or after `at` that is not a zero byte (`len` when there is none), found
/// by the file's data map (`SEEK_DATA`: a hole costs nothing) and then by the chunk.
fn next_nonzero(file: &mut File, mut at: u64, len: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let offset = nix::libc::off_t::try_from(at).unwrap_or(nix::libc::off_t::MAX);
    match nix::unistd::lseek(file.as_raw_fd(), offset, nix::unistd::Whence::SeekData) {
        // ENXIO: nothing but a hole up to the end; anything else: look byte by byte below.
        Err(nix::errno::Errno::ENXIO) => return Ok(len),
        Err(_) => {}
        Ok(data) => at = at.max(data.unsigned_abs()),
    }
    let mut buf = vec![0u8; 1 << 16];
    while at < len {
        file.seek(SeekFrom::Start(at))?;
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(len);
        }
        if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
            return Ok(at + i as u64);
        }
        at += n as u64;
    }
    Ok(len)
}

/// Reads the image at `path` (a regular file: a FIFO or a device is refused, never waited on),
/// keeping the bytes of the members named in `want` and handing every member's path and mode to
/// `each`; zero runs and holes between parts cost what their data costs.
pub fn scan(path: &Path, want: &[&str], each: &mut dyn FnMut(&str, u32)) -> Result<Scan, String> {
    let fail = |e: io::Error| format!("{}: {e}", path.display());
    let mut file =
        vfio_early_system::read::open_ro(path, nix::fcntl::OFlag::O_NONBLOCK).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let len = meta.len();
    let mut out = Scan::default();
    let mut at = 0u64;
    while at < len {
        file.seek(SeekFrom::Start(at)).map_err(fail)?;
        let mut magic = [0u8; 6];
        let n = file.read(&mut magic).map_err(fail)?;
        file.seek(SeekFrom::Start(at)).map_err(fail)?;
        if magic[..n.min(4)].iter().all(|&b| b == 0) {
            // Padding between parts: the next one starts at a 4-byte boundary after the zeros.
            at = next_nonzero(&mut file, at, len).map_err(fail)? & !3;
            continue;
        }
        if &magic[..n.min(6)] == b"070701" || &magic[..n.min(6)] == b"070702" {
            let mut r = BufReader::new(&mut file);
            at += archive(&mut r, want, &mut out, each).map_err(fail)?;
            out.parts.push("none");
            continue;
        }
        let Some((kind, argv)) = decompressor(&magic[..n]) else {
            return Err(format!(
                "{}: a part at byte {at} is neither a cpio archive nor compressed in a known way",
                path.display()
            ));
        };
        // The rest of the file goes to the decompressor: it stops at its stream's end (what
        // follows a compressed part is not taken here; generators write nothing there).
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::from(file.try_clone().map_err(fail)?))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "{}: {kind} part: cannot run {}: {e}",
                    path.display(),
                    argv[0]
                )
            })?;
        let mut r = BufReader::with_capacity(1 << 16, child.stdout.take().ok_or("no pipe")?);
        let listed = archives(&mut r, want, &mut out, each);
        // Whatever is left is drained, so the decompressor can finish.
        let _ = io::copy(&mut r, &mut io::sink());
        let status = child.wait().map_err(fail)?;
        listed.map_err(|e| format!("{}: {kind} part: {e}", path.display()))?;
        if !status.success() {
            return Err(format!("{}: {} failed ({status})", path.display(), argv[0]));
        }
        out.parts.push(kind);
        break;
    }
    Ok(out)
}

/// The file at `path` decompressed by the system's tool its magic bytes name, at most `cap`
/// bytes (`Err` past that: a bomb is not followed to its end). The errors say why, not where.
pub fn decompressed(path: &Path, cap: usize) -> Result<Vec<u8>, String> {
    let mut file = vfio_early_system::read::open_ro(path, nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(|e| e.to_string())?;
    let mut magic = [0u8; 6];
    let n = file.read(&mut magic).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let (_, argv) = decompressor(&magic[..n]).ok_or("not compressed in a way this reader knows")?;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::from(file))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {} to look inside it: {e}", argv[0]))?;
    let mut out = Vec::new();
    let read = child
        .stdout
        .take()
        .ok_or("no pipe")?
        .take(cap as u64 + 1)
        .read_to_end(&mut out);
    let _ = child.kill();
    let _ = child.wait();
    read.map_err(|e| e.to_string())?;
    if out.len() > cap {
        return Err(format!("decompresses to more than {cap} bytes: not taken"));
    }
    Ok(out)
}

/// Writes a newc archive (what the kernel's unpacker and every generator read): members in the
/// order given, owner root, one link each, then the trailer, padded to 4 bytes so another
/// archive may follow.
pub struct Newc {
    out: Vec<u8>,
    ino: u32,
    mtime: u32,
}

impl Newc {
    pub fn new(mtime: u32) -> Newc {
        Newc {
            out: Vec::new(),
            ino: 0,
            mtime,
        }
    }

    /// One member; `mode` holds the type bits (`0o40755` a directory, `0o120777` a symlink
    /// whose data is its target).
    pub fn member(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            self.mtime,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.member("TRAILER!!!", 0, b"");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A newc archive of (name, mode, data) members, with its trailer.
    pub fn cpio(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut w = Newc::new(0);
        for (n, m, d) in members {
            w.member(n, *m, d);
        }
        w.finish()
    }

    #[test]
    fn an_early_archive_then_a_compressed_one() {
        let t = tempfile::tempdir().unwrap();
        let early = cpio(&[("kernel/x86/microcode/GenuineIntel.bin", 0o100644, b"ucode")]);
        let main = cpio(&[
            (".", 0o40755, b""),
            ("usr/bin/vfio-early", 0o100755, b"\x7fELF"),
            ("./etc/vfio-early.conf", 0o100644, b"devices = 01:00.0\n"),
            ("lib", 0o120777, b"usr/lib"),
        ]);
        let raw = t.path().join("main.cpio");
        // Two archives in one compressed stream: the second's files count too.
        let second = cpio(&[("etc/late.conf", 0o100644, b"late")]);
        let mut both = main.clone();
        both.extend_from_slice(&[0; 8]);
        both.extend_from_slice(&second);
        std::fs::write(&raw, &both).unwrap();
        let gz = Command::new("gzip")
            .args(["-c"])
            .arg(&raw)
            .output()
            .unwrap();
        assert!(gz.status.success());
        let mut image = early.clone();
        while image.len() % 512 != 0 {
            image.push(0);
        }
        image.extend_from_slice(&gz.stdout);
        let img = t.path().join("initrd.img");
        std::fs::write(&img, &image).unwrap();
        let l = read(&img, &["etc/vfio-early.conf"]).unwrap();
        assert_eq!(l.parts, ["none", "gzip"]);
        assert!(l.has("kernel/x86/microcode/GenuineIntel.bin") && l.has("usr/bin/vfio-early"));
        assert_eq!(l.members["lib"], 0o120777);
        assert_eq!(l.files["etc/vfio-early.conf"], b"devices = 01:00.0\n");
        assert_eq!(l.ending("vfio-early").count(), 1);
        assert!(l.has("etc/late.conf"), "the stream's second archive");

        // Damaged images are named, not a crash.
        std::fs::write(&img, &image[..image.len() - 20]).unwrap();
        assert!(read(&img, &[]).is_err(), "a compressed part cut short");
        std::fs::write(&img, b"garbage that is no image").unwrap();
        assert!(read(&img, &[])
            .unwrap_err()
            .contains("neither a cpio archive"));
        let mut bad = main.clone();
        bad[15] = b'z'; // in the mode field
        std::fs::write(&img, &bad).unwrap();
        assert!(read(&img, &[]).is_err());
    }
}
