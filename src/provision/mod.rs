//! The one provisioning pipeline (DESIGN.md steps 1–7). Every entry point — `hook start`,
//! `hook devd`, `provision`, the boot batch, `refresh` — turns its calling convention into
//! `Request`s and calls [`run`]; none has a copy of this logic.
//!
//! One call serves any number of tenants with one vault session. [`run`] walks the steps in
//! order, one room each:
//! - [`identify`]: steps 1–3 (tenant, root, kernel path), a file another tenant's jail was
//!   cloned with (`clones`; for a hook, also in a jail without a tenant) and, for hooks,
//!   freshness; a tenant's foreign file is then removed, before the session;
//! - [`session`]: step 4 under the host-wide lock — one vault session for every pending tenant
//!   and for the requests of hooks waiting for the lock (group commit), closed (bw: logout)
//!   before any file is written;
//! - [`materialize`]: steps 4–6 per tenant — entries, render, and which keys changed;
//!   [`deliver`] puts them where the tenant's delivery and layout say (the env file and the
//!   per-variable files, on the jail's disk or in its memory file system shown read-only);
//! - [`record`]: step 7 — the provision-log row, the record of the file written (device,
//!   inode, content hash), the status, one line for people and syslog;
//! - [`notify`]: for `refresh` only, once the lock is released — each tenant whose env file's
//!   content changed gets its on-change command run inside its jail.
//!
//! Each tenant's outcome is recorded and reported; one tenant's failure does not stop another's.

pub(crate) mod deliver;
mod identify;
mod materialize;
mod notify;
mod record;
mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::clones::Foreign;
use crate::config::Settings;
use crate::error::Error;
use crate::jail;
use crate::logging::Log;
use crate::tenant::{Store, Tenant};

pub(crate) use identify::{check_root, report_clones};
pub use notify::{CommandReport, Ran};

/// What started the run (kept in the provision log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Hook,
    Devd,
    Manual,
    Boot,
    /// `refresh`: rewrite what changed and run the on-change commands.
    Refresh,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Hook => "hook",
            Trigger::Devd => "devd",
            Trigger::Manual => "manual",
            Trigger::Boot => "boot",
            Trigger::Refresh => "refresh",
        }
    }
}

/// One jail to provision.
#[derive(Clone, Debug)]
pub struct Request {
    pub jail: String,
    /// The jail's path as the caller knows it (jail.conf's `${path}`), to compare.
    pub given_path: Option<PathBuf>,
    /// The kernel's answer when the caller already has it (devd resolves by JID).
    pub running: Option<jail::Running>,
}

impl Request {
    pub fn named(jail: &str) -> Request {
        Request { jail: jail.to_owned(), given_path: None, running: None }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub trigger: Trigger,
    pub dry_run: bool,
    /// Skip the vault for tenants provisioned less than `fresh_for` ago (hooks only).
    pub use_freshness: bool,
}

/// The result for one request.
#[derive(Debug)]
pub enum Done {
    /// No tenant is registered for this jail: nothing to do.
    NoTenant,
    Written {
        path: PathBuf,
        keys: Vec<String>,
        changed: Changed,
    },
    Unchanged {
        path: PathBuf,
        keys: Vec<String>,
    },
    /// Provisioned recently and the file is intact: the vault was not asked.
    Fresh {
        path: PathBuf,
    },
    /// `--dry-run`: names and value hashes, nothing written.
    DryRun {
        keys: Vec<(String, String)>,
    },
    /// `--boot`: the jail's root is not reachable yet; reported, not fatal.
    Unreachable {
        reason: String,
    },
    /// Another run, holding the vault session, served this jail (group commit).
    Served {
        message: String,
    },
}

impl Done {
    /// One line saying what happened (for a waiting hook's answer and for logs).
    pub fn summary(&self, jail: &str) -> String {
        match self {
            Done::NoTenant => format!("jail {jail}: no tenant registered; nothing to do"),
            Done::Written { path, keys, changed } => {
                let changed = match changed {
                    Changed::NewFile => String::new(),
                    Changed::Keys(names) if names.is_empty() => "; no value changed".to_owned(),
                    Changed::Keys(names) => format!("; changed: {}", names.join(", ")),
                    Changed::Unknown => "; the file it replaced was not colibri-vault's".to_owned(),
                };
                format!(
                    "jail {jail}: wrote {} ({}: {}{changed})",
                    path.display(),
                    keys_count(keys.len()),
                    keys.join(", ")
                )
            }
            Done::Unchanged { path, keys } => {
                format!("jail {jail}: {} unchanged ({})", path.display(), keys_count(keys.len()))
            }
            Done::Fresh { path } => format!("jail {jail}: {} is fresh; vault not asked", path.display()),
            Done::DryRun { keys } => format!("jail {jail}: dry run, {}", keys_count(keys.len())),
            Done::Unreachable { reason } => format!("jail {jail}: skipped: {reason}"),
            Done::Served { message } => format!("{message} (in another run's vault session)"),
        }
    }
}

/// Which keys a write changed, found by comparing with the file it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// There was no file: every key is new.
    NewFile,
    /// The names whose value was added, changed or removed; none when only the bytes differ
    /// (another format) or the file was rewritten for its mode, owner or links.
    Keys(Vec<String>),
    /// The file replaced was not the one colibri-vault last wrote for the tenant: nothing
    /// trustworthy to compare with.
    Unknown,
}

impl Changed {
    /// For the provision log: the names (every key for a new file), `None` when unknown.
    pub fn names(&self, keys: &[String]) -> Option<Vec<String>> {
        match self {
            Changed::NewFile => Some(keys.to_vec()),
            Changed::Keys(names) => Some(names.clone()),
            Changed::Unknown => None,
        }
    }
}

/// "1 key", "2 keys".
pub fn keys_count(n: usize) -> String {
    if n == 1 { "1 key".into() } else { format!("{n} keys") }
}

pub struct Report {
    pub jail: String,
    pub tenant: Option<Tenant>,
    pub result: std::result::Result<Done, Arc<Error>>,
}

/// The outcome of a whole run: per-request reports, a problem ending the session, if any, and
/// (for `refresh`) what each on-change command did.
pub struct Run {
    pub reports: Vec<Report>,
    pub session_error: Option<Error>,
    pub commands: Vec<CommandReport>,
}

impl Run {
    fn of(reports: Vec<Report>) -> Run {
        Run { reports, session_error: None, commands: Vec::new() }
    }

    /// The exit status: the first failure's, else the first failed on-change command's, else
    /// the session's, else 0.
    pub fn exit_code(&self) -> u8 {
        self.reports
            .iter()
            .find_map(|r| r.result.as_ref().err().map(|e| e.exit_code()))
            .or_else(|| self.commands.iter().find_map(|c| c.result.as_ref().err().map(Error::exit_code)))
            .or_else(|| self.session_error.as_ref().map(Error::exit_code))
            .unwrap_or(crate::exit::OK)
    }
}

/// A tenant that needs the vault: found in step 2, checked in step 3, not fresh.
struct Pending {
    /// Its report's index.
    index: usize,
    jail: String,
    opts: Options,
    tenant: Tenant,
    root: PathBuf,
    jid: Option<i32>,
    started: Instant,
    /// The content hash colibri-vault last wrote (or found) for this tenant, if any.
    last_hash: Option<String>,
    /// Another tenant's file found at the env path (a cloned jail): removed before the session.
    foreign: Option<Foreign>,
}

pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub log: &'a Log,
}

/// Runs the pipeline for `requests`.
pub fn run(ctx: &Ctx<'_>, store: &mut Store, requests: &[Request], opts: Options) -> Run {
    // Steps 1–3, and freshness for hooks: which requests need the vault.
    let (mut reports, mut pending) = identify::identify(ctx, store, requests, opts);
    if pending.is_empty() {
        return Run::of(reports);
    }
    // Another tenant's secrets go now, whatever becomes of the session: a jail never keeps them.
    if !opts.dry_run {
        materialize::remove_foreign(ctx, &pending);
    }

    // Step 4: the host-wide lock, or another run's answer to our request.
    let held = match session::lock(ctx, requests, opts) {
        session::Locked::Held(held) => held,
        session::Locked::Served(answer) => {
            record::served(ctx, &mut reports, &pending, &answer);
            return Run::of(reports);
        }
        session::Locked::Failed(e) => {
            record::failed(ctx, store, &mut reports, &pending, e, 0);
            abandon_incomplete(ctx, &pending, opts);
            return Run::of(reports);
        }
    };
    // One vault session for the pending tenants and the waiting hooks' requests it claims.
    let own = reports.len();
    let fetch = held.fetch(ctx, store, opts, &mut reports, &mut pending);

    // Steps 4–7 per tenant: entries, render, write, record. Still under the lock, so that a
    // process waiting for it finds every tenant of this session recorded.
    let mut due = Vec::new();
    let fetched = match fetch.fetched {
        Err(e) => {
            record::failed(ctx, store, &mut reports, &pending, e, fetch.calls);
            abandon_incomplete(ctx, &pending, opts);
            None
        }
        Ok(fetched) => {
            for p in pending {
                // At boot the jails are not running: their start hooks show a memory fs.
                let view = p.opts.trigger != Trigger::Boot;
                let mut result = materialize::materialize(ctx, &p, &fetched, opts.dry_run, view);
                if result.is_err() {
                    abandon_incomplete(ctx, std::slice::from_ref(&p), opts);
                }
                let changed = matches!(&result, Ok(m) if m.content_changed);
                let replaced = result.as_mut().map(|m| std::mem::take(&mut m.replaced)).unwrap_or_default();
                let runs = notify::runs_for(&p, changed);
                let row = record::materialized(ctx, store, &mut reports, &p, result, fetch.calls, runs);
                if runs {
                    due.push(notify::Due { row, pending: p, replaced });
                }
            }
            Some(fetched)
        }
    };
    held.answer_claims(ctx, &fetch.claims, &reports[own..]);
    reports.truncate(own);
    // The lock goes before any on-change command runs: a slow one never holds up a jail's start.
    drop(held);
    let commands = match &fetched {
        Some(fetched) => notify::run_due(ctx, store, due, fetched),
        None => Vec::new(),
    };
    Run { reports, session_error: fetch.closed.err(), commands }
}

/// Nothing half made stays mounted after a run that could not deliver (`deliver`).
fn abandon_incomplete(ctx: &Ctx<'_>, pending: &[Pending], opts: Options) {
    if !opts.dry_run {
        for p in pending {
            deliver::abandon_incomplete(ctx.settings, ctx.log, &p.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flags;
    use crate::tenant::{FRESH_OUTCOMES, Owner};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn fresh_and_dry_run_rows_keep_the_key_names() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("jails");
        let root = base.join("web/root");
        std::fs::create_dir_all(&root).unwrap();
        let secrets = d.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(secrets.join("web.env"), "B=2\nA=1\n").unwrap();
        std::fs::set_permissions(secrets.join("web.env"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let flags = Flags {
            provider_env: Some(d.path().join("absent.env")),
            db: Some(d.path().join("db.sqlite")),
            jail_root_base: Some(base),
            run_dir: Some(d.path().join("run")),
            state_dir: Some(d.path().join("state")),
            source: Some("dir".into()),
            secrets_dir: Some(secrets),
            ..Flags::default()
        };
        let settings = Settings::resolve(&flags, &|_| None).unwrap();
        let mut store = Store::open_or_create(&settings.db).unwrap();
        let mut tenant = Tenant {
            name: "web".into(),
            root: root.clone(),
            collection: "web".into(),
            status: "provisioned".into(),
            created_at: None,
            updated_at: None,
            options: crate::tenant::Options::default(),
        };
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        tenant.options.owner = Owner { uid, gid };
        store.insert(&tenant).unwrap();
        let log = Log::quiet();
        let ctx = Ctx { settings: &settings, log: &log };
        let hook = Options { trigger: Trigger::Hook, dry_run: false, use_freshness: true };
        let requests = [Request::named("web")];

        assert!(matches!(run(&ctx, &mut store, &requests, hook).reports[0].result, Ok(Done::Written { .. })));
        let written = store.last_log("web", None).unwrap().unwrap();
        assert!(matches!(run(&ctx, &mut store, &requests, hook).reports[0].result, Ok(Done::Fresh { .. })));
        let fresh = store.last_log("web", None).unwrap().unwrap();
        assert_eq!((fresh.outcome.as_str(), fresh.bw_calls), ("fresh", 0));
        assert_eq!(fresh.keys, ["A", "B"]);
        assert_eq!(fresh.content_hash, written.content_hash);

        let dry = Options { trigger: Trigger::Manual, dry_run: true, use_freshness: false };
        assert!(matches!(run(&ctx, &mut store, &requests, dry).reports[0].result, Ok(Done::DryRun { .. })));
        let row = store.last_log("web", None).unwrap().unwrap();
        assert_eq!(
            (row.outcome.as_str(), row.keys.clone(), row.content_hash),
            ("dry-run", vec!["A".into(), "B".into()], None)
        );
        // The freshness window still counts from the last fetch that wrote or checked the file.
        assert_eq!(store.last_log("web", Some(&FRESH_OUTCOMES)).unwrap().unwrap().outcome, "written");
    }
}
