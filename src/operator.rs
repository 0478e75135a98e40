//! The operator's verbs: `tenant …`, `provision`, `status`, `jail enable|disable`, `doctor`.
//!
//! Each verb validates its input, calls the store or the one provisioning pipeline, and prints.
//! Output meant for scripts (`--json`) goes to stdout; messages go through `Log` to stderr.

use std::fmt::Write as _;

use serde::Serialize;

use crate::bastille;
use crate::cli::{JailCommand, ProvisionArgs, TenantCommand, TenantOptions};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::exit;
use crate::host_state;
use crate::hostfile;
use crate::jailconf::{self, Stage};
use crate::logging::Log;
use crate::provision::{self, Ctx, Done, Options, Request, Trigger};
use crate::sanitize::clean;
use crate::tenant::{self, Store, Tenant};

/// The tenant database if it exists, once no host-side state lies inside a tenant's root.
fn open_store(settings: &Settings) -> Result<Option<Store>> {
    let store = Store::open_existing(&settings.db)?;
    if let Some(store) = &store {
        host_state::check_with_store(settings, store)?;
    }
    Ok(store)
}

fn existing_store(settings: &Settings) -> Result<Store> {
    open_store(settings)?.ok_or_else(|| missing_store(settings))
}

fn missing_store(settings: &Settings) -> Error {
    Error::Config(format!(
        "tenant database {} does not exist; register a tenant first (colibri-vault tenant add NAME --root PATH) or set COLIBRI_DB",
        settings.db.display()
    ))
}

fn get_tenant(store: &Store, name: &str) -> Result<Tenant> {
    store.get(name)?.ok_or_else(|| Error::UnknownTenant(clean(name)))
}

fn apply_options(t: &mut Tenant, o: &TenantOptions) -> Result<()> {
    if let Some(collection) = &o.collection {
        tenant::validate_collection(collection)?;
        t.collection.clone_from(collection);
    }
    if let Some(path) = &o.env_path {
        tenant::validate_env_path(path)?;
        t.options.env_path.clone_from(path);
    }
    if let Some(format) = &o.format {
        t.options.format = format.parse()?;
    }
    if let Some(owner) = &o.owner {
        t.options.owner = owner.parse()?;
    }
    if let Some(policy) = &o.on_failure {
        t.options.on_failure = policy.parse()?;
    }
    if o.cleanup_on_stop {
        t.options.cleanup_on_stop = true;
    }
    Ok(())
}

pub fn tenant(settings: &Settings, command: &TenantCommand) -> Result<u8> {
    match command {
        TenantCommand::Add { name, root, options } => {
            tenant::validate_name(name)?;
            let root = checked_root(settings, root)?;
            let mut t = Tenant {
                name: name.clone(),
                root,
                collection: name.clone(),
                status: "provisioned".into(),
                created_at: None,
                updated_at: None,
                options: tenant::Options::default(),
            };
            apply_options(&mut t, options)?;
            // The new root must not contain host-side state, nor may any registered one;
            // checked before a database is created.
            let existing = Store::open_existing(&settings.db)?;
            let mut roots = existing.as_ref().map(Store::roots).transpose()?.unwrap_or_default();
            roots.push((t.name.clone(), t.root.clone()));
            host_state::check_roots(settings, &roots)?;
            let mut store = match existing {
                Some(store) => store,
                None => Store::open_or_create(&settings.db)?,
            };
            store.insert(&t)?;
            eprintln!(
                "colibri-vault: registered tenant {} (root {}, collection {})",
                t.name,
                t.root.display(),
                t.collection
            );
        }
        TenantCommand::List { json } => {
            let tenants = match open_store(settings)? {
                Some(store) => store.list()?,
                None => Vec::new(),
            };
            if *json {
                println!("{}", to_json(&tenants)?);
            } else {
                let mut out = format!(
                    "{:<20} {:<10} {:<7} {:<11} {:<9} {}\n",
                    "NAME", "STATUS", "FORMAT", "OWNER", "FAILURE", "ROOT"
                );
                for t in &tenants {
                    let _ = writeln!(
                        out,
                        "{:<20} {:<10} {:<7} {:<11} {:<9} {}",
                        clean(&t.name),
                        clean(&t.status),
                        t.options.format,
                        t.options.owner,
                        t.options.on_failure,
                        clean(&t.root.to_string_lossy())
                    );
                }
                print!("{out}");
            }
        }
        TenantCommand::Show { name, json } => {
            let t = get_tenant(&existing_store(settings)?, name)?;
            if *json {
                println!("{}", to_json(&t)?);
            } else {
                print!("{}", describe(&t));
            }
        }
        TenantCommand::Set { name, root, options, no_cleanup_on_stop } => {
            // Not `existing_store`: moving a root away from host-side state must stay possible.
            let mut store = Store::open_existing(&settings.db)?.ok_or_else(|| missing_store(settings))?;
            let mut t = get_tenant(&store, name)?;
            if let Some(root) = root {
                t.root = checked_root(settings, root)?;
            }
            let mut roots = store.roots()?;
            roots.retain(|(other, _)| other != name);
            roots.push((t.name.clone(), t.root.clone()));
            host_state::check_roots(settings, &roots)?;
            apply_options(&mut t, options)?;
            if *no_cleanup_on_stop {
                t.options.cleanup_on_stop = false;
            }
            store.update(&t)?;
            // Audit trail, and the end of the freshness window for what was written before.
            store.record(&tenant::LogRow::event(&t.name, "tenant-set", tenant::SETTINGS_CHANGED, 0, None))?;
            eprintln!("colibri-vault: updated tenant {}", t.name);
        }
        TenantCommand::Remove { name } => {
            // Removing a tenant never puts host-side state inside a jail, and may be the fix.
            let mut store = Store::open_existing(&settings.db)?.ok_or_else(|| missing_store(settings))?;
            if !store.remove(name)? {
                return Err(Error::UnknownTenant(clean(name)));
            }
            eprintln!(
                "colibri-vault: removed tenant {} (its env file and provision log are kept)",
                clean(name)
            );
        }
    }
    Ok(exit::OK)
}

/// A root for `tenant add|set`: valid as text, and if it exists already, reachable from `/`
/// without a symlink (the same walk the writer does), so a bad root is refused now, not at the
/// next jail start.
fn checked_root(settings: &Settings, root: &std::path::Path) -> Result<std::path::PathBuf> {
    let root = tenant::validate_root(root, &settings.jail_root_base)?;
    if root.exists() {
        crate::safe_write::open_dir_nofollow(&root).map_err(|e| Error::Usage(format!("jail root: {e}")))?;
    }
    Ok(root)
}

/// Log outcomes `status` reports as the last provision (a dry run provisions nothing).
const STATUS_OUTCOMES: [&str; 6] = ["written", "unchanged", "fresh", "failed", "removed", "absent"];

fn describe(t: &Tenant) -> String {
    let rows = [
        ("name", clean(&t.name)),
        ("root", clean(&t.root.to_string_lossy())),
        ("collection", clean(&t.collection)),
        ("status", clean(&t.status)),
        ("env path", clean(&t.options.env_path.to_string_lossy())),
        ("format", t.options.format.to_string()),
        ("owner", t.options.owner.to_string()),
        ("on failure", t.options.on_failure.to_string()),
        ("cleanup on stop", if t.options.cleanup_on_stop { "yes" } else { "no" }.into()),
        ("created", t.created_at.as_deref().map_or_else(|| "-".into(), clean)),
        ("updated", t.updated_at.as_deref().map_or_else(|| "-".into(), clean)),
    ];
    rows.iter().fold(String::new(), |mut out, (k, v)| {
        let _ = writeln!(out, "{k:<16} {v}");
        out
    })
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Config(format!("could not encode JSON: {e}")))
}

pub fn provision(settings: &Settings, log: &Log, args: &ProvisionArgs) -> Result<u8> {
    let mut store = existing_store(settings)?;
    let requests: Vec<Request> = if args.all {
        store
            .list()?
            .into_iter()
            .filter(|t| t.status != "destroyed")
            .map(|t| Request::named(&t.name))
            .collect()
    } else {
        for jail in &args.jails {
            tenant::validate_name(jail)?;
            get_tenant(&store, jail)?;
        }
        args.jails.iter().map(|j| Request::named(j)).collect()
    };
    let trigger = if args.boot { Trigger::Boot } else { Trigger::Manual };
    let opts = Options { trigger, dry_run: args.dry_run, use_freshness: false };
    let run = provision::run(&Ctx { settings, log }, &mut store, &requests, opts);
    for report in &run.reports {
        match &report.result {
            Ok(Done::DryRun { keys }) => {
                println!(
                    "{}: {} keys (values not shown; sha256 prefixes to compare)",
                    report.jail,
                    keys.len()
                );
                for (name, hash) in keys {
                    println!("  {name} sha256:{}", &hash[..16]);
                }
            }
            Ok(Done::Unreachable { reason }) => {
                log.warn(&format!("jail {}: skipped at boot: {reason}", report.jail));
            }
            _ => {}
        }
    }
    let provisioned = run.reports.iter().filter(|r| r.result.is_ok()).count();
    log.info(&format!("{provisioned} of {} tenants done", run.reports.len()));
    Ok(run.exit_code())
}

#[derive(Serialize)]
struct StatusRow {
    tenant: String,
    status: String,
    last_provision: Option<String>,
    outcome: Option<String>,
    trigger: Option<String>,
    keys: Option<usize>,
    error: Option<String>,
}

pub fn status(settings: &Settings, only: Option<&str>, json: bool) -> Result<u8> {
    let Some(store) = open_store(settings)? else {
        if only.is_some() {
            return Err(Error::UnknownTenant(clean(only.unwrap_or_default())));
        }
        if json {
            println!("[]");
        } else {
            println!("no tenant database at {} (no tenant registered yet)", settings.db.display());
        }
        return Ok(exit::OK);
    };
    let tenants = match only {
        Some(name) => vec![get_tenant(&store, name)?],
        None => store.list()?,
    };
    let mut rows = Vec::new();
    for t in tenants {
        let last = store.last_log(&t.name, Some(&STATUS_OUTCOMES))?;
        rows.push(StatusRow {
            tenant: clean(&t.name),
            status: clean(&t.status),
            last_provision: last.as_ref().map(|l| iso(l.at_unix)),
            outcome: last.as_ref().map(|l| l.outcome.clone()),
            trigger: last.as_ref().map(|l| l.trigger.clone()),
            keys: last.as_ref().filter(|l| l.outcome != "failed").map(|l| l.keys.len()),
            error: last.and_then(|l| l.error).map(|e| clean(&e)),
        });
    }
    if json {
        println!("{}", to_json(&rows)?);
        return Ok(exit::OK);
    }
    let mut out = format!(
        "{:<20} {:<10} {:<21} {:<10} {:<5} {}\n",
        "TENANT", "STATUS", "LAST PROVISION", "OUTCOME", "KEYS", "ERROR"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<21} {:<10} {:<5} {}",
            r.tenant,
            r.status,
            r.last_provision.as_deref().unwrap_or("never"),
            r.outcome.as_deref().unwrap_or("-"),
            r.keys.map_or_else(|| "-".into(), |k| k.to_string()),
            r.error.as_deref().unwrap_or("")
        );
    }
    print!("{out}");
    Ok(exit::OK)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (civil-from-days, proleptic Gregorian).
pub fn iso(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// `jail enable|disable`: edits one Bastille jail's jail.conf (text logic in `jailconf`).
/// `enable` also compares the block's `path` with the tenant's registered root and the jail root
/// base, and the base with Bastille's jails directory, warning about each mismatch.
pub fn jail(settings: &Settings, log: &Log, command: &JailCommand) -> Result<u8> {
    let (name, stage) = match command {
        JailCommand::Enable { jail, stage } => (jail, Some(stage.parse::<Stage>().map_err(usage)?)),
        JailCommand::Disable { jail } => (jail, None),
    };
    tenant::validate_name(name)?;
    let jailsdir = bastille::jailsdir(&settings.bastille_config)?;
    let path = jailconf::jail_conf_path(&jailsdir, name).map_err(usage)?;
    let shown = clean(&path.to_string_lossy());
    let store = open_store(settings)?;
    let roots = store.as_ref().map(Store::roots).transpose()?.unwrap_or_default();
    host_state::check_jail_conf(&path, &roots)?;
    let text = hostfile::read(&path, &hostfile::JAIL_CONF)?.ok_or_else(|| {
        Error::Config(format!(
            "{shown} does not exist: is {name} a Bastille jail? (Bastille's jails directory, from {}, is {})",
            clean(&settings.bastille_config.to_string_lossy()),
            clean(&jailsdir.to_string_lossy())
        ))
    })?;
    let text = String::from_utf8(text.to_vec())
        .map_err(|_| Error::Config(format!("{shown} is not UTF-8 text; the file was not changed")))?;
    let not_changed =
        |e: jailconf::JailConfError| Error::Config(format!("{shown}: {e}; the file was not changed"));
    let edit = match stage {
        Some(stage) => {
            let tenant = store.as_ref().map(|s| s.get(name)).transpose()?.flatten();
            if tenant.is_none() {
                log.warn(&format!(
                    "jail {name} has no tenant yet: the hooks do nothing until `colibri-vault tenant add {name} --root …`"
                ));
            }
            let found = jailconf::inspect(&text, name).map_err(not_changed)?;
            let root = tenant.as_ref().map(|t| t.root.as_path());
            let warnings =
                bastille::base_finding(&settings.jail_root_base, &jailsdir, &settings.bastille_config)
                    .into_iter()
                    .chain(bastille::jail_findings(&path, name, &found.path, &settings.jail_root_base, root));
            for warning in warnings {
                log.warn(&warning);
            }
            let with_stop = tenant.is_some_and(|t| t.options.cleanup_on_stop);
            jailconf::enable(&text, name, stage, with_stop, &sbin()?)
        }
        None => jailconf::disable(&text, name),
    }
    .map_err(not_changed)?;
    for note in &edit.notes {
        log.warn(&format!("{shown}: {note}"));
    }
    if edit.changed {
        replace_file(&path, edit.text.as_bytes())?;
        log.notice(&format!(
            "{shown}: {} (takes effect at the next start: bastille restart {name})",
            if stage.is_some() { "hook lines added" } else { "hook lines removed" }
        ));
    } else {
        log.notice(&format!("{shown}: already as asked; not rewritten"));
    }
    Ok(exit::OK)
}

#[allow(clippy::needless_pass_by_value, reason = "used as map_err(usage)")]
fn usage(e: jailconf::JailConfError) -> Error {
    Error::Usage(e.to_string())
}

/// The directory the hook lines should run colibri-vault from: this executable's.
fn sbin() -> Result<String> {
    let exe =
        std::env::current_exe().map_err(|e| Error::Config(format!("could not find this executable: {e}")))?;
    exe.parent()
        .and_then(|p| p.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::Config(format!("{} is not a usable path for jail.conf", exe.display())))
}

/// Replaces a host-side file atomically, keeping its mode and owner.
fn replace_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let fail = |e: std::io::Error| Error::write(path, e.to_string());
    let meta = std::fs::metadata(path).map_err(fail)?;
    let dir = path.parent().ok_or_else(|| Error::write(path, "no parent directory"))?;
    let tmp = dir.join(format!(".jail.conf.colibri-tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.mode() & 0o7777)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
    }
}
