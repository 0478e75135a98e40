//! Step 4: the vault session, under the host-wide lock, shared by concurrent hooks.
//!
//! [`lock`] takes the host-wide lock (`lock::HostLock`), waiting with a deadline that honours
//! signals. A single hook that has to wait registers its request in the spool (`spool`) and
//! returns as soon as the holder answers it, without a session of its own (group commit).
//! [`Held::fetch`] opens the configured source (bw: login, unlock), claims the spooled requests
//! of waiting hooks after the slow unlock and right before the listing — so every claimed
//! request is served from a listing made after it was registered — fetches every collection in
//! one round and closes the session (bw: logout) before anything is written. The lock is
//! released when `Held` is dropped, after the pipeline recorded every tenant and answered every
//! claim.

use std::collections::BTreeSet;
use std::time::Duration;

use super::identify::identify;
use super::{Ctx, Options, Pending, Report, Request, Trigger};
use crate::config::SourceKind;
use crate::error::{Error, Result};
use crate::lock::HostLock;
use crate::source::{Fetched, Session, dir::DirSession};
use crate::spool::{Answer, Claim, Spool, Ticket};
use crate::tenant::Store;

pub(super) enum Locked {
    Held(Held),
    /// Another run served our one request while we waited.
    Served(Answer),
    Failed(Error),
}

/// The host-wide lock and the spool of waiting hooks' requests.
pub(super) struct Held {
    _lock: HostLock,
    spool: Spool,
}

/// What one vault session brought back.
pub(super) struct Fetch {
    pub fetched: Result<Fetched>,
    /// External calls (bw runs) the session made.
    pub calls: u32,
    /// Requests of waiting hooks served in this session, to be answered.
    pub claims: Vec<Claim>,
    /// How the session ended (bw: logout).
    pub closed: Result<()>,
}

/// Opens a session with the configured source.
fn open<'a>(ctx: &Ctx<'a>) -> Result<Box<dyn Session + 'a>> {
    match ctx.settings.source {
        SourceKind::Dir => Ok(Box::new(DirSession::new(ctx.settings.secrets_dir.clone()))),
        SourceKind::Bw => crate::bw::open(ctx.settings, ctx.log),
    }
}

/// Takes the host-wide lock. A single hook request that has to wait registers in the spool
/// and returns as soon as the holder answers it, without a session of its own.
pub(super) fn lock(ctx: &Ctx<'_>, requests: &[Request], opts: Options) -> Locked {
    let spool = match Spool::new(&ctx.settings.run_dir) {
        Ok(spool) => spool,
        Err(e) => return Locked::Failed(e),
    };
    let run_dir = &ctx.settings.run_dir;
    match HostLock::try_acquire(run_dir) {
        Ok(Some(lock)) => return Locked::Held(Held { _lock: lock, spool }),
        Ok(None) => {}
        Err(e) => return Locked::Failed(e),
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
            Err(e) => return Locked::Failed(e),
        }
    } else {
        None
    };
    let timeout = ctx.settings.lock_timeout;
    let deadline = crate::deadline::Deadline::after(timeout);
    loop {
        if let Some(answer) = registration.as_ref().and_then(|r| spool.answer(r)) {
            return Locked::Served(answer);
        }
        match HostLock::try_acquire(run_dir) {
            Ok(Some(lock)) => {
                // Holders answer before they release the lock: check once more, then take our
                // request back and serve it (and any others) ourselves.
                if let Some(registration) = &registration {
                    if let Some(answer) = spool.answer(registration) {
                        return Locked::Served(answer);
                    }
                    spool.withdraw(registration);
                }
                return Locked::Held(Held { _lock: lock, spool });
            }
            Ok(None) => {}
            Err(e) => return Locked::Failed(e),
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
            return Locked::Failed(e);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Held {
    /// One vault session: open, claim the waiting hooks' requests (added to `reports` and
    /// `pending`), fetch every pending tenant's collection in one round, close.
    pub(super) fn fetch(
        &self,
        ctx: &Ctx<'_>,
        store: &mut Store,
        opts: Options,
        reports: &mut Vec<Report>,
        pending: &mut Vec<Pending>,
    ) -> Fetch {
        let mut session = match open(ctx) {
            Ok(session) => session,
            Err(e) => return Fetch { fetched: Err(e), calls: 0, claims: Vec::new(), closed: Ok(()) },
        };
        let claims = if opts.dry_run { Vec::new() } else { self.take_claims(ctx, store, reports, pending) };
        let collections: BTreeSet<String> = pending.iter().map(|p| p.tenant.collection.clone()).collect();
        let fetched = session.fetch(&collections);
        let calls = session.calls();
        let closed = session.close();
        if let Err(e) = &closed {
            ctx.log.error(&format!("could not end the vault session cleanly: {e}"));
        }
        Fetch { fetched, calls, claims, closed }
    }

    /// Claims the spooled requests of waiting hooks and adds them to this run.
    fn take_claims(
        &self,
        ctx: &Ctx<'_>,
        store: &mut Store,
        reports: &mut Vec<Report>,
        pending: &mut Vec<Pending>,
    ) -> Vec<Claim> {
        let claims = self.spool.claim_all();
        let claimed: Vec<Request> = claims
            .iter()
            .map(|c| Request {
                jail: c.ticket.jail.clone(),
                given_path: c.ticket.path.clone(),
                running: None,
            })
            .collect();
        let opts = Options { trigger: Trigger::Hook, dry_run: false, use_freshness: false };
        let (claimed_reports, claimed_pending) = identify(ctx, store, &claimed, opts);
        let own = reports.len();
        reports.extend(claimed_reports);
        pending.extend(claimed_pending.into_iter().map(|p| Pending { index: p.index + own, ..p }));
        claims
    }

    /// Tells each waiting hook what happened to its jail (`reports`: the claims' own, in order).
    /// A run stopped by a signal answers nobody: 128 + signal is its own status, not the
    /// waiters'; it hands their requests back, and each waiter serves itself once it gets the
    /// lock.
    pub(super) fn answer_claims(&self, ctx: &Ctx<'_>, claims: &[Claim], reports: &[Report]) {
        for (claim, report) in claims.iter().zip(reports) {
            if matches!(&report.result, Err(e) if matches!(**e, Error::Interrupted(_))) {
                self.spool.release(claim);
                continue;
            }
            let answer = match &report.result {
                Ok(done) => Answer { code: crate::exit::OK, message: done.summary(&report.jail) },
                Err(e) => Answer { code: e.exit_code(), message: format!("jail {}: {e}", report.jail) },
            };
            if let Err(e) = self.spool.answer_claim(claim, &answer) {
                ctx.log.error(&format!("jail {}: could not answer the waiting hook: {e}", report.jail));
            }
        }
        self.spool.sweep();
    }
}
