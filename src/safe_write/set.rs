//! One file per variable, swapped in as a whole: the `files` layout.
//!
//! In a secrets directory (on the jail's disk, or the root of the tenant's memory file system),
//! a set of files — one per variable, named after it, holding its value, mode 0400, owned as
//! configured — appears at once, with one rename. A mounted directory cannot itself be replaced
//! by a rename, so the well-known `..data` pattern is used inside it:
//! - every file is written into a new directory `..set.PID.NANOS` (mode 0500, the configured
//!   owner), created `O_EXCL` with its final mode and owner before its first byte, synced, read
//!   back and compared;
//! - a symlink `..data.colibri-tmp.PID.NANOS -> ..set.PID.NANOS` is renamed over `..data`: the
//!   one step that changes what a reader sees, so a reader going through `..data` sees the old
//!   set or the new one, never a mix;
//! - `NAME -> ..data/NAME` links give each variable its plain name (`$(cat DIR/DB_PASSWORD)`);
//!   links of names that are gone, and the old set, are removed afterwards (the old set's files
//!   unlinked, not emptied: a reader that opened one before the swap still reads its value).
//!
//! It keeps the writer's discipline (see `safe_write`): nothing is ever followed on the host's
//! side except links it has just read and checked (`..data` must name a set directory of ours,
//! a name's link must be `..data/NAME`); a name the jail planted as a directory, FIFO or device
//! refuses the write before anything is created, and a flagged directory or `..data` too; the
//! last look at the directories comes right before each first byte; on any failure before the
//! swap the new set is discarded through its own descriptors (each file unflagged, emptied,
//! unlinked; then the directory); set directories and temporary links that a killed run left
//! (their PID no longer runs) are emptied and removed by the next write, and make
//! [`inspect`] report the set as not right. A set already right ([`CurrentSet::holds`]) is not
//! rewritten: mtimes stay.
//!
//! Not for: the env file (`safe_write::write`), creating the secrets directory
//! (`safe_write::open_dir_creating`), mounting (`memfs`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, symlinkat, unlinkat};
use zeroize::Zeroizing;

use super::{
    MAX_FILE, MAX_FILE_TEXT, Outcome, beneath, describe, dir_flags, dir_locked, discard_stale, flags,
    is_regular, kind, lstat_at, open_regular, read_limited, same_inode,
};
use crate::error::{Error, Result};
use crate::tenant::Owner;

/// The link readers go through: `..data -> ..set.PID.NANOS`.
pub const DATA: &str = "..data";
const SET_PREFIX: &str = "..set.";
const LINK_TMP_PREFIX: &str = "..link.colibri-tmp.";

/// Most files one set may hold.
pub const MAX_FILES: usize = 1024;
/// Longest variable name a file may have (well within `NAME_MAX`).
pub const MAX_NAME: usize = 200;

const FILE_MODE: libc::mode_t = 0o400;
const SET_MODE: libc::mode_t = 0o500;

/// One set of files: (variable name, content), names unique.
pub type Files<'a> = [(&'a str, &'a [u8])];

/// Why `files` cannot be a set, if it cannot: too many files, a name that is not a plain
/// variable name or too long, more than [`MAX_FILE`] bytes in all (callers check first, to name
/// the variable).
pub fn too_large_or_invalid(files: &Files<'_>) -> Option<String> {
    if files.len() > MAX_FILES {
        return Some(format!("{} variables, more than the {MAX_FILES} files a set may hold", files.len()));
    }
    if let Some((name, _)) = files.iter().find(|(n, _)| !crate::kvfile::is_name(n) || n.len() > MAX_NAME) {
        return Some(format!(
            "the variable name {} cannot be a file name (at most {MAX_NAME} bytes)",
            crate::sanitize::clean(&name[..name.len().min(64)])
        ));
    }
    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    (total > MAX_FILE).then(|| format!("{total} bytes in all, over the {MAX_FILE_TEXT} limit"))
}

/// The set in a directory as it is now, judged as [`write`] judges it.
pub struct CurrentSet {
    /// (name, content), in name order.
    files: Vec<(String, Zeroizing<Vec<u8>>)>,
    problem: Option<String>,
}

impl CurrentSet {
    /// Why it is not what [`write`] leaves, if it is not.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// The set's digest (`delivery::set_digest`).
    pub fn digest(&self) -> String {
        crate::delivery::set_digest(self.files.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
    }

    /// The one definition of "unchanged": no problem, and exactly these files.
    pub fn holds(&self, files: &Files<'_>) -> bool {
        let mut wanted: Vec<(&str, &[u8])> = files.to_vec();
        wanted.sort_by(|a, b| a.0.cmp(b.0));
        self.problem.is_none()
            && self.files.len() == wanted.len()
            && self.files.iter().zip(&wanted).all(|((n, b), (wn, wb))| n == wn && b.as_slice() == *wb)
    }

    /// No problem, and the digest `digest` (freshness).
    pub fn holds_digest(&self, digest: &str) -> bool {
        self.problem.is_none() && self.digest() == digest
    }
}

fn err(shown: &Path, problem: impl Into<String>) -> Error {
    Error::write(shown, problem)
}

fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn stamp() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}.{nanos:09}", std::process::id())
}

/// The PID in `PREFIX<pid>.<nanos>`, if `entry` is such a name.
fn pid_of(entry: &[u8], prefix: &str) -> Option<i32> {
    super::temp_pid(entry, prefix.as_bytes())
}

/// Whether the process `pid` no longer runs (so what it left is stale).
fn gone(pid: i32) -> bool {
    pid != i32::try_from(std::process::id()).unwrap_or(0)
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH)
}

/// The names in the directory open at `dir`.
fn list(dir: &OwnedFd, shown: &Path) -> Result<Vec<OsString>> {
    let listing = nix::dir::Dir::openat(dir, ".", dir_flags(), Mode::empty())
        .map_err(|e| err(shown, format!("could not list it: {}", describe(e))))?;
    Ok(listing
        .into_iter()
        .filter_map(std::result::Result::ok)
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
        .filter(|n| n != "." && n != "..")
        .collect())
}

/// Where the symlink `name` leads, if it is a symlink.
fn link_target(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<Option<OsString>> {
    match lstat_at(dir, name, shown)? {
        Some(st) if is_symlink(&st) => readlinkat(dir, name).map(Some).map_err(|e| {
            err(shown, format!("could not read the link {}: {}", name.to_string_lossy(), describe(e)))
        }),
        _ => Ok(None),
    }
}

/// The set directory `..data` names, if it names one of ours.
fn data_target(dir: &OwnedFd, shown: &Path) -> Result<Option<OsString>> {
    Ok(link_target(dir, OsStr::new(DATA), shown)?.filter(|t| pid_of(t.as_bytes(), SET_PREFIX).is_some()))
}

/// The variable a link `NAME -> ..data/NAME` of ours is for.
fn linked_name(target: &OsStr) -> Option<&str> {
    let rest = target.as_bytes().strip_prefix(b"..data/")?;
    std::str::from_utf8(rest).ok().filter(|n| crate::kvfile::is_name(n))
}

/// The set in the directory open at `dir` (`shown`: its path, for messages), `None` when there
/// is no trace of one.
pub fn inspect(dir: &OwnedFd, shown: &Path, owner: Owner) -> Result<Option<CurrentSet>> {
    let mut problems = Vec::new();
    let data = lstat_at(dir, OsStr::new(DATA), shown)?;
    let target = match &data {
        None => None,
        Some(st) if is_symlink(st) => {
            let target = data_target(dir, shown)?;
            if target.is_none() {
                problems.push(format!("{DATA} does not lead to a set directory of colibri-vault's"));
            }
            target
        }
        Some(st) => {
            problems.push(format!("{DATA} is {} (planted in the jail?)", kind(st)));
            None
        }
    };
    let mut files = Vec::new();
    if let Some(target) = &target {
        read_set(dir, target, shown, owner, &mut files, &mut problems)?;
    }
    let mut traces = data.is_some();
    for entry in list(dir, shown)? {
        let bytes = entry.as_bytes();
        if Some(&entry) == target.as_ref() || bytes == DATA.as_bytes() {
            continue;
        }
        if pid_of(bytes, SET_PREFIX).is_some() || pid_of(bytes, LINK_TMP_PREFIX).is_some() {
            traces = true;
            problems.push(format!("{} is left from an earlier write", entry.to_string_lossy()));
        } else if let Some(name) = link_target(dir, &entry, shown)?.as_deref().and_then(linked_name) {
            traces = true;
            if !files.iter().any(|(n, _)| n == name) {
                problems.push(format!("the link {} of a variable that is gone", entry.to_string_lossy()));
            }
        }
    }
    for (name, _) in &files {
        let want = format!("..data/{name}");
        if link_target(dir, OsStr::new(name), shown)?.as_deref() != Some(OsStr::new(&want)) {
            problems.push(format!("{name} is not the link {want}"));
        }
    }
    if !traces && files.is_empty() {
        return Ok(None);
    }
    Ok(Some(CurrentSet { files, problem: (!problems.is_empty()).then(|| problems.join(", ")) }))
}

/// Reads the set directory `target` into `files`, noting what is not as [`write`] leaves it.
fn read_set(
    dir: &OwnedFd,
    target: &OsStr,
    shown: &Path,
    owner: Owner,
    files: &mut Vec<(String, Zeroizing<Vec<u8>>)>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let set_shown = shown.join(target);
    let set = match openat(dir, target, dir_flags() | beneath(), Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            problems.push(format!("{DATA} leads to {} ({})", set_shown.display(), describe(e)));
            return Ok(());
        }
    };
    let st = fstat(&set).map_err(|e| err(&set_shown, describe(e)))?;
    if st.st_mode & 0o7777 != SET_MODE || (st.st_uid, st.st_gid) != (owner.uid, owner.gid) {
        problems.push(format!(
            "{} is mode {:04o}, owned by {}:{} (not 0500, {owner})",
            set_shown.display(),
            st.st_mode & 0o7777,
            st.st_uid,
            st.st_gid
        ));
    }
    let mut total = 0u64;
    for entry in list(&set, &set_shown)? {
        let path = set_shown.join(&entry);
        let Some(name) = entry.to_str().filter(|n| crate::kvfile::is_name(n)) else {
            problems.push(format!("{} is not a file of the set", path.display()));
            continue;
        };
        match lstat_at(&set, &entry, &path)? {
            Some(st) if is_regular(&st) => {}
            Some(st) => {
                problems.push(format!("{} is {}", path.display(), kind(&st)));
                continue;
            }
            None => continue,
        }
        let (mut file, st) = open_regular(&set, &entry, OFlag::O_RDONLY, &path)?;
        let bytes = read_limited(&mut file, &path)?;
        total += bytes.len() as u64;
        let mode = st.st_mode & 0o7777;
        if mode != FILE_MODE || (st.st_uid, st.st_gid) != (owner.uid, owner.gid) || st.st_nlink != 1 {
            problems.push(format!(
                "{} is mode {mode:04o}, owned by {}:{}, {} links (not 0400, {owner}, 1 link)",
                path.display(),
                st.st_uid,
                st.st_gid,
                st.st_nlink
            ));
        }
        files.push((name.to_owned(), bytes));
    }
    if total > MAX_FILE || files.len() > MAX_FILES {
        problems.push(format!("larger than a set may be ({MAX_FILES} files, {MAX_FILE_TEXT})"));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(())
}

/// Writes `files` as the set of the directory open at `dir` (`shown`: its path), unless it
/// already holds exactly them ([`CurrentSet::holds`]). On failure before the swap, the new set
/// is discarded and the old one stays.
pub fn write(dir: &OwnedFd, shown: &Path, files: &Files<'_>, owner: Owner) -> Result<Outcome> {
    if let Some(problem) = too_large_or_invalid(files) {
        return Err(err(shown, format!("{problem}; nothing was written")));
    }
    sweep(dir, shown)?;
    if let Some(current) = inspect(dir, shown, owner)?
        && current.holds(files)
    {
        return Ok(Outcome::Unchanged);
    }
    // Refused before anything is created: a name planted as something we cannot replace, a
    // directory that does not let a name go, a flagged `..data`.
    for name in files.iter().map(|(n, _)| *n).chain([DATA]) {
        if let Some(st) = lstat_at(dir, OsStr::new(name), shown)?
            && !is_symlink(&st)
            && !(is_regular(&st) && name != DATA)
        {
            return Err(err(
                shown,
                format!(
                    "{name} there is {} (planted in the jail?); refusing to replace it; nothing was written",
                    kind(&st)
                ),
            ));
        }
    }
    if let Some(problem) = dir_locked(dir, shown) {
        return Err(err(shown, format!("{problem}; nothing was written")));
    }
    if let Ok(f) = flags::of(dir.as_fd(), Some(OsStr::new(DATA)))
        && f.lock_file()
    {
        return Err(err(
            shown,
            format!(
                "{DATA} is flagged {} (set inside the jail?), so it cannot be replaced; nothing was written ({})",
                f.names(),
                f.undo(&shown.join(DATA))
            ),
        ));
    }
    let old = data_target(dir, shown)?;
    let mut set = NewSet::create(dir, shown)?;
    let result = files
        .iter()
        .try_for_each(|(name, bytes)| set.add(name, bytes, owner))
        .and_then(|()| set.seal(owner))
        .and_then(|()| set.swap());
    if let Err(e) = result {
        return Err(set.discard_after(e));
    }
    let new = set.name.clone();
    drop(set);
    fsync(dir).map_err(|e| err(shown, format!("could not sync the directory: {}", describe(e))))?;
    link(dir, shown, files)?;
    prune(dir, shown, files, old.as_deref(), &new)?;
    fsync(dir).map_err(|e| err(shown, format!("could not sync the directory: {}", describe(e))))?;
    Ok(Outcome::Written)
}

/// Gives each variable its plain name: `NAME -> ..data/NAME`, replaced (by a rename, never
/// followed) when it is anything else a name may be.
fn link(dir: &OwnedFd, shown: &Path, files: &Files<'_>) -> Result<()> {
    for (name, _) in files {
        let want = format!("..data/{name}");
        let name = OsStr::new(name);
        match lstat_at(dir, name, shown)? {
            None => match symlinkat(want.as_str(), dir, name) {
                Ok(()) => continue,
                Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(err(
                        shown,
                        format!("could not link {}: {}", name.to_string_lossy(), describe(e)),
                    ));
                }
            },
            Some(st)
                if is_symlink(&st)
                    && link_target(dir, name, shown)?.as_deref() == Some(OsStr::new(&want)) =>
            {
                continue;
            }
            Some(st) if is_symlink(&st) || is_regular(&st) => {}
            Some(st) => {
                return Err(err(
                    shown,
                    format!(
                        "{} became {} (inside the jail?); the new set is in place, read it as {want}",
                        name.to_string_lossy(),
                        kind(&st)
                    ),
                ));
            }
        }
        let tmp = format!("{LINK_TMP_PREFIX}{}", stamp());
        symlinkat(want.as_str(), dir, tmp.as_str())
            .and_then(|()| renameat(dir, tmp.as_str(), dir, name))
            .map_err(|e| {
                let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                err(shown, format!("could not link {}: {}", name.to_string_lossy(), describe(e)))
            })?;
    }
    Ok(())
}

/// Removes the links of variables no longer in `files`, the old set directory (`old`, what
/// `..data` named before the swap) and any other set directory but `new`.
fn prune(dir: &OwnedFd, shown: &Path, files: &Files<'_>, old: Option<&OsStr>, new: &OsStr) -> Result<()> {
    for entry in list(dir, shown)? {
        if let Some(name) = link_target(dir, &entry, shown)?.as_deref().and_then(linked_name)
            && !files.iter().any(|(n, _)| *n == name)
        {
            unlinkat(dir, entry.as_os_str(), UnlinkatFlags::NoRemoveDir).map_err(|e| {
                err(shown, format!("could not remove the link {}: {}", entry.to_string_lossy(), describe(e)))
            })?;
        }
    }
    // Writes of one tenant are serialized (the host-wide lock): once `new` is in place, any other
    // set directory is the old one or one a failed or killed write left.
    for entry in list(dir, shown)? {
        if pid_of(entry.as_bytes(), SET_PREFIX).is_some() && entry != new {
            // The old set was what readers saw: a reader that went through `..data` just before
            // the swap may be reading it still, and must get its old values or no file, never an
            // emptied one. A set nobody saw (a failed or killed write's) is emptied first.
            let how = if Some(entry.as_os_str()) == old { Discard::Unlink } else { Discard::Empty };
            discard_tree(dir, &entry, shown, how).map_err(|e| {
                Error::write(
                    shown,
                    format!("the new set is in place, but the old one could not be removed: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

/// Removes what killed runs left: set directories `..data` does not name, and temporary links,
/// whose PID no longer runs.
fn sweep(dir: &OwnedFd, shown: &Path) -> Result<()> {
    let live = data_target(dir, shown)?;
    for entry in list(dir, shown)? {
        let bytes = entry.as_bytes();
        if let Some(pid) = pid_of(bytes, SET_PREFIX)
            && gone(pid)
            && Some(&entry) != live.as_ref()
        {
            discard_tree(dir, &entry, shown, Discard::Empty)?;
        } else if let Some(pid) = pid_of(bytes, LINK_TMP_PREFIX)
            && gone(pid)
            && lstat_at(dir, &entry, shown)?.is_some_and(|st| is_symlink(&st))
        {
            let _ = unlinkat(dir, entry.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
    Ok(())
}

/// How [`discard_tree`] takes a set directory's files away.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Discard {
    /// Emptied through a descriptor, then unlinked: a set no reader saw (a copy of secrets must
    /// not outlive its name, e.g. when the directory cannot be removed).
    Empty,
    /// Unlinked only: a set readers saw, which one may be reading still.
    Unlink,
}

/// Removes the set directory `name` and what is in it (regular files as `how` says, anything
/// else unlinked).
fn discard_tree(dir: &OwnedFd, name: &OsStr, shown: &Path, how: Discard) -> Result<()> {
    let path = shown.join(name);
    let sub = match openat(dir, name, dir_flags() | beneath(), Mode::empty()) {
        Ok(fd) => fd,
        // Not a directory (planted under our name?): the name alone goes.
        Err(Errno::ENOTDIR | Errno::ELOOP | Errno::EMLINK) => {
            return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(|e| err(&path, describe(e)));
        }
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(err(&path, describe(e))),
    };
    // Ours is 0500: let its entries go, also when not running as root.
    let _ = fchmod(&sub, Mode::from_bits_truncate(0o700));
    for entry in list(&sub, &path)? {
        let full = path.join(&entry);
        match lstat_at(&sub, &entry, &full)? {
            Some(st) if is_regular(&st) && how == Discard::Empty => discard_stale(&sub, &entry, &full)?,
            Some(st) if is_dir(&st) => {
                return Err(err(
                    &full,
                    "a directory inside a set directory (made inside the jail?); remove it by hand",
                ));
            }
            Some(_) => unlinkat(&sub, entry.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| err(&full, describe(e)))?,
            None => {}
        }
    }
    match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(err(
            &path,
            format!("could not be removed ({}); it may hold old secrets: remove it by hand", describe(e)),
        )),
    }
}

/// Removes the set from the directory open at `dir`: the variables' links, `..data`, every set
/// directory (those no reader saw emptied first) and temporary link. `Ok(false)`: there was
/// none.
pub fn remove(dir: &OwnedFd, shown: &Path) -> Result<bool> {
    let live = data_target(dir, shown)?;
    let mut removed = false;
    for entry in list(dir, shown)? {
        let bytes = entry.as_bytes();
        let ours_link = link_target(dir, &entry, shown)?.as_deref().and_then(linked_name).is_some()
            || (bytes == DATA.as_bytes() && lstat_at(dir, &entry, shown)?.is_some_and(|st| is_symlink(&st)))
            || pid_of(bytes, LINK_TMP_PREFIX).is_some();
        if ours_link {
            unlinkat(dir, entry.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| err(&shown.join(&entry), describe(e)))?;
            removed = true;
        } else if pid_of(bytes, SET_PREFIX).is_some() {
            let how = if Some(&entry) == live.as_ref() { Discard::Unlink } else { Discard::Empty };
            discard_tree(dir, &entry, shown, how)?;
            removed = true;
        }
    }
    if removed {
        fsync(dir).map_err(|e| err(shown, describe(e)))?;
    }
    Ok(removed)
}

/// A set directory being written, from its creation to the swap; discarded through its
/// descriptors on every other path, a panic included.
struct NewSet<'a> {
    dir: &'a OwnedFd,
    shown: &'a Path,
    name: OsString,
    fd: OwnedFd,
    created: FileStat,
    /// Each file made so far, with what it was at creation.
    files: Vec<(OsString, File, FileStat)>,
    settled: bool,
}

impl<'a> NewSet<'a> {
    fn create(dir: &'a OwnedFd, shown: &'a Path) -> Result<NewSet<'a>> {
        let name = OsString::from(format!("{SET_PREFIX}{}", stamp()));
        mkdirat(dir, name.as_os_str(), Mode::from_bits_truncate(0o700))
            .map_err(|e| err(shown, format!("could not create a set directory: {}", describe(e))))?;
        let opened = openat(dir, name.as_os_str(), dir_flags() | beneath(), Mode::empty())
            .and_then(|fd| fstat(&fd).map(|st| (fd, st)));
        match opened {
            // Ours and empty (two links: its name and its `.`).
            Ok((fd, created)) if created.st_nlink == 2 => {
                Ok(NewSet { dir, shown, name, fd, created, files: Vec::new(), settled: false })
            }
            other => {
                let _ = unlinkat(dir, name.as_os_str(), UnlinkatFlags::RemoveDir);
                let why = other.map_or_else(describe, |_| "it was not empty (made inside the jail?)".into());
                Err(err(shown, format!("could not create a set directory: {why}; nothing was written")))
            }
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.shown.join(&self.name)
    }

    /// The last look before a secret byte: neither directory flagged.
    fn look(&self) -> Result<()> {
        for (fd, path) in [(self.dir, self.shown.to_owned()), (&self.fd, self.path())] {
            if let Some(problem) = dir_locked(fd, &path.join("x")) {
                return Err(err(self.shown, format!("{problem}; nothing was written")));
            }
        }
        Ok(())
    }

    /// One file: created `O_EXCL` 0400 and owned before its first byte, synced, read back.
    fn add(&mut self, name: &str, bytes: &[u8], owner: Owner) -> Result<()> {
        let full = self.path().join(name);
        let fail = |what: &str, e: &dyn std::fmt::Display| err(&full, format!("{what}: {e}"));
        self.look()?;
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | beneath(),
            Mode::from_bits_truncate(FILE_MODE),
        )
        .map_err(|e| fail("could not create it", &describe(e)))?;
        let created = fstat(&fd).map_err(|e| fail("could not check it", &describe(e)))?;
        self.files.push((OsString::from(name), File::from(fd), created));
        let index = self.files.len() - 1;
        {
            let file = self.files[index].1.as_fd();
            fchmod(file, Mode::from_bits_truncate(FILE_MODE))
                .map_err(|e| fail("could not set the mode", &e))?;
            fchown(file, Some(Uid::from_raw(owner.uid)), Some(Gid::from_raw(owner.gid)))
                .map_err(|e| fail("could not set the owner", &e))?;
            let st = fstat(file).map_err(|e| fail("could not check it", &describe(e)))?;
            let flagged = flags::of(file, None).is_ok_and(flags::Flags::lock_file);
            if st.st_nlink != 1 || flagged {
                return Err(err(
                    &full,
                    "it got another name or a flag before anything was written (inside the jail?); nothing was written",
                ));
            }
        }
        self.look()?;
        let file = &mut self.files[index].1;
        file.write_all(bytes).map_err(|e| fail("could not write", &e))?;
        file.sync_all().map_err(|e| fail("could not sync", &e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| fail("could not read back", &e))?;
        let back = read_limited(file, &full)?;
        if back.as_slice() != bytes {
            return Err(err(&full, "the file read back does not match; not replacing the old set"));
        }
        Ok(())
    }

    /// The directory's final mode and owner, synced.
    fn seal(&self, owner: Owner) -> Result<()> {
        let path = self.path();
        fchown(&self.fd, Some(Uid::from_raw(owner.uid)), Some(Gid::from_raw(owner.gid)))
            .and_then(|()| fchmod(&self.fd, Mode::from_bits_truncate(SET_MODE)))
            .and_then(|()| fsync(&self.fd))
            .map_err(|e| err(&path, format!("could not finish the set directory: {}", describe(e))))
    }

    /// The one rename that makes the set the one readers see.
    fn swap(&mut self) -> Result<()> {
        let tmp = format!("..data.colibri-tmp.{}", stamp());
        let result = symlinkat(self.name.as_os_str(), self.dir, tmp.as_str())
            .and_then(|()| renameat(self.dir, tmp.as_str(), self.dir, DATA));
        match result {
            Ok(()) => {
                self.settled = true;
                Ok(())
            }
            Err(e) => {
                let _ = unlinkat(self.dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                Err(err(self.shown, format!("could not swap the new set in: {}", describe(e))))
            }
        }
    }

    fn discard_after(&mut self, error: Error) -> Error {
        match self.discard() {
            None => error,
            Some(left) => match error {
                Error::Write { path, problem } => {
                    Error::Write { path, problem: format!("{problem}; {left}") }
                }
                other => err(self.shown, format!("{other}; {left}")),
            },
        }
    }

    /// Empties each file through its descriptor, removes it and then the directory, each only
    /// while its name still names what we made. Returns what remains, if anything.
    fn discard(&mut self) -> Option<String> {
        self.settled = true;
        let path = self.path();
        let _ = fchmod(&self.fd, Mode::from_bits_truncate(0o700));
        for (name, file, created) in &mut self.files {
            let fd = file.as_fd();
            if let Ok(f) = flags::of(fd, None)
                && f.lock_file()
                && flags::clear(fd, f).is_err()
            {
                return Some(format!(
                    "{} was flagged {} (inside the jail?) and could not be cleared: it may hold secrets: remove it by hand",
                    path.join(&*name).display(),
                    f.names()
                ));
            }
            if file.set_len(0).and_then(|()| file.sync_all()).is_err() {
                return Some(format!(
                    "{} could not be emptied: it may hold secrets: remove it by hand",
                    path.join(&*name).display()
                ));
            }
            if fstatat(&self.fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| same_inode(&st, created))
            {
                let _ = unlinkat(&self.fd, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
            }
        }
        match fstatat(self.dir, self.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if same_inode(&st, &self.created) => {}
            _ => return None,
        }
        match unlinkat(self.dir, self.name.as_os_str(), UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => None,
            Err(e) => Some(format!("an emptied set directory {} remains: {}", path.display(), describe(e))),
        }
    }
}

impl Drop for NewSet<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.discard();
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

    fn setup() -> (tempfile::TempDir, std::path::PathBuf, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("secrets");
        std::fs::create_dir(&dir).unwrap();
        let fd = super::super::open_dir_nofollow(&dir).unwrap();
        (d, dir, fd)
    }

    use super::super::tests::entries as names;

    #[test]
    fn a_set_is_swapped_in_whole_and_kept_when_unchanged() {
        let (_d, dir, fd) = setup();
        let one: &Files<'_> = &[("A", b"1"), ("B", b"two")];
        assert_eq!(write(&fd, &dir, one, me()).unwrap(), Outcome::Written);
        assert_eq!(std::fs::read(dir.join("A")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.join("..data/B")).unwrap(), b"two");
        let meta = std::fs::metadata(dir.join("A")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o400);
        assert_eq!(std::fs::read_link(dir.join("A")).unwrap(), Path::new("..data/A"));
        let before = std::fs::symlink_metadata(dir.join("..data")).unwrap().modified().unwrap();
        assert_eq!(write(&fd, &dir, one, me()).unwrap(), Outcome::Unchanged);
        assert_eq!(std::fs::symlink_metadata(dir.join("..data")).unwrap().modified().unwrap(), before);
        let current = inspect(&fd, &dir, me()).unwrap().unwrap();
        assert!(current.holds(one) && current.problem().is_none());
        assert_eq!(current.digest(), crate::delivery::set_digest(one.iter().copied()));

        // B goes, C comes: B's link goes too, and the old set directory.
        let two: &Files<'_> = &[("A", b"1"), ("C", b"3")];
        assert_eq!(write(&fd, &dir, two, me()).unwrap(), Outcome::Written);
        let left = names(&dir);
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.iter().any(|n| n.starts_with("..set.")));
        assert!(
            left.contains(&"..data".to_owned())
                && left.contains(&"A".to_owned())
                && left.contains(&"C".to_owned())
        );
        assert!(inspect(&fd, &dir, me()).unwrap().unwrap().holds(two));
        assert!(remove(&fd, &dir).unwrap());
        assert!(names(&dir).is_empty());
        assert!(!remove(&fd, &dir).unwrap());
        assert!(inspect(&fd, &dir, me()).unwrap().is_none());
    }

    #[test]
    fn what_is_not_as_written_is_a_problem_and_rewritten() {
        let (d, dir, fd) = setup();
        let set: &Files<'_> = &[("A", b"1"), ("B", b"2")];
        write(&fd, &dir, set, me()).unwrap();
        let data = std::fs::read_link(dir.join("..data")).unwrap();
        let a = dir.join(&data).join("A");
        std::fs::set_permissions(dir.join(&data), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o644)).unwrap();
        let current = inspect(&fd, &dir, me()).unwrap().unwrap();
        assert!(current.problem().unwrap().contains("mode 0644"), "{:?}", current.problem());
        assert!(!current.holds(set));
        assert_eq!(write(&fd, &dir, set, me()).unwrap(), Outcome::Written);
        assert!(inspect(&fd, &dir, me()).unwrap().unwrap().holds(set));

        // A name's link pointed at a host file: replaced, never followed.
        let host = d.path().join("host");
        std::fs::write(&host, b"host").unwrap();
        std::fs::remove_file(dir.join("B")).unwrap();
        symlink(&host, dir.join("B")).unwrap();
        assert!(inspect(&fd, &dir, me()).unwrap().unwrap().problem().unwrap().contains("B is not the link"));
        assert_eq!(write(&fd, &dir, set, me()).unwrap(), Outcome::Written);
        assert_eq!(std::fs::read(&host).unwrap(), b"host");
        assert_eq!(std::fs::read_link(dir.join("B")).unwrap(), Path::new("..data/B"));

        // ..data pointed at a host directory: not followed, replaced.
        std::fs::remove_file(dir.join("..data")).unwrap();
        symlink(d.path(), dir.join("..data")).unwrap();
        assert!(inspect(&fd, &dir, me()).unwrap().unwrap().problem().is_some());
        assert_eq!(write(&fd, &dir, set, me()).unwrap(), Outcome::Written);
        assert_eq!(std::fs::read(&host).unwrap(), b"host");
        assert!(inspect(&fd, &dir, me()).unwrap().unwrap().holds(set));
    }

    #[test]
    fn a_reader_of_the_old_set_gets_its_values_never_emptied_files() {
        use std::io::Read as _;
        let (_d, dir, fd) = setup();
        write(&fd, &dir, &[("A", b"old-a"), ("B", b"old-b")], me()).unwrap();
        // A reader went through ..data and opened A just before the next write swapped sets.
        let mut held = File::open(dir.join("A")).unwrap();
        write(&fd, &dir, &[("A", b"new-a"), ("B", b"new-b")], me()).unwrap();
        let mut value = Vec::new();
        held.read_to_end(&mut value).unwrap();
        assert_eq!(value, b"old-a", "the old set is unlinked, not emptied under its readers");
        assert_eq!(std::fs::read(dir.join("A")).unwrap(), b"new-a");
        assert_eq!(names(&dir).len(), 4, "the old set is gone: {:?}", names(&dir));
    }

    #[test]
    fn planted_directories_refuse_the_write_before_anything_is_created() {
        for planted in ["A", "..data"] {
            let (_d, dir, fd) = setup();
            std::fs::create_dir(dir.join(planted)).unwrap();
            let e = write(&fd, &dir, &[("A", b"secret")], me()).unwrap_err();
            assert_eq!(e.exit_code(), 73);
            assert!(e.to_string().contains("a directory (planted in the jail?)"), "{e}");
            assert_eq!(names(&dir), [planted], "nothing was created");
        }
    }

    #[test]
    fn what_a_killed_run_left_is_removed_by_the_next_write() {
        let (_d, dir, fd) = setup();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.join(format!("..set.{dead}.000000001"));
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("A"), b"old-secret").unwrap();
        std::fs::hard_link(stale.join("A"), dir.join("keep")).unwrap_or(());
        symlink("..set.x", dir.join(format!("..link.colibri-tmp.{dead}.000000002"))).unwrap();
        assert!(
            inspect(&fd, &dir, me())
                .unwrap()
                .unwrap()
                .problem()
                .unwrap()
                .contains("left from an earlier write")
        );
        write(&fd, &dir, &[("A", b"new")], me()).unwrap();
        let left = names(&dir);
        assert_eq!(left.len(), 4, "{left:?}: ..data, A, keep and the new set");
        assert_eq!(
            std::fs::read(dir.join("keep")).unwrap(),
            b"old-secret",
            "a file with another name is not emptied"
        );
        assert_eq!(std::fs::metadata(dir.join("keep")).unwrap().nlink(), 1);
    }

    #[test]
    fn sets_beyond_the_limits_are_refused() {
        let (_d, dir, fd) = setup();
        let names: Vec<String> = (0..=MAX_FILES).map(|i| format!("V{i}")).collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        assert!(write(&fd, &dir, &many, me()).unwrap_err().to_string().contains("more than the 1024 files"));
        assert!(write(&fd, &dir, &[("not-a-name", b"x")], me()).is_err());
        assert!(names_of(&dir).is_empty());
    }

    fn names_of(dir: &Path) -> Vec<String> {
        names(dir)
    }

    /// A jail's root flags the files directory (`chattr +a`/`+i`, the Linux twins of
    /// `uappnd`/`uchg`): refused before anything is created, the old set kept.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_flagged_directory_refuses_the_write_before_anything_is_created() {
        for (append, immutable) in [(true, false), (false, true)] {
            let (_d, dir, fd) = setup();
            write(&fd, &dir, &[("A", b"old")], me()).unwrap();
            let before = names(&dir);
            let file = File::open(&dir).unwrap();
            if let Err(e) = flags::set(file.as_fd(), append, immutable) {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "chattr must work in CI: {e}");
                return;
            }
            let result = write(&fd, &dir, &[("A", b"new-secret")], me());
            let f = flags::of(file.as_fd(), None).unwrap();
            flags::clear(file.as_fd(), f).unwrap();
            let e = result.unwrap_err();
            assert!(e.to_string().contains("nothing was written"), "{e}");
            assert_eq!(names(&dir), before, "nothing created");
            assert_eq!(std::fs::read(dir.join("A")).unwrap(), b"old");
        }
    }
}
