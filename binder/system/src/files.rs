// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one writer of files (the state file, ROM captures and their sidecars, `rom clean`'s
//! output): relative to a directory handle whose components below the trusted base were opened
//! without following symlinks, through a unique temporary name created with
//! `O_EXCL|O_NOFOLLOW`, written whole, fsynced, published by rename (replace) or link (never
//! replace), then the directory fsynced. Every error path removes the temporary file. A planted
//! symlink at a temporary or final name, or in place of a directory, is never followed. Files
//! under `/run` skip the fsyncs ([`Dir::volatile`]): /run is a tmpfs, where they do nothing.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, renameat, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode};
use nix::unistd::{fsync, linkat, unlinkat, UnlinkatFlags};

use crate::read::{read_regular, Input, SysError};

/// Whether publishing may replace an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// The state file, a sidecar being repaired: the last write wins.
    Yes,
    /// Stored ROMs, `rom clean` output: never replaced (`AlreadyExists`).
    No,
}

/// Marks our temporary names: `.NAME.PID-N.vetmp`.
const TEMP_SUFFIX: &str = ".vetmp";

static TEMP_SEQ: AtomicU32 = AtomicU32::new(0);

/// An open directory; every name below is resolved relative to it.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// fsync what is written (false under /run: RAM only, lost at power-off whatever we do).
    durable: bool,
}

fn err(path: &Path, e: Errno) -> SysError {
    SysError::Io {
        path: path.to_path_buf(),
        source: io::Error::from(e),
    }
}

/// Why what a `stat` mode describes is not a regular file to replace (`None`: it is one).
fn not_regular(mode: nix::libc::mode_t) -> Option<&'static str> {
    use nix::libc::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
    Some(match mode & S_IFMT {
        S_IFREG => return None,
        S_IFCHR => "a character device, not a regular file: not replaced",
        S_IFBLK => "a block device, not a regular file: not replaced",
        S_IFIFO => "a FIFO, not a regular file: not replaced",
        S_IFDIR => "a directory, not a regular file: not replaced",
        S_IFLNK => "a symbolic link: not replaced (edit or name what it points to)",
        S_IFSOCK => "a socket, not a regular file: not replaced",
        _ => "not a regular file: not replaced",
    })
}

fn not_a_dir(path: &Path) -> SysError {
    SysError::Malformed {
        path: path.to_path_buf(),
        what: "not a directory (a symlink is not followed here)",
    }
}

impl Dir {
    /// `base` (trusted: the root, or the directory a user named) opened as given, then each
    /// component of `rel` with `O_NOFOLLOW`, created (0755) when missing if `create`. `rel` is
    /// one of our own constants: `..` and absolute parts are refused all the same.
    pub fn open(base: &Path, rel: &str, create: bool) -> Result<Dir, SysError> {
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        // Our own constants have a few components; more than 8 is refused.
        let mut names: heapless::Vec<&std::ffi::OsStr, 8> = heapless::Vec::new();
        for part in Path::new(rel).components() {
            let kept = match part {
                Component::Normal(name) => names.push(name).is_ok(),
                _ => false,
            };
            if !kept {
                return Err(SysError::Malformed {
                    path: base.join(rel),
                    what: "not a plain relative path of at most 8 parts",
                });
            }
        }
        let Some((first, rest)) = names.split_first() else {
            return Dir::at(None, base, base.to_path_buf(), OFlag::empty());
        };
        // `base/first` by path: the base is trusted, and mkdir and O_NOFOLLOW both refuse a
        // symlink at the last component, the only one below it.
        let path = base.join(first);
        if create {
            match mkdirat(None, &path, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(err(&path, e)),
            }
        }
        let mut dir = Dir::at(None, &path, path.clone(), OFlag::O_NOFOLLOW)?;
        for name in rest {
            dir = dir.subdir(name, create)?;
        }
        Ok(dir)
    }

    /// Opens a directory relative to `at` (the working directory when `None`).
    fn at(at: Option<i32>, name: &Path, path: PathBuf, extra: OFlag) -> Result<Dir, SysError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | extra;
        let fd = match openat(at, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) if extra.contains(OFlag::O_NOFOLLOW) => {
                return Err(not_a_dir(&path))
            }
            Err(e) => return Err(err(&path, e)),
        };
        Ok(Dir {
            // SAFETY: openat just returned this descriptor; nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path,
            durable: true,
        })
    }

    /// The directory `name` below this one, never through a symlink; created first if `create`.
    fn subdir(&self, name: &std::ffi::OsStr, create: bool) -> Result<Dir, SysError> {
        let path = self.path.join(name);
        let at = Some(self.fd.as_raw_fd());
        if create {
            match mkdirat(at, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(err(&path, e)),
            }
        }
        Dir::at(at, Path::new(name), path, OFlag::O_NOFOLLOW)
    }

    /// The directory a user's file path names (`.` when it has no directory part), and the
    /// file name.
    pub fn of_user_path(path: &Path) -> Result<(Dir, String), SysError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or(SysError::Malformed {
                path: path.to_path_buf(),
                what: "no file name",
            })?;
        let dir = Dir::open(path.parent().unwrap_or(Path::new("")), "", false)?;
        Ok((dir, name.to_string()))
    }

    /// The same directory, its writes not fsynced: for `/run`, a tmpfs, where an fsync is a
    /// syscall that does nothing. Publishing stays atomic (rename or link).
    pub fn volatile(self) -> Dir {
        Dir {
            durable: false,
            ..self
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn child(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `data` as `name`, atomically (see the module's doc).
    pub fn write(&self, name: &str, data: &[u8], replace: Replace) -> Result<(), SysError> {
        self.write_mode(name, data, replace, 0o644)
    }

    /// [`Dir::write`] with the file's permission bits.
    pub fn write_mode(
        &self,
        name: &str,
        data: &[u8],
        replace: Replace,
        mode: u32,
    ) -> Result<(), SysError> {
        self.publish(name, data, replace, mode, None)
    }

    /// Replaces `name` with `data` as [`Dir::write`] does, over a regular file or nothing
    /// only: anything else there (a device node such as `/dev/null`, a FIFO, a directory, a
    /// symbolic link) is refused with its kind named and left as it is. A file that is there
    /// keeps its permission bits, owner and group; a new one gets `mode`.
    pub fn replace_regular(&self, name: &str, data: &[u8], mode: u32) -> Result<(), SysError> {
        let keep = match nix::sys::stat::fstatat(
            Some(self.fd.as_raw_fd()),
            name,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => {
                if let Some(kind) = not_regular(st.st_mode) {
                    return Err(SysError::Malformed {
                        path: self.child(name),
                        what: kind,
                    });
                }
                Some((st.st_mode & 0o7777, st.st_uid, st.st_gid))
            }
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(err(&self.child(name), e)),
        };
        match keep {
            Some((mode, uid, gid)) => {
                self.publish(name, data, Replace::Yes, mode, Some((uid, gid)))
            }
            None => self.publish(name, data, Replace::Yes, mode, None),
        }
    }

    /// The writer: a temporary name, written whole (mode set exactly, and the owner when
    /// asked), fsynced, published.
    fn publish(
        &self,
        name: &str,
        data: &[u8],
        replace: Replace,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<(), SysError> {
        let at = Some(self.fd.as_raw_fd());
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        // A name taken (a planted file, a leftover) is skipped, never opened.
        let mut tries = 0;
        let (temp, fd) = loop {
            let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
            let temp = format!(".{name}.{}-{seq}{TEMP_SUFFIX}", std::process::id());
            match openat(at, temp.as_str(), flags, Mode::from_bits_truncate(mode)) {
                Ok(fd) => break (temp, fd),
                Err(Errno::EEXIST) if tries < 8 => tries += 1,
                Err(e) => return Err(err(&self.child(&temp), e)),
            }
        };
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // The umask applies to openat's mode: a kept mode is set exactly; the owner before the
        // mode (chown clears set-id bits).
        let owned = match owner {
            Some((uid, gid)) => {
                // SAFETY: fchown on the descriptor we just opened; it reads no memory of ours.
                Errno::result(unsafe { nix::libc::fchown(file.as_raw_fd(), uid, gid) })
                    .and_then(|_| {
                        nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode))
                    })
                    .map_err(|e| err(&self.child(&temp), e))
            }
            None => Ok(()),
        };
        let written = owned.and_then(|()| {
            file.write_all(data)
                .and_then(|()| {
                    if self.durable {
                        file.sync_all()
                    } else {
                        Ok(())
                    }
                })
                .map_err(|e| SysError::Io {
                    path: self.child(&temp),
                    source: e,
                })
        });
        drop(file);
        let published = written.and_then(|()| {
            match replace {
                Replace::Yes => renameat(at, temp.as_str(), at, name),
                // linkat without AT_SYMLINK_FOLLOW: fails with EEXIST on anything at `name`.
                Replace::No => linkat(at, temp.as_str(), at, name, AtFlags::empty())
                    .and_then(|()| unlinkat(at, temp.as_str(), UnlinkatFlags::NoRemoveDir)),
            }
            .map_err(|e| err(&self.child(name), e))
        });
        if published.is_err() {
            let _ = unlinkat(at, temp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        published?;
        match self.durable {
            true => self.sync(),
            false => Ok(()),
        }
    }

    /// Creates or truncates `name` for writing in place (a log, not a published file); a
    /// symlink there is refused, never followed.
    pub fn create_truncated(&self, name: &str) -> Result<File, SysError> {
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            Some(self.fd.as_raw_fd()),
            name,
            flags,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| err(&self.child(name), e))?;
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn sync(&self) -> Result<(), SysError> {
        fsync(self.fd.as_raw_fd()).map_err(|e| err(&self.path, e))
    }

    /// A regular file's bytes, at most `cap` (`cut` when there was more); `Ok(None)` when it
    /// does not exist. A symlink, FIFO or device is an error, never followed or waited on.
    pub fn read(&self, name: &str, cap: usize) -> Result<Option<Input>, SysError> {
        let path = self.child(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(Some(self.fd.as_raw_fd()), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                return Err(SysError::Malformed {
                    path,
                    what: "a symlink (not followed)",
                })
            }
            Err(e) => return Err(err(&path, e)),
        };
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        read_regular(file, &path, cap).map(Some)
    }

    /// Removes `name` (absent is fine).
    pub fn remove(&self, name: &str) -> Result<(), SysError> {
        match unlinkat(Some(self.fd.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(err(&self.child(name), e)),
        }
    }

    /// The names in the directory, sorted.
    pub fn names(&self) -> Result<Vec<String>, SysError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .map_err(|e| SysError::Io {
                path: self.path.clone(),
                source: e,
            })?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes temporary files a killed writer left. Only under [`Dir::lock`]: another
    /// writer's temporary file would go too.
    pub fn remove_stale_temps(&self) -> Result<usize, SysError> {
        let mut n = 0;
        for name in self.names()? {
            if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
                self.remove(&name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Another handle on the same open directory.
    pub fn try_clone(&self) -> Result<Dir, SysError> {
        let fd = self.fd.try_clone().map_err(|e| SysError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
            durable: self.durable,
        })
    }

    /// Takes an exclusive lock on the directory without waiting: `Ok(None)` when another open
    /// of it holds one. The lock belongs to this handle's open file: it lasts while any copy of
    /// the returned descriptor (or this `Dir`) is open, in this process or a child given it.
    pub fn try_lock(&self) -> Result<Option<OwnedFd>, SysError> {
        let fd = self.fd.try_clone().map_err(|e| SysError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        // SAFETY: flock on a descriptor we own.
        let rc =
            unsafe { nix::libc::flock(fd.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) };
        match Errno::result(rc) {
            Ok(_) => Ok(Some(fd)),
            Err(Errno::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(err(&self.path, e)),
        }
    }

    /// Whether `fd` is an open of this same directory (device and inode).
    pub fn is_same(&self, fd: std::os::fd::BorrowedFd<'_>) -> bool {
        match (fstat(fd.as_raw_fd()), fstat(self.fd.as_raw_fd())) {
            (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
            _ => false,
        }
    }

    /// Renames `from` to `to` within the directory (replacing `to`): no data is written, so
    /// it works on a full file system too.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), SysError> {
        let d = Some(self.fd.as_raw_fd());
        renameat(d, from, d, to).map_err(|e| err(&self.child(from), e))
    }

    /// Holds an exclusive lock on the directory until the guard is dropped.
    pub fn lock(&self) -> Result<Flock<OwnedFd>, SysError> {
        let fd = self.fd.try_clone().map_err(|e| SysError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| err(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::SFlag;
    use std::fs;

    #[test]
    fn replace_regular_only_replaces_a_regular_file_and_keeps_its_mode_and_owner() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let t = tempfile::tempdir().unwrap();
        let dir = Dir::open(t.path(), "", false).unwrap();
        // New: the mode given (0644; the umask may narrow a new file's, never a kept one's).
        dir.replace_regular("new", b"one", 0o644).unwrap();
        assert_eq!(fs::read(t.path().join("new")).unwrap(), b"one");
        // Existing: its bits (0600, 0666 past any umask) and owner stay.
        for bits in [0o600, 0o666, 0o640] {
            fs::set_permissions(t.path().join("new"), fs::Permissions::from_mode(bits)).unwrap();
            let before = fs::metadata(t.path().join("new")).unwrap();
            dir.replace_regular("new", b"two", 0o644).unwrap();
            let after = fs::metadata(t.path().join("new")).unwrap();
            assert_eq!(after.mode() & 0o7777, bits);
            assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
            assert_ne!(
                after.ino(),
                before.ino(),
                "replaced by rename, not rewritten in place"
            );
        }
        // Anything else: refused by kind, left as it is, no temporary left.
        nix::unistd::mkfifo(&t.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        fs::create_dir(t.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("new", t.path().join("link")).unwrap();
        for (name, kind) in [
            ("fifo", "a FIFO"),
            ("dir", "a directory"),
            ("link", "a symbolic link"),
        ] {
            let e = dir
                .replace_regular(name, b"x", 0o644)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(kind) && e.contains("not replaced"),
                "{name}: {e}"
            );
        }
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &fs::symlink_metadata(t.path().join("fifo"))
                .unwrap()
                .file_type()
        ));
        assert!(t.path().join("dir").is_dir());
        assert!(fs::symlink_metadata(t.path().join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(t.path().join("new")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        // A real device node where root may make one (`-o /dev/null` replaced the system's).
        // SAFETY: geteuid has no preconditions.
        if unsafe { nix::libc::geteuid() } == 0 {
            use std::os::unix::fs::FileTypeExt;
            let node = t.path().join("null");
            nix::sys::stat::mknod(
                &node,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(1, 3),
            )
            .unwrap();
            let e = dir
                .replace_regular("null", b"x", 0o644)
                .unwrap_err()
                .to_string();
            assert!(e.contains("a character device, not a regular file"), "{e}");
            assert!(fs::symlink_metadata(&node)
                .unwrap()
                .file_type()
                .is_char_device());
            fs::remove_file(&node).unwrap();
        }
        // Device nodes by their mode.
        use nix::libc::{S_IFBLK, S_IFCHR, S_IFSOCK};
        assert!(not_regular(S_IFCHR | 0o666)
            .unwrap()
            .starts_with("a character device"));
        assert!(not_regular(S_IFBLK | 0o660)
            .unwrap()
            .starts_with("a block device"));
        assert!(not_regular(S_IFSOCK | 0o755)
            .unwrap()
            .starts_with("a socket"));
        assert_eq!(not_regular(nix::libc::S_IFREG | 0o644), None);
    }

    use std::os::unix::fs::symlink;

    #[test]
    fn never_replace_keeps_the_first_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path(), "a/b", true).unwrap();
        d.write("x.rom", b"one", Replace::No).unwrap();
        assert!(d.write("x.rom", b"two", Replace::No).is_err());
        assert_eq!(fs::read(t.path().join("a/b/x.rom")).unwrap(), b"one");
        assert_eq!(d.names().unwrap(), ["x.rom"]);
        d.write("x.rom", b"three", Replace::Yes).unwrap();
        assert_eq!(fs::read(t.path().join("a/b/x.rom")).unwrap(), b"three");
    }

    #[test]
    fn planted_symlinks_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        // In place of a directory.
        fs::create_dir(t.path().join("run")).unwrap();
        symlink(t.path(), t.path().join("run/vfio-early")).unwrap();
        assert!(Dir::open(t.path(), "run/vfio-early", true).is_err());
        // At the final name: never replace refuses; replace swaps the link, not its target.
        let d = Dir::open(t.path(), "store", true).unwrap();
        symlink(&outside, t.path().join("store/x.rom")).unwrap();
        assert!(d.write("x.rom", b"new", Replace::No).is_err());
        d.write("x.rom", b"new", Replace::Yes).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert!(d.read("outside-link", 10).unwrap().is_none());
        symlink(&outside, t.path().join("store/link")).unwrap();
        assert!(
            d.read("link", 100).is_err(),
            "a symlink is not read through"
        );
        assert!(Dir::open(t.path(), "../x", true).is_err());
    }
}
