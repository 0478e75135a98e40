//! Step 7: what the run did, for the record and for people. One provision-log row per tenant
//! and outcome (key names, the names that changed, content hash, outcome, duration, bw calls,
//! sanitized error; never a value), the record of the file written (device, inode, content
//! hash: for cloned-jail detection), the tenant's status, and one line on stderr/syslog. Also
//! turns a session that failed or was served by another run into each pending tenant's report.

use std::sync::Arc;
use std::time::Instant;

use super::materialize::Materialized;
use super::{Ctx, Done, Options, Pending, Report};
use crate::error::{Error, Result};
use crate::spool::Answer;
use crate::tenant::{FileRecord, LogRow, Store, Tenant};

/// Who a log row is about.
pub(super) struct Attempt<'a> {
    pub tenant: &'a Tenant,
    pub jail: &'a str,
    pub jid: Option<i32>,
    pub started: Instant,
    pub opts: Options,
}

impl<'a> Attempt<'a> {
    fn of(p: &'a Pending) -> Attempt<'a> {
        Attempt { tenant: &p.tenant, jail: &p.jail, jid: p.jid, started: p.started, opts: p.opts }
    }
}

/// What a run learned for the log row besides the outcome.
#[derive(Default)]
pub(super) struct Facts {
    pub keys: Vec<String>,
    pub hash: Option<String>,
    pub calls: u32,
    pub changed: Option<Vec<String>>,
    /// `pending` when an on-change command is to run (the outcome replaces it).
    pub on_change: Option<String>,
    pub file: Option<FileRecord>,
}

/// What the on-change column says until the command has run.
pub(super) const ON_CHANGE_PENDING: &str = "pending";

/// Records one materialized (or failed) tenant and puts its result in its report. Returns the
/// log row's id, if one was recorded. `runs`: an on-change command will run for it.
pub(super) fn materialized(
    ctx: &Ctx<'_>,
    store: &mut Store,
    reports: &mut [Report],
    p: &Pending,
    result: Result<Materialized>,
    calls: u32,
    runs: bool,
) -> Option<i64> {
    let (facts, result) = match result {
        Ok(m) => {
            let on_change = runs.then(|| ON_CHANGE_PENDING.to_owned());
            let facts =
                Facts { keys: m.keys, hash: m.hash, calls, changed: m.changed, on_change, file: m.file };
            (facts, Ok(m.done))
        }
        Err(e) => (Facts { calls, ..Facts::default() }, Err(Arc::new(e))),
    };
    let recorded = record(ctx, store, &Attempt::of(p), result.as_ref(), &facts);
    let row = recorded.as_ref().ok().copied().flatten();
    reports[p.index].result = match (result, recorded) {
        // A write that cannot be recorded is a failure: status, freshness and the audit trail
        // would not know about it.
        (Ok(_), Err(e)) => Err(Arc::new(e)),
        (result, _) => result,
    };
    row
}

/// The session could not serve `pending`: each gets `e`, recorded.
pub(super) fn failed(
    ctx: &Ctx<'_>,
    store: &mut Store,
    reports: &mut [Report],
    pending: &[Pending],
    e: Error,
    calls: u32,
) {
    let e = Arc::new(e);
    for p in pending {
        // Already a failure: an unrecorded row changes nothing in its status.
        let _ = record(ctx, store, &Attempt::of(p), Err(&e), &Facts { calls, ..Facts::default() });
        reports[p.index].result = Err(Arc::clone(&e));
    }
}

/// Another run served `pending` (group commit) and recorded the outcome; this run reports it.
pub(super) fn served(ctx: &Ctx<'_>, reports: &mut [Report], pending: &[Pending], answer: &Answer) {
    for p in pending {
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
}

/// The provision-log row, the status, and one line for people and syslog. Returns the row's id
/// (`None` for an outcome that gets no row), or the error if the row could not be recorded
/// (the database stayed busy past its timeout, or failed).
pub(super) fn record(
    ctx: &Ctx<'_>,
    store: &mut Store,
    attempt: &Attempt<'_>,
    result: std::result::Result<&Done, &Arc<Error>>,
    facts: &Facts,
) -> Result<Option<i64>> {
    let jail = attempt.jail;
    let (outcome, error, line) = match result {
        Ok(done @ Done::Written { .. }) => ("written", None, done.summary(jail)),
        Ok(done @ Done::Unchanged { .. }) => ("unchanged", None, done.summary(jail)),
        Ok(done @ Done::Fresh { .. }) => ("fresh", None, done.summary(jail)),
        Ok(done @ Done::DryRun { .. }) => ("dry-run", None, done.summary(jail)),
        Ok(Done::NoTenant | Done::Unreachable { .. } | Done::Served { .. }) => return Ok(None),
        Err(e) => ("failed", Some(e.to_string()), format!("jail {jail}: {e}")),
    };
    if error.is_some() {
        ctx.log.error(&line);
    } else {
        ctx.log.notice(&line);
    }
    let row = LogRow {
        at_unix: crate::clock::now_unix(),
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
        changed_keys: facts.changed.clone(),
        on_change: facts.on_change.clone(),
        file: facts.file.clone(),
    };
    match store.record(&row) {
        Ok(id) => Ok(Some(id)),
        Err(e) => {
            ctx.log.error(&format!("jail {jail}: could not record the outcome: {e}"));
            Err(e)
        }
    }
}
