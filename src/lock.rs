//! The host-wide lock that serializes vault sessions across processes.
//!
//! Several jails may start at once, and a second `bw unlock` invalidates the first session's
//! key, so only one process may run a vault session at a time. The lock is flock(2) on
//! `$COLIBRI_RUN_DIR/vault.lock`: released by the kernel when the holder exits, however it
//! exits. The file is opened without following a link and without blocking, and must be a
//! private regular file of ours. The waiting loop, with its deadline (`COLIBRI_LOCK_TIMEOUT`), is
//! in `provision`.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

pub struct HostLock {
    _lock: Flock<File>,
}

/// Creates `dir` with mode 0700 if missing; refuses one that is a symlink or someone else's.
pub fn private_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::CreateDir { path: dir.to_owned(), source }),
        Err(source) => Err(Error::ReadFile { path: dir.to_owned(), source }),
        Ok(meta) if !meta.is_dir() => Err(Error::Config(format!(
            "{} must be a directory (it is a symlink or a file); remove it and let colibri-vault create it",
            dir.display()
        ))),
        Ok(meta) if meta.uid() != nix::unistd::geteuid().as_raw() => Err(Error::InsecureFile {
            path: dir.to_owned(),
            problem: format!("owned by uid {}, not by the user running colibri-vault", meta.uid()),
            fix: format!("chown {} {}", nix::unistd::geteuid(), dir.display()),
        }),
        Ok(meta) if meta.mode() & 0o022 != 0 => Err(Error::InsecureFile {
            path: dir.to_owned(),
            problem: format!("writable by group or others (mode {:04o})", meta.mode() & 0o7777),
            fix: format!("chmod 700 {}", dir.display()),
        }),
        Ok(_) => Ok(()),
    }
}

impl HostLock {
    /// Path of the lock file in `run_dir`.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("vault.lock")
    }

    /// Takes the lock if it is free right now; `Ok(None)` if another process holds it.
    /// Waiting (with its deadline, signals and group-commit answers) is the caller's loop:
    /// `provision::session::lock`.
    pub fn try_acquire(run_dir: &Path) -> Result<Option<HostLock>> {
        private_dir(run_dir)?;
        let path = Self::path(run_dir);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Non-blocking: a FIFO planted at the name cannot make the open wait.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|source| Error::ReadFile { path: path.clone(), source })?;
        let meta = file.metadata().map_err(|source| Error::ReadFile { path: path.clone(), source })?;
        crate::hostfile::check(&path, &crate::hostfile::OWN_FILE, meta.uid(), meta.mode())?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(HostLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(Error::ReadFile { path, source: std::io::Error::from(errno) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = HostLock::try_acquire(&run).unwrap().unwrap();
        assert!(HostLock::try_acquire(&run).unwrap().is_none());
        drop(first);
        assert!(HostLock::try_acquire(&run).unwrap().is_some());
        assert_eq!(std::fs::metadata(&run).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_symlinked_run_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("run")).unwrap();
        assert_eq!(private_dir(&dir.path().join("run")).unwrap_err().exit_code(), 78);
    }
}
