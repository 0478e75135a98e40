//! Real mounts for tests, confined to a mount namespace of the test's own thread.
//!
//! [`private`] runs a test body on a new thread that first unshares its mount namespace
//! (`unshare(CLONE_NEWNS)` affects the calling thread only) and makes every mount private, so
//! the mounts the body makes — and the mounts of every `colibri-vault` it starts, which inherit
//! the thread's namespace — are seen by nobody else and vanish with the thread. Needs root:
//! where the namespace cannot be made, the test is skipped through `support::skip` (which fails
//! under CI=true).
//!
//! [`table`] reads the thread's own mount table (`/proc/thread-self/mountinfo`: `/proc/self` is
//! the process's main thread, in another namespace); [`Unmount`] detaches every mount under a
//! directory when dropped, so a test's temporary directory can be removed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// Runs `body` on a thread with a mount namespace of its own; skips (loudly; a failure in CI)
/// where that is not possible.
pub fn private(what: &str, body: impl FnOnce() + Send + 'static) {
    let outcome = std::thread::spawn(move || {
        if !nix::unistd::geteuid().is_root() {
            return Some("needs root (CI runs as root)".to_owned());
        }
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
            return Some(format!("unshare(CLONE_NEWNS): {e}"));
        }
        if let Err(e) =
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        {
            return Some(format!("making / private: {e}"));
        }
        body();
        None
    })
    .join();
    match outcome {
        Ok(None) => {}
        Ok(Some(why)) => super::skip(what, &why),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// One line of the mount table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub target: PathBuf,
    pub read_only: bool,
    pub fstype: String,
    pub source: String,
}

fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 3 < field.len() && field[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            out.push(field[i + 1..i + 4].iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// The calling thread's mount table.
pub fn table() -> Vec<Mount> {
    table_of("/proc/thread-self/mountinfo")
}

/// The mount table of the process `pid` (in this thread's namespace if it was started here).
pub fn table_of(file: &str) -> Vec<Mount> {
    let text = std::fs::read(file).unwrap_or_default();
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let f: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let dash = f.iter().position(|x| *x == b"-")?;
            Some(Mount {
                target: PathBuf::from(OsStr::from_bytes(&unescape(f.get(4)?))),
                read_only: f.get(5)?.split(|&b| b == b',').any(|o| o == b"ro"),
                fstype: String::from_utf8_lossy(f.get(dash + 1)?).into_owned(),
                source: String::from_utf8_lossy(f.get(dash + 2)?).into_owned(),
            })
        })
        .collect()
}

/// The mounts at or under `dir`.
pub fn under(dir: &Path) -> Vec<Mount> {
    table().into_iter().filter(|m| m.target.starts_with(dir)).collect()
}

/// Detaches every mount at or under its directory when dropped (newest first).
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for m in under(&self.0).iter().rev() {
            let _ = umount2(&m.target, MntFlags::MNT_DETACH);
        }
    }
}

/// Mounts a `tmpfs` of `size` at `dir` (for a test's own "disk").
pub fn tmpfs(dir: &Path, size: &str) {
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::empty(),
        Some(format!("size={size},mode=0755").as_str()),
    )
    .unwrap_or_else(|e| panic!("tmpfs on {}: {e}", dir.display()));
}

/// A bind mount of `dir` alone (no mount below it) at `at`: what lies under the mounts in it.
pub fn bare(dir: &Path, at: &Path) {
    std::fs::create_dir_all(at).unwrap();
    mount(Some(dir), at, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .unwrap_or_else(|e| panic!("bind {}: {e}", dir.display()));
}
