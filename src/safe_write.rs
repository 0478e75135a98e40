//! Writing beneath a jail root without ever following a link the jail planted, and without
//! leaving a copy of the secrets behind on any failure.
//!
//! The jail's root user owns everything under the jail root: it may plant symlinks that point
//! at the host, hard links, FIFOs, and set file flags (`chflags uappnd`, `chattr +a`) on any
//! name, ours included, between two of our steps. What this module guarantees, whatever it does:
//! - **No link is followed.** The root is opened from `/` one component at a time with
//!   `O_DIRECTORY|O_NOFOLLOW` (a symlink anywhere, host side included, is refused), and so is
//!   every directory below it (plus `O_RESOLVE_BENEATH` on FreeBSD). The final name must be
//!   absent or a regular file; a symlink, directory, FIFO or device there is refused, never
//!   replaced. A hard link is replaced (renamed over), never written through. The same walk
//!   runs on Linux and FreeBSD, so the Linux tests exercise the FreeBSD code path.
//! - **One definition of "already right"**, [`Current::holds`]: a regular file, mode 0600, the
//!   configured owner, a single link, and the expected content. [`write()`] leaves such a file
//!   alone (`Outcome::Unchanged`); the pipeline's freshness asks the same question through
//!   [`inspect`]; anything else is rewritten.
//! - **0600 and owned from the start, replaced atomically.** The new content goes to a
//!   temporary file created `O_EXCL|O_NOFOLLOW` with mode 0600 and owned as configured before
//!   any byte is written; it is fsynced, read back and checked by the caller, renamed over the
//!   old name with `renameat`, and the directory is fsynced.
//! - **No secret left behind.** Before anything is created: temporary files of a run that died
//!   (killed outright; their pid no longer runs) are emptied and removed, and the write is
//!   refused when a name could not be removed or replaced there — the directory append-only or
//!   immutable, the target append-only, immutable or undeletable (see `flags`). Right before the
//!   first byte, the temporary file is checked again: one link, no flag, its directory still
//!   unflagged. On any later failure (ENOSPC or EFBIG mid-write, a flag set meanwhile, a failed
//!   check or rename, a panic) it is discarded through our descriptor, not its name: flags
//!   cleared, emptied, then unlinked if its name is still ours. If the directory was flagged in
//!   between, an empty temporary file remains and the error names it; one that could not be
//!   emptied is named with "remove it by hand".
//! - **Bounded.** Content over [`MAX_FILE`] is refused before anything is touched (callers check
//!   first, to name the variable); what is read back or compared is bounded the same.
//!
//! The interface stays small for what builds on it: [`open_dir_nofollow`] (the root walk),
//! [`inspect`] and [`Current`] (what is there, judged, and its [`FileId`]), [`write()`] and
//! [`Outcome`] ([`write_identified`] also says which inode now holds the content), [`remove`]
//! and [`remove_if`] (only while the name still leads to a given inode), [`MAX_FILE`]. Anything new that writes beneath a root (another layout, say a directory of
//! files swapped in with one rename) keeps the same discipline: create `O_EXCL` under a parent
//! walked without links; refuse flagged names before creating anything; look again right before
//! the first secret byte; discard through its own descriptors on every failure path (as `Temp`
//! does); and name its temporaries `.NAME.colibri-tmp.PID.NANOS`, so that the sweep finds what
//! a killed run left.
//!
//! Not for: creating directories (a missing one is reported, with whether it is the jail root
//! or a directory inside the jail), or any host-side file. See reference/freebsd.md, "Writing
//! into a jail root from the host".

mod flags;
pub mod set;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::tenant::Owner;

/// Largest env file we write, read back or compare (a jail could plant a huge file).
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// What [`MAX_FILE`] is, for messages.
pub const MAX_FILE_TEXT: &str = "16 MiB (16777216 bytes)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
}

/// A file's device and inode: the same file whatever name or jail root it is reached by (a
/// hard link, a directory mounted into another jail). A copy, or a ZFS clone (another
/// device), is another file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    #[allow(clippy::useless_conversion, reason = "dev_t and ino_t are not u64 on every target")]
    fn of(st: &FileStat) -> FileId {
        FileId { dev: u64::from(st.st_dev), ino: u64::from(st.st_ino) }
    }
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
        // The walks report a missing directory themselves; here a name vanished between steps.
        Errno::ENOENT => "no such file (removed or renamed meanwhile?)".into(),
        other => other.desc().to_owned(),
    }
}

/// Opens the jail root `path` (absolute) from `/`, refusing any symlink on the way. A missing
/// component means the jail root itself does not exist.
pub fn open_dir_nofollow(path: &Path) -> Result<OwnedFd> {
    let err = |problem: String| Error::write(path, problem);
    if !path.is_absolute() {
        return Err(err("not an absolute path".into()));
    }
    let mut fd =
        openat(nix::fcntl::AT_FDCWD, "/", dir_flags(), Mode::empty()).map_err(|e| err(describe(e)))?;
    let mut walked = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(name) => {
                walked.push(name);
                fd = openat(&fd, name, dir_flags(), Mode::empty()).map_err(|e| match e {
                    Errno::ENOENT => err(format!(
                        "the jail root does not exist ({} is missing): is the jail created, and is \
                         this the root registered for it (colibri-vault tenant show)?",
                        walked.display()
                    )),
                    e => err(describe(e)),
                })?;
            }
            _ => return Err(err("the path must be normalized".into())),
        }
    }
    Ok(fd)
}

/// How [`open_dir_creating`] makes the last directory when it is missing.
#[derive(Clone, Copy, Debug)]
pub struct NewDir {
    pub mode: libc::mode_t,
    pub owner: Owner,
}

/// Opens the directory `rel` beneath the jail root `root`, creating what is missing, never
/// following a link: each component is opened `O_DIRECTORY|O_NOFOLLOW` (a symlink at any
/// level, the last one included, is refused), and a missing one is made with `mkdirat` and then
/// opened the same way (intermediate directories 0755, owned by the running user, as the jail's
/// own hierarchy is; the last one as `last` says). Returns the parent's descriptor, the last
/// name and the directory's descriptor. A directory that already exists is left as it is.
pub fn open_dir_creating(root: &Path, rel: &Path, last: NewDir) -> Result<(OwnedFd, OsString, OwnedFd)> {
    let full = root.join(rel);
    let mut parts: Vec<&OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => parts.push(name),
            _ => return Err(Error::write(&full, "the directory must be relative, without '.' or '..'")),
        }
    }
    let Some(final_name) = parts.pop() else {
        return Err(Error::write(&full, "empty directory path"));
    };
    let mut fd = open_dir_nofollow(root)?;
    let mut inside = PathBuf::from("/");
    let fail =
        |what: &str, e: Errno| Error::write(&full, format!("could not set the {what}: {}", describe(e)));
    for part in parts {
        inside.push(part);
        let (next, made) = open_or_make(&fd, part, 0o755, &full, &inside)?;
        if made {
            // Whatever the umask: the jail's users must be able to pass through.
            fchmod(&next, Mode::from_bits_truncate(0o755)).map_err(|e| fail("mode", e))?;
        }
        fd = next;
    }
    inside.push(final_name);
    let (dir, made) = open_or_make(&fd, final_name, last.mode, &full, &inside)?;
    if made {
        fchmod(&dir, Mode::from_bits_truncate(last.mode)).map_err(|e| fail("mode", e))?;
        fchown(&dir, Some(Uid::from_raw(last.owner.uid)), Some(Gid::from_raw(last.owner.gid)))
            .map_err(|e| fail("owner", e))?;
    }
    Ok((fd, final_name.to_owned(), dir))
}

/// The directory `name` in `parent`, made with `mode` first if missing; whether it was made.
fn open_or_make(
    parent: &OwnedFd,
    name: &OsStr,
    mode: libc::mode_t,
    full: &Path,
    inside: &Path,
) -> Result<(OwnedFd, bool)> {
    let open = || openat(parent, name, dir_flags() | beneath(), Mode::empty());
    let refused =
        |e: Errno| Error::write(full, format!("{} inside the jail: {}", inside.display(), describe(e)));
    match open() {
        Ok(fd) => Ok((fd, false)),
        Err(Errno::ENOENT) => {
            let created = match nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(mode)) {
                Ok(()) => true,
                // Made meanwhile (inside the jail?): opened like any other, below.
                Err(Errno::EEXIST) => false,
                Err(e) => {
                    return Err(Error::write(
                        full,
                        format!("could not create {} inside the jail: {}", inside.display(), describe(e)),
                    ));
                }
            };
            open().map(|fd| (fd, created)).map_err(refused)
        }
        Err(e) => Err(refused(e)),
    }
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
    // As the jail sees it, for messages.
    let mut inside = PathBuf::from("/");
    for part in parts {
        inside.push(part);
        fd = openat(&fd, part, dir_flags() | beneath(), Mode::empty()).map_err(|e| match e {
            Errno::ENOENT => Error::write(
                &full,
                format!(
                    "directory {} does not exist inside the jail; create it inside the jail first",
                    inside.display()
                ),
            ),
            e => Error::write(&full, describe(e)),
        })?;
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

fn same_inode(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// Opens the regular file `name` (`flags`: the access mode), never a link, FIFO or device.
fn open_regular(dir: &OwnedFd, name: &OsStr, access: OFlag, full: &Path) -> Result<(File, FileStat)> {
    let fd = openat(
        dir,
        name,
        access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | beneath(),
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
    Ok((File::from(fd), st))
}

fn read_limited(file: &mut File, full: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| Error::write(full, e.to_string()))?;
    Ok(bytes)
}

/// Why a file's metadata is not what [`write()`] leaves (mode 0600, `owner`, one link); `None`
/// if it is.
fn meta_problem(st: &FileStat, owner: Owner) -> Option<String> {
    let mut problems = Vec::new();
    let mode = st.st_mode & 0o7777;
    if mode != 0o600 {
        problems.push(format!("mode {mode:04o}, not 0600"));
    }
    if (st.st_uid, st.st_gid) != (owner.uid, owner.gid) {
        problems.push(format!("owned by {}:{}, not {}:{}", st.st_uid, st.st_gid, owner.uid, owner.gid));
    }
    if st.st_nlink != 1 {
        problems.push(format!("{} hard links, not 1", st.st_nlink));
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// The env file as it is now, judged as the writer judges it.
pub struct Current {
    bytes: Zeroizing<Vec<u8>>,
    problem: Option<String>,
    id: FileId,
}

impl Current {
    /// Its device and inode (of the descriptor its content was read from).
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Why it is not what [`write()`] leaves (mode, owner, links, size), if it is not.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Its content (at most [`MAX_FILE`] + 1 bytes).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The one definition of "unchanged" and "fresh": a regular file, mode 0600, the configured
    /// owner, a single link, and content that `expected` accepts.
    pub fn holds(&self, expected: impl FnOnce(&[u8]) -> bool) -> bool {
        self.problem.is_none() && expected(&self.bytes)
    }
}

/// The file at `name`, if any; an error if something else than a regular file is there
/// (`verb`: what we would have done to it).
fn current(dir: &OwnedFd, name: &OsStr, full: &Path, owner: Owner, verb: &str) -> Result<Option<Current>> {
    let Some(st) = lstat_at(dir, name, full)? else {
        return Ok(None);
    };
    if !is_regular(&st) {
        return Err(Error::write(
            full,
            format!("it is {} (planted in the jail?); refusing to {verb} it", kind(&st)),
        ));
    }
    // Judged on the descriptor the content is read from: one inode for both.
    let (mut file, st) = open_regular(dir, name, OFlag::O_RDONLY, full)?;
    let bytes = read_limited(&mut file, full)?;
    let mut problems: Vec<String> = meta_problem(&st, owner).into_iter().collect();
    if bytes.len() as u64 > MAX_FILE {
        problems.push(format!("larger than {MAX_FILE_TEXT}"));
    }
    // A killed run's copy next to it: not right until a write has taken it away.
    for stale in stale_temps(dir, name, full)? {
        if lstat_at(dir, &stale, full)?.is_some_and(|st| is_regular(&st) && st.st_size > 0) {
            problems.push(format!(
                "next to {}, an earlier run's temporary file",
                full.with_file_name(&stale).display()
            ));
        }
    }
    let problem = (!problems.is_empty()).then(|| problems.join(", "));
    Ok(Some(Current { bytes, problem, id: FileId::of(&st) }))
}

/// The env file `root/rel` as it is now, `None` if absent; an error if it is not a regular file.
pub fn inspect(root: &Path, rel: &Path, owner: Owner) -> Result<Option<Current>> {
    let full = root.join(rel);
    let (dir, name) = open_parent(root, rel)?;
    current(&dir, name, &full, owner, "touch")
}

/// [`inspect`] for the file `name` in the directory open at `dir` (`full`: its path, for
/// messages).
pub fn inspect_in(dir: &OwnedFd, name: &OsStr, full: &Path, owner: Owner) -> Result<Option<Current>> {
    current(dir, name, full, owner, "touch")
}

/// The device and inode of the regular file `root/rel`, `None` if nothing is there; no link is
/// followed and nothing is read.
pub fn id_at(root: &Path, rel: &Path) -> Result<Option<FileId>> {
    let full = root.join(rel);
    let (dir, name) = open_parent(root, rel)?;
    Ok(lstat_at(&dir, name, &full)?.filter(is_regular).map(|st| FileId::of(&st)))
}

/// Writes `bytes` to `root/rel` atomically, mode 0600, owned by `owner`, unless the file
/// already holds exactly that ([`Current::holds`]). `check` must accept the bytes read back
/// from the temporary file before it replaces the old one. On failure, nothing new is left
/// (see the module's invariants) and the old file stays.
pub fn write(
    root: &Path,
    rel: &Path,
    bytes: &[u8],
    owner: Owner,
    check: &dyn Fn(&[u8]) -> bool,
) -> Result<Outcome> {
    write_identified(root, rel, bytes, owner, check).map(|(outcome, _)| outcome)
}

/// [`write()`], and the device and inode that hold the content now: the file left alone, or
/// the temporary file renamed into place (taken from our own descriptor, not looked up by name,
/// which the jail could have changed meanwhile).
pub fn write_identified(
    root: &Path,
    rel: &Path,
    bytes: &[u8],
    owner: Owner,
    check: &dyn Fn(&[u8]) -> bool,
) -> Result<(Outcome, FileId)> {
    let full = root.join(rel);
    too_large(bytes, &full)?;
    let (dir, name) = open_parent(root, rel)?;
    write_in_identified(&dir, name, &full, bytes, owner, check)
}

/// [`write()`] for the file `name` in the directory open at `dir` (`full`: its path, for
/// messages): for a directory the caller has opened and checked, such as a tenant's memory
/// file system.
pub fn write_in(
    dir: &OwnedFd,
    name: &OsStr,
    full: &Path,
    bytes: &[u8],
    owner: Owner,
    check: &dyn Fn(&[u8]) -> bool,
) -> Result<Outcome> {
    write_in_identified(dir, name, full, bytes, owner, check).map(|(outcome, _)| outcome)
}

/// [`write_in`], and the device and inode that hold the content now (see [`write_identified`]).
pub fn write_in_identified(
    dir: &OwnedFd,
    name: &OsStr,
    full: &Path,
    bytes: &[u8],
    owner: Owner,
    check: &dyn Fn(&[u8]) -> bool,
) -> Result<(Outcome, FileId)> {
    too_large(bytes, full)?;
    sweep(dir, name, full)?;
    if let Some(current) = current(dir, name, full, owner, "replace")?
        && current.holds(|b| b == bytes)
    {
        return Ok((Outcome::Unchanged, current.id));
    }
    removable(dir, name, full)?;

    let mut temp = Temp::create(dir, name, full)?;
    let result = temp.prepare(owner).and_then(|()| temp.fill(bytes, check)).and_then(|()| temp.place(name));
    if let Err(e) = result {
        return Err(temp.discard_after(e));
    }
    fsync(dir).map_err(|e| Error::write(full, format!("could not sync the directory: {}", describe(e))))?;
    Ok((Outcome::Written, FileId::of(&temp.created)))
}

fn too_large(bytes: &[u8], full: &Path) -> Result<()> {
    if bytes.len() as u64 > MAX_FILE {
        return Err(Error::write(
            full,
            format!(
                "the content is {} bytes, over the {MAX_FILE_TEXT} limit; nothing was written",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses, before anything is created, a directory whose entries cannot be removed (a
/// temporary file there could not be taken back) and a target that cannot be replaced.
fn removable(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<()> {
    if let Some(problem) = dir_locked(dir, full) {
        return Err(Error::write(full, format!("{problem}; nothing was written")));
    }
    match flags::of(dir.as_fd(), Some(name)) {
        Ok(f) if f.lock_file() => Err(Error::write(
            full,
            format!(
                "it is flagged {} (set inside the jail?), so it cannot be replaced; nothing was written \
                 (to allow it: {})",
                f.names(),
                f.undo(full)
            ),
        )),
        _ => Ok(()),
    }
}

/// Why the directory of `full` does not let a name go, if it does not.
fn dir_locked(dir: &OwnedFd, full: &Path) -> Option<String> {
    let parent = full.parent().unwrap_or(full);
    match flags::of(dir.as_fd(), None) {
        Ok(f) if f.lock_entries() => Some(format!(
            "its directory {} is flagged {} (set inside the jail?): a file there could not be removed \
             or renamed (to allow it: {})",
            parent.display(),
            f.names(),
            f.undo(parent)
        )),
        _ => None,
    }
}

/// `.NAME.colibri-tmp.`: what every temporary file for `name` starts with.
fn temp_prefix(name: &OsStr) -> OsString {
    let mut tmp = OsString::from(".");
    // Keep the temporary name within NAME_MAX whatever the final name's length.
    tmp.push(OsStr::from_bytes(&name.as_bytes()[..name.len().min(200)]));
    tmp.push(".colibri-tmp.");
    tmp
}

fn temp_name(name: &OsStr) -> OsString {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut tmp = temp_prefix(name);
    tmp.push(format!("{}.{nanos:09}", std::process::id()));
    tmp
}

/// The pid in a temporary file name of ours (`PREFIX<pid>.<nanos>`), if `entry` is one.
fn temp_pid(entry: &[u8], prefix: &[u8]) -> Option<i32> {
    let rest = entry.strip_prefix(prefix)?;
    let (pid, nanos) = std::str::from_utf8(rest).ok()?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(nanos)).then_some(())?;
    pid.parse().ok().filter(|pid| *pid > 0)
}

/// Empties and removes the temporary files for `name` left by runs that no longer run (a run
/// killed outright cannot clean up): they may hold a whole copy of the secrets.
fn sweep(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<()> {
    for stale in stale_temps(dir, name, full)? {
        discard_stale(dir, &stale, full)?;
    }
    Ok(())
}

/// The temporary files for `name` whose run no longer runs.
fn stale_temps(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<Vec<OsString>> {
    let prefix = temp_prefix(name);
    let listing = nix::dir::Dir::openat(dir, ".", dir_flags(), Mode::empty())
        .map_err(|e| Error::write(full, format!("could not list its directory: {}", describe(e))))?;
    Ok(listing
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            let pid = temp_pid(entry.file_name().to_bytes(), prefix.as_bytes())?;
            // Still running (or not ours to signal): its writer may be at work.
            let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH);
            gone.then(|| OsStr::from_bytes(entry.file_name().to_bytes()).to_owned())
        })
        .collect())
}

fn discard_stale(dir: &OwnedFd, stale: &OsStr, full: &Path) -> Result<()> {
    let path = full.with_file_name(stale);
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::write(
            full,
            format!(
                "{} (a temporary file an earlier run left) could not be {what}: {e}; it may hold secrets: \
                 remove it by hand",
                path.display()
            ),
        )
    };
    // Only a regular file with no other name is emptied: a hard link planted under our name
    // could lead to a file that is not ours. Anything else under our name is not ours: left.
    match lstat_at(dir, stale, full)? {
        Some(st) if is_regular(&st) => {}
        _ => return Ok(()),
    }
    let Ok((reader, st)) = open_regular(dir, stale, OFlag::O_RDONLY, full) else {
        return Ok(());
    };
    if st.st_nlink == 1 {
        if let Ok(f) = flags::of(reader.as_fd(), None)
            && f.lock_file()
        {
            flags::clear(reader.as_fd(), f).map_err(|e| fail("unflagged", &e))?;
        }
        // A writable descriptor on the same inode (an append-only file could not be opened so).
        let (mut writer, again) = open_regular(dir, stale, OFlag::O_WRONLY, full)?;
        if same_inode(&st, &again) {
            writer.set_len(0).and_then(|()| writer.flush()).map_err(|e| fail("emptied", &e))?;
            writer.sync_all().map_err(|e| fail("emptied", &e))?;
        }
    }
    match unlinkat(dir, stale, UnlinkatFlags::NoRemoveDir) {
        // An empty file that stays because the directory is flagged: `removable` says why.
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(_) if dir_locked(dir, full).is_some() => Ok(()),
        Err(e) => Err(fail("removed", &describe(e))),
    }
}

/// Our temporary file, from its creation to its rename; discarded (through the descriptor)
/// on every other path, a panic included.
struct Temp<'a> {
    dir: &'a OwnedFd,
    name: OsString,
    file: File,
    /// What it was at creation: its name is removed only while it still names this inode.
    created: FileStat,
    full: &'a Path,
    /// Renamed into place, or discarded: nothing left to do.
    settled: bool,
}

impl<'a> Temp<'a> {
    fn create(dir: &'a OwnedFd, target: &OsStr, full: &'a Path) -> Result<Temp<'a>> {
        let name = temp_name(target);
        let fd = openat(
            dir,
            name.as_os_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | beneath(),
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| Error::write(full, format!("could not create a temporary file: {}", describe(e))))?;
        let file = File::from(fd);
        let created = match fstat(&file) {
            Ok(st) => st,
            Err(e) => {
                let _ = unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
                return Err(Error::write(
                    full,
                    format!("could not create a temporary file: {}", describe(e)),
                ));
            }
        };
        Ok(Temp { dir, name, file, created, full, settled: false })
    }

    fn path(&self) -> PathBuf {
        self.full.with_file_name(&self.name)
    }

    fn err(&self, what: &str, e: &dyn std::fmt::Display) -> Error {
        Error::write(self.full, format!("{what}: {e}"))
    }

    /// Mode and owner, each after and before a look at what the jail may have done to the
    /// file since its creation: it must have no other name and no flag, and its directory must
    /// still let it go. The last look comes right before the first secret byte.
    fn prepare(&self, owner: Owner) -> Result<()> {
        let fd = self.file.as_fd();
        self.look()?;
        // Mode first (a umask cannot loosen 0600, but it could tighten it), then the owner.
        fchmod(fd, Mode::from_bits_truncate(0o600)).map_err(|e| self.err("could not set the mode", &e))?;
        fchown(fd, Some(Uid::from_raw(owner.uid)), Some(Gid::from_raw(owner.gid)))
            .map_err(|e| self.err("could not set the owner", &e))?;
        self.look()
    }

    fn look(&self) -> Result<()> {
        let fd = self.file.as_fd();
        let st = fstat(fd).map_err(|e| self.err("could not check the temporary file", &e))?;
        if st.st_nlink != 1 {
            return Err(Error::write(
                self.full,
                format!(
                    "the temporary file {} got another name before anything was written (a hard link made \
                     inside the jail?); nothing was written",
                    self.path().display()
                ),
            ));
        }
        if let Ok(f) = flags::of(fd, None)
            && f.lock_file()
        {
            return Err(Error::write(
                self.full,
                format!(
                    "the temporary file {} was flagged {} before anything was written (inside the jail?); \
                     nothing was written",
                    self.path().display(),
                    f.names()
                ),
            ));
        }
        if let Some(problem) = dir_locked(self.dir, self.full) {
            return Err(Error::write(self.full, format!("{problem}; nothing was written")));
        }
        Ok(())
    }

    /// The content, synced, read back and checked.
    fn fill(&mut self, bytes: &[u8], check: &dyn Fn(&[u8]) -> bool) -> Result<()> {
        self.file.write_all(bytes).map_err(|e| self.err("could not write", &e))?;
        self.file.sync_all().map_err(|e| self.err("could not sync", &e))?;
        self.file.seek(SeekFrom::Start(0)).map_err(|e| self.err("could not read back", &e))?;
        let back = read_limited(&mut self.file, self.full)?;
        if back.as_slice() != bytes || !check(&back) {
            return Err(Error::write(
                self.full,
                "the file read back does not match the entries; not replacing the old file",
            ));
        }
        Ok(())
    }

    fn place(&mut self, target: &OsStr) -> Result<()> {
        match renameat(self.dir, self.name.as_os_str(), self.dir, target) {
            Ok(()) => {
                self.settled = true;
                Ok(())
            }
            Err(e) => {
                let why = match e {
                    Errno::EPERM => self.why_locked(target).unwrap_or_else(|| describe(e)),
                    e => describe(e),
                };
                Err(Error::write(self.full, format!("could not rename into place: {why}")))
            }
        }
    }

    /// Which flag stopped a rename, as far as we can tell.
    fn why_locked(&self, target: &OsStr) -> Option<String> {
        if let Some(problem) = dir_locked(self.dir, self.full) {
            return Some(problem);
        }
        if let Ok(f) = flags::of(self.file.as_fd(), None)
            && f.lock_file()
        {
            return Some(format!(
                "the temporary file was flagged {} meanwhile (inside the jail?)",
                f.names()
            ));
        }
        match flags::of(self.dir.as_fd(), Some(target)) {
            Ok(f) if f.lock_file() => Some(format!(
                "it was flagged {} meanwhile (inside the jail?) ({})",
                f.names(),
                f.undo(self.full)
            )),
            _ => None,
        }
    }

    /// Discards the file and returns `error` with what remains, if anything, added.
    fn discard_after(&mut self, error: Error) -> Error {
        match (self.discard(), error) {
            (None, error) => error,
            (Some(left), Error::Write { path, problem }) => {
                Error::Write { path, problem: format!("{problem}; {left}") }
            }
            (Some(left), error) => Error::write(self.full, format!("{error}; {left}")),
        }
    }

    /// Clears any flag on our inode, empties it, and removes its name if that still names it.
    /// Returns what remains, if anything.
    fn discard(&mut self) -> Option<String> {
        self.settled = true;
        let path = self.path();
        let fd = self.file.as_fd();
        if let Ok(f) = flags::of(fd, None)
            && f.lock_file()
            && let Err(e) = flags::clear(fd, f)
        {
            return Some(format!(
                "the temporary file {} was flagged {} (inside the jail?) and the flags could not be \
                 cleared ({e}): it may hold the new content: remove it by hand",
                path.display(),
                f.names()
            ));
        }
        if let Err(e) = self.file.set_len(0).and_then(|()| self.file.sync_all()) {
            return Some(format!(
                "the temporary file {} could not be emptied ({e}): it may hold the new content: remove it \
                 by hand",
                path.display()
            ));
        }
        match fstatat(self.dir, self.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if same_inode(&st, &self.created) => {}
            // Renamed away or replaced meanwhile: our inode is empty wherever it is.
            _ => return None,
        }
        match unlinkat(self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => None,
            Err(e) => {
                let why = dir_locked(self.dir, self.full).unwrap_or_else(|| describe(e));
                Some(format!("an empty temporary file {} remains: {why}", path.display()))
            }
        }
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.discard();
        }
    }
}

/// Removes `root/rel` if it is a regular file. `Ok(false)`: nothing was there.
pub fn remove(root: &Path, rel: &Path) -> Result<bool> {
    remove_matching(root, rel, None)
}

/// Removes `root/rel` if it is still the regular file `id` (what was judged is what goes, not a
/// file the jail put under that name since). `Ok(false)`: nothing, or another file, is there.
pub fn remove_if(root: &Path, rel: &Path, id: FileId) -> Result<bool> {
    remove_matching(root, rel, Some(id))
}

fn remove_matching(root: &Path, rel: &Path, id: Option<FileId>) -> Result<bool> {
    let full = root.join(rel);
    let (dir, name) = open_parent(root, rel)?;
    match lstat_at(&dir, name, &full)? {
        None => Ok(false),
        Some(st) if id.is_some_and(|id| id != FileId::of(&st)) => Ok(false),
        Some(st) if is_regular(&st) => {
            unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir).map_err(|e| {
                let why = match (e, flags::of(dir.as_fd(), Some(name))) {
                    (Errno::EPERM, Ok(f)) if f.lock_file() => {
                        format!("it is flagged {} (set inside the jail?) ({})", f.names(), f.undo(&full))
                    }
                    (Errno::EPERM, _) => dir_locked(&dir, &full).unwrap_or_else(|| describe(e)),
                    (e, _) => describe(e),
                };
                Error::write(&full, why)
            })?;
            fsync(&dir).map_err(|e| Error::write(&full, describe(e)))?;
            Ok(true)
        }
        Some(st) => Err(Error::write(
            &full,
            format!("it is {} (planted in the jail?); refusing to remove it", kind(&st)),
        )),
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

    pub(super) fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("jails/web/root");
        std::fs::create_dir_all(&root).unwrap();
        (dir, root)
    }

    pub(super) fn entries(dir: &Path) -> Vec<String> {
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
        assert!(inspect(&root, Path::new("fifo"), me()).is_err());
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
    fn one_definition_of_already_right() {
        let (_d, root) = setup();
        let env = root.join(".env");
        write(&root, Path::new(".env"), b"x\n", me(), &ok).unwrap();
        let holds = || inspect(&root, Path::new(".env"), me()).unwrap().unwrap().holds(|b| b == b"x\n");
        assert!(holds());
        assert!(!inspect(&root, Path::new(".env"), me()).unwrap().unwrap().holds(|b| b == b"y\n"));
        for mode in [0o644, 0o640, 0o400, 0o2600, 0o700] {
            std::fs::set_permissions(&env, std::fs::Permissions::from_mode(mode)).unwrap();
            let current = inspect(&root, Path::new(".env"), me()).unwrap().unwrap();
            assert_eq!(current.problem(), Some(format!("mode {mode:04o}, not 0600").as_str()));
            assert!(!holds());
            assert_eq!(write(&root, Path::new(".env"), b"x\n", me(), &ok).unwrap(), Outcome::Written);
            assert!(holds());
        }
        let other = Owner { uid: me().uid + 1, gid: me().gid };
        assert!(
            inspect(&root, Path::new(".env"), other)
                .unwrap()
                .unwrap()
                .problem()
                .unwrap()
                .starts_with("owned by")
        );
        std::fs::hard_link(&env, root.join("second")).unwrap();
        assert_eq!(
            inspect(&root, Path::new(".env"), me()).unwrap().unwrap().problem(),
            Some("2 hard links, not 1")
        );
        assert_eq!(write(&root, Path::new(".env"), b"x\n", me(), &ok).unwrap(), Outcome::Written);
        assert!(holds());
        assert!(inspect(&root, Path::new("absent"), me()).unwrap().is_none());
    }

    #[test]
    fn temporary_names_carry_the_pid() {
        let prefix = temp_prefix(OsStr::new(".env"));
        assert_eq!(prefix, OsStr::new("..env.colibri-tmp."));
        let name = temp_name(OsStr::new(".env"));
        assert_eq!(
            temp_pid(name.as_bytes(), prefix.as_bytes()),
            Some(i32::try_from(std::process::id()).unwrap())
        );
        for other in [
            "..env.colibri-tmp.12",
            "..env.colibri-tmp.x.1",
            "..env.colibri-tmp.0.1",
            "..env.colibri-tmp.12.",
            "..env.colibri-tmp.+5.1",
            "..env.colibri-tmp.-5.1",
            ".env",
        ] {
            assert_eq!(temp_pid(other.as_bytes(), prefix.as_bytes()), None, "{other}");
        }
        assert_eq!(temp_pid(b"..env.colibri-tmp.12.000000001", prefix.as_bytes()), Some(12));
    }

    #[test]
    fn content_over_the_limit_is_refused_before_anything() {
        let (_d, root) = setup();
        let big = vec![b'x'; usize::try_from(MAX_FILE).unwrap() + 1];
        let e = write(&root, Path::new(".env"), &big, me(), &ok).unwrap_err();
        assert!(e.to_string().contains("over the 16 MiB (16777216 bytes) limit"), "{e}");
        assert!(entries(&root).is_empty());
    }

    #[test]
    fn a_missing_root_and_a_missing_directory_inside_are_told_apart() {
        let (d, root) = setup();
        let e = write(&d.path().join("jails/gone/root"), Path::new(".env"), b"x\n", me(), &ok).unwrap_err();
        let gone = d.path().join("jails/gone");
        assert!(
            e.to_string().contains(&format!("the jail root does not exist ({} is missing)", gone.display())),
            "{e}"
        );
        let e = write(&root, Path::new("usr/local/etc/app.env"), b"x\n", me(), &ok).unwrap_err();
        assert!(e.to_string().contains("directory /usr does not exist inside the jail"), "{e}");
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

/// What a jail's root can do with file flags, staged with their Linux twins (`chattr +a`/`+i`).
#[cfg(all(test, target_os = "linux"))]
mod flag_tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn me() -> Owner {
        Owner { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() }
    }

    fn ok(_: &[u8]) -> bool {
        true
    }

    /// A file or directory flagged for the test's duration (cleared on drop, even on panic).
    struct Flagged(File);

    impl Flagged {
        /// `None` (after saying so) where this file system cannot take the flag.
        fn new(path: &Path, append: bool, immutable: bool) -> Option<Flagged> {
            let file = File::open(path).unwrap();
            match flags::set(file.as_fd(), append, immutable) {
                Ok(()) => Some(Flagged(file)),
                Err(e) => {
                    assert!(std::env::var("CI").as_deref() != Ok("true"), "chattr must work in CI: {e}");
                    eprintln!("SKIPPED: {} cannot take chattr flags ({e})", path.display());
                    None
                }
            }
        }
    }

    impl Drop for Flagged {
        fn drop(&mut self) {
            let f = flags::of(self.0.as_fd(), None).unwrap();
            flags::clear(self.0.as_fd(), f).unwrap();
        }
    }

    use super::tests::{entries, setup};

    #[test]
    fn a_flagged_directory_is_refused_before_anything_is_created() {
        for (append, immutable) in [(true, false), (false, true)] {
            let (_d, root) = setup();
            write(&root, Path::new(".env"), b"old\n", me(), &ok).unwrap();
            let Some(_flag) = Flagged::new(&root, append, immutable) else { return };
            let e = write(&root, Path::new(".env"), b"new\n", me(), &ok).unwrap_err();
            assert_eq!(e.exit_code(), 73);
            assert!(
                e.to_string().contains("its directory") && e.to_string().contains("nothing was written"),
                "{e}"
            );
            assert_eq!(entries(&root), [".env"]);
            assert_eq!(std::fs::read(root.join(".env")).unwrap(), b"old\n");
            // Already right: nothing to write, so nothing to refuse.
            assert_eq!(write(&root, Path::new(".env"), b"old\n", me(), &ok).unwrap(), Outcome::Unchanged);
        }
    }

    #[test]
    fn a_flagged_target_is_refused_unless_unchanged() {
        for (append, immutable) in [(true, false), (false, true)] {
            let (_d, root) = setup();
            write(&root, Path::new(".env"), b"old\n", me(), &ok).unwrap();
            let Some(_flag) = Flagged::new(&root.join(".env"), append, immutable) else { return };
            assert_eq!(write(&root, Path::new(".env"), b"old\n", me(), &ok).unwrap(), Outcome::Unchanged);
            let e = write(&root, Path::new(".env"), b"new\n", me(), &ok).unwrap_err();
            assert!(
                e.to_string().contains("cannot be replaced") && e.to_string().contains("chattr -"),
                "{e}"
            );
            assert_eq!(entries(&root), [".env"]);
            let e = remove(&root, Path::new(".env")).unwrap_err();
            assert!(e.to_string().contains("flagged"), "{e}");
        }
    }

    #[test]
    fn a_temporary_file_flagged_after_its_creation_is_emptied_and_removed() {
        for (append, immutable) in [(true, false), (false, true)] {
            let (_d, root) = setup();
            let full = root.join(".env");
            let dir = open_dir_nofollow(&root).unwrap();
            let mut temp = Temp::create(&dir, OsStr::new(".env"), &full).unwrap();
            temp.prepare(me()).unwrap();
            temp.file.write_all(b"SECRET=1\n").unwrap();
            if let Err(e) = flags::set(temp.file.as_fd(), append, immutable) {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "chattr must work in CI: {e}");
                return;
            }
            let e = temp.place(OsStr::new(".env")).unwrap_err();
            assert!(e.to_string().contains("the temporary file was flagged"), "{e}");
            let e = temp.discard_after(e);
            assert!(!e.to_string().contains("remains"), "{e}");
            assert!(entries(&root).is_empty(), "{:?}", entries(&root));
        }
    }

    #[test]
    fn a_directory_flagged_after_the_temporary_file_leaves_it_empty_and_named() {
        let (_d, root) = setup();
        let full = root.join(".env");
        let dir = open_dir_nofollow(&root).unwrap();
        let mut temp = Temp::create(&dir, OsStr::new(".env"), &full).unwrap();
        temp.prepare(me()).unwrap();
        temp.file.write_all(b"SECRET=1\n").unwrap();
        let Some(flag) = Flagged::new(&root, true, false) else { return };
        let e = temp.place(OsStr::new(".env")).unwrap_err();
        let e = temp.discard_after(e);
        let left = entries(&root);
        assert_eq!(left.len(), 1);
        assert!(
            e.to_string().contains(&format!("an empty temporary file {}", root.join(&left[0]).display())),
            "{e}"
        );
        assert_eq!(std::fs::metadata(root.join(&left[0])).unwrap().len(), 0);
        // Its pid is ours and still runs: a later write in this process keeps it (the binary's
        // tests show the next run taking it away).
        drop(flag);
        write(&root, Path::new(".env"), b"new\n", me(), &ok).unwrap();
        assert_eq!(entries(&root).len(), 2);
    }

    #[test]
    fn temporary_files_of_dead_runs_are_swept_live_ones_kept() {
        let (_d, root) = setup();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = format!("..env.colibri-tmp.{dead}.000000001");
        let live = format!("..env.colibri-tmp.{}.000000002", std::process::id());
        let other = format!(".other.colibri-tmp.{dead}.000000003");
        for name in [&stale, &live, &other] {
            std::fs::write(root.join(name), b"SECRET=1\n").unwrap();
        }
        // A second name for the stale one: emptied through it would reach the other name too.
        let linked = format!("..env.colibri-tmp.{dead}.000000004");
        std::fs::write(root.join(&linked), b"KEEP\n").unwrap();
        std::fs::hard_link(root.join(&linked), root.join("keep")).unwrap();
        write(&root, Path::new(".env"), b"new\n", me(), &ok).unwrap();
        let mut expect = vec![".env".to_owned(), live, other, "keep".to_owned()];
        expect.sort();
        assert_eq!(entries(&root), expect);
        assert_eq!(
            std::fs::read(root.join("keep")).unwrap(),
            b"KEEP\n",
            "a file with another name is not emptied"
        );
        assert_eq!(std::fs::metadata(root.join("keep")).unwrap().nlink(), 1);
    }
}
