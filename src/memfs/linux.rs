//! The Linux twin of the FreeBSD mount code, which the tests drive: `tmpfs` mounted on
//! `/proc/self/fd/N` of the directory opened and checked, a bind mount onto `/proc/self/fd/N`
//! of the mount point opened and checked, then remounted read-only (the new mount's root is
//! reopened by name in its parent, the only way to name it, and checked to be the memory file
//! system's root before the remount). The mount table is `/proc/self/mountinfo`; a mount is
//! identified by its mount ID (statx `STATX_MNT_ID`), and unmounted through a descriptor of its
//! root reached with the no-follow walk (`MNT_DETACH`: the descriptor itself holds it busy).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, fstat};

use super::Mounted;
use crate::tenant::Owner;

/// A mount's identity: its mount ID and its device (`major:minor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Id {
    mount: u64,
    dev: (u32, u32),
}

fn proc_fd(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

const FLAGS: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

pub fn mount_memory(dir: &OwnedFd, tag: &str, owner: Owner, size: u64) -> Result<(), String> {
    let data = format!("size={size},mode=0700,uid={},gid={}", owner.uid, owner.gid);
    mount(Some(tag), proc_fd(dir).as_str(), Some("tmpfs"), FLAGS, Some(data.as_str())).map_err(desc)
}

fn desc(e: Errno) -> String {
    e.desc().to_owned()
}

pub fn bind_read_only(
    source: &OwnedFd,
    _source_path: &Path,
    parent: &OwnedFd,
    name: &OsStr,
    target: &OwnedFd,
) -> Result<(), String> {
    mount(
        Some(proc_fd(source).as_str()),
        proc_fd(target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(desc)?;
    // The new mount's root: what the name leads to now. It must be the memory file system's.
    let top = openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(desc)?;
    let (a, b) = (fstat(&top).map_err(desc)?, fstat(source).map_err(desc)?);
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err("another mount lies on top of the new one".into());
    }
    mount(
        None::<&str>,
        proc_fd(&top).as_str(),
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | FLAGS,
        None::<&str>,
    )
    .map_err(desc)
}

/// Whether `fd` is on the mount `m`.
pub fn on_mount(fd: &OwnedFd, m: &Mounted) -> bool {
    let st = fstat(fd);
    let dev_ok = st.is_ok_and(|st| (libc::major(st.st_dev), libc::minor(st.st_dev)) == m.id.dev);
    match mount_id(fd) {
        Some(id) => dev_ok && id == m.id.mount,
        // Before Linux 5.8: the device alone.
        None => dev_ok,
    }
}

fn mount_id(fd: &OwnedFd) -> Option<u64> {
    // SAFETY: statx reads the empty path with AT_EMPTY_PATH (the descriptor itself) and writes
    // one `statx` struct into the zeroed buffer that lives across the call.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(fd.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_MNT_ID, &raw mut stx)
    };
    (rc == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id)
}

pub fn unmount(m: &Mounted) -> Result<(), String> {
    let fd = crate::safe_write::open_dir_nofollow(&m.target).map_err(|e| e.to_string())?;
    if !on_mount(&fd, m) {
        return Err("another mount lies on top of it, or it is not reachable without a link".into());
    }
    umount2(proc_fd(&fd).as_str(), MntFlags::MNT_DETACH).map_err(|e| e.desc().to_owned())
}

pub fn is_memory(m: &Mounted, dir: &Path, tag: &str) -> bool {
    m.fstype == "tmpfs" && m.source == tag && m.target == dir
}

pub fn is_view(m: &Mounted, dir: &Path, tag: &str) -> bool {
    m.fstype == "tmpfs" && m.source == tag && m.target != dir
}

pub fn mounted() -> std::io::Result<Vec<Mounted>> {
    Ok(parse(&std::fs::read("/proc/self/mountinfo")?))
}

/// `/proc/self/mountinfo`: `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE
/// SOURCE SUPEROPTIONS` (proc(5)), paths with `\NNN` octal escapes.
fn parse(text: &[u8]) -> Vec<Mounted> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let dash = fields.iter().position(|f| *f == b"-")?;
            let number = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u64>().ok();
            let mount = number(fields.first()?)?;
            let (major, minor) = std::str::from_utf8(fields.get(2)?).ok()?.split_once(':')?;
            let dev = (major.parse().ok()?, minor.parse().ok()?);
            let target = PathBuf::from(OsStr::from_bytes(&unescape(fields.get(4)?)));
            let read_only = fields.get(5)?.split(|&b| b == b',').any(|o| o == b"ro");
            let fstype = String::from_utf8_lossy(&unescape(fields.get(dash + 1)?)).into_owned();
            let source = String::from_utf8_lossy(&unescape(fields.get(dash + 2)?)).into_owned();
            Some(Mounted { source, target, fstype, read_only, id: Id { mount, dev } })
        })
        .collect()
}

fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(d) = octal {
            out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_read_with_their_escapes() {
        let text = b"22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
63 43 0:39 / /tmp/a\\040b/mem/web rw,nosuid,nodev,noexec shared:5 - tmpfs colibri-vault-web rw,size=1024k\n\
64 43 0:39 / /tmp/j/root/var/run/secrets ro,nosuid,nodev,noexec,relatime - tmpfs colibri-vault-web rw\n\
garbage\n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].target, Path::new("/tmp/a b/mem/web"));
        assert_eq!(
            (m[1].fstype.as_str(), m[1].source.as_str(), m[1].read_only),
            ("tmpfs", "colibri-vault-web", false)
        );
        assert_eq!(m[1].id, Id { mount: 63, dev: (0, 39) });
        assert!(m[2].read_only);
        let dir = Path::new("/tmp/a b/mem/web");
        assert!(is_memory(&m[1], dir, "colibri-vault-web") && !is_view(&m[1], dir, "colibri-vault-web"));
        assert!(is_view(&m[2], dir, "colibri-vault-web") && !is_view(&m[2], dir, "colibri-vault-shop"));
        assert_eq!(unescape(b"a\\134b\\011\\12"), b"a\\b\t\\12");
    }

    #[test]
    fn the_real_table_reads() {
        let table = mounted().unwrap();
        assert!(table.iter().any(|m| m.target == Path::new("/")), "{table:?}");
    }
}
