//! Thin adapters for jail(8) and devd(8): turn the calling convention into a pipeline request
//! and the outcome into an exit status through the tenant's failure policy.
//!
//! A hook for a jail without a tenant, or on a host without a tenant database, is a quiet
//! no-op (exit 0): hooks may be installed on every jail. With policy `continue` (default) a
//! failure is logged and the hook exits 0, so the jail starts with whatever file it had; with
//! `fail` the hook exits with the error's status and jail(8) does not start the jail.

use std::path::PathBuf;

use crate::cli::HookCommand;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::exit;
use crate::logging::Log;
use crate::provision::{self, Ctx, Options, Request, Trigger};
use crate::tenant::{FailurePolicy, LogRow, Store, validate_name};

pub fn run(settings: &Settings, log: &Log, command: &HookCommand) -> Result<u8> {
    match command {
        HookCommand::Start { name, path } => start(
            settings,
            log,
            Request { jail: name.clone(), given_path: path.clone(), running: None },
            Trigger::Hook,
        ),
        HookCommand::Devd { jid } => {
            let running = crate::jail::by_jid(*jid)?;
            let request = Request { jail: running.name.clone(), given_path: None, running: Some(running) };
            start(settings, log, request, Trigger::Devd)
        }
        HookCommand::Stop { name, path } => stop(settings, log, name, path.as_ref()),
    }
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
    let name = match command {
        HookCommand::Start { name, .. } | HookCommand::Stop { name, .. } => name.clone(),
        HookCommand::Devd { jid } => match crate::jail::by_jid(*jid) {
            Ok(running) => running.name,
            Err(_) => {
                return Ok(apply_policy(
                    log,
                    &format!("JID {jid}"),
                    FailurePolicy::Continue,
                    error.exit_code(),
                ));
            }
        },
    };
    let env = |key: &str| std::env::var_os(key);
    let policy = Settings::resolve_without_provider_env(flags, &env)
        .ok()
        // A database inside a jail is not trusted: its rows are the jail's to write.
        .filter(crate::host_state::database_outside_base)
        .and_then(|settings| {
            Store::open_existing(&settings.db)
                .ok()
                .flatten()
                .filter(|store| crate::host_state::database_outside_roots(&settings, store))
        })
        .and_then(|store| store.get(&name).ok().flatten())
        .map(|tenant| tenant.options.on_failure);
    match policy {
        None => Ok(exit::OK),
        Some(policy) => Ok(apply_policy(log, &name, policy, error.exit_code())),
    }
}

fn open_store(settings: &Settings, log: &Log, jail: &str) -> Result<Option<Store>> {
    let store = Store::open_existing(&settings.db)?;
    if store.is_none() {
        log.debug(&format!("jail {jail}: no tenant database at {}; nothing to do", settings.db.display()));
    }
    Ok(store)
}

/// Host-side state found inside a tenant's root once the database was open: nothing runs, and
/// the hook exits as this jail's tenant asked (a jail without a tenant is never blocked). A
/// database that is itself inside a jail cannot be trusted for that answer: the jail starts.
fn state_in_jail(log: &Log, store: &Store, jail: &str, error: &Error) -> u8 {
    log.error(&error.to_string());
    let policy = match error {
        Error::HostStateInJail { setting: "COLIBRI_DB", .. } => None,
        _ => store.get(jail).ok().flatten().map(|t| t.options.on_failure),
    };
    match policy {
        Some(policy) => apply_policy(log, jail, policy, error.exit_code()),
        None => exit::OK,
    }
}

fn start(settings: &Settings, log: &Log, request: Request, trigger: Trigger) -> Result<u8> {
    validate_name(&request.jail)?;
    let Some(mut store) = open_store(settings, log, &request.jail)? else {
        return Ok(exit::OK);
    };
    if let Err(e) = crate::host_state::check_with_store(settings, &store) {
        return Ok(state_in_jail(log, &store, &request.jail, &e));
    }
    let opts = Options { trigger, dry_run: false, use_freshness: true };
    let run = provision::run(&Ctx { settings, log }, &mut store, &[request], opts);
    let Some(report) = run.reports.into_iter().next() else {
        return Ok(exit::OK);
    };
    let policy = report.tenant.as_ref().map_or(FailurePolicy::Continue, |t| t.options.on_failure);
    let code = match &report.result {
        Ok(_) => run.session_error.as_ref().map_or(exit::OK, Error::exit_code),
        Err(e) => e.exit_code(),
    };
    Ok(apply_policy(log, &report.jail, policy, code))
}

fn apply_policy(log: &Log, jail: &str, policy: FailurePolicy, code: u8) -> u8 {
    match (code, policy) {
        (exit::OK, _) => exit::OK,
        (_, FailurePolicy::Continue) => {
            log.warn(&format!(
                "jail {jail}: provisioning failed (status {code}); policy continue: the jail starts without fresh secrets, an existing env file stays"
            ));
            exit::OK
        }
        (_, FailurePolicy::Fail) => {
            log.error(&format!("jail {jail}: provisioning failed (status {code}); policy fail: jail(8) will not start the jail"));
            code
        }
    }
}

fn stop(settings: &Settings, log: &Log, name: &str, path: Option<&PathBuf>) -> Result<u8> {
    validate_name(name)?;
    let Some(mut store) = open_store(settings, log, name)? else {
        return Ok(exit::OK);
    };
    if let Err(e) = crate::host_state::check_with_store(settings, &store) {
        return Ok(state_in_jail(log, &store, name, &e));
    }
    let Some(tenant) = store.get(name)? else {
        return Ok(exit::OK);
    };
    if !tenant.options.cleanup_on_stop {
        log.debug(&format!("jail {name}: tenant keeps its env file when stopped"));
        return Ok(exit::OK);
    }
    let started = std::time::Instant::now();
    let result = remove_env_file(settings, &tenant, path);
    let (outcome, error) = match &result {
        Ok(true) => ("removed", None),
        Ok(false) => ("absent", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    let path_shown = tenant.root.join(&tenant.options.env_path);
    match &result {
        Ok(true) => log.notice(&format!("jail {name}: removed {}", path_shown.display())),
        Ok(false) => log.info(&format!("jail {name}: {} was already absent", path_shown.display())),
        Err(e) => log.error(&format!("jail {name}: {e}")),
    }
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let row = LogRow::event(&tenant.name, "hook-stop", outcome, elapsed, error);
    if let Err(e) = store.record(&row) {
        log.error(&format!("jail {name}: could not record the outcome: {e}"));
    }
    let code = result.as_ref().err().map_or(exit::OK, Error::exit_code);
    Ok(apply_policy(log, name, tenant.options.on_failure, code))
}

fn remove_env_file(
    settings: &Settings,
    tenant: &crate::tenant::Tenant,
    given: Option<&PathBuf>,
) -> Result<bool> {
    let request = Request { jail: tenant.name.clone(), given_path: given.cloned(), running: None };
    let (root, _) = provision::check_root(settings, tenant, &request)?;
    crate::safe_write::remove(&root, &tenant.options.env_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_decides_the_hook_status() {
        let log = Log::quiet();
        assert_eq!(apply_policy(&log, "j", FailurePolicy::Continue, 73), 0);
        assert_eq!(apply_policy(&log, "j", FailurePolicy::Fail, 73), 73);
        assert_eq!(apply_policy(&log, "j", FailurePolicy::Fail, 0), 0);
    }
}
