//! Opening the host-side files colibri-vault reads: the provider env, the `dir` source's
//! `<collection>.env` files, `bastille.conf`, a jail's `jail.conf`, `NODE_EXTRA_CA_CERTS`, the
//! tenant database (before `SQLite` opens it), the spool's answers and the lock file.
//!
//! What it guarantees: no open can wait and no read can be endless. What is at the name is
//! looked at first (`lstat` or `stat`) and anything but a regular file is refused without being
//! opened, so a device with side effects on open is never touched; the open itself is
//! `O_NONBLOCK` (a FIFO or device swapped in meanwhile cannot make it wait for a writer or a
//! carrier), `O_NOFOLLOW` where the rules say so, `O_CLOEXEC`; then the opened descriptor — not
//! the name — must be a regular file with an owner and mode the rules accept, before one byte is
//! read; `O_NONBLOCK` is then cleared, and reads stop at a size cap. Every refusal names the
//! file, says what is wrong and how to fix it, and maps to `EX_NOPERM` (77) like a provider env
//! open to others always has.
//!
//! Not for: files beneath a jail root (that is `safe_write`, which trusts nothing the jail owns),
//! nor deciding *where* a host-side file may be (that is `host_state`).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::sanitize::clean;

/// Who may own a host-side input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// Only the user running colibri-vault (credentials: the provider env, secrets files).
    Me,
    /// root or the user running colibri-vault (files other tools own, e.g. Bastille's).
    RootOrMe,
}

/// Which permission bits a host-side input may have for group and others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// None at all: it holds credentials.
    Private,
    /// Readable, never writable: it is run or trusted as root (`bastille.conf`, a CA bundle).
    NotWritable,
}

/// How one kind of input is opened and what it must be.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Whether a symlink at the name is followed (its target is then what is checked).
    pub follow: bool,
    pub owners: Owners,
    pub access: Access,
    /// Largest size read, in bytes.
    pub limit: u64,
}

/// The provider env: credentials, owned by us, private. A symlink is followed (the operator
/// may keep it elsewhere; where it leads is checked by `host_state`).
pub const PROVIDER_ENV: Rules =
    Rules { follow: true, owners: Owners::Me, access: Access::Private, limit: 1 << 20 };

/// The provider env read by a command that needs no credentials, for its `COLIBRI_*` settings
/// only: root's or ours, not writable by others (readable by others is what this allows).
pub const PROVIDER_ENV_SETTINGS: Rules =
    Rules { follow: true, owners: Owners::RootOrMe, access: Access::NotWritable, limit: 1 << 20 };

/// A `dir` source file `<collection>.env`: like the provider env, but never through a link (a
/// link could point one collection at another's file, or into a jail).
pub const SECRETS_FILE: Rules =
    // Larger than the env file's own limit (safe_write::MAX_FILE): content that renders past
    // that is refused by the renderer, which names the variable and the limit.
    Rules { follow: false, owners: Owners::Me, access: Access::Private, limit: 64 << 20 };

/// `bastille.conf`: sourced by /bin/sh as root.
pub const BASTILLE_CONF: Rules =
    Rules { follow: true, owners: Owners::RootOrMe, access: Access::NotWritable, limit: 1 << 20 };

/// A jail's `jail.conf`: jail(8) runs its `exec.*` lines as root, and `jail enable` replaces the
/// file by a rename, which must not turn a link into a file behind the operator's back.
pub const JAIL_CONF: Rules =
    Rules { follow: false, owners: Owners::RootOrMe, access: Access::NotWritable, limit: 4 << 20 };

/// `NODE_EXTRA_CA_CERTS`: the CA bundle bw trusts for the vault's TLS.
pub const CA_BUNDLE: Rules =
    Rules { follow: true, owners: Owners::RootOrMe, access: Access::NotWritable, limit: 16 << 20 };

/// A file colibri-vault itself keeps in one of its private directories (the lock, the spool's
/// requests and answers, bw's server stamp): ours, never through a link, writable by us only.
pub const OWN_FILE: Rules =
    Rules { follow: false, owners: Owners::Me, access: Access::NotWritable, limit: 1 << 20 };

// File type bits of `st_mode`: the same values on FreeBSD and Linux (libc's constants differ in
// type between them, u16 and u32).
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFSOCK: u32 = 0o140_000;

/// What `mode` (an `st_mode`) is, in words.
pub fn kind(mode: u32) -> &'static str {
    match mode & S_IFMT {
        S_IFREG => "a regular file",
        S_IFLNK => "a symbolic link",
        S_IFDIR => "a directory",
        S_IFIFO => "a FIFO",
        S_IFSOCK => "a socket",
        _ => "a device",
    }
}

fn is_regular(mode: u32) -> bool {
    mode & S_IFMT == S_IFREG
}

/// Refuses what `rules` do not allow: not a regular file, the wrong owner, a mode too open.
/// `uid` and `mode` are what `fstat` (or `lstat`) said.
pub fn check(path: &Path, rules: &Rules, uid: u32, mode: u32) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let shown = clean(&path.to_string_lossy());
    if !is_regular(mode) {
        return Err(Error::InsecureFile {
            path: path.to_owned(),
            problem: format!("{}, not a regular file", kind(mode)),
            fix: if rules.follow {
                format!("replace it with a regular file: rm {shown} && touch {shown} && chmod 600 {shown}")
            } else {
                format!(
                    "replace it with a regular file (a link is not followed here): rm {shown}, then create the file itself with mode 600"
                )
            },
        });
    }
    let owner_ok = match rules.owners {
        Owners::Me => uid == me,
        Owners::RootOrMe => uid == me || uid == 0,
    };
    if !owner_ok {
        let expected = match rules.owners {
            Owners::Me => format!("the user running colibri-vault (uid {me})"),
            Owners::RootOrMe => format!("root or the user running colibri-vault (uid {me})"),
        };
        return Err(Error::InsecureFile {
            path: path.to_owned(),
            problem: format!("owned by uid {uid}, not by {expected}"),
            fix: format!("chown {} {shown}", user_name(me)),
        });
    }
    match rules.access {
        Access::Private if mode & 0o077 != 0 => Err(Error::InsecureFile {
            path: path.to_owned(),
            problem: format!("accessible by group or others (mode {:04o})", mode & 0o7777),
            fix: format!("chmod 600 {shown}"),
        }),
        Access::NotWritable if mode & 0o022 != 0 => Err(Error::InsecureFile {
            path: path.to_owned(),
            problem: format!("writable by group or others (mode {:04o})", mode & 0o7777),
            fix: format!("chmod go-w {shown}"),
        }),
        _ => Ok(()),
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn read_error(path: &Path, source: std::io::Error) -> Error {
    Error::ReadFile { path: path.to_owned(), source }
}

/// Opens `path` for reading under `rules`; `Ok(None)` if nothing is there. The file returned is
/// a regular file that passed [`check`], positioned at its start, in blocking mode.
pub fn open(path: &Path, rules: &Rules) -> Result<Option<File>> {
    // Look before opening: a FIFO, device or (not followed) link is refused unopened.
    let seen = if rules.follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    let seen = match seen {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read_error(path, source)),
    };
    check(path, rules, seen.uid(), seen.mode())?;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !rules.follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // Swapped for a link between the look and the open (Linux ELOOP, FreeBSD EMLINK).
        Err(e) if !rules.follow && matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EMLINK)) => {
            return Err(Error::InsecureFile {
                path: path.to_owned(),
                problem: "a symbolic link, not a regular file".into(),
                fix: format!("replace the link with the file itself: {}", clean(&path.to_string_lossy())),
            });
        }
        Err(source) => return Err(read_error(path, source)),
    };
    // What counts is the descriptor: the name may have changed since the look.
    let meta = file.metadata().map_err(|source| read_error(path, source))?;
    check(path, rules, meta.uid(), meta.mode())?;
    let flags = fcntl(&file, FcntlArg::F_GETFL).map_err(|e| read_error(path, e.into()))?;
    let blocking = OFlag::from_bits_retain(flags) & !OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(blocking)).map_err(|e| read_error(path, e.into()))?;
    Ok(Some(file))
}

/// Reads all of `path` under `rules` (zeroed when dropped: it may hold credentials);
/// `Ok(None)` if nothing is there.
pub fn read(path: &Path, rules: &Rules) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let Some(file) = open(path, rules)? else {
        return Ok(None);
    };
    read_open(path, file, rules).map(Some)
}

/// Reads an already opened (and checked) file, up to `rules.limit` bytes.
pub fn read_open(path: &Path, file: File, rules: &Rules) -> Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(rules.limit + 1).read_to_end(&mut bytes).map_err(|source| read_error(path, source))?;
    if bytes.len() as u64 > rules.limit {
        return Err(Error::Config(format!(
            "{} is larger than {} bytes: too large for what colibri-vault reads there",
            clean(&path.to_string_lossy()),
            rules.limit
        )));
    }
    Ok(bytes)
}

/// Refuses a file `SQLite` would open at `path` (the database or its `-wal`, `-shm`,
/// `-journal` companions) that is not a regular file: `SQLite` opens them blocking and would wait
/// on a FIFO forever. Absent files are fine (`SQLite` creates them).
pub fn check_database_files(db: &Path) -> Result<()> {
    let mut names = vec![db.to_owned()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        names.push(name.into());
    }
    for path in names {
        match std::fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => {
                return Err(Error::InsecureFile {
                    problem: format!("{}, not a regular file", kind(meta.mode())),
                    fix: format!(
                        "remove it ({}); SQLite needs a regular file there",
                        clean(&path.to_string_lossy())
                    ),
                    path,
                });
            }
            Ok(meta) if meta.mode() & 0o002 != 0 => {
                return Err(Error::InsecureFile {
                    problem: format!("writable by anyone (mode {:04o})", meta.mode() & 0o7777),
                    fix: format!("chmod o-w {}", clean(&path.to_string_lossy())),
                    path,
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(read_error(&path, source)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    #[test]
    fn the_rules_decide_owner_and_mode() {
        let p = Path::new("/p.env");
        let me = me();
        assert!(check(p, &PROVIDER_ENV, me, 0o100_600).is_ok());
        let e = check(p, &PROVIDER_ENV, me, 0o100_640).unwrap_err();
        assert_eq!(e.exit_code(), 77);
        assert!(e.to_string().contains("chmod 600 /p.env"), "{e}");
        assert!(check(p, &PROVIDER_ENV, me + 1, 0o100_600).unwrap_err().to_string().contains("chown "));
        // bastille.conf: root or us, readable by all, writable by neither group nor others.
        assert!(check(p, &BASTILLE_CONF, 0, 0o100_644).is_ok());
        assert!(check(p, &BASTILLE_CONF, me, 0o100_644).is_ok());
        let e = check(p, &BASTILLE_CONF, 0, 0o100_664).unwrap_err();
        assert!(e.to_string().contains("chmod go-w /p.env"), "{e}");
        assert!(check(p, &BASTILLE_CONF, 0, 0o100_646).is_err());
        if me != 4242 {
            assert!(check(p, &BASTILLE_CONF, 4242, 0o100_644).is_err());
        }
        for mode in [0o010_600, 0o020_600, 0o040_700, 0o060_600, 0o120_777, 0o140_600] {
            let e = check(p, &PROVIDER_ENV, me, mode).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{mode:o}: {e}");
        }
    }

    #[test]
    fn fifos_devices_and_unfollowed_links_are_refused_without_waiting() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(read(&fifo, &PROVIDER_ENV).unwrap_err().to_string().contains("a FIFO"));
        let to_fifo = d.path().join("to-fifo");
        symlink(&fifo, &to_fifo).unwrap();
        assert!(read(&to_fifo, &PROVIDER_ENV).unwrap_err().to_string().contains("a FIFO"));
        assert!(read(&to_fifo, &SECRETS_FILE).unwrap_err().to_string().contains("a symbolic link"));
        let zero = d.path().join("zero");
        symlink("/dev/zero", &zero).unwrap();
        assert!(read(&zero, &BASTILLE_CONF).unwrap_err().to_string().contains("a device"));
        assert!(read(&d.path().join("absent"), &PROVIDER_ENV).unwrap().is_none());
    }

    #[test]
    fn a_regular_file_is_read_in_blocking_mode_up_to_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        std::fs::write(&path, b"A=1\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = open(&path, &SECRETS_FILE).unwrap().unwrap();
        let flags = fcntl(&file, FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        assert_eq!(read(&path, &SECRETS_FILE).unwrap().unwrap().as_slice(), b"A=1\n");
        let small = Rules { limit: 3, ..SECRETS_FILE };
        assert_eq!(read(&path, &small).unwrap_err().exit_code(), 78);
    }

    #[test]
    fn database_companions_must_be_regular_files() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("c.sqlite");
        assert!(check_database_files(&db).is_ok());
        std::fs::write(&db, b"").unwrap();
        assert!(check_database_files(&db).is_ok());
        nix::unistd::mkfifo(&d.path().join("c.sqlite-wal"), nix::sys::stat::Mode::from_bits_truncate(0o600))
            .unwrap();
        let e = check_database_files(&db).unwrap_err();
        assert!(e.to_string().contains("c.sqlite-wal is a FIFO"), "{e}");
    }
}
