//! Steps 1–3 of the pipeline, and freshness: for each request, the tenant (by jail name), the
//! root to write under (registered, compared with the caller's and the kernel's path, reachable
//! without a symlink), whether the file at its env path is one colibri-vault wrote for another
//! tenant (a cloned jail: `clones`), and whether a hook may skip the vault because the file is
//! fresh. [`report_clones`] looks for such a file in a jail without a tenant, for the start
//! hook, which is done with such a jail before the pipeline.
//!
//! Decides, writes nothing in the jail. Requests decided here (no tenant, refused, fresh,
//! unreachable at boot) get their final report and log row; the others come back as `Pending`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::record::{self, Attempt, Facts};
use super::{Ctx, Done, Options, Pending, Report, Request, Trigger, deliver};
use crate::clones::{self, Foreign};
use crate::config::{Settings, normalize_dir};
use crate::delivery::Delivery;
use crate::error::{Error, Result};
use crate::jail;
use crate::safe_write::{self, Current};
use crate::sanitize::clean;
use crate::tenant::{FRESH_OUTCOMES, LogRow, SETTINGS_CHANGED, Store, Tenant, validate_root};

/// One report per request (final for those decided here; a placeholder for the pending ones,
/// replaced once the session has answered) and the tenants that need the vault.
pub(super) fn identify(
    ctx: &Ctx<'_>,
    store: &mut Store,
    requests: &[Request],
    opts: Options,
) -> (Vec<Report>, Vec<Pending>) {
    let mut reports = Vec::with_capacity(requests.len());
    let mut pending = Vec::new();
    let mut roots = None;
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
                ctx.log.error(&format!("jail {jail}: {e}"));
                reports.push(Report { jail, tenant: None, result: Err(Arc::new(e)) });
                continue;
            }
        };
        let checked = unshared_root(store, &mut roots, &tenant)
            .and_then(|()| check_root(ctx.settings, &tenant, request));
        let result = match checked {
            Ok((root, jid)) => {
                if !opts.dry_run {
                    deliver::tidy(ctx.settings, ctx.log, &tenant);
                }
                let options = &tenant.options;
                // The env file on the jail's disk, where a cloned jail carries another tenant's
                // (a planted FIFO or link is the writer's to refuse, later).
                let on_disk = options.delivery == Delivery::File && options.layout.has_env();
                let current = if on_disk {
                    safe_write::inspect(&root, &options.env_path, options.owner).ok().flatten()
                } else {
                    None
                };
                let foreign =
                    current.as_ref().and_then(|c| foreign_file(ctx, store, &tenant, &root, c, opts));
                let last_written = store.last_log(&tenant.name, Some(&FRESH_OUTCOMES)).ok().flatten();
                let last = if opts.use_freshness && foreign.is_none() {
                    fresh(ctx, store, &tenant, &root)
                } else {
                    None
                };
                if let Some(last) = last {
                    let attempt = Attempt { tenant: &tenant, jail: &jail, jid, started, opts };
                    // Fresh content in a memory fs is shown in the jail (a restart, a missed stop),
                    // except at boot, when the jails are not running yet.
                    let shown = if opts.trigger == Trigger::Boot {
                        Ok(())
                    } else {
                        deliver::show(ctx.settings, &tenant, &root)
                    };
                    match shown {
                        Ok(()) => {
                            let done = Done::Fresh { path: deliver::shown_path(&tenant, &root) };
                            // The content still is what that provision wrote: its key names and
                            // hash belong in this row too (`status` shows the last row's key count).
                            let facts =
                                Facts { keys: last.keys, hash: last.content_hash, ..Facts::default() };
                            match record::record(ctx, store, &attempt, Ok(&done), &facts) {
                                Ok(_) => Ok(done),
                                Err(e) => Err(Arc::new(e)),
                            }
                        }
                        Err(e) => {
                            let e = Arc::new(e);
                            let _ = record::record(ctx, store, &attempt, Err(&e), &Facts::default());
                            Err(e)
                        }
                    }
                } else {
                    pending.push(Pending {
                        index,
                        jail: jail.clone(),
                        opts,
                        tenant: tenant.clone(),
                        root,
                        jid,
                        started,
                        last_hash: last_written.and_then(|row| row.content_hash),
                        foreign,
                    });
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
                let _ = record::record(ctx, store, &attempt, Err(&e), &Facts::default());
                Err(e)
            }
        };
        reports.push(Report { jail, tenant: Some(tenant), result });
    }
    (reports, pending)
}

/// Step 3, first part: no other tenant's root is this tenant's root or lies above or below it
/// (colibri-daemon or a hand edit may have registered such a pair): else one tenant's secrets
/// would land in another tenant's jail. `roots` is read once per run.
fn unshared_root(store: &Store, roots: &mut Option<Vec<(String, PathBuf)>>, tenant: &Tenant) -> Result<()> {
    if roots.is_none() {
        *roots = Some(store.roots()?);
    }
    let roots = roots.as_deref().unwrap_or_default();
    match crate::tenant::overlapping_root(&tenant.name, &tenant.root, roots) {
        None => Ok(()),
        Some(other) => Err(Error::refused(
            &tenant.name,
            format!(
                "its registered root {} is, contains or lies inside the root of tenant {}; each tenant needs a root of its own (colibri-vault tenant set --root)",
                clean(&tenant.root.to_string_lossy()),
                clean(other)
            ),
        )),
    }
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

/// Whether the tenant's env file is one colibri-vault wrote for another tenant; said, if so.
fn foreign_file(
    ctx: &Ctx<'_>,
    store: &Store,
    tenant: &Tenant,
    root: &Path,
    current: &Current,
    opts: Options,
) -> Option<Foreign> {
    let rel = &tenant.options.env_path;
    let foreign = match clones::judge(store, &tenant.name, root, rel, current) {
        Ok(found) => found?,
        Err(e) => {
            ctx.log.warn(&format!("jail {}: could not tell whose env file is there: {e}", tenant.name));
            return None;
        }
    };
    let action = if opts.dry_run {
        "a run that is not a dry run replaces it".to_owned()
    } else {
        format!("replacing it with tenant {}'s own", tenant.name)
    };
    ctx.log.warn(&format!("jail {}: {}; {action}", tenant.name, foreign.describe(&root.join(rel))));
    Some(foreign)
}

/// A start hook for a jail without a tenant: a file colibri-vault wrote for a tenant, found in
/// this jail (cloned from that tenant's?), is reported, never removed (the jail is not ours).
/// Its root is the hook's `${path}` or the kernel's, and must lie under the jail root base;
/// anything that cannot be looked at is no finding: this must never block or slow the jail.
pub(crate) fn report_clones(ctx: &Ctx<'_>, store: &Store, request: &Request) {
    let jail = &request.jail;
    let root = match (&request.given_path, &request.running) {
        (Some(path), _) => Some(normalize_dir(path)),
        (None, Some(running)) => Some(normalize_dir(&running.path)),
        (None, None) => jail::by_name(jail).ok().flatten().map(|r| normalize_dir(&r.path)),
    };
    let Some(root) = root.filter(|r| validate_root(r, &ctx.settings.jail_root_base).is_ok()) else { return };
    match clones::scan(store, jail, &root) {
        Ok(found) => {
            for (rel, foreign) in found {
                ctx.log.warn(&format!(
                    "jail {jail}: {}; this jail has no tenant, so it is left in place: remove it (colibri-vault doctor --fix), or register the jail (colibri-vault tenant add {jail} --root …) to have it replaced",
                    foreign.describe(&root.join(rel))
                ));
            }
        }
        Err(e) => ctx.log.debug(&format!("jail {jail}: could not look for another tenant's env file: {e}")),
    }
}

/// The last successful provision's log row when it is recent and what it delivered is still
/// exactly there: same content hash, and what the writers require of what they leave alone (the
/// env file regular, mode 0600, the configured owner, one link; the set as `safe_write::set`
/// leaves it; for delivery memory, in the mounted memory fs). Anything else is rewritten.
fn fresh(ctx: &Ctx<'_>, store: &Store, tenant: &Tenant, root: &Path) -> Option<LogRow> {
    let settings = ctx.settings;
    if settings.fresh_for.is_zero() {
        return None;
    }
    let outcomes = [FRESH_OUTCOMES[0], FRESH_OUTCOMES[1], SETTINGS_CHANGED];
    let last = store.last_log(&tenant.name, Some(&outcomes)).ok()??;
    if last.outcome == SETTINGS_CHANGED {
        return None;
    }
    let age = crate::clock::now_unix().checked_sub(last.at_unix)?;
    if u64::try_from(age).ok()? >= settings.fresh_for.as_secs() {
        return None;
    }
    let hash = last.content_hash.as_deref()?;
    let current = deliver::current(settings, tenant, root).ok()??;
    if !current.problems.is_empty() {
        ctx.log.warn(&format!(
            "jail {}: {}: not fresh, rewriting it",
            tenant.name,
            current.problems.join("; ")
        ));
    }
    // The writers' own definition: content, mode, owner, links.
    (current.problems.is_empty() && current.hash.as_deref() == Some(hash)).then_some(last)
}
