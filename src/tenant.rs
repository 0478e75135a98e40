//! The tenant store: colibri's `SQLite` database.
//!
//! colibri's `tenants` table is kept exactly as colibri-daemon defines it, so an existing
//! database works unchanged; it is created when absent. colibri-vault's own data lives in
//! tables of its own: per-tenant options, an append-only provision log, a record of every env
//! file written (tenant, jail root, path, device and inode, content hash: what tells a cloned
//! jail's copy from the tenant's own file) and a schema version. The database never holds a
//! secret value, nor anything a value could be guessed from: the log keeps key names and the
//! hash of whole files only.

use std::fmt;
use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::delivery::{self, Delivery, Layout};
use crate::envfile::Format;
use crate::error::{Error, Result};

/// The schema version of colibri-vault's own tables.
pub const SCHEMA_VERSION: i64 = 3;

/// Columns added to `colibri_vault_tenant_options` after version 1, with the version that added
/// them: a database of an older colibri-vault gets them (with their defaults) when opened.
const ADDED_OPTION_COLUMNS: [(i64, &str, &str); 5] = [
    (2, "allow_names", "TEXT NOT NULL DEFAULT ''"),
    (3, "delivery", "TEXT NOT NULL DEFAULT 'file'"),
    (3, "layout", "TEXT NOT NULL DEFAULT 'env'"),
    // '' means the default for the delivery (`delivery::default_dir`).
    (3, "mount_point", "TEXT NOT NULL DEFAULT ''"),
    (3, "on_change", "TEXT NOT NULL DEFAULT ''"),
];

/// Columns added to `colibri_vault_provision_log` after version 1, as for the options.
const ADDED_LOG_COLUMNS: [(i64, &str, &str); 2] = [(3, "changed_keys", "TEXT"), (3, "on_change", "TEXT")];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    jail_root_path TEXT NOT NULL,
    collection_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    created_at,
    updated_at
);
CREATE TABLE IF NOT EXISTS colibri_vault_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS colibri_vault_tenant_options (
    tenant_id TEXT PRIMARY KEY,
    env_path TEXT NOT NULL DEFAULT '.env',
    format TEXT NOT NULL DEFAULT 'sh',
    owner_uid INTEGER NOT NULL DEFAULT 0,
    owner_gid INTEGER NOT NULL DEFAULT 0,
    on_failure TEXT NOT NULL DEFAULT 'continue',
    cleanup_on_stop INTEGER NOT NULL DEFAULT 0,
    allow_names TEXT NOT NULL DEFAULT '',
    delivery TEXT NOT NULL DEFAULT 'file',
    layout TEXT NOT NULL DEFAULT 'env',
    mount_point TEXT NOT NULL DEFAULT '',
    on_change TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS colibri_vault_provision_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_unix INTEGER NOT NULL,
    at TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    jail TEXT NOT NULL,
    jid INTEGER,
    trigger TEXT NOT NULL,
    keys TEXT NOT NULL,
    content_hash TEXT,
    outcome TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    bw_calls INTEGER NOT NULL,
    error TEXT,
    changed_keys TEXT,
    on_change TEXT
);
CREATE INDEX IF NOT EXISTS colibri_vault_provision_log_tenant
    ON colibri_vault_provision_log (tenant_id, id);
CREATE INDEX IF NOT EXISTS colibri_vault_provision_log_hash
    ON colibri_vault_provision_log (content_hash);
CREATE TABLE IF NOT EXISTS colibri_vault_files (
    tenant_id TEXT NOT NULL,
    path TEXT NOT NULL,
    jail_root TEXT NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    at_unix INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, path)
);
CREATE INDEX IF NOT EXISTS colibri_vault_files_inode ON colibri_vault_files (dev, ino);
";

/// What a hook does when provisioning fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Log, exit 0: the jail starts without fresh secrets (an existing file stays).
    Continue,
    /// Exit non-zero: jail(8) refuses to start the jail.
    Fail,
}

impl FromStr for FailurePolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "continue" => Ok(FailurePolicy::Continue),
            "fail" => Ok(FailurePolicy::Fail),
            _ => Err(Error::Usage(format!(
                "failure policy must be continue or fail, not {}",
                crate::sanitize::clean(s)
            ))),
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailurePolicy::Continue => "continue",
            FailurePolicy::Fail => "fail",
        })
    }
}

/// Numeric owner of the env file, as the jail sees it (the host's user names would be wrong).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl FromStr for Owner {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Usage(format!(
                "owner must be UID or UID:GID in numbers (as the jail sees them), not {}",
                crate::sanitize::clean(s)
            ))
        };
        let (uid, gid) = match s.split_once(':') {
            Some((u, g)) => (u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?),
            None => (s.parse().map_err(|_| bad())?, 0),
        };
        Ok(Owner { uid, gid })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Options {
    pub env_path: PathBuf,
    pub format: Format,
    pub owner: Owner,
    pub on_failure: FailurePolicy,
    pub cleanup_on_stop: bool,
    /// Names refused by default (`names::sensitive`) that this tenant's env file may hold.
    pub allow_names: Vec<String>,
    /// On the jail's disk, or in a memory file system mounted read-only into the jail.
    pub delivery: Delivery,
    /// The env file, one file per variable, or both.
    pub layout: Layout,
    /// The secrets directory as the jail sees it (`--mount-point`); `None`: the delivery's
    /// default (`delivery::default_dir`).
    pub mount_point: Option<PathBuf>,
    /// Run inside the jail (`jexec -l JAIL sh -c …`) when `refresh` changed the env file.
    pub on_change: Option<String>,
}

impl Options {
    /// The secrets directory as the jail sees it: the memory mount's point, or where the
    /// per-variable files go on the jail's disk.
    pub fn secrets_dir(&self) -> PathBuf {
        self.mount_point.clone().unwrap_or_else(|| delivery::default_dir(self.delivery).to_owned())
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env_path: PathBuf::from(".env"),
            format: Format::Sh,
            owner: Owner { uid: 0, gid: 0 },
            on_failure: FailurePolicy::Continue,
            cleanup_on_stop: false,
            allow_names: Vec::new(),
            delivery: Delivery::File,
            layout: Layout::Env,
            mount_point: None,
            on_change: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub name: String,
    pub root: PathBuf,
    pub collection: String,
    pub status: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(flatten)]
    pub options: Options,
}

/// One provision-log row: what a run did for one tenant. Key names only, never values.
#[derive(Clone, Debug, Serialize)]
pub struct LogRow {
    pub at_unix: i64,
    pub tenant: String,
    pub jail: String,
    pub jid: Option<i64>,
    pub trigger: String,
    pub keys: Vec<String>,
    pub content_hash: Option<String>,
    pub outcome: String,
    pub duration_ms: u64,
    pub bw_calls: u32,
    pub error: Option<String>,
    /// For a write: the names whose value was added, changed or removed (`None`: not known,
    /// the file replaced was not the one colibri-vault last wrote for this tenant).
    pub changed_keys: Option<Vec<String>>,
    /// For a refresh that changed the file: what became of the tenant's on-change command.
    pub on_change: Option<String>,
    /// The file written or found unchanged, for the record of files (cloned-jail detection).
    #[serde(skip)]
    pub file: Option<FileRecord>,
}

/// An env file colibri-vault wrote (or found unchanged) for a tenant: where, which inode, what
/// content (its hash). Never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub tenant: String,
    pub root: PathBuf,
    /// The env path, relative to the root.
    pub path: PathBuf,
    pub id: crate::safe_write::FileId,
    pub content_hash: String,
}

/// `u64` device and inode numbers as `SQLite`'s signed integers (bit for bit), and back.
fn to_sql_u64(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn from_sql_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

impl LogRow {
    /// A row for an event that fetched nothing (a stop hook, a settings change): no keys, no
    /// hash, no bw call.
    pub fn event(
        tenant: &str,
        trigger: &str,
        outcome: &str,
        duration_ms: u64,
        error: Option<String>,
    ) -> LogRow {
        LogRow {
            at_unix: crate::clock::now_unix(),
            tenant: tenant.to_owned(),
            jail: tenant.to_owned(),
            jid: None,
            trigger: trigger.to_owned(),
            keys: Vec::new(),
            content_hash: None,
            outcome: outcome.to_owned(),
            duration_ms,
            bw_calls: 0,
            error,
            changed_keys: None,
            on_change: None,
            file: None,
        }
    }
}

/// A tenant's on-change command: one line of sh run inside the jail, printable (it is shown in
/// `tenant show` and logs), at most 1024 bytes. Never a place for a secret: it is in argv.
pub fn validate_on_change(command: &str) -> Result<()> {
    // A leading '-' would be read by sh as options, not as the command.
    let ok = !command.trim().is_empty()
        && command.len() <= 1024
        && !command.starts_with('-')
        && !command.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "on-change command {:?} must be one non-empty line of at most 1024 bytes, without control characters and not starting with '-' (it runs as sh -c COMMAND inside the jail; clear it with --no-on-change)",
            crate::sanitize::clean(command)
        )))
    }
}

/// Outcomes that mean "the file on disk holds what the vault had at `at_unix`".
pub const FRESH_OUTCOMES: [&str; 2] = ["written", "unchanged"];

/// The log outcome of `tenant set`: what was written before it may no longer match the
/// tenant's settings (format, owner, root), so it ends the freshness window.
pub const SETTINGS_CHANGED: &str = "settings";

/// A jail name as Bastille accepts it (`validate_name` in Bastille's common code): letters,
/// digits, `-` and `_`, not starting with `-` or `_`. All-digit names are refused too: the
/// kernel's `jail_get` takes them as JIDs.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with(['-', '_'])
        && !name.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid jail name {:?}: use letters, digits, '-' and '_', not starting with '-' or '_', not all digits (Bastille's rules)",
            crate::sanitize::clean(name)
        )))
    }
}

/// A collection name: the jail name by default; any other must still be a safe file name
/// (the `dir` source maps it to `<collection>.env`) and printable.
pub fn validate_collection(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.contains('/')
        && !name.starts_with('.')
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid collection name {:?}: it must be non-empty, without '/', control characters or a leading '.'",
            crate::sanitize::clean(name)
        )))
    }
}

/// A jail root: absolute, UTF-8, normalized, strictly under `base`.
pub fn validate_root(root: &Path, base: &Path) -> Result<PathBuf> {
    let root = validate_root_text(root)?;
    if root == base || !root.starts_with(base) {
        return Err(Error::Usage(format!(
            "jail root {} must lie strictly under the jail root base {} (COLIBRI_JAIL_ROOT_BASE)",
            crate::sanitize::clean(&root.to_string_lossy()),
            base.display()
        )));
    }
    Ok(root)
}

/// A jail root's text on its own: absolute, UTF-8 (the database stores text), normalized (no
/// `.`, `..` or empty parts; trailing slashes dropped). The base is checked where it is known.
fn validate_root_text(root: &Path) -> Result<PathBuf> {
    let shown = crate::sanitize::clean(&root.to_string_lossy());
    let Some(text) = root.to_str() else {
        return Err(Error::Usage(format!("jail root {shown} is not valid UTF-8")));
    };
    if !root.is_absolute() {
        return Err(Error::Usage(format!("jail root {shown} must be an absolute path")));
    }
    // Checked on the text: `Path::components` silently drops interior `.` parts.
    let trimmed = text.trim_end_matches('/');
    if trimmed.split('/').skip(1).any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(Error::Usage(format!("jail root {shown} must be normalized (no '.', '..' or '//')")));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::Usage(format!("jail root {shown} contains a control character")));
    }
    Ok(crate::config::normalize_dir(root))
}

/// The env file's place inside the jail: relative, UTF-8, no `..`, `.`, empty or absolute parts.
pub fn validate_env_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    let ok = path.to_str().is_some()
        && !text.is_empty()
        && !text.starts_with('/')
        && !text.ends_with('/')
        && !text.chars().any(char::is_control)
        && text.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "env path {} must be relative to the jail root, valid UTF-8, without '..', '.', empty or absolute parts or control characters (e.g. .env or usr/local/etc/app.env)",
            crate::sanitize::clean(&text)
        )))
    }
}

/// The registered tenant, other than `name`, whose root is `root` or lies above or below it: one
/// tenant's secrets must never land in another tenant's jail.
pub fn overlapping_root<'a>(name: &str, root: &Path, roots: &'a [(String, PathBuf)]) -> Option<&'a str> {
    roots
        .iter()
        .filter(|(other, _)| other != name)
        .find(|(_, other)| other.starts_with(root) || root.starts_with(other))
        .map(|(other, _)| other.as_str())
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens an existing database; `Ok(None)` when the file does not exist.
    pub fn open_existing(path: &Path) -> Result<Option<Store>> {
        if !path.exists() {
            return Ok(None);
        }
        // SQLite opens its files blocking: a FIFO there would hang every run.
        crate::hostfile::check_database_files(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::sqlite(path, &e))?;
        Store::prepare(conn, path).map(Some)
    }

    /// Opens the database, creating it (mode 0600, parent directory 0700) when absent.
    pub fn open_or_create(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.exists()) {
            {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|source| Error::CreateDir { path: parent.to_owned(), source })?;
            }
        }
        crate::hostfile::check_database_files(path)?;
        // Create the file with its final mode before SQLite opens it.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::db(path, e))?;
        let conn = Connection::open(path).map_err(|e| Error::sqlite(path, &e))?;
        Store::prepare(conn, path)
    }

    fn prepare(conn: Connection, path: &Path) -> Result<Store> {
        let db = |e: rusqlite::Error| Error::sqlite(path, &e);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM colibri_vault_meta WHERE key = 'schema_version'", [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        let version = match version.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(v)) if v <= SCHEMA_VERSION => Some(v),
            Some(_) => {
                return Err(Error::db(
                    path,
                    format!(
                        "its colibri-vault schema is newer than this program understands (version {}); upgrade colibri-vault",
                        crate::sanitize::clean(&version.unwrap_or_default())
                    ),
                ));
            }
        };
        if version == Some(SCHEMA_VERSION) {
            // The common case, every run: nothing to write (a write would cost an fsync).
            return Ok(Store { conn, path: path.to_owned() });
        }
        // Columns of later versions, added to a database created by an older colibri-vault (a
        // new database already has them: SCHEMA is the latest).
        let version = version.unwrap_or(SCHEMA_VERSION);
        for (table, added) in [
            ("colibri_vault_tenant_options", &ADDED_OPTION_COLUMNS[..]),
            ("colibri_vault_provision_log", &ADDED_LOG_COLUMNS[..]),
        ] {
            let existing: Vec<String> = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
                .map_err(db)?;
            for (_, column, definition) in added.iter().filter(|(v, ..)| *v > version) {
                if !existing.iter().any(|c| c == column) {
                    conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))
                        .map_err(db)?;
                }
            }
        }
        conn.execute(
            "INSERT OR REPLACE INTO colibri_vault_meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(db)?;
        Ok(Store { conn, path: path.to_owned() })
    }

    fn err(&self, e: &rusqlite::Error) -> Error {
        Error::sqlite(&self.path, e)
    }

    /// The tenant registered for `name`, validated (`Error::BadRow` when a stored value is
    /// unusable: the row may have been written by colibri-daemon or by hand).
    pub fn get(&self, name: &str) -> Result<Option<Tenant>> {
        match self.get_raw(name)? {
            None => Ok(None),
            Some(raw) => raw.validate().map(Some).map_err(|problem| self.bad_row(&raw.name, problem)),
        }
    }

    /// The row for `name` as stored, not validated (for `tenant set`, which may repair it).
    pub fn get_raw(&self, name: &str) -> Result<Option<RawTenant>> {
        let sql = format!("{SELECT_TENANT} WHERE t.tenant_id = ?1");
        self.conn.query_row(&sql, [name], RawTenant::from_row).optional().map_err(|e| self.err(&e))
    }

    /// Every tenant, in name order; a row that fails validation is returned as its error, so one
    /// bad row is reported and the others are still served.
    pub fn list(&self) -> Result<Vec<Result<Tenant>>> {
        Ok(self
            .list_raw()?
            .into_iter()
            .map(|raw| raw.validate().map_err(|problem| self.bad_row(&raw.name, problem)))
            .collect())
    }

    /// Every row as stored, not validated, in name order.
    pub fn list_raw(&self) -> Result<Vec<RawTenant>> {
        let sql = format!("{SELECT_TENANT} ORDER BY t.tenant_id");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(&e))?;
        let rows = stmt.query_map([], RawTenant::from_row).map_err(|e| self.err(&e))?;
        rows.map(|r| r.map_err(|e| self.err(&e))).collect()
    }

    /// The failure policy stored for `name` in the database at `path`, read with as little as
    /// possible (read-only, no schema work): for a hook when the database cannot be opened
    /// normally. `None` when it cannot be read or there is no such tenant.
    pub fn read_policy(path: &Path, name: &str) -> Option<FailurePolicy> {
        Store::open_read_only(path)?.failure_policy(name)
    }

    /// The database at `path` opened read-only, without any schema work (which could fail on a
    /// database colibri-vault cannot use), for reading a policy or the roots; `None` if not.
    pub fn open_read_only(path: &Path) -> Option<Store> {
        crate::hostfile::check_database_files(path).ok()?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_secs(2)).ok()?;
        Some(Store { conn, path: path.to_owned() })
    }

    /// The failure policy stored for `name`, read on its own: a hook uses it when the rest of
    /// the row (or of the database) cannot be used.
    pub fn failure_policy(&self, name: &str) -> Option<FailurePolicy> {
        self.conn
            .query_row(
                "SELECT o.on_failure FROM tenants t LEFT JOIN colibri_vault_tenant_options o
                 ON o.tenant_id = t.tenant_id WHERE t.tenant_id = ?1",
                [name],
                |r| r.get::<_, Option<String>>(0),
            )
            .ok()
            .map(|policy| policy.map_or(Ok(FailurePolicy::Continue), |p| p.parse()))
            .and_then(std::result::Result::ok)
    }

    fn bad_row(&self, name: &str, problem: String) -> Error {
        Error::BadRow { path: self.path.clone(), tenant: crate::sanitize::clean(name), problem }
    }

    pub fn insert(&mut self, tenant: &Tenant) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| Error::sqlite(&self.path, &e))?;
        tx.execute(
            "INSERT INTO tenants (tenant_id, jail_root_path, collection_id, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%SZ','now'), strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
            params![tenant.name, path_text(&tenant.root), tenant.collection, tenant.status],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                Error::Usage(format!(
                    "tenant {} or collection {} is already registered (see: colibri-vault tenant list)",
                    crate::sanitize::clean(&tenant.name),
                    crate::sanitize::clean(&tenant.collection)
                ))
            }
            e => Error::sqlite(&self.path, &e),
        })?;
        write_options(&tx, tenant).map_err(|e| Error::sqlite(&self.path, &e))?;
        tx.commit().map_err(|e| Error::sqlite(&self.path, &e))
    }

    pub fn update(&mut self, tenant: &Tenant) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| Error::sqlite(&self.path, &e))?;
        tx.execute(
            "UPDATE tenants SET jail_root_path = ?2, collection_id = ?3, status = ?4,
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE tenant_id = ?1",
            params![tenant.name, path_text(&tenant.root), tenant.collection, tenant.status],
        )
        .map_err(|e| Error::sqlite(&self.path, &e))?;
        write_options(&tx, tenant).map_err(|e| Error::sqlite(&self.path, &e))?;
        tx.commit().map_err(|e| Error::sqlite(&self.path, &e))
    }

    /// Removes the tenant and its options; its provision log stays (it is an audit trail).
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        let tx = self.conn.transaction().map_err(|e| Error::sqlite(&self.path, &e))?;
        let n = tx
            .execute("DELETE FROM tenants WHERE tenant_id = ?1", [name])
            .map_err(|e| Error::sqlite(&self.path, &e))?;
        tx.execute("DELETE FROM colibri_vault_tenant_options WHERE tenant_id = ?1", [name])
            .map_err(|e| Error::sqlite(&self.path, &e))?;
        tx.commit().map_err(|e| Error::sqlite(&self.path, &e))?;
        Ok(n > 0)
    }

    /// Appends a log row and returns its id; on success also marks the tenant `active`, and
    /// records the file written (or found unchanged), if any. One transaction.
    pub fn record(&mut self, row: &LogRow) -> Result<i64> {
        let tx = self.conn.transaction().map_err(|e| Error::sqlite(&self.path, &e))?;
        tx.execute(
            "INSERT INTO colibri_vault_provision_log
             (at_unix, at, tenant_id, jail, jid, trigger, keys, content_hash, outcome, duration_ms, bw_calls, error,
              changed_keys, on_change)
             VALUES (?1, strftime('%Y-%m-%dT%H:%M:%SZ', ?1, 'unixepoch'), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
              ?12, ?13)",
            params![
                row.at_unix,
                row.tenant,
                row.jail,
                row.jid,
                row.trigger,
                row.keys.join(","),
                row.content_hash,
                row.outcome,
                i64::try_from(row.duration_ms).unwrap_or(i64::MAX),
                row.bw_calls,
                row.error,
                row.changed_keys.as_ref().map(|k| k.join(",")),
                row.on_change
            ],
        )
        .map_err(|e| Error::sqlite(&self.path, &e))?;
        let id = tx.last_insert_rowid();
        if FRESH_OUTCOMES.contains(&row.outcome.as_str()) {
            tx.execute(
                "UPDATE tenants SET status = 'active', updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE tenant_id = ?1",
                [&row.tenant],
            )
            .map_err(|e| Error::sqlite(&self.path, &e))?;
        }
        if let Some(file) = &row.file {
            tx.execute(
                "INSERT OR REPLACE INTO colibri_vault_files
                 (tenant_id, path, jail_root, dev, ino, content_hash, at_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    file.tenant,
                    path_text(&file.path),
                    path_text(&file.root),
                    to_sql_u64(file.id.dev),
                    to_sql_u64(file.id.ino),
                    file.content_hash,
                    row.at_unix
                ],
            )
            .map_err(|e| Error::sqlite(&self.path, &e))?;
        }
        tx.commit().map_err(|e| Error::sqlite(&self.path, &e))?;
        Ok(id)
    }

    /// What became of the on-change command of the refresh logged as row `id`.
    pub fn set_on_change(&mut self, id: i64, outcome: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE colibri_vault_provision_log SET on_change = ?2 WHERE id = ?1",
                params![id, outcome],
            )
            .map(drop)
            .map_err(|e| self.err(&e))
    }

    /// The record of the file at `path` of `tenant`'s jail, if colibri-vault wrote one.
    pub fn file_of(&self, tenant: &str, path: &Path) -> Result<Option<FileRecord>> {
        self.conn
            .query_row(
                &format!("{SELECT_FILE} WHERE tenant_id = ?1 AND path = ?2"),
                params![tenant, path_text(path)],
                file_from_row,
            )
            .optional()
            .map_err(|e| self.err(&e))
    }

    /// Records of files with this device and inode (a hard link or the same file seen through
    /// another jail's root shares them).
    pub fn files_with_id(&self, id: crate::safe_write::FileId) -> Result<Vec<FileRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT_FILE} WHERE dev = ?1 AND ino = ?2"))
            .map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map(params![to_sql_u64(id.dev), to_sql_u64(id.ino)], file_from_row)
            .map_err(|e| self.err(&e))?;
        rows.map(|r| r.map_err(|e| self.err(&e))).collect()
    }

    /// The env paths of every file colibri-vault has written, each once: where a cloned jail
    /// would carry one.
    pub fn file_paths(&self) -> Result<Vec<PathBuf>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT path FROM colibri_vault_files ORDER BY path")
            .map_err(|e| self.err(&e))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(&e))?;
        rows.map(|r| r.map(PathBuf::from).map_err(|e| self.err(&e))).collect()
    }

    /// The tenants whose env file has ever had the content hash `hash` with at least one key in
    /// it (from the provision log, removed tenants included), the most recent first. A file
    /// without a key holds no secret, and every tenant with an empty collection has the same.
    pub fn tenants_with_hash(&self, hash: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT tenant_id FROM colibri_vault_provision_log WHERE content_hash = ?1 AND keys != ''
                 GROUP BY tenant_id ORDER BY max(id) DESC",
            )
            .map_err(|e| self.err(&e))?;
        let rows = stmt.query_map([hash], |r| r.get::<_, String>(0)).map_err(|e| self.err(&e))?;
        rows.map(|r| r.map_err(|e| self.err(&e))).collect()
    }

    /// Forgets the file records of `tenant` at `path` (its file was removed).
    pub fn forget_file(&mut self, tenant: &str, path: &Path) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM colibri_vault_files WHERE tenant_id = ?1 AND path = ?2",
                params![tenant, path_text(path)],
            )
            .map(drop)
            .map_err(|e| self.err(&e))
    }

    /// The newest log row for `tenant`, optionally only among `outcomes`.
    pub fn last_log(&self, tenant: &str, outcomes: Option<&[&str]>) -> Result<Option<LogRow>> {
        self.last_log_of(tenant, outcomes, None)
    }

    /// The newest log row of a refresh for `tenant` (written, unchanged or failed).
    pub fn last_refresh(&self, tenant: &str) -> Result<Option<LogRow>> {
        self.last_log_of(tenant, Some(&["written", "unchanged", "failed"]), Some("refresh"))
    }

    /// The newest log row for `tenant`, optionally only among `outcomes` and of one trigger
    /// (both are constants of this crate, never input).
    fn last_log_of(
        &self,
        tenant: &str,
        outcomes: Option<&[&str]>,
        trigger: Option<&'static str>,
    ) -> Result<Option<LogRow>> {
        let mut sql = String::from(
            "SELECT at_unix, tenant_id, jail, jid, trigger, keys, content_hash, outcome, duration_ms, bw_calls, error,
                    changed_keys, on_change
             FROM colibri_vault_provision_log WHERE tenant_id = ?1",
        );
        if let Some(outcomes) = outcomes {
            let list: Vec<String> = outcomes.iter().map(|o| format!("'{o}'")).collect();
            let _ = write!(sql, " AND outcome IN ({})", list.join(","));
        }
        if let Some(trigger) = trigger {
            let _ = write!(sql, " AND trigger = '{trigger}'");
        }
        sql.push_str(" ORDER BY id DESC LIMIT 1");
        let names = |list: String| -> Vec<String> {
            if list.is_empty() { Vec::new() } else { list.split(',').map(str::to_owned).collect() }
        };
        self.conn
            .query_row(&sql, [tenant], |r| {
                let keys: String = r.get(5)?;
                Ok(LogRow {
                    at_unix: r.get(0)?,
                    tenant: r.get(1)?,
                    jail: r.get(2)?,
                    jid: r.get(3)?,
                    trigger: r.get(4)?,
                    keys: names(keys),
                    content_hash: r.get(6)?,
                    outcome: r.get(7)?,
                    duration_ms: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
                    bw_calls: r.get(9)?,
                    error: r.get(10)?,
                    changed_keys: r.get::<_, Option<String>>(11)?.map(names),
                    on_change: r.get(12)?,
                    file: None,
                })
            })
            .optional()
            .map_err(|e| self.err(&e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tenant's name and registered root, as stored (no other column is read, so a bad
    /// options row cannot hide a root): for keeping host-side state out of every jail.
    pub fn roots(&self) -> Result<Vec<(String, PathBuf)>> {
        use rusqlite::types::ValueRef;
        use std::os::unix::ffi::OsStrExt;
        let text = |v: ValueRef<'_>| match v {
            ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
            ValueRef::Integer(i) => i.to_string().into_bytes(),
            ValueRef::Real(f) => f.to_string().into_bytes(),
            ValueRef::Null => Vec::new(),
        };
        let mut stmt =
            self.conn.prepare("SELECT tenant_id, jail_root_path FROM tenants").map_err(|e| self.err(&e))?;
        let rows = stmt
            .query_map([], |r| {
                let name = String::from_utf8_lossy(&text(r.get_ref(0)?)).into_owned();
                let root = PathBuf::from(std::ffi::OsStr::from_bytes(&text(r.get_ref(1)?)));
                Ok((name, root))
            })
            .map_err(|e| self.err(&e))?;
        rows.map(|r| r.map_err(|e| self.err(&e))).collect()
    }
}

const SELECT_TENANT: &str = "
SELECT t.tenant_id, t.jail_root_path, t.collection_id, t.status, t.created_at, t.updated_at,
       o.env_path, o.format, o.owner_uid, o.owner_gid, o.on_failure, o.cleanup_on_stop, o.allow_names,
       o.delivery, o.layout, o.mount_point, o.on_change
FROM tenants t LEFT JOIN colibri_vault_tenant_options o ON o.tenant_id = t.tenant_id";

const SELECT_FILE: &str =
    "SELECT tenant_id, path, jail_root, dev, ino, content_hash FROM colibri_vault_files";

fn file_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
    Ok(FileRecord {
        tenant: r.get(0)?,
        path: PathBuf::from(r.get::<_, String>(1)?),
        root: PathBuf::from(r.get::<_, String>(2)?),
        id: crate::safe_write::FileId { dev: from_sql_u64(r.get(3)?), ino: from_sql_u64(r.get(4)?) },
        content_hash: r.get(5)?,
    })
}

/// How long a statement waits for another process's write lock before it fails (`SQLite`'s busy
/// timeout): colibri-daemon and other colibri-vault runs share the database.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A tenant row as stored, every value kept as it was found (text or integer, possibly
/// invalid), before validation. `NULL`s of colibri-vault's own option columns (a colibri
/// database without our options row) mean the defaults.
#[derive(Clone, Debug)]
pub struct RawTenant {
    pub name: String,
    pub root: rusqlite::types::Value,
    pub collection: rusqlite::types::Value,
    pub status: rusqlite::types::Value,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub env_path: Option<rusqlite::types::Value>,
    pub format: Option<rusqlite::types::Value>,
    pub owner_uid: Option<rusqlite::types::Value>,
    pub owner_gid: Option<rusqlite::types::Value>,
    pub on_failure: Option<rusqlite::types::Value>,
    pub cleanup_on_stop: Option<rusqlite::types::Value>,
    pub allow_names: Option<rusqlite::types::Value>,
    pub delivery: Option<rusqlite::types::Value>,
    pub layout: Option<rusqlite::types::Value>,
    pub mount_point: Option<rusqlite::types::Value>,
    pub on_change: Option<rusqlite::types::Value>,
}

impl RawTenant {
    /// A new tenant's row: `name` and `root`, the collection named after the tenant, every option
    /// at its default.
    pub fn new(name: &str, root: &Path) -> RawTenant {
        use rusqlite::types::Value;
        RawTenant {
            name: name.to_owned(),
            root: Value::Text(path_text(root)),
            collection: Value::Text(name.to_owned()),
            status: Value::Text("provisioned".into()),
            created_at: None,
            updated_at: None,
            env_path: None,
            format: None,
            owner_uid: None,
            owner_gid: None,
            on_failure: None,
            cleanup_on_stop: None,
            allow_names: None,
            delivery: None,
            layout: None,
            mount_point: None,
            on_change: None,
        }
    }

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawTenant> {
        use rusqlite::types::Value;
        let value = |i: usize| r.get::<_, Value>(i);
        let option = |i: usize| r.get::<_, Value>(i).map(|v| (v != Value::Null).then_some(v));
        Ok(RawTenant {
            name: match value(0)? {
                Value::Text(t) => t,
                other => value_text(other).unwrap_or_default(),
            },
            root: value(1)?,
            collection: value(2)?,
            status: value(3)?,
            created_at: value(4).ok().and_then(value_text),
            updated_at: value(5).ok().and_then(value_text),
            env_path: option(6)?,
            format: option(7)?,
            owner_uid: option(8)?,
            owner_gid: option(9)?,
            on_failure: option(10)?,
            cleanup_on_stop: option(11)?,
            allow_names: option(12)?,
            delivery: option(13)?,
            layout: option(14)?,
            mount_point: option(15)?,
            on_change: option(16)?,
        })
    }

    /// The tenant, if every stored value is usable; else what is wrong (never a value that
    /// could be secret: these are names, paths and settings, shown sanitized).
    pub fn validate(&self) -> std::result::Result<Tenant, String> {
        use rusqlite::types::Value;
        let problem = |what: &str, e: &dyn fmt::Display| format!("invalid stored {what}: {e}");
        let text = |what: &str, v: &Value| match v {
            Value::Text(t) => Ok(t.clone()),
            _ => Err(format!("invalid stored {what}: not text")),
        };
        validate_name(&self.name).map_err(|e| problem("tenant name", &e))?;
        // Only its type here: the pipeline refuses (73) a root that is not normalized or not
        // strictly under the jail root base, where the base is known.
        let root = PathBuf::from(text("jail root", &self.root)?);
        let collection = text("collection", &self.collection)?;
        validate_collection(&collection).map_err(|e| problem("collection", &e))?;
        let defaults = Options::default();
        let env_path = match &self.env_path {
            None => defaults.env_path,
            Some(v) => PathBuf::from(text("env path", v)?),
        };
        validate_env_path(&env_path).map_err(|e| problem("env path", &e))?;
        let parsed = |what: &str, v: &Option<Value>| -> std::result::Result<Option<String>, String> {
            v.as_ref().map(|v| text(what, v)).transpose()
        };
        let format = match parsed("format", &self.format)? {
            None => defaults.format,
            Some(f) => f.parse().map_err(|e| problem("format", &e))?,
        };
        let on_failure = match parsed("failure policy", &self.on_failure)? {
            None => defaults.on_failure,
            Some(p) => p.parse().map_err(|e| problem("failure policy", &e))?,
        };
        let id = |what: &str, v: &Option<Value>, default: u32| match v {
            None => Ok(default),
            Some(Value::Integer(i)) => u32::try_from(*i).map_err(|_| format!("invalid stored {what}: {i}")),
            Some(_) => Err(format!("invalid stored {what}: not a number")),
        };
        let owner = Owner {
            uid: id("owner uid", &self.owner_uid, defaults.owner.uid)?,
            gid: id("owner gid", &self.owner_gid, defaults.owner.gid)?,
        };
        let cleanup_on_stop = match &self.cleanup_on_stop {
            None => defaults.cleanup_on_stop,
            Some(Value::Integer(0)) => false,
            Some(Value::Integer(1)) => true,
            Some(_) => return Err("invalid stored cleanup-on-stop flag".into()),
        };
        let allow_names = match parsed("allowed names", &self.allow_names)? {
            None => defaults.allow_names,
            Some(list) => parse_allow_names(&list).map_err(|e| problem("allowed names", &e))?,
        };
        let on_change = match parsed("on-change command", &self.on_change)? {
            Some(command) if !command.is_empty() => {
                validate_on_change(&command).map_err(|e| problem("on-change command", &e))?;
                Some(command)
            }
            _ => defaults.on_change,
        };
        let delivery = match parsed("delivery", &self.delivery)? {
            None => defaults.delivery,
            Some(d) => d.parse().map_err(|e| problem("delivery", &e))?,
        };
        let layout = match parsed("layout", &self.layout)? {
            None => defaults.layout,
            Some(l) => l.parse().map_err(|e| problem("layout", &e))?,
        };
        let mount_point = match parsed("mount point", &self.mount_point)? {
            None => None,
            Some(m) if m.is_empty() => None,
            Some(m) => {
                let m = PathBuf::from(m);
                delivery::validate_secrets_dir(&m).map_err(|e| problem("mount point", &e))?;
                Some(m)
            }
        };
        let options = Options {
            env_path,
            format,
            owner,
            on_failure,
            cleanup_on_stop,
            allow_names,
            delivery,
            layout,
            mount_point,
            on_change,
        };
        delivery::check(options.delivery, options.layout, &options.secrets_dir(), &options.env_path)?;
        let status = text("status", &self.status)?;
        Ok(Tenant {
            name: self.name.clone(),
            root,
            collection,
            status,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            options,
        })
    }
}

/// `allow_names` as stored: comma-separated names, each a valid variable name.
fn parse_allow_names(list: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for name in list.split(',').filter(|n| !n.is_empty()) {
        validate_variable_name(name)?;
        names.push(name.to_owned());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// A variable name for `--allow-name`: what an env file can hold.
pub fn validate_variable_name(name: &str) -> Result<()> {
    if crate::kvfile::is_name(name) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
            crate::sanitize::clean(name)
        )))
    }
}

/// colibri's timestamp columns have no declared type: show whatever is there as text.
fn value_text(v: rusqlite::types::Value) -> Option<String> {
    use rusqlite::types::Value;
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => Some(f.to_string()),
        Value::Text(t) => Some(t),
        Value::Blob(_) => Some("(blob)".into()),
    }
}

fn write_options(tx: &rusqlite::Transaction<'_>, tenant: &Tenant) -> rusqlite::Result<usize> {
    let o = &tenant.options;
    tx.execute(
        "INSERT OR REPLACE INTO colibri_vault_tenant_options
         (tenant_id, env_path, format, owner_uid, owner_gid, on_failure, cleanup_on_stop, allow_names,
          delivery, layout, mount_point, on_change)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            tenant.name,
            path_text(&o.env_path),
            o.format.to_string(),
            o.owner.uid,
            o.owner.gid,
            o.on_failure.to_string(),
            o.cleanup_on_stop,
            o.allow_names.join(","),
            o.delivery.to_string(),
            o.layout.to_string(),
            o.mount_point.as_deref().map(path_text).unwrap_or_default(),
            o.on_change.as_deref().unwrap_or_default()
        ],
    )
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_write::FileId;

    #[test]
    fn names_follow_bastille() {
        for ok in ["web1", "a", "tenant-a_b", "A9"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "_x", "a.b", "a b", "a/b", "12", "x\u{1b}", &"a".repeat(256)] {
            assert_eq!(validate_name(bad).unwrap_err().exit_code(), 64, "{bad}");
        }
    }

    #[test]
    fn roots_must_be_strictly_under_the_base() {
        let base = Path::new("/usr/local/bastille/jails");
        assert_eq!(
            validate_root(Path::new("/usr/local/bastille/jails/web/root/"), base).unwrap(),
            Path::new("/usr/local/bastille/jails/web/root")
        );
        for bad in [
            "relative/root",
            "/usr/local/bastille/jails",
            "/usr/local/bastille/jails/",
            "/usr/local/bastille/jailsX/web/root",
            "/usr/local/bastille/jails/../../../etc",
            "/usr/local/bastille/jails/./web",
            "/usr/local/bastille/jails//web",
            "/etc",
        ] {
            assert!(validate_root(Path::new(bad), base).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_paths_stay_inside() {
        for ok in [".env", "usr/local/etc/app.env", "home/app/.env"] {
            assert!(validate_env_path(Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./.env", "dir/"] {
            assert!(validate_env_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn owners_are_numeric() {
        assert_eq!("1001:1001".parse::<Owner>().unwrap(), Owner { uid: 1001, gid: 1001 });
        assert_eq!("80".parse::<Owner>().unwrap(), Owner { uid: 80, gid: 0 });
        assert!("www".parse::<Owner>().is_err());
        assert!("1:x".parse::<Owner>().is_err());
    }

    fn tenant(name: &str) -> Tenant {
        Tenant {
            name: name.into(),
            root: PathBuf::from(format!("/j/{name}/root")),
            collection: name.into(),
            status: "provisioned".into(),
            created_at: None,
            updated_at: None,
            options: Options::default(),
        }
    }

    #[test]
    fn store_round_trip_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/colibri.sqlite");
        assert!(Store::open_existing(&path).unwrap().is_none());
        let mut store = Store::open_or_create(&path).unwrap();
        let mut t = tenant("web");
        t.options.format = Format::Json;
        t.options.owner = Owner { uid: 1001, gid: 2 };
        t.options.on_failure = FailurePolicy::Fail;
        store.insert(&t).unwrap();
        assert_eq!(store.insert(&t).unwrap_err().exit_code(), 64);
        let got = store.get("web").unwrap().unwrap();
        assert_eq!(got.options, t.options);
        assert!(got.created_at.is_some());
        assert_eq!(store.list().unwrap().len(), 1);

        let row = LogRow {
            at_unix: 1_700_000_000,
            tenant: "web".into(),
            jail: "web".into(),
            jid: Some(3),
            trigger: "hook".into(),
            keys: vec!["A".into(), "B".into()],
            content_hash: Some("abc".into()),
            outcome: "written".into(),
            duration_ms: 5,
            bw_calls: 0,
            error: None,
            changed_keys: None,
            on_change: None,
            file: None,
        };
        store.record(&row).unwrap();
        assert_eq!(store.get("web").unwrap().unwrap().status, "active");
        let last = store.last_log("web", Some(&FRESH_OUTCOMES)).unwrap().unwrap();
        assert_eq!(last.keys, ["A", "B"]);
        assert!(store.remove("web").unwrap());
        assert!(store.get("web").unwrap().is_none());
        assert!(store.last_log("web", None).unwrap().is_some(), "the log is kept");
    }

    #[test]
    fn on_change_commands_are_one_printable_line() {
        for ok in
            ["service nginx reload", "cd /srv && ./reload.sh", " -x is an argument here", &"x".repeat(1024)]
        {
            assert!(validate_on_change(ok).is_ok(), "{ok}");
        }
        for bad in ["", "  ", "-i", "a\nb", "a\rb", "a\u{1b}[2Jb", "a\u{85}b", &"x".repeat(1025)] {
            assert_eq!(validate_on_change(bad).unwrap_err().exit_code(), 64, "{bad:?}");
        }
    }

    /// A database of schema 2 (before refresh and the record of files) gets the new columns
    /// and tables when opened, keeps its rows, and works.
    /// A database as colibri-vault's schema 2 left it (no delivery, refresh or file-record
    /// columns yet), with `rows` run on it.
    fn schema_2(path: &Path, rows: &str) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, jail_root_path TEXT NOT NULL,
             collection_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, created_at, updated_at);
             CREATE TABLE colibri_vault_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO colibri_vault_meta VALUES ('schema_version', '2');
             CREATE TABLE colibri_vault_tenant_options (tenant_id TEXT PRIMARY KEY,
             env_path TEXT NOT NULL DEFAULT '.env', format TEXT NOT NULL DEFAULT 'sh',
             owner_uid INTEGER NOT NULL DEFAULT 0, owner_gid INTEGER NOT NULL DEFAULT 0,
             on_failure TEXT NOT NULL DEFAULT 'continue', cleanup_on_stop INTEGER NOT NULL DEFAULT 0,
             allow_names TEXT NOT NULL DEFAULT '');
             {rows}",
        ))
        .unwrap();
    }

    #[test]
    fn a_schema_2_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colibri.sqlite");
        schema_2(
            &path,
            "CREATE TABLE colibri_vault_provision_log (id INTEGER PRIMARY KEY AUTOINCREMENT,
             at_unix INTEGER NOT NULL, at TEXT NOT NULL, tenant_id TEXT NOT NULL, jail TEXT NOT NULL,
             jid INTEGER, trigger TEXT NOT NULL, keys TEXT NOT NULL, content_hash TEXT,
             outcome TEXT NOT NULL, duration_ms INTEGER NOT NULL, bw_calls INTEGER NOT NULL, error TEXT);
             INSERT INTO tenants VALUES ('web', '/j/web/root', 'web', 'active', NULL, NULL);
             INSERT INTO colibri_vault_tenant_options (tenant_id, format) VALUES ('web', 'json');
             INSERT INTO colibri_vault_provision_log (at_unix, at, tenant_id, jail, trigger, keys,
             content_hash, outcome, duration_ms, bw_calls) VALUES (1, 'x', 'web', 'web', 'hook', 'A',
             'h1', 'written', 1, 6);",
        );
        let mut store = Store::open_existing(&path).unwrap().unwrap();
        let t = store.get("web").unwrap().unwrap();
        assert_eq!((t.options.format, t.options.on_change.as_deref()), (Format::Json, None));
        let old = store.last_log("web", None).unwrap().unwrap();
        assert_eq!((old.changed_keys, old.on_change), (None, None));
        assert_eq!(store.tenants_with_hash("h1").unwrap(), ["web"]);
        let mut empty = LogRow::event("web", "hook", "written", 1, None);
        empty.content_hash = Some("empty".into());
        store.record(&empty).unwrap();
        assert!(store.tenants_with_hash("empty").unwrap().is_empty(), "a file without a key is no one's");
        let mut row = LogRow::event("web", "refresh", "written", 1, None);
        row.content_hash = Some("h2".into());
        row.changed_keys = Some(vec!["A".into(), "B".into()]);
        row.on_change = Some("pending".into());
        let id = FileId { dev: u64::MAX, ino: 7 };
        row.file = Some(FileRecord {
            tenant: "web".into(),
            root: "/j/web/root".into(),
            path: ".env".into(),
            id,
            content_hash: "h2".into(),
        });
        let row_id = store.record(&row).unwrap();
        store.set_on_change(row_id, "ok").unwrap();
        let refresh = store.last_refresh("web").unwrap().unwrap();
        assert_eq!(refresh.changed_keys.unwrap(), ["A", "B"]);
        assert_eq!(refresh.on_change.as_deref(), Some("ok"));
        assert_eq!(store.files_with_id(id).unwrap()[0].id, id, "device numbers survive SQLite's i64");
        assert_eq!(store.file_paths().unwrap(), [PathBuf::from(".env")]);
        let mut t = t;
        t.options.on_change = Some("service app reload".into());
        store.update(&t).unwrap();
        assert_eq!(
            store.get("web").unwrap().unwrap().options.on_change.as_deref(),
            Some("service app reload")
        );
    }

    #[test]
    fn delivery_options_round_trip_and_an_older_schema_gets_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colibri.sqlite");
        // A database of schema version 2: no delivery columns yet.
        schema_2(
            &path,
            "INSERT INTO tenants VALUES ('web', '/j/web/root', 'web', 'active', NULL, NULL);
             INSERT INTO colibri_vault_tenant_options (tenant_id) VALUES ('web');",
        );
        let mut store = Store::open_existing(&path).unwrap().unwrap();
        let t = store.get("web").unwrap().unwrap();
        assert_eq!(t.options, Options::default());
        assert_eq!(t.options.secrets_dir(), Path::new("/var/db/secrets"));
        let mut m = tenant("shop");
        m.options.delivery = Delivery::Memory;
        m.options.layout = Layout::Both;
        store.insert(&m).unwrap();
        assert_eq!(store.get("shop").unwrap().unwrap().options.secrets_dir(), Path::new("/var/run/secrets"));
        m.options.mount_point = Some(PathBuf::from("/run/app"));
        store.update(&m).unwrap();
        assert_eq!(store.get("shop").unwrap().unwrap().options, m.options);
        // A row another program wrote with an unsafe combination is refused where it is used.
        store.conn.execute_batch("UPDATE colibri_vault_tenant_options SET delivery = 'file', mount_point = '/var/run/x' WHERE tenant_id = 'shop'").unwrap();
        let e = store.get("shop").unwrap_err().to_string();
        assert!(e.contains("cleanvar"), "{e}");
        store
            .conn
            .execute_batch(
                "UPDATE colibri_vault_tenant_options SET mount_point = '/etc' WHERE tenant_id = 'shop'",
            )
            .unwrap();
        assert!(store.get("shop").unwrap_err().to_string().contains("system directories"));
        store.conn.execute_batch("UPDATE colibri_vault_tenant_options SET mount_point = '', delivery = 'ram' WHERE tenant_id = 'shop'").unwrap();
        assert!(store.get("shop").unwrap_err().to_string().contains("invalid stored delivery"));
    }

    #[test]
    fn a_colibri_database_without_our_tables_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colibri.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, jail_root_path TEXT NOT NULL,
             collection_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, created_at, updated_at);
             INSERT INTO tenants VALUES ('shop', '/j/shop/root', 'shop', 'provisioned', 1700000000, NULL);",
        )
        .unwrap();
        drop(conn);
        let store = Store::open_existing(&path).unwrap().unwrap();
        let t = store.get("shop").unwrap().unwrap();
        assert_eq!(t.options, Options::default());
        assert_eq!(t.created_at.as_deref(), Some("1700000000"));
    }
}
