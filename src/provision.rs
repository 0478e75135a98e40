//! The one provisioning pipeline (DESIGN.md steps 1–7). Every entry point — `hook start`,
//! `hook devd`, `provision`, the boot batch — turns its calling convention into `Request`s and
//! calls [`run`]; none has a copy of this logic.
//!
//! One call serves any number of tenants with one vault session: tenants are identified and
//! checked first, fresh ones are skipped, and the rest share one `fetch` under the host-wide
//! lock. The session is closed (bw: logout) before any file is written. Each tenant's outcome
//! is written to the provision log and reported; one tenant's failure does not stop another's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{Settings, normalize_dir};
use crate::envfile::{self, Entries};
use crate::error::{Error, Result};
use crate::jail;
use crate::lock::HostLock;
use crate::logging::Log;
use crate::safe_write::{self, Outcome};
use crate::sanitize::clean;
use crate::source::{self, Fetched};
use crate::spool::{Answer, Claim, Spool, Ticket};
use crate::tenant::{FRESH_OUTCOMES, LogRow, SETTINGS_CHANGED, Store, Tenant, validate_root};

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
                format!("jail {jail}: wrote {} ({} keys: {})", path.display(), keys.len(), keys.join(", "))
            }
            Done::Unchanged { path, keys } => {
                format!("jail {jail}: {} unchanged ({} keys)", path.display(), keys.len())
            }
            Done::Fresh { path } => format!("jail {jail}: {} is fresh; vault not asked", path.display()),
            Done::DryRun { keys } => format!("jail {jail}: dry run, {} keys", keys.len()),
            Done::Unreachable { reason } => format!("jail {jail}: skipped: {reason}"),
            Done::Served { message } => format!("{message} (in another run's vault session)"),
        }
    }
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

struct Pending {
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
    let (mut reports, mut pending) = identify(ctx, store, requests, opts);
    if pending.is_empty() {
        return Run { reports, session_error: None };
    }
    let fail_pending =
        |store: &mut Store, reports: &mut Vec<Report>, pending: &[Pending], e: Error, calls: u32| {
            let e = Arc::new(e);
            for p in pending {
                let attempt =
                    Attempt { tenant: &p.tenant, jail: &p.jail, jid: p.jid, started: p.started, opts };
                record(ctx, store, &attempt, Err(&e), &Facts { calls, ..Facts::default() });
                reports[p.index].result = Err(Arc::clone(&e));
            }
        };

    // Step 4, under the host-wide lock: one vault session for every pending tenant, and for the
    // requests other hooks spooled while they waited for the lock (group commit, `spool`).
    let spool = match Spool::new(&ctx.settings.run_dir) {
        Ok(spool) => spool,
        Err(e) => {
            fail_pending(store, &mut reports, &pending, e, 0);
            return Run { reports, session_error: None };
        }
    };
    let _lock = match wait_for_lock(ctx, &spool, requests, opts) {
        Waited::Locked(lock) => lock,
        Waited::Served(answer) => {
            // The holder recorded the outcome; this run only reports it.
            for p in &pending {
                reports[p.index].result = if answer.code == crate::exit::OK {
                    let done = Done::Served { message: answer.message.clone() };
                    ctx.log.notice(&done.summary(&p.jail));
                    Ok(done)
                } else {
                    let e = Error::ServedByOther { code: answer.code, message: answer.message.clone() };
                    ctx.log.error(&e.to_string());
                    Err(Arc::new(e))
                };
            }
            return Run { reports, session_error: None };
        }
        Waited::Failed(e) => {
            fail_pending(store, &mut reports, &pending, e, 0);
            return Run { reports, session_error: None };
        }
    };
    let mut session = match source::open(ctx.settings, ctx.log) {
        Ok(session) => session,
        Err(e) => {
            fail_pending(store, &mut reports, &pending, e, 0);
            return Run { reports, session_error: None };
        }
    };
    let own = reports.len();
    let claims =
        if opts.dry_run { Vec::new() } else { take_claims(ctx, store, &spool, &mut reports, &mut pending) };
    let collections: BTreeSet<String> = pending.iter().map(|p| p.tenant.collection.clone()).collect();
    let fetched = session.fetch(&collections);
    let calls = session.calls();
    let closed = session.close();
    let session_error = closed.err();
    if let Some(e) = &session_error {
        ctx.log.error(&format!("could not end the vault session cleanly: {e}"));
    }
    match fetched {
        Err(e) => fail_pending(store, &mut reports, &pending, e, calls),
        // Steps 4–7 per tenant: entries, render, write, record. Still under the lock, so that
        // a process waiting for it finds every tenant of this session recorded.
        Ok(fetched) => {
            for p in pending {
                let result = materialize(ctx, &p.tenant, &p.root, &fetched, opts.dry_run);
                let (keys, hash) = match &result {
                    Ok((_, keys, hash)) => (keys.clone(), hash.clone()),
                    Err(_) => (Vec::new(), None),
                };
                let result = result.map(|(done, _, _)| done).map_err(Arc::new);
                let attempt = Attempt {
                    tenant: &p.tenant,
                    jail: &p.jail,
                    jid: p.jid,
                    started: p.started,
                    opts: p.opts,
                };
                record(ctx, store, &attempt, result.as_ref(), &Facts { keys, hash, calls });
                reports[p.index].result = result;
            }
        }
    }
    answer_claims(ctx, &spool, &claims, &reports[own..]);
    spool.sweep();
    reports.truncate(own);
    Run { reports, session_error }
}

/// Claims the spooled requests of waiting hooks and adds them to this run. Called after login
/// and unlock (the slow part, when concurrent hooks register) and right before the listing, so
/// every claimed request is served from a listing made after it was registered.
fn take_claims(
    ctx: &Ctx<'_>,
    store: &mut Store,
    spool: &Spool,
    reports: &mut Vec<Report>,
    pending: &mut Vec<Pending>,
) -> Vec<Claim> {
    let claims = spool.claim_all();
    let claimed: Vec<Request> = claims
        .iter()
        .map(|c| Request { jail: c.ticket.jail.clone(), given_path: c.ticket.path.clone(), running: None })
        .collect();
    let opts = Options { trigger: Trigger::Hook, dry_run: false, use_freshness: false };
    let (claimed_reports, claimed_pending) = identify(ctx, store, &claimed, opts);
    let own = reports.len();
    reports.extend(claimed_reports);
    pending.extend(claimed_pending.into_iter().map(|p| Pending { index: p.index + own, ..p }));
    claims
}

/// Tells each waiting hook what happened to its jail. A run stopped by a signal answers
/// nobody: 128 + signal is its own status, not the waiters'; it hands their requests back,
/// and each waiter serves itself once it gets the lock.
fn answer_claims(ctx: &Ctx<'_>, spool: &Spool, claims: &[Claim], reports: &[Report]) {
    for (claim, report) in claims.iter().zip(reports) {
        if matches!(&report.result, Err(e) if matches!(**e, Error::Interrupted(_))) {
            spool.release(claim);
            continue;
        }
        let answer = match &report.result {
            Ok(done) => Answer { code: crate::exit::OK, message: done.summary(&report.jail) },
            Err(e) => Answer { code: e.exit_code(), message: e.to_string() },
        };
        if let Err(e) = spool.answer_claim(claim, &answer) {
            ctx.log.error(&format!("jail {}: could not answer the waiting hook: {e}", report.jail));
        }
    }
}

enum Waited {
    Locked(HostLock),
    /// Another run served our one request while we waited.
    Served(Answer),
    Failed(Error),
}

/// Takes the host-wide lock. A single hook request that has to wait registers in the spool
/// and returns as soon as the holder answers it, without a session of its own.
fn wait_for_lock(ctx: &Ctx<'_>, spool: &Spool, requests: &[Request], opts: Options) -> Waited {
    let run_dir = &ctx.settings.run_dir;
    match HostLock::try_acquire(run_dir) {
        Ok(Some(lock)) => return Waited::Locked(lock),
        Ok(None) => {}
        Err(e) => return Waited::Failed(e),
    }
    let groupable =
        matches!(opts.trigger, Trigger::Hook | Trigger::Devd) && requests.len() == 1 && !opts.dry_run;
    let registration = if groupable {
        let request = &requests[0];
        match spool.register(&Ticket { jail: request.jail.clone(), path: request.given_path.clone() }) {
            Ok(registration) => {
                ctx.log.info(&format!(
                    "jail {}: another run holds the vault; asked it to serve this jail too",
                    request.jail
                ));
                Some(registration)
            }
            Err(e) => return Waited::Failed(e),
        }
    } else {
        None
    };
    let timeout = ctx.settings.lock_timeout;
    let deadline = crate::deadline::Deadline::after(timeout);
    loop {
        if let Some(answer) = registration.as_ref().and_then(|r| spool.answer(r)) {
            return Waited::Served(answer);
        }
        match HostLock::try_acquire(run_dir) {
            Ok(Some(lock)) => {
                // Holders answer before they release the lock: check once more, then take our
                // request back and serve it (and any others) ourselves.
                if let Some(registration) = &registration {
                    if let Some(answer) = spool.answer(registration) {
                        return Waited::Served(answer);
                    }
                    spool.withdraw(registration);
                }
                return Waited::Locked(lock);
            }
            Ok(None) => {}
            Err(e) => return Waited::Failed(e),
        }
        let stop = if let Some(signal) = crate::signals::received() {
            Some(Error::Interrupted(signal))
        } else if deadline.passed() {
            Some(Error::LockTimeout { path: HostLock::path(run_dir), seconds: timeout.as_secs() })
        } else {
            None
        };
        if let Some(e) = stop {
            if let Some(registration) = &registration {
                spool.withdraw(registration);
            }
            return Waited::Failed(e);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Steps 1–3 for every request, and freshness for hooks. Returns one report per request
/// (final for those decided here) and the tenants that need the vault.
fn identify(
    ctx: &Ctx<'_>,
    store: &mut Store,
    requests: &[Request],
    opts: Options,
) -> (Vec<Report>, Vec<Pending>) {
    let mut reports = Vec::with_capacity(requests.len());
    let mut pending = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let started = Instant::now();
        let jail = request.jail.clone();
        let tenant = match store.get(&request.jail) {
            Ok(Some(tenant)) => tenant,
            Ok(None) => {
                ctx.log.debug(&format!("jail {jail}: no tenant registered; nothing to do"));
                reports.push(Report { jail, tenant: None, result: Ok(Done::NoTenant) });
                continue;
            }
            Err(e) => {
                reports.push(Report { jail, tenant: None, result: Err(Arc::new(e)) });
                continue;
            }
        };
        let result = match check_root(ctx.settings, &tenant, request) {
            Ok((root, jid)) => {
                let last = if opts.use_freshness { fresh(ctx.settings, store, &tenant, &root) } else { None };
                if let Some(last) = last {
                    let done = Done::Fresh { path: root.join(&tenant.options.env_path) };
                    let attempt = Attempt { tenant: &tenant, jail: &jail, jid, started, opts };
                    // The file still holds what that provision wrote: its key names and hash
                    // belong in this row too (`status` shows the last row's key count).
                    let facts = Facts { keys: last.keys, hash: last.content_hash, calls: 0 };
                    record(ctx, store, &attempt, Ok(&done), &facts);
                    Ok(done)
                } else {
                    pending.push(Pending {
                        index,
                        jail: jail.clone(),
                        opts,
                        tenant: tenant.clone(),
                        root,
                        jid,
                        started,
                    });
                    // A placeholder, replaced once the session has answered.
                    Ok(Done::NoTenant)
                }
            }
            // At boot a root may not be mounted yet: only a root that does not exist is
            // skipped; anything refused (a symlink on the way) stays a failure.
            Err(e) if opts.trigger == Trigger::Boot && !exists_nofollow(&tenant.root) => {
                Ok(Done::Unreachable { reason: e.to_string() })
            }
            Err(e) => {
                let e = Arc::new(e);
                let attempt = Attempt { tenant: &tenant, jail: &jail, jid: None, started, opts };
                record(ctx, store, &attempt, Err(&e), &Facts::default());
                Err(e)
            }
        };
        reports.push(Report { jail, tenant: Some(tenant), result });
    }
    (reports, pending)
}

/// Entries → bytes → file, for one tenant. Returns the outcome, key names and content hash.
fn materialize(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    root: &Path,
    fetched: &Fetched,
    dry_run: bool,
) -> Result<(Done, Vec<String>, Option<String>)> {
    let items = match fetched.get(&tenant.collection) {
        None => {
            return Err(Error::UnknownCollection {
                tenant: tenant.name.clone(),
                collection: tenant.collection.clone(),
            });
        }
        Some(Err(problem)) => return Err(Error::bad_data(&tenant.name, problem.clone())),
        Some(Ok(items)) => items,
    };
    let entries: Entries = envfile::entries_from_items(&tenant.name, items, &mut |w| {
        ctx.log.warn(&format!("tenant {}: {w}", tenant.name));
    })?;
    let keys: Vec<String> = entries.keys().cloned().collect();
    let format = tenant.options.format;
    let bytes = envfile::render(format, &entries)?;
    let hash = envfile::sha256_hex(&bytes);
    if dry_run {
        let hashes = entries
            .values()
            .map(|e| (e.name.clone(), envfile::sha256_hex(e.value.expose().as_bytes())))
            .collect();
        // Key names are logged (never values); no content hash: nothing was written.
        return Ok((Done::DryRun { keys: hashes }, keys, None));
    }
    let env_path = &tenant.options.env_path;
    let path = root.join(env_path);
    let check = |back: &[u8]| envfile::round_trips(format, back, &entries);
    let done = match safe_write::write(root, env_path, &bytes, tenant.options.owner, &check)? {
        Outcome::Written => Done::Written { path, keys: keys.clone() },
        Outcome::Unchanged => Done::Unchanged { path, keys: keys.clone() },
    };
    Ok((done, keys, Some(hash)))
}

/// Step 3: the root to write under, and the JID if the kernel knows the jail.
pub(crate) fn check_root(
    settings: &Settings,
    tenant: &Tenant,
    request: &Request,
) -> Result<(PathBuf, Option<i32>)> {
    let refused = |problem: String| Error::refused(&tenant.name, problem);
    let registered = validate_root(&tenant.root, &settings.jail_root_base)
        .map_err(|e| refused(format!("registered root: {e}")))?;
    if registered != tenant.root {
        return Err(refused(format!("registered root {} is not normalized", tenant.root.display())));
    }
    if let Some(given) = &request.given_path {
        let given = normalize_dir(given);
        if given != registered {
            return Err(refused(format!(
                "the jail's path {} differs from the registered root {}",
                clean(&given.to_string_lossy()),
                registered.display()
            )));
        }
    }
    let running = match &request.running {
        Some(running) => Some(running.clone()),
        None => jail::by_name(&tenant.name)?,
    };
    let jid = match running {
        Some(running) => {
            if normalize_dir(&running.path) != registered {
                return Err(refused(format!(
                    "the kernel's path for jail {} (JID {}) is {}, not the registered root {}",
                    tenant.name,
                    running.jid,
                    clean(&running.path.to_string_lossy()),
                    registered.display()
                )));
            }
            Some(running.jid)
        }
        None => None,
    };
    // Reachable, and no symlink on the way (host side included).
    safe_write::open_dir_nofollow(&registered)?;
    Ok((registered, jid))
}

/// Whether anything (even a dangling symlink) is at `path`.
fn exists_nofollow(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The last successful provision's log row when it is recent and the file still matches it.
fn fresh(settings: &Settings, store: &Store, tenant: &Tenant, root: &Path) -> Option<LogRow> {
    if settings.fresh_for.is_zero() {
        return None;
    }
    let outcomes = [FRESH_OUTCOMES[0], FRESH_OUTCOMES[1], SETTINGS_CHANGED];
    let last = store.last_log(&tenant.name, Some(&outcomes)).ok()??;
    if last.outcome == SETTINGS_CHANGED {
        return None;
    }
    let age = now_unix().checked_sub(last.at_unix)?;
    if u64::try_from(age).ok()? >= settings.fresh_for.as_secs() {
        return None;
    }
    let current = safe_write::read(root, &tenant.options.env_path).ok()??;
    (Some(envfile::sha256_hex(&current)) == last.content_hash).then_some(last)
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Who a log row is about.
struct Attempt<'a> {
    tenant: &'a Tenant,
    jail: &'a str,
    jid: Option<i32>,
    started: Instant,
    opts: Options,
}

/// What a run learned for the log row besides the outcome.
#[derive(Default)]
struct Facts {
    keys: Vec<String>,
    hash: Option<String>,
    calls: u32,
}

/// Step 7: the provision-log row, the status, and one line for people and syslog.
fn record(
    ctx: &Ctx<'_>,
    store: &mut Store,
    attempt: &Attempt<'_>,
    result: std::result::Result<&Done, &Arc<Error>>,
    facts: &Facts,
) {
    let jail = attempt.jail;
    let (outcome, error, line) = match result {
        Ok(done @ Done::Written { .. }) => ("written", None, done.summary(jail)),
        Ok(done @ Done::Unchanged { .. }) => ("unchanged", None, done.summary(jail)),
        Ok(done @ Done::Fresh { .. }) => ("fresh", None, done.summary(jail)),
        Ok(done @ Done::DryRun { .. }) => ("dry-run", None, done.summary(jail)),
        Ok(Done::NoTenant | Done::Unreachable { .. } | Done::Served { .. }) => return,
        Err(e) => ("failed", Some(e.to_string()), format!("jail {jail}: {e}")),
    };
    if error.is_some() {
        ctx.log.error(&line);
    } else {
        ctx.log.notice(&line);
    }
    let row = LogRow {
        at_unix: now_unix(),
        tenant: attempt.tenant.name.clone(),
        jail: jail.to_owned(),
        jid: attempt.jid.map(i64::from),
        trigger: attempt.opts.trigger.as_str().to_owned(),
        keys: facts.keys.clone(),
        content_hash: facts.hash.clone(),
        outcome: outcome.to_owned(),
        duration_ms: u64::try_from(attempt.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        bw_calls: facts.calls,
        error: error.map(|e| crate::sanitize::sanitize(&e, 1024)),
    };
    if let Err(e) = store.record(&row) {
        ctx.log.error(&format!("jail {jail}: could not record the outcome: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flags;
    use crate::tenant::Owner;
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
