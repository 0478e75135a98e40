//! The crate's one error type.
//!
//! Variants read as sentences ("could not …") and carry what identifies the failure: the jail,
//! tenant, path or `bw` subcommand. They never carry secret material: `bw`'s stdout is never
//! stored here, and its stderr only after `sanitize::scrub` and `sanitize::clean`. Every variant
//! maps to one sysexits(3) status through [`Error::exit_code`].

use std::io;
use std::path::PathBuf;

use crate::exit;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("{0}")]
    Config(String),

    #[error("{file}:{line}: {problem}")]
    ConfigLine { file: PathBuf, line: usize, problem: String },

    #[error("{path} is {problem}; fix it with: {fix}")]
    InsecureFile { path: PathBuf, problem: String, fix: String },

    #[error("could not read {path}: {source}")]
    ReadFile { path: PathBuf, source: io::Error },

    #[error("could not create {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },

    #[error("tenant database {path}: {problem}")]
    Database { path: PathBuf, problem: String },

    #[error(
        "tenant database {path} stayed locked by another process for {seconds} s; nothing was recorded (try again; is colibri-daemon or another colibri-vault writing?)"
    )]
    DatabaseBusy { path: PathBuf, seconds: u64 },

    #[error(
        "tenant database {path}: tenant {tenant}: {problem}; fix it with colibri-vault tenant set or tenant remove"
    )]
    BadRow { path: PathBuf, tenant: String, problem: String },

    #[error("no tenant is registered for jail {0}")]
    UnknownTenant(String),

    // The next three are reported after "jail NAME: " (jail = tenant), so they do not repeat it.
    #[error("collection {collection} does not exist in the secrets source")]
    UnknownCollection { tenant: String, collection: String },

    #[error("{problem}")]
    BadVaultData { tenant: String, problem: String },

    #[error("refused: {problem}")]
    Refused { tenant: String, problem: String },

    #[error("could not write {path}: {problem}")]
    Write { path: PathBuf, problem: String },

    #[error("could not start {program}: {source}")]
    CommandInvoke { program: PathBuf, source: io::Error },

    #[error("bw {step} failed: {message}")]
    Vault { step: String, message: String },

    #[error("bw {step} was refused: {message}")]
    VaultAuth { step: String, message: String },

    #[error("bw {step} did not finish within {seconds} s and was killed")]
    VaultTimeout { step: String, seconds: u64 },

    #[error(
        "timed out after {seconds} s waiting for the host-wide lock {path} (another colibri-vault is running)"
    )]
    LockTimeout { path: PathBuf, seconds: u64 },

    #[error("{0}")]
    Permission(String),

    #[error("interrupted by signal {0}")]
    Interrupted(i32),

    #[error("{0}")]
    Jail(String),

    /// A tenant's on-change command (refresh) failed, timed out or could not start; reported
    /// after "jail NAME: ".
    #[error("on-change command {problem}")]
    OnChange { problem: String },

    #[error("{message} (in another run's vault session)")]
    ServedByOther { code: u8, message: String },

    /// The reader of standard output went away: a quiet end, never printed (`output`).
    #[error("standard output was closed")]
    OutputClosed,

    #[error("could not write to standard output: {0}")]
    Output(io::Error),
    /// A host-side path (named by `setting`) inside the jail root base or a tenant's root.
    #[error("{message}")]
    HostStateInJail { setting: &'static str, message: String },
}

impl Error {
    /// The sysexits(3) status for this error (DESIGN.md "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::BadVaultData { .. } => exit::DATAERR,
            Error::UnknownTenant(_) | Error::UnknownCollection { .. } => exit::NOINPUT,
            Error::CommandInvoke { .. }
            | Error::Vault { .. }
            | Error::VaultTimeout { .. }
            | Error::OnChange { .. } => exit::UNAVAILABLE,
            Error::Refused { .. } | Error::Write { .. } | Error::Jail(_) => exit::CANTCREAT,
            Error::LockTimeout { .. } | Error::DatabaseBusy { .. } => exit::TEMPFAIL,
            Error::InsecureFile { .. } | Error::VaultAuth { .. } | Error::Permission(_) => exit::NOPERM,
            Error::Config(_)
            | Error::ConfigLine { .. }
            | Error::ReadFile { .. }
            | Error::CreateDir { .. }
            | Error::Database { .. }
            | Error::BadRow { .. }
            | Error::HostStateInJail { .. } => exit::CONFIG,
            Error::Interrupted(signal) => exit::for_signal(*signal),
            Error::ServedByOther { code, .. } => *code,
            Error::OutputClosed => exit::BROKEN_PIPE,
            Error::Output(_) => exit::IOERR,
        }
    }

    /// Whether the error ends the run without a message (nobody is reading).
    pub fn is_quiet(&self) -> bool {
        matches!(self, Error::OutputClosed)
    }

    pub fn write(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Write { path: path.into(), problem: problem.into() }
    }

    pub fn refused(tenant: &str, problem: impl Into<String>) -> Self {
        Error::Refused { tenant: tenant.to_owned(), problem: problem.into() }
    }

    pub fn bad_data(tenant: &str, problem: impl Into<String>) -> Self {
        Error::BadVaultData { tenant: tenant.to_owned(), problem: problem.into() }
    }

    pub fn db(path: &std::path::Path, problem: impl std::fmt::Display) -> Self {
        Error::Database { path: path.to_owned(), problem: problem.to_string() }
    }

    /// An `SQLite` error: a database that stayed busy past the busy timeout is a temporary
    /// failure (75), anything else a configuration error (78).
    pub fn sqlite(path: &std::path::Path, e: &rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::DatabaseBusy { path: path.to_owned(), seconds: crate::tenant::BUSY_TIMEOUT.as_secs() }
            }
            _ => Error::db(path, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> io::Error {
        io::Error::from(io::ErrorKind::NotFound)
    }

    #[test]
    fn every_variant_has_its_documented_status() {
        let p = PathBuf::from("/x");
        let s = String::new;
        let cases: Vec<(Error, u8)> = vec![
            (Error::Usage(s()), 64),
            (Error::bad_data("t", "dup"), 65),
            (Error::UnknownTenant(s()), 66),
            (Error::UnknownCollection { tenant: s(), collection: s() }, 66),
            (Error::CommandInvoke { program: p.clone(), source: io() }, 69),
            (Error::Vault { step: s(), message: s() }, 69),
            (Error::VaultTimeout { step: s(), seconds: 1 }, 69),
            (Error::OnChange { problem: s() }, 69),
            (Error::refused("t", "symlink"), 73),
            (Error::write("/x", "no"), 73),
            (Error::Jail(s()), 73),
            (Error::LockTimeout { path: p.clone(), seconds: 1 }, 75),
            (Error::InsecureFile { path: p.clone(), problem: s(), fix: s() }, 77),
            (Error::VaultAuth { step: s(), message: s() }, 77),
            (Error::Permission(s()), 77),
            (Error::Config(s()), 78),
            (Error::ConfigLine { file: p.clone(), line: 1, problem: s() }, 78),
            (Error::ReadFile { path: p.clone(), source: io() }, 78),
            (Error::CreateDir { path: p.clone(), source: io() }, 78),
            (Error::db(&p, "locked"), 78),
            (Error::DatabaseBusy { path: p.clone(), seconds: 10 }, 75),
            (Error::BadRow { path: p.clone(), tenant: s(), problem: s() }, 78),
            (Error::HostStateInJail { setting: "COLIBRI_DB", message: s() }, 78),
            (Error::Interrupted(libc::SIGTERM), 143),
            (Error::ServedByOther { code: 65, message: s() }, 65),
            (Error::OutputClosed, 141),
            (Error::Output(io()), 74),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    #[test]
    fn messages_name_what_failed() {
        let e = Error::InsecureFile {
            path: "/usr/local/etc/colibri/provider.env".into(),
            problem: "readable by group or others (mode 0644)".into(),
            fix: "chmod 600 /usr/local/etc/colibri/provider.env".into(),
        };
        assert_eq!(
            e.to_string(),
            "/usr/local/etc/colibri/provider.env is readable by group or others (mode 0644); \
             fix it with: chmod 600 /usr/local/etc/colibri/provider.env"
        );
    }
}
