//! A tenant's memory file system (delivery `memory`): a host-side `tmpfs` at
//! `$COLIBRI_RUN_DIR/mem/<tenant>` (mode 0700, owned as configured, [`SIZE`] at most), shown to
//! the jail read-only at its secrets directory, and gone at stop.
//!
//! The platform's part is one small interface, `imp` (FreeBSD: `tmpfs` and `nullfs -o ro`
//! through nmount(2); Linux, where the tests run it: `tmpfs`, a bind mount and a read-only
//! remount), with the same five verbs on both: mount a memory file system, bind it read-only
//! into a root, tell whether a descriptor is on a given mount, unmount one, list what is
//! mounted. Everything else is here, once.
//!
//! What it guarantees:
//! - **Never a path the jail controls.** The mount point is opened from `/` with the writer's
//!   no-follow walk (`safe_write::open_dir_creating`: a symlink at the mount point or at any
//!   level above it is refused; missing directories are made and opened the same way), and the
//!   mount is made on that descriptor, so no path is resolved again: Linux mounts on
//!   `/proc/self/fd/N`, FreeBSD on `.` after `fchdir(N)` (the kernel resolves a relative mount
//!   point from the working directory, and records the vnode's real path). Afterwards the mount
//!   table must show the view at the intended path, read-only, reachable from `/` without a link
//!   and on the mount the table names; anything else is unmounted and refused. Unmounting never
//!   goes by a path the jail could redirect: FreeBSD unmounts by file system ID, Linux through
//!   a descriptor reached with the no-follow walk and checked to be the listed mount.
//! - **Nothing on a disk.** The secrets are written only through the memory file system's
//!   root descriptor, after checking it is that mount; the directory under the mount must be
//!   empty. (Like any `tmpfs`, pages may be swapped: encrypt the host's swap.)
//! - **Nothing stale.** A tenant's mounts are found in the mount table (its tag on Linux, its
//!   directory on FreeBSD), so a view left at an old path (a changed root or mount point, a
//!   missed stop) is removed at the next start, and [`teardown`] leaves no view, no memory file
//!   system and no directory.
//!
//! Not for: what is written (`safe_write`, through the descriptors returned here) or when
//! (`provision`, `hook`).

#[cfg(target_os = "freebsd")]
#[path = "memfs/freebsd.rs"]
mod imp;
#[cfg(target_os = "linux")]
#[path = "memfs/linux.rs"]
mod imp;
#[cfg(not(any(target_os = "freebsd", target_os = "linux")))]
#[path = "memfs/other.rs"]
mod imp;

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, fchmod, fstat};
use nix::unistd::{Gid, Uid, fchown};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::safe_write::{self, NewDir};
use crate::sanitize::clean;
use crate::tenant::Owner;

/// Largest size of a tenant's memory file system: the env file and the set (each at most
/// `safe_write::MAX_FILE`), twice while a new one replaces the old, and a page per file. A
/// limit, not a reservation: a usual tenant uses a few KiB.
pub const SIZE: u64 = 128 * 1024 * 1024;

/// One mount, as the kernel lists it.
#[derive(Clone, Debug)]
pub struct Mounted {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
    pub read_only: bool,
    id: imp::Id,
}

/// The mount table, read once.
pub struct Table(Vec<Mounted>);

impl Table {
    pub fn read() -> Result<Table> {
        imp::mounted().map(Table).map_err(|e| Error::Config(format!("could not read the mount table: {e}")))
    }

    /// Every mount, in mount order.
    pub fn entries(&self) -> &[Mounted] {
        &self.0
    }

    /// What is mounted for the tenant at `place`, in mount order.
    pub fn of(&self, place: &Place) -> State {
        let mut state = State::default();
        for m in &self.0 {
            if imp::is_memory(m, &place.dir, &place.tag) {
                state.memory.push(m.clone());
            } else if imp::is_view(m, &place.dir, &place.tag) {
                state.views.push(m.clone());
            }
        }
        state
    }

    /// Mounts at `target` that are not the tenant's.
    fn others_at<'a>(&'a self, place: &'a Place, target: &'a Path) -> impl Iterator<Item = &'a Mounted> {
        self.0.iter().filter(move |m| {
            m.target == target
                && !imp::is_memory(m, &place.dir, &place.tag)
                && !imp::is_view(m, &place.dir, &place.tag)
        })
    }
}

/// A tenant's mounts.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Its memory file system (more than one only if something went wrong).
    pub memory: Vec<Mounted>,
    /// Its views in jails.
    pub views: Vec<Mounted>,
}

/// One of a tenant's mounts, for `status --json`.
#[derive(Serialize)]
pub struct MountReport {
    pub kind: &'static str,
    pub path: String,
    pub read_only: bool,
}

impl State {
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.views.is_empty()
    }

    /// Each mount, for `status --json`.
    pub fn report(&self) -> Vec<MountReport> {
        let one = |kind, m: &Mounted| MountReport {
            kind,
            path: clean(&m.target.to_string_lossy()),
            read_only: m.read_only,
        };
        self.memory
            .iter()
            .map(|m| one("memory fs", m))
            .chain(self.views.iter().map(|m| one("jail view", m)))
            .collect()
    }

    /// One line: what is mounted, and what is wrong with it given the intended view.
    pub fn describe(&self, intended: &Path) -> String {
        if self.is_empty() {
            return "not mounted".into();
        }
        let mut parts = Vec::new();
        match self.memory.len() {
            0 => parts.push("no memory fs".to_owned()),
            1 => parts.push("memory fs".to_owned()),
            n => parts.push(format!("{n} memory fs (stale)")),
        }
        for v in &self.views {
            let mut what = format!(
                "{} at {}",
                if v.read_only { "read-only" } else { "WRITABLE" },
                clean(&v.target.to_string_lossy())
            );
            if v.target != intended {
                what.push_str(" (stale)");
            }
            parts.push(what);
        }
        if !self.views.iter().any(|v| v.target == intended) {
            parts.push("no view in the jail".into());
        }
        parts.join(", ")
    }

    /// Whether it is exactly what a provisioned, running jail has: one memory fs, one read-only
    /// view at `intended`.
    pub fn is_right(&self, intended: &Path) -> bool {
        self.memory.len() == 1
            && self.views.len() == 1
            && self.views[0].target == intended
            && self.views[0].read_only
    }
}

/// Where a tenant's memory file system lives.
#[derive(Clone, Debug)]
pub struct Place {
    /// `$COLIBRI_RUN_DIR/mem/<tenant>`, the run dir's symlinks resolved (the mount table shows
    /// real paths).
    pub dir: PathBuf,
    /// What its mounts are called (Linux's mount source).
    tag: String,
}

impl Place {
    /// `tenant` is a validated tenant name (a plain path component).
    pub fn new(run_dir: &Path, tenant: &str) -> Place {
        let run = std::fs::canonicalize(run_dir).unwrap_or_else(|_| crate::config::normalize_dir(run_dir));
        Place { dir: run.join("mem").join(tenant), tag: format!("colibri-vault-{tenant}") }
    }

    /// Whether anything of the tenant's may be mounted: the directory exists from before the
    /// first mount until the last unmount (a cheap check, no mount table).
    pub fn may_exist(&self) -> bool {
        std::fs::symlink_metadata(&self.dir).is_ok()
    }

    fn shown(&self) -> String {
        self.dir.display().to_string()
    }
}

fn mount_error(what: &str, place: &Place, e: &dyn std::fmt::Display) -> Error {
    Error::write(&place.dir, format!("could not {what}: {e}"))
}

/// The tenant's memory file system's root, if it is mounted (never mounts anything).
pub fn open_memory(place: &Place) -> Result<Option<OwnedFd>> {
    let table = Table::read()?;
    let Some(m) = table.of(place).memory.pop() else { return Ok(None) };
    let fd = safe_write::open_dir_nofollow(&place.dir)?;
    if imp::on_mount(&fd, &m) { Ok(Some(fd)) } else { Ok(None) }
}

/// Mounts the tenant's memory file system if it is not, and returns its root, checked to be
/// that mount, mode 0700 and owned by `owner`.
pub fn ensure_memory(place: &Place, run_dir: &Path, owner: Owner) -> Result<OwnedFd> {
    let fd = if let Some(fd) = open_memory(place)? {
        fd
    } else {
        {
            crate::lock::private_dir(run_dir)?;
            let mem = place.dir.parent().unwrap_or(&place.dir);
            for dir in [mem, &place.dir] {
                match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(Error::CreateDir { path: dir.to_owned(), source }),
                }
            }
            let under = safe_write::open_dir_nofollow(&place.dir)?;
            // What lies under the mount is on the host's disk: nothing of ours may be there.
            if std::fs::read_dir(&place.dir).map_err(|e| mount_error("list it", place, &e))?.next().is_some()
            {
                return Err(Error::write(
                    &place.dir,
                    "it is not empty, so it is not a memory file system colibri-vault mounted; nothing was written (look at it, empty it, and provision again)",
                ));
            }
            imp::mount_memory(&under, &place.tag, owner, SIZE)
                .map_err(|e| mount_error("mount a memory file system there", place, &e))?;
            drop(under);
            open_memory(place)?.ok_or_else(|| {
                Error::write(&place.dir, "the memory file system just mounted is not in the mount table")
            })?
        }
    };
    // The owner may have changed (tenant set --owner) since it was mounted.
    let st = fstat(&fd).map_err(|e| mount_error("check its root", place, &e))?;
    if st.st_mode & 0o7777 != 0o700 {
        fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(|e| mount_error("set its mode", place, &e))?;
    }
    if (st.st_uid, st.st_gid) != (owner.uid, owner.gid) {
        fchown(&fd, Some(Uid::from_raw(owner.uid)), Some(Gid::from_raw(owner.gid)))
            .map_err(|e| mount_error("set its owner", place, &e))?;
    }
    Ok(fd)
}

/// Makes the tenant's memory file system (`memory`, its root) visible read-only at `rel`
/// beneath the jail root `root`, and nowhere else: views elsewhere, writable or doubled are
/// unmounted first. The mount point is made or opened with the no-follow walk.
pub fn ensure_view(place: &Place, memory: &OwnedFd, root: &Path, rel: &Path) -> Result<()> {
    let intended = root.join(rel);
    let table = Table::read()?;
    let mut good = false;
    for v in table.of(place).views.iter().rev() {
        let keep = !good
            && v.target == intended
            && v.read_only
            && safe_write::open_dir_nofollow(&intended).is_ok_and(|fd| imp::on_mount(&fd, v));
        if keep {
            good = true;
        } else {
            imp::unmount(v).map_err(|e| stale_error(v, &e))?;
        }
    }
    if good {
        return Ok(());
    }
    if let Some(other) = table.others_at(place, &intended).next() {
        return Err(Error::write(
            &intended,
            format!(
                "a {} file system from {} is mounted there already (jail.conf mount.fstab?); choose another --mount-point",
                clean(&other.fstype),
                clean(&other.source)
            ),
        ));
    }
    let me = Owner { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() };
    let (parent, name, target) = safe_write::open_dir_creating(root, rel, NewDir { mode: 0o755, owner: me })?;
    let bound = imp::bind_read_only(memory, &place.dir, &parent, &name, &target);
    drop(target);
    if let Err(e) = bound {
        // Half made (bound, not yet read-only): undone.
        for v in Table::read()?.of(place).views.iter().rev().filter(|v| v.target == intended) {
            imp::unmount(v).map_err(|e| stale_error(v, &e))?;
        }
        return Err(Error::write(&intended, format!("could not mount the memory file system there: {e}")));
    }
    verify_view(place, &intended)
}

/// After a mount: the view is at `intended` and nowhere else, read-only, reachable from `/`
/// without a link, and is the mount the table names there. Anything else is undone.
fn verify_view(place: &Place, intended: &Path) -> Result<()> {
    let table = Table::read()?;
    let views = table.of(place).views;
    let mut problem = None;
    for v in views.iter().rev() {
        let here = v.target == intended
            && v.read_only
            && problem.is_none()
            && safe_write::open_dir_nofollow(intended).is_ok_and(|fd| imp::on_mount(&fd, v));
        if here {
            return Ok(());
        }
        problem.get_or_insert_with(|| {
            if v.target == intended {
                "it is not read-only, or not reachable without a link".to_owned()
            } else {
                format!("it landed at {} (a link planted meanwhile?)", clean(&v.target.to_string_lossy()))
            }
        });
        imp::unmount(v).map_err(|e| stale_error(v, &e))?;
    }
    Err(Error::write(
        intended,
        format!(
            "the read-only view was not where intended: {}; undone",
            problem.unwrap_or_else(|| "not in the mount table".into())
        ),
    ))
}

fn stale_error(m: &Mounted, e: &dyn std::fmt::Display) -> Error {
    Error::write(&m.target, format!("could not unmount colibri-vault's mount there: {e}"))
}

/// What [`teardown`] did.
#[derive(Debug, Default)]
pub struct Teardown {
    /// Mount points unmounted (views first).
    pub unmounted: Vec<PathBuf>,
    /// Whether the directory was removed.
    pub removed_dir: bool,
}

/// Unmounts every view of the tenant's memory file system and the file system itself, and
/// removes its directory: nothing of it stays.
pub fn teardown(place: &Place) -> Result<Teardown> {
    let mut done = Teardown::default();
    if !place.may_exist() {
        // Nothing mounted without the directory; a view left by hand would still be listed.
        let state = Table::read()?.of(place);
        if state.is_empty() {
            return Ok(done);
        }
    }
    let state = Table::read()?.of(place);
    let mut errors = Vec::new();
    for m in state.views.iter().rev().chain(state.memory.iter().rev()) {
        match imp::unmount(m) {
            Ok(()) => done.unmounted.push(m.target.clone()),
            Err(e) => errors.push(stale_error(m, &e).to_string()),
        }
    }
    if errors.is_empty() && place.may_exist() {
        match std::fs::remove_dir(&place.dir) {
            Ok(()) => done.removed_dir = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("could not remove {}: {e}", place.shown())),
        }
    }
    let left = Table::read()?.of(place);
    if !left.is_empty() && errors.is_empty() {
        errors.push(format!("still mounted: {}", left.describe(Path::new(""))));
    }
    if errors.is_empty() { Ok(done) } else { Err(Error::write(&place.dir, errors.join("; "))) }
}

/// Whether `dir`'s owner and mode are what a memory file system root of `owner` has.
pub fn root_is(dir: &Path, owner: Owner) -> bool {
    std::fs::metadata(dir)
        .is_ok_and(|m| m.mode() & 0o7777 == 0o700 && (m.uid(), m.gid()) == (owner.uid, owner.gid))
}

/// The file name the env file has inside the memory file system: `--env-path`'s.
pub fn env_name(env_path: &Path) -> &OsStr {
    env_path.file_name().unwrap_or(OsStr::new(".env"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_under_the_run_dir() {
        let d = tempfile::tempdir().unwrap();
        let place = Place::new(d.path(), "web");
        assert_eq!(place.dir, std::fs::canonicalize(d.path()).unwrap().join("mem/web"));
        assert_eq!(place.tag, "colibri-vault-web");
        assert!(!place.may_exist());
        assert_eq!(
            Place::new(Path::new("/nonexistent/./run/"), "x").dir,
            Path::new("/nonexistent/run/mem/x")
        );
    }

    #[test]
    fn states_describe_what_is_wrong() {
        let m = |target: &str, ro: bool| Mounted {
            source: "s".into(),
            target: target.into(),
            fstype: "tmpfs".into(),
            read_only: ro,
            id: imp::Id::default(),
        };
        let intended = Path::new("/j/web/root/var/run/secrets");
        let right = State {
            memory: vec![m("/run/mem/web", false)],
            views: vec![m("/j/web/root/var/run/secrets", true)],
        };
        assert!(right.is_right(intended));
        assert_eq!(right.describe(intended), "memory fs, read-only at /j/web/root/var/run/secrets");
        let stale = State { memory: vec![], views: vec![m("/j/old/secrets", false)] };
        assert!(!stale.is_right(intended));
        assert_eq!(
            stale.describe(intended),
            "no memory fs, WRITABLE at /j/old/secrets (stale), no view in the jail"
        );
        assert_eq!(State::default().describe(intended), "not mounted");
        assert_eq!(right.report().len(), 2);
    }
}
