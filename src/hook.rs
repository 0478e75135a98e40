//! Thin adapters for jail(8) and devd(8): turn the calling convention into a pipeline request
//! and the outcome into an exit status through the tenant's failure policy.
//!
//! The rule: a hook never blocks a jail that has no tenant, whatever goes wrong on the host.
//! Hooks may be installed on every jail (a wildcard `*` block), so the name is taken as jail(8)
//! gives it — any name jail(8) accepts (`app.example.org`, `parent.child`, `_x`, `42`) — and only
//! checked for what makes it unsafe to log (NUL, `/`, control characters). A jail without a
//! tenant, a host without a tenant database, and a database that cannot be read are all exit 0
//! (the last one logged loudly; an env file colibri-vault wrote for a tenant, found in a jail
//! without one, a cloned jail's, is reported and left alone); only a tenant whose own, readable policy is `fail` makes a
//! failure non-zero, so that jail(8) does not start (or reports the stop of) that jail. With
//! policy `continue` (the default) a failure is logged and the hook exits 0: the jail starts
//! with whatever env file it had. A hook stopped by a signal ends its vault session and exits
//! with 128 + the signal, whatever the policy: it was told to stop. A hook stopped by a signal ends its vault session and exits
//! with 128 + the signal, whatever the policy: it was told to stop.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::cli::HookCommand;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::exit;
use crate::host_state;
use crate::logging::Log;
use crate::provision::{self, Ctx, Options, Request, Trigger};
use crate::sanitize::clean;
use crate::tenant::{FailurePolicy, LogRow, Store, Tenant};

/// What the hook was doing, for its failure message.
#[derive(Clone, Copy)]
enum Stage {
    Start,
    Stop,
}

pub fn run(settings: &Settings, log: &Log, command: &HookCommand) -> Result<u8> {
    match command {
        HookCommand::Start { name, path } => {
            let Some(jail) = jail_name(log, name) else { return Ok(exit::OK) };
            let request = Request { jail, given_path: path.clone(), running: None };
            Ok(start(settings, log, request, Trigger::Hook))
        }
        HookCommand::Devd { jid } => {
            let running = crate::jail::by_jid(*jid)?;
            let Some(jail) = jail_name(log, OsStr::new(&running.name)) else { return Ok(exit::OK) };
            let request = Request { jail, given_path: None, running: Some(running) };
            Ok(start(settings, log, request, Trigger::Devd))
        }
        HookCommand::Stop { name, path } => {
            let Some(jail) = jail_name(log, name) else { return Ok(exit::OK) };
            Ok(stop(settings, log, &jail, path.as_ref()))
        }
    }
}

/// The jail's name as text, if it can be a tenant's. A name that is not UTF-8 or holds NUL,
/// `/` or a control character cannot be registered, so its jail has no tenant: logged, `None`.
fn jail_name(log: &Log, name: &OsStr) -> Option<String> {
    let text = name.to_str()?;
    let unsafe_name = text.is_empty()
        || text.len() > 255
        || text.contains('/')
        || text.chars().any(|c| c == '\0' || c.is_control());
    if unsafe_name {
        log.warn(&format!("jail {}: not a name a tenant can have; nothing to do", clean(text)));
        return None;
    }
    Some(text.to_owned())
}

/// The settings could not be resolved (e.g. a provider env open to others). Log why, then exit
/// as the jail's tenant asked: non-zero only for a tenant with policy `fail`. A jail without a
/// tenant is never blocked by colibri-vault's own misconfiguration.
pub fn settings_failed(
    flags: &crate::config::Flags,
    log: &Log,
    command: &HookCommand,
    error: &Error,
) -> Result<u8> {
    log.error(&error.to_string());
    let (name, stage) = match command {
        HookCommand::Start { name, .. } => (name.to_str().map(str::to_owned), Stage::Start),
        HookCommand::Stop { name, .. } => (name.to_str().map(str::to_owned), Stage::Stop),
        HookCommand::Devd { jid } => (crate::jail::by_jid(*jid).ok().map(|r| r.name), Stage::Start),
    };
    let Some(name) = name else { return Ok(exit::OK) };
    let env = |key: &str| std::env::var_os(key);
    let policy = Settings::resolve_without_provider_env(flags, &env)
        .ok()
        .and_then(|settings| stored_policy(&settings, &name));
    match policy {
        None => Ok(exit::OK),
        Some(policy) => Ok(apply_policy(log, &name, stage, policy, error.exit_code())),
    }
}

/// The tenant's failure policy as stored, read with as little as possible (read-only, no schema
/// work); `None` when there is no database, no such tenant, nothing readable, or a database that
/// lies inside a jail: its rows are the jail's to write, so they cannot decide anything.
fn stored_policy(settings: &Settings, name: &str) -> Option<FailurePolicy> {
    if std::fs::symlink_metadata(&settings.db).is_err() || !host_state::database_outside_base(settings) {
        return None;
    }
    let store = Store::open_read_only(&settings.db)?;
    if !host_state::database_outside_roots(settings, &store) {
        return None;
    }
    store.failure_policy(name)
}

/// Opens the tenant database for a hook. `Err(code)`: the hook ends with that status (0 unless
/// the tenant's own, readable policy is `fail`), after saying why.
fn open_store(settings: &Settings, log: &Log, jail: &str, stage: Stage) -> std::result::Result<Store, u8> {
    match Store::open_existing(&settings.db) {
        Ok(Some(store)) => Ok(store),
        Ok(None) => {
            log.debug(&format!(
                "jail {jail}: no tenant database at {}; nothing to do",
                settings.db.display()
            ));
            Err(exit::OK)
        }
        Err(e) => {
            log.error(&format!("jail {jail}: could not use the tenant database: {e}"));
            if let Some(policy) = stored_policy(settings, jail) {
                Err(apply_policy(log, jail, stage, policy, e.exit_code()))
            } else {
                log.error(&format!(
                    "jail {jail}: cannot tell whether it has a tenant; the hook does nothing and exits 0"
                ));
                Err(exit::OK)
            }
        }
    }
}

/// Whether no row at all is registered for `jail` (a valid or an invalid one): then there is
/// nothing to do, and nothing more is checked — the common case of a hook on every jail, kept
/// cheap (docs/performance.md).
fn no_tenant(log: &Log, store: &Store, jail: &str) -> bool {
    let none = matches!(store.get_raw(jail), Ok(None));
    if none {
        log.debug(&format!("jail {jail}: no tenant registered; nothing to do"));
    }
    none
}

fn start(settings: &Settings, log: &Log, request: Request, trigger: Trigger) -> u8 {
    let jail = request.jail.clone();
    let mut store = match open_store(settings, log, &jail, Stage::Start) {
        Ok(store) => store,
        Err(code) => return code,
    };
    if no_tenant(log, &store, &jail) {
        // It may still carry an env file colibri-vault wrote for a tenant (a cloned jail):
        // reported, never touched, and cheap (docs/performance.md).
        provision::report_clones(&Ctx { settings, log }, &store, &request);
        return exit::OK;
    }
    if let Err(e) = host_state::check_with_store(settings, &store) {
        return state_in_jail(log, settings, &jail, Stage::Start, &e);
    }
    let opts = Options { trigger, dry_run: false, use_freshness: true };
    let run = provision::run(&Ctx { settings, log }, &mut store, &[request], opts);
    let Some(report) = run.reports.into_iter().next() else {
        return exit::OK;
    };
    let code = match &report.result {
        Ok(_) => run.session_error.as_ref().map_or(exit::OK, Error::exit_code),
        Err(e) => e.exit_code(),
    };
    let policy = policy_of(&store, &jail, report.tenant.as_ref());
    apply_policy(log, &report.jail, Stage::Start, policy, code)
}

/// Host-side state found inside a tenant's root once the database was open: nothing runs, and
/// the hook exits as this jail's tenant asked (a jail without a tenant is never blocked; a
/// database that is itself inside a jail cannot be trusted for that answer).
fn state_in_jail(log: &Log, settings: &Settings, jail: &str, stage: Stage, error: &Error) -> u8 {
    log.error(&format!("jail {jail}: {error}"));
    match stored_policy(settings, jail) {
        Some(policy) => apply_policy(log, jail, stage, policy, error.exit_code()),
        None => exit::OK,
    }
}

/// The tenant's policy; for a row that could not be used as a whole, the policy stored in it.
fn policy_of(store: &Store, jail: &str, tenant: Option<&Tenant>) -> FailurePolicy {
    tenant
        .map(|t| t.options.on_failure)
        .or_else(|| store.failure_policy(jail))
        .unwrap_or(FailurePolicy::Continue)
}

fn apply_policy(log: &Log, jail: &str, stage: Stage, policy: FailurePolicy, code: u8) -> u8 {
    if code == exit::OK {
        return exit::OK;
    }
    let what = match stage {
        Stage::Start => "provisioning failed",
        Stage::Stop => "cleanup at stop failed",
    };
    if code > 128 {
        // A signal is an order to stop, not a failure a policy can excuse: the run ends with
        // 128 + signal whatever the policy (after the vault session was ended), and says so.
        log.error(&format!(
            "jail {jail}: {what}: interrupted by signal {}; exiting {code}, which jail(8) treats as a failed hook whatever the policy",
            code - 128
        ));
        return code;
    }
    let status = format!("status {code}");
    match (policy, stage) {
        (FailurePolicy::Continue, Stage::Start) => {
            log.warn(&format!(
                "jail {jail}: {what} ({status}); policy continue: exiting 0, the jail starts without fresh secrets (an existing env file stays)"
            ));
            exit::OK
        }
        (FailurePolicy::Continue, Stage::Stop) => {
            log.warn(&format!("jail {jail}: {what} ({status}); policy continue: exiting 0"));
            exit::OK
        }
        (FailurePolicy::Fail, Stage::Start) => {
            log.error(&format!(
                "jail {jail}: {what} ({status}); policy fail: exiting {code}, so jail(8) does not start the jail"
            ));
            code
        }
        (FailurePolicy::Fail, Stage::Stop) => {
            log.error(&format!(
                "jail {jail}: {what} ({status}); policy fail: exiting {code}, so jail(8) reports the stop as failed (the jail is removed all the same)"
            ));
            code
        }
    }
}

fn stop(settings: &Settings, log: &Log, name: &str, path: Option<&PathBuf>) -> u8 {
    let mut store = match open_store(settings, log, name, Stage::Stop) {
        Ok(store) => store,
        Err(code) => return code,
    };
    if no_tenant(log, &store, name) {
        return exit::OK;
    }
    if let Err(e) = host_state::check_with_store(settings, &store) {
        return state_in_jail(log, settings, name, Stage::Stop, &e);
    }
    let tenant = match store.get(name) {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return exit::OK,
        Err(e) => {
            log.error(&format!("jail {name}: {e}"));
            let policy = policy_of(&store, name, None);
            return apply_policy(log, name, Stage::Stop, policy, e.exit_code());
        }
    };
    let memory = tenant.options.delivery == crate::delivery::Delivery::Memory;
    let stale_memory = provision::deliver::place(settings, &tenant).may_exist();
    if !tenant.options.cleanup_on_stop && !memory && !stale_memory {
        log.debug(&format!("jail {name}: tenant keeps its env file when stopped"));
        return exit::OK;
    }
    let started = std::time::Instant::now();
    let root = || {
        let request = Request { jail: tenant.name.clone(), given_path: path.cloned(), running: None };
        provision::check_root(settings, &tenant, &request).map(|(root, _)| root)
    };
    let result = provision::deliver::at_stop(settings, &tenant, root);
    let (outcome, error) = match &result {
        Ok(stopped) if !stopped.done.is_empty() => ("removed", None),
        Ok(_) => ("absent", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    match &result {
        Ok(stopped) if !stopped.done.is_empty() => {
            log.notice(&format!("jail {name}: {}", clean(&stopped.done.join(", "))));
        }
        Ok(_) => log.info(&format!("jail {name}: nothing to remove or unmount")),
        Err(e) => log.error(&format!("jail {name}: {e}")),
    }
    if matches!(&result, Ok(stopped) if stopped.env_removed)
        && let Err(e) = store.forget_file(&tenant.name, &tenant.options.env_path)
    {
        log.error(&format!("jail {name}: could not update the record of its files: {e}"));
    }
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let row = LogRow::event(&tenant.name, "hook-stop", outcome, elapsed, error);
    let recorded = store.record(&row);
    if let Err(e) = &recorded {
        log.error(&format!("jail {name}: could not record the outcome: {e}"));
    }
    let code = match (&result, &recorded) {
        (Err(e), _) | (Ok(_), Err(e)) => e.exit_code(),
        (Ok(_), Ok(_)) => exit::OK,
    };
    apply_policy(log, name, Stage::Stop, tenant.options.on_failure, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn policy_decides_the_hook_status() {
        let log = Log::quiet();
        assert_eq!(apply_policy(&log, "j", Stage::Start, FailurePolicy::Continue, 73), 0);
        assert_eq!(apply_policy(&log, "j", Stage::Start, FailurePolicy::Fail, 73), 73);
        assert_eq!(apply_policy(&log, "j", Stage::Stop, FailurePolicy::Fail, 143), 143);
        assert_eq!(apply_policy(&log, "j", Stage::Start, FailurePolicy::Continue, 143), 143);
        assert_eq!(apply_policy(&log, "j", Stage::Start, FailurePolicy::Fail, 0), 0);
    }

    #[test]
    fn hook_names_are_what_jail8_accepts_minus_the_unsafe() {
        let log = Log::quiet();
        for ok in ["web", "app.example.org", "parent.child", "_x", "42", "0web", "a-b_c.d"] {
            assert_eq!(jail_name(&log, OsStr::new(ok)).as_deref(), Some(ok), "{ok}");
        }
        for bad in ["", "a/b", "../x", "a\u{1b}[2J", "a\nb", "a\0b", &"x".repeat(256)] {
            assert_eq!(jail_name(&log, OsStr::new(bad)), None, "{bad:?}");
        }
        assert_eq!(jail_name(&log, OsStr::from_bytes(b"w\xffeb")), None);
    }
}
