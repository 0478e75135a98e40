//! Writing beneath a jail root without ever following a link the jail planted.
//!
//! The jail's root user owns everything under the jail root, including symlinks that point at
//! the host. So nothing here resolves a path in one go: the root is opened from `/` one
//! component at a time with `O_DIRECTORY|O_NOFOLLOW` (a symlink anywhere, host side included, is
//! refused), and so is every directory below it (plus `O_RESOLVE_BENEATH` on FreeBSD). The
//! final name must be absent or a regular file; a symlink, directory, FIFO or device there is
//! refused, not replaced. The new content goes to a temporary file created `O_EXCL|O_NOFOLLOW`
//! with mode 0600, owned as configured before any byte is written, fsynced, read back and
//! checked, renamed over the old name with `renameat`, and the directory is fsynced. A failure
//! at any point removes the temporary file. The same walk runs on Linux and FreeBSD, so the
//! Linux tests exercise the FreeBSD code path. See reference/freebsd.md, "Writing into a jail
//! root from the host".

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};

use crate::error::{Error, Result};
use crate::tenant::Owner;

/// Largest env file we read back or compare (a jail could plant a huge file).
const MAX_FILE: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
}

#[cfg(target_os = "freebsd")]
fn beneath() -> OFlag {
    OFlag::from_bits_retain(libc::O_RESOLVE_BENEATH)
}

#[cfg(not(target_os = "freebsd"))]
fn beneath() -> OFlag {
    OFlag::empty()
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn describe(errno: Errno) -> String {
    match errno {
        // Linux says ELOOP/ENOTDIR for a symlink under O_NOFOLLOW; FreeBSD EMLINK or ENOTCAPABLE.
        Errno::ELOOP | Errno::ENOTDIR | Errno::EMLINK => {
            "a path component is a symbolic link or not a directory; refusing to follow it".into()
        }
        #[cfg(target_os = "freebsd")]
        Errno::ENOTCAPABLE => "the path escapes the directory it must stay beneath".into(),
        Errno::ENOENT => "a directory on the path does not exist (create it inside the jail first)".into(),
        other => other.desc().to_owned(),
    }
}

/// Opens the directory `path` (absolute) from `/`, refusing any symlink on the way.
pub fn open_dir_nofollow(path: &Path) -> Result<OwnedFd> {
    let err = |problem: String| Error::write(path, problem);
    if !path.is_absolute() {
        return Err(err("not an absolute path".into()));
    }
    let mut fd =
        openat(nix::fcntl::AT_FDCWD, "/", dir_flags(), Mode::empty()).map_err(|e| err(describe(e)))?;
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(name) => {
                fd = openat(&fd, name, dir_flags(), Mode::empty()).map_err(|e| err(describe(e)))?;
            }
            _ => return Err(err("the path must be normalized".into())),
        }
    }
    Ok(fd)
}

/// Opens the directory holding `rel` beneath `root`; returns it and the final name.
fn open_parent<'a>(root: &Path, rel: &'a Path) -> Result<(OwnedFd, &'a OsStr)> {
    let full = root.join(rel);
    let mut fd = open_dir_nofollow(root)?;
    let mut parts: Vec<&OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => parts.push(name),
            _ => {
                return Err(Error::write(&full, "the env path must be relative, without '.' or '..'"));
            }
        }
    }
    let Some(name) = parts.pop() else {
        return Err(Error::write(&full, "empty env path"));
    };
    for part in parts {
        fd = openat(&fd, part, dir_flags() | beneath(), Mode::empty())
            .map_err(|e| Error::write(&full, describe(e)))?;
    }
    Ok((fd, name))
}

/// What is at `name` in `dir`, without following a symlink. `None`: nothing.
fn lstat_at(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<Option<FileStat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::write(full, describe(e))),
    }
}

fn kind(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        _ => "a device",
    }
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

/// Opens the regular file `name` for reading, never a link, FIFO or device.
fn open_regular(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<File> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | beneath(),
        Mode::empty(),
    )
    .map_err(|e| Error::write(full, describe(e)))?;
    let st = fstat(&fd).map_err(|e| Error::write(full, describe(e)))?;
    if !is_regular(&st) {
        return Err(Error::write(
            full,
            format!("it is {}, not a regular file; refusing to touch it", kind(&st)),
        ));
    }
    Ok(File::from(fd))
}

fn read_limited(file: &mut File, full: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| Error::write(full, e.to_string()))?;
    Ok(bytes)
}

/// The current content of `root/rel` if it is a regular file; `None` if absent.
pub fn read(root: &Path, rel: &Path) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    let full = root.join(rel);
    let (dir, name) = open_parent(root, rel)?;
    match lstat_at(&dir, name, &full)? {
        None => Ok(None),
        Some(st) if is_regular(&st) => {
            let mut file = open_regular(&dir, name, &full)?;
            Ok(Some(zeroize::Zeroizing::new(read_limited(&mut file, &full)?)))
        }
        Some(st) => {
            Err(Error::write(&full, format!("it is {}, not a regular file; refusing to touch it", kind(&st))))
        }
    }
}

/// Writes `bytes` to `root/rel` atomically, mode 0600, owned by `owner`, unless the file
/// already holds exactly that (same bytes, mode, owner, single link). `check` must accept the
/// bytes read back from the temporary file before it replaces the old one.
pub fn write(
    root: &Path,
    rel: &Path,
    bytes: &[u8],
    owner: Owner,
    check: &dyn Fn(&[u8]) -> bool,
) -> Result<Outcome> {
    let full = root.join(rel);
    let (dir, name) = open_parent(root, rel)?;
    if let Some(st) = lstat_at(&dir, name, &full)? {
        if !is_regular(&st) {
            return Err(Error::write(
                &full,
                format!("it is {} (planted in the jail?); refusing to replace it", kind(&st)),
            ));
        }
        let same_meta = st.st_mode & 0o7777 == 0o600
            && st.st_uid == owner.uid
            && st.st_gid == owner.gid
            && st.st_nlink == 1;
        if same_meta && u64::try_from(st.st_size).unwrap_or(u64::MAX) == bytes.len() as u64 {
            let mut file = open_regular(&dir, name, &full)?;
            let current = zeroize::Zeroizing::new(read_limited(&mut file, &full)?);
            if current.as_slice() == bytes {
                return Ok(Outcome::Unchanged);
            }
        }
    }

    let tmp_name = temp_name(name);
    let tmp = openat(
        &dir,
        tmp_name.as_os_str(),
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | beneath(),
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| Error::write(&full, format!("could not create a temporary file: {}", describe(e))))?;
    let guard = TempGuard { dir: &dir, name: &tmp_name, armed: true };
    let result = fill(tmp, bytes, owner, check, &full).and_then(|()| {
        renameat(&dir, tmp_name.as_os_str(), &dir, name)
            .map_err(|e| Error::write(&full, format!("could not rename into place: {}", describe(e))))
    });
    match result {
        Ok(()) => {
            guard.disarm();
            fsync(&dir)
                .map_err(|e| Error::write(&full, format!("could not sync the directory: {}", describe(e))))?;
            Ok(Outcome::Written)
        }
        Err(e) => Err(e),
    }
}

fn fill(fd: OwnedFd, bytes: &[u8], owner: Owner, check: &dyn Fn(&[u8]) -> bool, full: &Path) -> Result<()> {
    let io = |what: &str, e: &dyn std::fmt::Display| Error::write(full, format!("{what}: {e}"));
    // Mode first (a umask cannot loosen 0600, but it could tighten it), then the owner,
    // both before any secret byte lands in the file.
    fchmod(fd.as_fd(), Mode::from_bits_truncate(0o600)).map_err(|e| io("could not set the mode", &e))?;
    fchown(fd.as_fd(), Some(Uid::from_raw(owner.uid)), Some(Gid::from_raw(owner.gid)))
        .map_err(|e| io("could not set the owner", &e))?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(|e| io("could not write", &e))?;
    file.sync_all().map_err(|e| io("could not sync", &e))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| io("could not read back", &e))?;
    let back = zeroize::Zeroizing::new(read_limited(&mut file, full)?);
    if back.as_slice() != bytes || !check(&back) {
        return Err(Error::write(
            full,
            "the file read back does not match the entries; not replacing the old file",
        ));
    }
    Ok(())
}

/// Removes `root/rel` if it is a regular file. `Ok(false)`: nothing was there.
pub fn remove(root: &Path, rel: &Path) -> Result<bool> {
    let full = root.join(rel);
    let (dir, name) = open_parent(root, rel)?;
    match lstat_at(&dir, name, &full)? {
        None => Ok(false),
        Some(st) if is_regular(&st) => {
            unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir).map_err(|e| Error::write(&full, describe(e)))?;
            fsync(&dir).map_err(|e| Error::write(&full, describe(e)))?;
            Ok(true)
        }
        Some(st) => Err(Error::write(
            &full,
            format!("it is {} (planted in the jail?); refusing to remove it", kind(&st)),
        )),
    }
}

fn temp_name(name: &OsStr) -> OsString {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut tmp = OsString::from(".");
    // Keep the temporary name within NAME_MAX whatever the final name's length.
    let stem = &name.as_bytes()[..name.len().min(200)];
    tmp.push(OsStr::from_bytes(stem));
    tmp.push(format!(".colibri-tmp.{}.{nanos:09}", std::process::id()));
    tmp
}

/// Removes the temporary file unless disarmed (after a successful rename).
struct TempGuard<'a> {
    dir: &'a OwnedFd,
    name: &'a OsStr,
    armed: bool,
}

impl TempGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = unlinkat(self.dir, self.name, UnlinkatFlags::NoRemoveDir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn me() -> Owner {
        Owner { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() }
    }

    fn ok(_: &[u8]) -> bool {
        true
    }

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("jails/web/root");
        std::fs::create_dir_all(&root).unwrap();
        (dir, root)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_0600_then_keeps_unchanged_content() {
        let (_d, root) = setup();
        assert_eq!(write(&root, Path::new(".env"), b"A='1'\n", me(), &ok).unwrap(), Outcome::Written);
        let meta = std::fs::metadata(root.join(".env")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read(root.join(".env")).unwrap(), b"A='1'\n");
        assert_eq!(write(&root, Path::new(".env"), b"A='1'\n", me(), &ok).unwrap(), Outcome::Unchanged);
        assert_eq!(write(&root, Path::new(".env"), b"A='2'\n", me(), &ok).unwrap(), Outcome::Written);
        assert_eq!(entries(&root), [".env"], "no temporary file left");
    }

    #[test]
    fn loosened_mode_is_rewritten() {
        let (_d, root) = setup();
        write(&root, Path::new(".env"), b"x\n", me(), &ok).unwrap();
        std::fs::set_permissions(root.join(".env"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(write(&root, Path::new(".env"), b"x\n", me(), &ok).unwrap(), Outcome::Written);
        assert_eq!(std::fs::metadata(root.join(".env")).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn refuses_planted_links_and_special_files() {
        let (d, root) = setup();
        let outside = d.path().join("host-secret");
        std::fs::write(&outside, b"host").unwrap();
        symlink(&outside, root.join(".env")).unwrap();
        let e = write(&root, Path::new(".env"), b"x\n", me(), &ok).unwrap_err();
        assert_eq!(e.exit_code(), 73);
        assert_eq!(std::fs::read(&outside).unwrap(), b"host");

        std::fs::create_dir(d.path().join("hostdir")).unwrap();
        symlink(d.path().join("hostdir"), root.join("etc")).unwrap();
        assert!(write(&root, Path::new("etc/app.env"), b"x\n", me(), &ok).is_err());
        assert!(entries(&d.path().join("hostdir")).is_empty());

        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(write(&root, Path::new("fifo"), b"x\n", me(), &ok).is_err());
        assert!(read(&root, Path::new("fifo")).is_err());
        std::fs::create_dir(root.join("adir")).unwrap();
        assert!(write(&root, Path::new("adir"), b"x\n", me(), &ok).is_err());
        assert!(remove(&root, Path::new(".env")).is_err(), "a symlink is not removed");
        assert!(outside.exists());
    }

    #[test]
    fn a_hard_link_to_a_host_file_is_replaced_not_written_through() {
        let (d, root) = setup();
        let outside = d.path().join("hostfile");
        std::fs::write(&outside, b"host").unwrap();
        std::fs::hard_link(&outside, root.join(".env")).unwrap();
        assert_eq!(write(&root, Path::new(".env"), b"new\n", me(), &ok).unwrap(), Outcome::Written);
        assert_eq!(std::fs::read(&outside).unwrap(), b"host");
        assert_eq!(std::fs::read(root.join(".env")).unwrap(), b"new\n");
    }

    #[test]
    fn a_symlink_on_the_host_side_is_refused() {
        let (d, root) = setup();
        symlink(d.path().join("jails"), d.path().join("alias")).unwrap();
        let e = write(&d.path().join("alias/web/root"), Path::new(".env"), b"x\n", me(), &ok).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!root.join(".env").exists());
    }

    #[test]
    fn a_failed_check_keeps_the_old_file_and_leaves_no_temp() {
        let (_d, root) = setup();
        write(&root, Path::new(".env"), b"old\n", me(), &ok).unwrap();
        let e = write(&root, Path::new(".env"), b"new\n", me(), &|_| false).unwrap_err();
        assert_eq!(e.exit_code(), 73);
        assert_eq!(std::fs::read(root.join(".env")).unwrap(), b"old\n");
        assert_eq!(entries(&root), [".env"]);
    }

    #[test]
    fn missing_directories_are_not_created() {
        let (_d, root) = setup();
        let e = write(&root, Path::new("usr/local/etc/app.env"), b"x\n", me(), &ok).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn remove_only_regular_files() {
        let (_d, root) = setup();
        assert!(!remove(&root, Path::new(".env")).unwrap());
        write(&root, Path::new(".env"), b"x\n", me(), &ok).unwrap();
        assert!(remove(&root, Path::new(".env")).unwrap());
        assert!(!root.join(".env").exists());
    }
}
