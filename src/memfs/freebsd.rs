//! FreeBSD: `tmpfs` for the memory file system and `nullfs -o ro` for the jail's view, both
//! through nmount(2), both mounted on `.` after `fchdir` to the directory opened and checked:
//! the kernel resolves a relative mount point from the working directory (`vfs_domount`'s
//! namei) and records the vnode's real path (`vn_path_to_global_path`), so no path component
//! is looked up again. The mount table is getfsstat(2); a mount is identified by its file
//! system ID and unmounted by it (`unmount("FSID:a:b", MNT_BYFSID)`): no path, so nothing the
//! jail could redirect. A busy unmount is retried with `MNT_FORCE` (nothing of the jail runs at
//! `exec.poststop`).

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, Nmount, unmount as nix_unmount};
use nix::sys::stat::Mode;
use nix::unistd::fchdir;

use super::Mounted;
use crate::tenant::Owner;

/// A mount's file system ID (`f_fsid`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Id([i32; 2]);

fn fsid(st: &libc::statfs) -> Id {
    // SAFETY: fsid_t is `struct { int32_t val[2]; }` (sys/mount.h); libc keeps the field private.
    Id(unsafe { std::mem::transmute::<libc::fsid_t, [i32; 2]>(st.f_fsid) })
}

/// Runs `f` with the working directory at `dir`, then goes back.
fn in_dir(dir: &OwnedFd, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let desc = |e: Errno| e.desc().to_owned();
    let back =
        open(".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).map_err(desc)?;
    fchdir(dir.as_fd()).map_err(desc)?;
    let result = f();
    fchdir(back.as_fd()).map_err(desc)?;
    result
}

/// nmount(2), its own message (`errmsg`) kept.
fn nmount(options: &mut Nmount<'_>, flags: MntFlags) -> Result<(), String> {
    options.nmount(flags).map_err(|e| match e.errmsg() {
        Some(msg) if !msg.is_empty() => format!("{msg}: {}", e.error().desc()),
        _ => e.error().desc().to_owned(),
    })
}

pub fn mount_memory(dir: &OwnedFd, tag: &str, owner: Owner, size: u64) -> Result<(), String> {
    let (size, uid, gid) = (size.to_string(), owner.uid.to_string(), owner.gid.to_string());
    in_dir(dir, || {
        nmount(
            Nmount::new()
                .str_opt(c"fstype", c"tmpfs")
                .str_opt(c"fspath", c".")
                .str_opt_owned("from", tag)
                .str_opt_owned("size", size.as_str())
                .str_opt(c"mode", c"0700")
                .str_opt_owned("uid", uid.as_str())
                .str_opt_owned("gid", gid.as_str()),
            MntFlags::MNT_NOSUID | MntFlags::MNT_NOEXEC,
        )
    })
}

pub fn bind_read_only(
    _source: &OwnedFd,
    source_path: &Path,
    _parent: &OwnedFd,
    _name: &OsStr,
    target: &OwnedFd,
) -> Result<(), String> {
    in_dir(target, || {
        nmount(
            Nmount::new()
                .str_opt(c"fstype", c"nullfs")
                .str_opt(c"fspath", c".")
                .str_opt_owned("target", source_path),
            MntFlags::MNT_RDONLY | MntFlags::MNT_NOSUID | MntFlags::MNT_NOEXEC,
        )
    })
}

/// Whether `fd` is on the mount `m`.
pub fn on_mount(fd: &OwnedFd, m: &Mounted) -> bool {
    // SAFETY: fstatfs writes one statfs into the zeroed buffer that lives across the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatfs(fd.as_raw_fd(), &raw mut st) };
    rc == 0 && fsid(&st) == m.id
}

pub fn unmount(m: &Mounted) -> Result<(), String> {
    let id = format!("FSID:{}:{}", m.id.0[0], m.id.0[1]);
    match nix_unmount(id.as_str(), MntFlags::MNT_BYFSID) {
        Err(Errno::EBUSY) => nix_unmount(id.as_str(), MntFlags::MNT_BYFSID | MntFlags::MNT_FORCE),
        other => other,
    }
    .map_err(|e| e.desc().to_owned())
}

pub fn is_memory(m: &Mounted, dir: &Path, _tag: &str) -> bool {
    m.fstype == "tmpfs" && m.target == dir
}

pub fn is_view(m: &Mounted, dir: &Path, _tag: &str) -> bool {
    m.fstype == "nullfs" && Path::new(&m.source) == dir
}

fn text(chars: &[libc::c_char]) -> String {
    // SAFETY: c_char and u8 have the same size; the kernel NUL-terminates these fields.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(chars.as_ptr().cast(), chars.len()) };
    CStr::from_bytes_until_nul(bytes).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn mounted() -> std::io::Result<Vec<Mounted>> {
    // SAFETY: with a null buffer getfsstat only counts the mounted file systems.
    let count = unsafe { libc::getfsstat(std::ptr::null_mut(), 0, libc::MNT_NOWAIT) };
    let count = usize::try_from(count).map_err(|_| std::io::Error::last_os_error())?;
    // Room for mounts made meanwhile; getfsstat fills at most what fits.
    let room = count + 16;
    // SAFETY: statfs is plain data; all zeroes is a valid value.
    let mut buf: Vec<libc::statfs> = vec![unsafe { std::mem::zeroed() }; room];
    let bytes =
        libc::c_long::try_from(room * std::mem::size_of::<libc::statfs>()).unwrap_or(libc::c_long::MAX);
    // SAFETY: the buffer holds `room` statfs structures, `bytes` long, alive across the call.
    let filled = unsafe { libc::getfsstat(buf.as_mut_ptr(), bytes, libc::MNT_NOWAIT) };
    let filled = usize::try_from(filled).map_err(|_| std::io::Error::last_os_error())?;
    buf.truncate(filled.min(room));
    Ok(buf
        .iter()
        .map(|st| Mounted {
            source: text(&st.f_mntfromname),
            target: PathBuf::from(text(&st.f_mntonname)),
            fstype: text(&st.f_fstypename),
            read_only: st.f_flags & libc::MNT_RDONLY as u64 != 0,
            id: fsid(st),
        })
        .collect())
}
