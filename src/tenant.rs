//! The tenant store: colibri's `SQLite` database.
//!
//! colibri's `tenants` table is kept exactly as colibri-daemon defines it, so an existing
//! database works unchanged; it is created when absent. colibri-vault's own data lives in
//! tables of its own: per-tenant options, an append-only provision log and a schema version.
//! The database never holds a secret value: the log keeps key names and a content hash only.

use std::fmt;
use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::envfile::Format;
use crate::error::{Error, Result};

/// The schema version of colibri-vault's own tables.
pub const SCHEMA_VERSION: i64 = 1;

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
    cleanup_on_stop INTEGER NOT NULL DEFAULT 0
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
    error TEXT
);
CREATE INDEX IF NOT EXISTS colibri_vault_provision_log_tenant
    ON colibri_vault_provision_log (tenant_id, id);
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            env_path: PathBuf::from(".env"),
            format: Format::Sh,
            owner: Owner { uid: 0, gid: 0 },
            on_failure: FailurePolicy::Continue,
            cleanup_on_stop: false,
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
            at_unix: crate::provision::now_unix(),
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
        }
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

/// A jail root: absolute, normalized, strictly under `base`.
pub fn validate_root(root: &Path, base: &Path) -> Result<PathBuf> {
    let shown = crate::sanitize::clean(&root.to_string_lossy());
    if !root.is_absolute() {
        return Err(Error::Usage(format!("jail root {shown} must be an absolute path")));
    }
    // Checked on the text: `Path::components` silently drops interior `.` parts.
    let text = root.to_string_lossy();
    let trimmed = text.trim_end_matches('/');
    if trimmed.split('/').skip(1).any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(Error::Usage(format!("jail root {shown} must be normalized (no '.', '..' or '//')")));
    }
    let root = crate::config::normalize_dir(root);
    if root == base || !root.starts_with(base) {
        return Err(Error::Usage(format!(
            "jail root {shown} must lie strictly under the jail root base {} (COLIBRI_JAIL_ROOT_BASE)",
            base.display()
        )));
    }
    Ok(root)
}

/// The env file's place inside the jail: relative, no `..`, `.`, empty or absolute parts.
pub fn validate_env_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    let ok = !text.is_empty()
        && !text.starts_with('/')
        && !text.ends_with('/')
        && text.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "env path {} must be relative to the jail root, without '..', '.', empty or absolute parts (e.g. .env or usr/local/etc/app.env)",
            crate::sanitize::clean(&text)
        )))
    }
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
        .map_err(|e| Error::db(path, e))?;
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
        let conn = Connection::open(path).map_err(|e| Error::db(path, e))?;
        Store::prepare(conn, path)
    }

    fn prepare(conn: Connection, path: &Path) -> Result<Store> {
        let db = |e: rusqlite::Error| Error::db(path, e);
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM colibri_vault_meta WHERE key = 'schema_version'", [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        match version.as_deref().map(str::parse::<i64>) {
            None => {
                conn.execute(
                    "INSERT OR IGNORE INTO colibri_vault_meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(db)?;
            }
            Some(Ok(v)) if v <= SCHEMA_VERSION => {}
            Some(_) => {
                return Err(Error::db(
                    path,
                    format!(
                        "its colibri-vault schema is newer than this program understands (version {}); upgrade colibri-vault",
                        version.unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(Store { conn, path: path.to_owned() })
    }

    fn err(&self, e: impl fmt::Display) -> Error {
        Error::db(&self.path, e)
    }

    pub fn get(&self, name: &str) -> Result<Option<Tenant>> {
        let sql = format!("{SELECT_TENANT} WHERE t.tenant_id = ?1");
        self.conn.query_row(&sql, [name], row_to_tenant).optional().map_err(|e| self.err(e))?.transpose()
    }

    pub fn list(&self) -> Result<Vec<Tenant>> {
        let sql = format!("{SELECT_TENANT} ORDER BY t.tenant_id");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_to_tenant).map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e)).and_then(|t| t)).collect()
    }

    pub fn insert(&mut self, tenant: &Tenant) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| Error::db(&self.path, e))?;
        tx.execute(
            "INSERT INTO tenants (tenant_id, jail_root_path, collection_id, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%SZ','now'), strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
            params![tenant.name, path_text(&tenant.root), tenant.collection, tenant.status],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                Error::Usage(format!(
                    "tenant {} or collection {} is already registered (see: colibri-vault tenant list)",
                    tenant.name, tenant.collection
                ))
            }
            e => Error::db(&self.path, e),
        })?;
        write_options(&tx, tenant).map_err(|e| Error::db(&self.path, e))?;
        tx.commit().map_err(|e| Error::db(&self.path, e))
    }

    pub fn update(&mut self, tenant: &Tenant) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| Error::db(&self.path, e))?;
        tx.execute(
            "UPDATE tenants SET jail_root_path = ?2, collection_id = ?3, status = ?4,
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE tenant_id = ?1",
            params![tenant.name, path_text(&tenant.root), tenant.collection, tenant.status],
        )
        .map_err(|e| Error::db(&self.path, e))?;
        write_options(&tx, tenant).map_err(|e| Error::db(&self.path, e))?;
        tx.commit().map_err(|e| Error::db(&self.path, e))
    }

    /// Removes the tenant and its options; its provision log stays (it is an audit trail).
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        let tx = self.conn.transaction().map_err(|e| Error::db(&self.path, e))?;
        let n = tx
            .execute("DELETE FROM tenants WHERE tenant_id = ?1", [name])
            .map_err(|e| Error::db(&self.path, e))?;
        tx.execute("DELETE FROM colibri_vault_tenant_options WHERE tenant_id = ?1", [name])
            .map_err(|e| Error::db(&self.path, e))?;
        tx.commit().map_err(|e| Error::db(&self.path, e))?;
        Ok(n > 0)
    }

    /// Appends a log row; on success also marks the tenant `active`. One transaction.
    pub fn record(&mut self, row: &LogRow) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| Error::db(&self.path, e))?;
        tx.execute(
            "INSERT INTO colibri_vault_provision_log
             (at_unix, at, tenant_id, jail, jid, trigger, keys, content_hash, outcome, duration_ms, bw_calls, error)
             VALUES (?1, strftime('%Y-%m-%dT%H:%M:%SZ', ?1, 'unixepoch'), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                row.error
            ],
        )
        .map_err(|e| Error::db(&self.path, e))?;
        if FRESH_OUTCOMES.contains(&row.outcome.as_str()) {
            tx.execute(
                "UPDATE tenants SET status = 'active', updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE tenant_id = ?1",
                [&row.tenant],
            )
            .map_err(|e| Error::db(&self.path, e))?;
        }
        tx.commit().map_err(|e| Error::db(&self.path, e))
    }

    /// The newest log row for `tenant`, optionally only among `outcomes`.
    pub fn last_log(&self, tenant: &str, outcomes: Option<&[&str]>) -> Result<Option<LogRow>> {
        let mut sql = String::from(
            "SELECT at_unix, tenant_id, jail, jid, trigger, keys, content_hash, outcome, duration_ms, bw_calls, error
             FROM colibri_vault_provision_log WHERE tenant_id = ?1",
        );
        if let Some(outcomes) = outcomes {
            let list: Vec<String> = outcomes.iter().map(|o| format!("'{o}'")).collect();
            let _ = write!(sql, " AND outcome IN ({})", list.join(","));
        }
        sql.push_str(" ORDER BY id DESC LIMIT 1");
        self.conn
            .query_row(&sql, [tenant], |r| {
                let keys: String = r.get(5)?;
                Ok(LogRow {
                    at_unix: r.get(0)?,
                    tenant: r.get(1)?,
                    jail: r.get(2)?,
                    jid: r.get(3)?,
                    trigger: r.get(4)?,
                    keys: if keys.is_empty() {
                        Vec::new()
                    } else {
                        keys.split(',').map(str::to_owned).collect()
                    },
                    content_hash: r.get(6)?,
                    outcome: r.get(7)?,
                    duration_ms: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
                    bw_calls: r.get(9)?,
                    error: r.get(10)?,
                })
            })
            .optional()
            .map_err(|e| self.err(e))
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
            self.conn.prepare("SELECT tenant_id, jail_root_path FROM tenants").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let name = String::from_utf8_lossy(&text(r.get_ref(0)?)).into_owned();
                let root = PathBuf::from(std::ffi::OsStr::from_bytes(&text(r.get_ref(1)?)));
                Ok((name, root))
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }
}

const SELECT_TENANT: &str = "
SELECT t.tenant_id, t.jail_root_path, t.collection_id, t.status, t.created_at, t.updated_at,
       o.env_path, o.format, o.owner_uid, o.owner_gid, o.on_failure, o.cleanup_on_stop
FROM tenants t LEFT JOIN colibri_vault_tenant_options o ON o.tenant_id = t.tenant_id";

fn row_to_tenant(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Tenant>> {
    let defaults = Options::default();
    let name: String = r.get(0)?;
    let bad = |what: &str| Error::Database {
        path: PathBuf::new(),
        problem: format!("tenant {name}: invalid stored {what}"),
    };
    let format: Option<String> = r.get(7)?;
    let on_failure: Option<String> = r.get(10)?;
    let options = Options {
        env_path: r.get::<_, Option<String>>(6)?.map_or(defaults.env_path, PathBuf::from),
        format: match format.as_deref().map(str::parse::<Format>) {
            None => defaults.format,
            Some(Ok(f)) => f,
            Some(Err(_)) => return Ok(Err(bad("format"))),
        },
        owner: Owner {
            uid: r.get::<_, Option<u32>>(8)?.unwrap_or(defaults.owner.uid),
            gid: r.get::<_, Option<u32>>(9)?.unwrap_or(defaults.owner.gid),
        },
        on_failure: match on_failure.as_deref().map(str::parse::<FailurePolicy>) {
            None => defaults.on_failure,
            Some(Ok(p)) => p,
            Some(Err(_)) => return Ok(Err(bad("failure policy"))),
        },
        cleanup_on_stop: r.get::<_, Option<bool>>(11)?.unwrap_or(defaults.cleanup_on_stop),
    };
    Ok(Ok(Tenant {
        root: PathBuf::from(r.get::<_, String>(1)?),
        collection: r.get(2)?,
        status: r.get(3)?,
        created_at: r.get::<_, Option<rusqlite::types::Value>>(4)?.and_then(value_text),
        updated_at: r.get::<_, Option<rusqlite::types::Value>>(5)?.and_then(value_text),
        name,
        options,
    }))
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
         (tenant_id, env_path, format, owner_uid, owner_gid, on_failure, cleanup_on_stop)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            tenant.name,
            path_text(&o.env_path),
            o.format.to_string(),
            o.owner.uid,
            o.owner.gid,
            o.on_failure.to_string(),
            o.cleanup_on_stop
        ],
    )
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
