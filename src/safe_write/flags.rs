//! File flags that stop the writer from removing, replacing or emptying a name: FreeBSD's
//! chflags(2) flags and their Linux twins.
//!
//! A jail's root can set `uappnd`, `uchg` and `uunlnk` (and, with `allow.chflags`, the system
//! flags `sappnd`, `schg`, `sunlnk`) on anything in the jail, by name, at any moment, the
//! writer's temporary file included. On a directory, append-only or immutable stops every
//! removal and rename of its entries; on a file, append-only, immutable or undeletable stops its
//! removal and its rename, and append-only or immutable its truncation (chflags(2), pjdfstest's
//! unlink/09.t and 10.t). Linux has append-only (`chattr +a`) and immutable (`chattr +i`), with
//! the same effect, and no undeletable flag.
//!
//! This is the writer's only platform-specific part, kept small: [`of`] reads the flags
//! (FreeBSD: `st_flags`; Linux: the statx(2) attributes), [`clear`] removes the blocking ones
//! from a file through a descriptor the writer holds, never by name (FreeBSD: fchflags(2);
//! Linux: `FS_IOC_SETFLAGS`). The Linux twin is what the tests drive. Elsewhere, and on file
//! systems that report no flags, nothing is flagged. Not for: changing the flags of anything
//! the writer did not create (a directory the jail flagged stays flagged: the writer refuses).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::fd::BorrowedFd;
use std::path::Path;

use imp::{APPEND, IMMUTABLE, NAMES, NOUNLINK};

/// The flags of one file or directory that matter to the writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u64);

impl Flags {
    /// On a directory: its entries cannot be removed or renamed (nor created, if immutable).
    pub(crate) fn lock_entries(self) -> bool {
        self.0 & (APPEND | IMMUTABLE) != 0
    }

    /// On a file: it cannot be removed, renamed or replaced (nor emptied, unless only undeletable).
    pub(crate) fn lock_file(self) -> bool {
        self.0 & (APPEND | IMMUTABLE | NOUNLINK) != 0
    }

    /// The flags as the system's tools spell them: `uappnd, schg`, `append-only (+a)`.
    pub(crate) fn names(self) -> String {
        let names: Vec<&str> =
            NAMES.iter().filter(|(bit, ..)| self.0 & bit != 0).map(|(_, name, _)| *name).collect();
        names.join(", ")
    }

    /// The command that clears them on `path`: `chflags nouappnd,noschg PATH`, `chattr -a PATH`.
    pub(crate) fn undo(self, path: &Path) -> String {
        let mut command = String::from(imp::UNDO_COMMAND);
        let mut sep = imp::UNDO_FIRST;
        for (bit, _, undo) in NAMES {
            if self.0 & bit != 0 {
                let _ = write!(command, "{sep}{undo}");
                sep = imp::UNDO_SEP;
            }
        }
        format!("{command} {}", crate::sanitize::clean(&path.to_string_lossy()))
    }
}

/// The flags of `name` in `dir` (not following a symlink), or of `dir` itself when `name` is
/// `None`.
pub(crate) fn of(dir: BorrowedFd<'_>, name: Option<&OsStr>) -> nix::Result<Flags> {
    imp::of(dir, name).map(Flags)
}

/// Clears the blocking flags among `flags` on the file open at `fd`.
pub(crate) fn clear(fd: BorrowedFd<'_>, flags: Flags) -> nix::Result<()> {
    imp::clear(fd, flags.0 & (APPEND | IMMUTABLE | NOUNLINK))
}

/// Sets append-only and/or immutable on the file open at `fd`, as `chattr +a`/`+i` does: for
/// tests, which stage what a jail's root can do.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn set(fd: BorrowedFd<'_>, append: bool, immutable: bool) -> nix::Result<()> {
    imp::set(fd, append, immutable)
}

#[cfg(target_os = "freebsd")]
mod imp {
    use std::ffi::OsStr;
    use std::os::fd::{AsRawFd, BorrowedFd};

    use nix::fcntl::AtFlags;
    use nix::sys::stat::{fstat, fstatat};

    // `c_ulong` is u64 here but u32 on 32-bit FreeBSD; `From` is not const.
    #[allow(clippy::unnecessary_cast)]
    const fn bits(flag: libc::c_ulong) -> u64 {
        flag as u64
    }

    pub(super) const APPEND: u64 = bits(libc::UF_APPEND | libc::SF_APPEND);
    pub(super) const IMMUTABLE: u64 = bits(libc::UF_IMMUTABLE | libc::SF_IMMUTABLE);
    pub(super) const NOUNLINK: u64 = bits(libc::UF_NOUNLINK | libc::SF_NOUNLINK);
    /// (bit, name as ls -lo shows it, what chflags(1) takes to clear it).
    pub(super) const NAMES: [(u64, &str, &str); 6] = [
        (bits(libc::UF_APPEND), "uappnd", "nouappnd"),
        (bits(libc::SF_APPEND), "sappnd", "nosappnd"),
        (bits(libc::UF_IMMUTABLE), "uchg", "nouchg"),
        (bits(libc::SF_IMMUTABLE), "schg", "noschg"),
        (bits(libc::UF_NOUNLINK), "uunlnk", "nouunlnk"),
        (bits(libc::SF_NOUNLINK), "sunlnk", "nosunlnk"),
    ];
    pub(super) const UNDO_COMMAND: &str = "chflags";
    pub(super) const UNDO_FIRST: &str = " ";
    pub(super) const UNDO_SEP: &str = ",";

    pub(super) fn of(dir: BorrowedFd<'_>, name: Option<&OsStr>) -> nix::Result<u64> {
        let st = match name {
            None => fstat(dir)?,
            Some(name) => fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?,
        };
        Ok(u64::from(st.st_flags))
    }

    pub(super) fn clear(fd: BorrowedFd<'_>, blocking: u64) -> nix::Result<()> {
        let keep = u64::from(fstat(fd)?.st_flags) & !blocking;
        let keep = libc::c_ulong::try_from(keep).map_err(|_| nix::errno::Errno::EINVAL)?;
        // SAFETY: fchflags(2) on a descriptor we hold, with a plain integer; no pointer.
        let rc = unsafe { libc::fchflags(fd.as_raw_fd(), keep) };
        nix::errno::Errno::result(rc).map(drop)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::{CString, OsStr};
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::ffi::OsStrExt;

    use nix::errno::Errno;

    #[allow(clippy::cast_sign_loss)]
    pub(super) const APPEND: u64 = libc::STATX_ATTR_APPEND as u64;
    #[allow(clippy::cast_sign_loss)]
    pub(super) const IMMUTABLE: u64 = libc::STATX_ATTR_IMMUTABLE as u64;
    pub(super) const NOUNLINK: u64 = 0;
    pub(super) const NAMES: [(u64, &str, &str); 2] =
        [(APPEND, "append-only (+a)", "-a"), (IMMUTABLE, "immutable (+i)", "-i")];
    pub(super) const UNDO_COMMAND: &str = "chattr";
    pub(super) const UNDO_FIRST: &str = " ";
    pub(super) const UNDO_SEP: &str = " ";

    /// linux/fs.h: the inode flags behind `chattr +a` and `+i`.
    const FS_APPEND_FL: libc::c_int = 0x20;
    const FS_IMMUTABLE_FL: libc::c_int = 0x10;

    pub(super) fn of(dir: BorrowedFd<'_>, name: Option<&OsStr>) -> nix::Result<u64> {
        let (path, at) = match name {
            None => (CString::default(), libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW),
            Some(name) => {
                (CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?, libc::AT_SYMLINK_NOFOLLOW)
            }
        };
        // SAFETY: statx is plain old data; all zeroes is a valid value.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor, a NUL-terminated path, and a statx buffer we own, all live
        // for the duration of the call.
        let rc = unsafe { libc::statx(dir.as_raw_fd(), path.as_ptr(), at, 0, &raw mut stx) };
        Errno::result(rc)?;
        // Only what the file system says it reports.
        Ok(stx.stx_attributes & stx.stx_attributes_mask & (APPEND | IMMUTABLE))
    }

    pub(super) fn clear(fd: BorrowedFd<'_>, blocking: u64) -> nix::Result<()> {
        let mut drop_fl = 0;
        if blocking & APPEND != 0 {
            drop_fl |= FS_APPEND_FL;
        }
        if blocking & IMMUTABLE != 0 {
            drop_fl |= FS_IMMUTABLE_FL;
        }
        let mut fl: libc::c_int = 0;
        // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel uses int, whatever the request's
        // encoded size) into `fl`, which lives for the duration of the call.
        Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &raw mut fl) })?;
        fl &= !drop_fl;
        // SAFETY: FS_IOC_SETFLAGS reads one int from `fl`, live for the duration of the call.
        Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_SETFLAGS, &raw const fl) }).map(drop)
    }

    /// Sets `flags` (`FS_*_FL`) on the file open at `fd`: what `chattr +a`/`+i` does, for tests.
    #[cfg(test)]
    pub(super) fn set(fd: BorrowedFd<'_>, append: bool, immutable: bool) -> nix::Result<()> {
        let mut fl: libc::c_int = 0;
        // SAFETY: as in `clear`.
        Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &raw mut fl) })?;
        if append {
            fl |= FS_APPEND_FL;
        }
        if immutable {
            fl |= FS_IMMUTABLE_FL;
        }
        // SAFETY: as in `clear`.
        Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_SETFLAGS, &raw const fl) }).map(drop)
    }
}

#[cfg(not(any(target_os = "freebsd", target_os = "linux")))]
mod imp {
    use std::ffi::OsStr;
    use std::os::fd::BorrowedFd;

    pub(super) const APPEND: u64 = 0;
    pub(super) const IMMUTABLE: u64 = 0;
    pub(super) const NOUNLINK: u64 = 0;
    pub(super) const NAMES: [(u64, &str, &str); 0] = [];
    pub(super) const UNDO_COMMAND: &str = "";
    pub(super) const UNDO_FIRST: &str = "";
    pub(super) const UNDO_SEP: &str = "";

    pub(super) fn of(_: BorrowedFd<'_>, _: Option<&OsStr>) -> nix::Result<u64> {
        Ok(0)
    }

    pub(super) fn clear(_: BorrowedFd<'_>, _: u64) -> nix::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A file with `+a`, or `None` where the file system (or our privileges) cannot take it.
    fn flagged(dir: &Path, append: bool, immutable: bool) -> Option<std::fs::File> {
        let path = dir.join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        match set(file.as_fd(), append, immutable) {
            Ok(()) => Some(file),
            Err(e) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "chattr must work in CI: {e}");
                eprintln!("SKIPPED: this file system does not take chattr flags ({e})");
                None
            }
        }
    }

    #[test]
    fn reads_and_clears_append_only_and_immutable() {
        for (append, immutable, expect) in
            [(true, false, "append-only (+a)"), (false, true, "immutable (+i)")]
        {
            let d = tempfile::tempdir().unwrap();
            let Some(file) = flagged(d.path(), append, immutable) else { return };
            let dir = std::fs::File::open(d.path()).unwrap();
            let by_name = of(dir.as_fd(), Some(OsStr::new("f"))).unwrap();
            let by_fd = of(file.as_fd(), None).unwrap();
            assert_eq!(by_name, by_fd);
            assert!(by_fd.lock_file() && by_fd.lock_entries());
            assert_eq!(by_fd.names(), expect);
            assert_eq!(
                by_fd.undo(Path::new("/j/.env")),
                format!("chattr {} /j/.env", if append { "-a" } else { "-i" })
            );
            clear(file.as_fd(), by_fd).unwrap();
            assert_eq!(of(file.as_fd(), None).unwrap(), Flags::default());
            assert!(!of(dir.as_fd(), None).unwrap().lock_entries());
        }
    }
}
