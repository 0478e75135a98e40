//! How a tenant's secrets reach its jail: the delivery (`file` or `memory`), the layout (`env`,
//! `files` or `both`) and the secrets directory, and the rules that keep each combination safe.
//!
//! - **file** (the default): everything lives on the jail's own disk, so it travels with
//!   snapshots, `bastille export`, clones and backups, and stays after the jail stops unless the
//!   tenant asks for cleanup.
//! - **memory**: a host-side memory file system per tenant (`memfs`), mounted read-only into the
//!   jail at the secrets directory (default [`DEFAULT_MEMORY_DIR`]), gone at stop. The env file
//!   lives inside it, named like the file name of `--env-path`.
//! - **env** writes the env file; **files** one file per variable, named after it, mode 0400,
//!   in the secrets directory (swapped in as a whole: `safe_write::set`); **both** does both.
//!
//! What it guarantees: [`validate_secrets_dir`] and [`check`] refuse, for every row (typed by
//! the operator or found in the database), a secrets directory that would hide the jail's own
//! system directories or land under `/dev` or `/proc`, a per-variable directory on the jail's
//! disk under `/var/run` (rc's `cleanvar` deletes the regular files there at every jail start:
//! `find -x /var/run -type f -delete`; `-x` leaves a memory mount alone), and an env file whose
//! name could be a variable's file or one of the set's own names. The content hash in the
//! provision log is defined here ([`digest`]): for `env` it is the env file's SHA-256, as
//! before, so existing log rows stay valid.
//!
//! Not for: writing (`safe_write`), mounting (`memfs`) or choosing what to fetch (`provision`).

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::sanitize::clean;

/// The secrets directory of a `memory` tenant by default (as the jail sees it), like
/// systemd's `/run/credentials` and Kubernetes' `/var/run/secrets`.
pub const DEFAULT_MEMORY_DIR: &str = "/var/run/secrets";

/// The per-variable files' directory of a `file` tenant by default: on the jail's disk, so not
/// under `/var/run`, which rc's `cleanvar` empties at every start.
pub const DEFAULT_FILE_DIR: &str = "/var/db/secrets";

/// Where the secrets go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// On the jail's own disk.
    #[default]
    File,
    /// In a host-side memory file system, mounted read-only into the jail.
    Memory,
}

impl FromStr for Delivery {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "file" => Ok(Delivery::File),
            "memory" => Ok(Delivery::Memory),
            _ => Err(Error::Usage(format!("delivery must be file or memory, not {}", clean(s)))),
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::File => "file",
            Delivery::Memory => "memory",
        })
    }
}

/// What is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The env file only.
    #[default]
    Env,
    /// One file per variable only.
    Files,
    /// Both.
    Both,
}

impl Layout {
    pub fn has_env(self) -> bool {
        matches!(self, Layout::Env | Layout::Both)
    }

    pub fn has_files(self) -> bool {
        matches!(self, Layout::Files | Layout::Both)
    }
}

impl FromStr for Layout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "env" => Ok(Layout::Env),
            "files" => Ok(Layout::Files),
            "both" => Ok(Layout::Both),
            _ => Err(Error::Usage(format!("layout must be env, files or both, not {}", clean(s)))),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Env => "env",
            Layout::Files => "files",
            Layout::Both => "both",
        })
    }
}

/// The secrets directory when the tenant does not set one.
pub fn default_dir(delivery: Delivery) -> &'static Path {
    Path::new(match delivery {
        Delivery::File => DEFAULT_FILE_DIR,
        Delivery::Memory => DEFAULT_MEMORY_DIR,
    })
}

/// Directories a secrets directory must not be: a memory mount there would hide the jail's own
/// files, and the per-variable files' directory is managed as a whole (stale names removed).
const SYSTEM_DIRS: [&str; 30] = [
    "/bin",
    "/boot",
    "/etc",
    "/home",
    "/lib",
    "/libexec",
    "/media",
    "/mnt",
    "/net",
    "/rescue",
    "/root",
    "/sbin",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/home",
    "/usr/include",
    "/usr/lib",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/etc",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/db",
    "/var/log",
    "/var/tmp",
];

/// A secrets directory as the jail sees it: absolute, UTF-8, normalized, no control character,
/// not `/`, not a system directory ([`SYSTEM_DIRS`], `/var/run`), not in `/dev` or `/proc`
/// (jail(8) mounts devfs, fdescfs and procfs there before any hook runs).
pub fn validate_secrets_dir(path: &Path) -> Result<()> {
    let shown = clean(&path.to_string_lossy());
    let bad = |why: &str| {
        Err(Error::Usage(format!(
            "secrets directory (--mount-point) {shown} {why}; use a directory of its own, e.g. {DEFAULT_MEMORY_DIR} for delivery memory or {DEFAULT_FILE_DIR} for delivery file"
        )))
    };
    let Some(text) = path.to_str() else { return bad("is not valid UTF-8") };
    if !text.starts_with('/') {
        return bad("must be an absolute path as the jail sees it");
    }
    if text.len() > 240 {
        return bad("is too long (at most 240 bytes)");
    }
    if text.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if text[1..].split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return bad("must be normalized (no '.', '..', '//' or trailing '/')");
    }
    if text == "/" {
        return bad("is the jail's root");
    }
    if SYSTEM_DIRS.contains(&text) || text == "/var/run" {
        return bad("is one of the jail's system directories");
    }
    if ["/dev", "/proc"].iter().any(|p| path.starts_with(p)) {
        return bad("lies in /dev or /proc, where jail(8) mounts its own file systems");
    }
    Ok(())
}

/// The secrets directory relative to the jail root (for joining to it).
pub fn relative(dir: &Path) -> PathBuf {
    dir.components().filter(|c| matches!(c, Component::Normal(_))).collect()
}

/// Whether the combination of settings is safe; the problem otherwise (for a database row, to
/// be wrapped; for the operator, a usage error).
pub fn check(
    delivery: Delivery,
    layout: Layout,
    dir: &Path,
    env_path: &Path,
) -> std::result::Result<(), String> {
    if delivery == Delivery::File && layout.has_files() && dir.starts_with("/var/run") {
        return Err(format!(
            "with delivery file, the per-variable files cannot go under /var/run ({} is set): rc's cleanvar deletes every regular file there at each jail start; choose another --mount-point (default {DEFAULT_FILE_DIR}) or delivery memory",
            clean(&dir.to_string_lossy())
        ));
    }
    // The env file shares a directory with the set: in the memory fs, or beside the files.
    let env_dir = Path::new("/").join(env_path.parent().unwrap_or(Path::new("")));
    let shares = delivery == Delivery::Memory || (layout.has_files() && env_dir == dir);
    let name = env_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if shares && (crate::kvfile::is_name(&name) || name.starts_with("..")) {
        return Err(format!(
            "the env file's name {} could clash with a variable's file or the set's own names in {}; give --env-path a name with a dot that does not start with '..' (e.g. .env or app.env)",
            clean(&name),
            clean(&dir.to_string_lossy())
        ));
    }
    Ok(())
}

/// The SHA-256 of a set of per-variable files, in hex: each name, a NUL, its content's length
/// (8 bytes, big-endian) and its content, in name order. Names are unique variable names.
pub fn set_digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut sorted: Vec<(&str, &[u8])> = files.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    for (name, bytes) in sorted {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hex(&hasher.finalize())
}

/// The provision log's content hash for a layout: the env file's hash (`env`), the set's
/// (`files`), or one hash of both (`both`).
pub fn digest(layout: Layout, env: Option<&str>, set: Option<&str>) -> Option<String> {
    match layout {
        Layout::Env => env.map(str::to_owned),
        Layout::Files => set.map(str::to_owned),
        Layout::Both => {
            let (env, set) = (env?, set?);
            let mut hasher = Sha256::new();
            hasher.update(format!("env {env}\nfiles {set}\n"));
            Some(hex(&hasher.finalize()))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in [Delivery::File, Delivery::Memory] {
            assert_eq!(d.to_string().parse::<Delivery>().unwrap(), d);
        }
        for l in [Layout::Env, Layout::Files, Layout::Both] {
            assert_eq!(l.to_string().parse::<Layout>().unwrap(), l);
        }
        assert_eq!("tmpfs".parse::<Delivery>().unwrap_err().exit_code(), 64);
        assert_eq!("dir".parse::<Layout>().unwrap_err().exit_code(), 64);
    }

    #[test]
    fn secrets_dirs_are_dirs_of_their_own() {
        for ok in ["/var/run/secrets", "/var/db/secrets", "/secrets", "/usr/local/etc/app/secrets", "/run/x"]
        {
            assert!(validate_secrets_dir(Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "relative",
            "/",
            "/etc",
            "/var/run",
            "/var",
            "/dev/secrets",
            "/dev",
            "/proc/x",
            "/var/run/",
            "/var//run",
            "/var/./run",
            "/var/../etc",
            "/x\u{1b}y",
            &format!("/{}", "a".repeat(240)),
        ] {
            let e = validate_secrets_dir(Path::new(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{bad}");
        }
    }

    #[test]
    fn combinations() {
        let env = Path::new(".env");
        let run = Path::new("/var/run/secrets");
        let db = Path::new("/var/db/secrets");
        assert!(check(Delivery::File, Layout::Env, run, env).is_ok(), "no files: the dir is unused");
        for layout in [Layout::Files, Layout::Both] {
            let e = check(Delivery::File, layout, run, env).unwrap_err();
            assert!(e.contains("cleanvar"), "{e}");
            assert!(check(Delivery::File, layout, Path::new("/var/run"), env).is_err());
            assert!(check(Delivery::File, layout, db, env).is_ok());
            assert!(check(Delivery::Memory, layout, run, env).is_ok());
        }
        // In the memory fs the env file sits beside the set.
        for name in ["DB_PASSWORD", "appenv", "..data", "..x.env"] {
            assert!(check(Delivery::Memory, Layout::Env, run, Path::new(name)).is_err(), "{name}");
            assert!(
                check(Delivery::File, Layout::Both, db, &Path::new("var/db/secrets").join(name)).is_err(),
                "{name}"
            );
            assert!(check(Delivery::File, Layout::Both, db, Path::new(name)).is_ok(), "{name}: elsewhere");
        }
        assert!(check(Delivery::Memory, Layout::Both, run, Path::new("usr/local/etc/app.env")).is_ok());
    }

    #[test]
    fn digests() {
        let a = set_digest([("B", &b"2"[..]), ("A", &b"1"[..])]);
        assert_eq!(a, set_digest([("A", &b"1"[..]), ("B", &b"2"[..])]), "order does not matter");
        assert_ne!(a, set_digest([("A", &b"12"[..]), ("B", &b""[..])]), "boundaries count");
        assert_ne!(a, set_digest([("A", &b"1"[..])]));
        assert_eq!(a.len(), 64);
        assert_eq!(digest(Layout::Env, Some("e"), None).as_deref(), Some("e"));
        assert_eq!(digest(Layout::Files, None, Some("s")).as_deref(), Some("s"));
        assert_eq!(digest(Layout::Both, Some("e"), None), None);
        let both = digest(Layout::Both, Some("e"), Some("s")).unwrap();
        assert_ne!(both, digest(Layout::Both, Some("s"), Some("e")).unwrap());
    }
}
