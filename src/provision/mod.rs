//! The one provisioning pipeline (DESIGN.md steps 1–7). Every entry point — `hook start`,
//! `hook devd`, `provision`, the boot batch — turns its calling convention into `Request`s and
//! calls [`run`]; none has a copy of this logic.
//!
//! One call serves any number of tenants with one vault session. [`run`] walks the steps in
//! order, one room each:
//! - [`identify`]: steps 1–3 (tenant, root, kernel path) and, for hooks, freshness;
//! - [`session`]: step 4 under the host-wide lock — one vault session for every pending tenant
//!   and for the requests of hooks waiting for the lock (group commit), closed (bw: logout)
//!   before any file is written;
//! - [`materialize`]: steps 4–6 per tenant — entries, render, write;
//! - [`record`]: step 7 — the provision-log row, the status, one line for people and syslog.
//!
//! Each tenant's outcome is recorded and reported; one tenant's failure does not stop another's.

pub(crate) mod deliver;
mod identify;
mod materialize;
mod record;
mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::error::Error;
use crate::jail;
use crate::logging::Log;
use crate::tenant::{Store, Tenant};

pub(crate) use identify::check_root;

/// What started the run (kept in the provision log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Hook,
    Devd,
    Manual,
    Boot,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Hook => "hook",
            Trigger::Devd => "devd",
            Trigger::Manual => "manual",
            Trigger::Boot => "boot",
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
            Done::Written { path, keys } => {
                format!(
                    "jail {jail}: wrote {} ({}: {})",
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

/// "1 key", "2 keys".
pub fn keys_count(n: usize) -> String {
    if n == 1 { "1 key".into() } else { format!("{n} keys") }
}

pub struct Report {
    pub jail: String,
    pub tenant: Option<Tenant>,
    pub result: std::result::Result<Done, Arc<Error>>,
}

/// The outcome of a whole run: per-request reports, and a problem ending the session, if any.
pub struct Run {
    pub reports: Vec<Report>,
    pub session_error: Option<Error>,
}

impl Run {
    /// The exit status: the first failure's, else the session's, else 0.
    pub fn exit_code(&self) -> u8 {
        self.reports
            .iter()
            .find_map(|r| r.result.as_ref().err().map(|e| e.exit_code()))
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
        return Run { reports, session_error: None };
    }

    // Step 4: the host-wide lock, or another run's answer to our request.
    let held = match session::lock(ctx, requests, opts) {
        session::Locked::Held(held) => held,
        session::Locked::Served(answer) => {
            record::served(ctx, &mut reports, &pending, &answer);
            return Run { reports, session_error: None };
        }
        session::Locked::Failed(e) => {
            record::failed(ctx, store, &mut reports, &pending, e, 0);
            abandon_incomplete(ctx, &pending, opts);
            return Run { reports, session_error: None };
        }
    };
    // One vault session for the pending tenants and the waiting hooks' requests it claims.
    let own = reports.len();
    let fetch = held.fetch(ctx, store, opts, &mut reports, &mut pending);

    // Steps 4–7 per tenant: entries, render, write, record. Still under the lock, so that a
    // process waiting for it finds every tenant of this session recorded.
    match fetch.fetched {
        Err(e) => {
            record::failed(ctx, store, &mut reports, &pending, e, fetch.calls);
            abandon_incomplete(ctx, &pending, opts);
        }
        Ok(fetched) => {
            for p in pending {
                // At boot the jails are not running: their start hooks show a memory fs.
                let view = p.opts.trigger != Trigger::Boot;
                let result = materialize::materialize(ctx, &p.tenant, &p.root, &fetched, opts.dry_run, view);
                if result.is_err() {
                    abandon_incomplete(ctx, std::slice::from_ref(&p), opts);
                }
                record::materialized(ctx, store, &mut reports, &p, result, fetch.calls);
            }
        }
    }
    held.answer_claims(ctx, &fetch.claims, &reports[own..]);
    reports.truncate(own);
    Run { reports, session_error: fetch.closed.err() }
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
