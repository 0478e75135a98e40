//! The operator's verbs: `tenant …`, `provision`, `refresh`, `status`, `jail enable|disable`,
//! `doctor`.
//!
//! Each verb validates its input, calls the store or the one provisioning pipeline, and prints.
//! Output meant for scripts (`--json`) goes to stdout, through `output::print` (a closed pipe
//! ends the run quietly); messages go through `Log` or `output::stderr` to stderr.

use std::fmt::Write as _;

use serde::Serialize;

use crate::bastille;
use crate::cli::{JailCommand, ProvisionArgs, RefreshArgs, TenantCommand, TenantOptions};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::exit;
use crate::host_state;
use crate::hostfile;
use crate::jailconf::{self, Stage};
use crate::logging::Log;
use crate::output;
use crate::provision::{self, Ctx, Done, Options, Request, Trigger};
use crate::sanitize::clean;
use crate::tenant::{self, RawTenant, Store, Tenant};
use rusqlite::types::Value;

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

/// The command line's tenant options, checked, as changes to a stored row (for `tenant add`, a
/// row of defaults). Values stay in the row's stored form, so that `tenant set` can repair a
/// row another program wrote with an invalid value: the whole row is validated afterwards.
fn apply_options(raw: &mut RawTenant, o: &TenantOptions, disallow: &[String]) -> Result<()> {
    let text = |v: &str| Value::Text(v.to_owned());
    if let Some(collection) = &o.collection {
        tenant::validate_collection(collection)?;
        raw.collection = text(collection);
    }
    if let Some(path) = &o.env_path {
        tenant::validate_env_path(path)?;
        raw.env_path = Some(text(&path.to_string_lossy()));
    }
    if let Some(format) = &o.format {
        raw.format = Some(text(&format.parse::<crate::envfile::Format>()?.to_string()));
    }
    if let Some(owner) = &o.owner {
        let owner: tenant::Owner = owner.parse()?;
        raw.owner_uid = Some(Value::Integer(owner.uid.into()));
        raw.owner_gid = Some(Value::Integer(owner.gid.into()));
    }
    if let Some(policy) = &o.on_failure {
        raw.on_failure = Some(text(&policy.parse::<tenant::FailurePolicy>()?.to_string()));
    }
    if o.cleanup_on_stop {
        raw.cleanup_on_stop = Some(Value::Integer(1));
    }
    if let Some(delivery) = &o.delivery {
        raw.delivery = Some(text(&delivery.parse::<crate::delivery::Delivery>()?.to_string()));
    }
    if let Some(layout) = &o.layout {
        raw.layout = Some(text(&layout.parse::<crate::delivery::Layout>()?.to_string()));
    }
    if let Some(dir) = &o.mount_point {
        if dir.as_os_str() == "default" {
            raw.mount_point = Some(text(""));
        } else {
            crate::delivery::validate_secrets_dir(dir)?;
            raw.mount_point = Some(text(&dir.to_string_lossy()));
        }
    }
    if let Some(command) = &o.on_change {
        tenant::validate_on_change(command)?;
        raw.on_change = Some(text(command));
    }
    if !o.allow_name.is_empty() || !disallow.is_empty() {
        for name in o.allow_name.iter().chain(disallow) {
            tenant::validate_variable_name(name)?;
        }
        let mut names: Vec<String> = match &raw.allow_names {
            Some(Value::Text(list)) => list.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        names.extend(o.allow_name.iter().cloned());
        names.retain(|n| !disallow.contains(n));
        names.sort();
        names.dedup();
        raw.allow_names = Some(text(&names.join(",")));
    }
    Ok(())
}

pub fn tenant(settings: &Settings, log: &Log, command: &TenantCommand) -> Result<u8> {
    match command {
        TenantCommand::Add { name, root, options } => tenant_add(settings, log, name, root, options),
        TenantCommand::List { json } => tenant_list(settings, log, *json),
        TenantCommand::Show { name, json } => tenant_show(settings, name, *json),
        TenantCommand::Set { name, root, options, no_cleanup_on_stop, disallow_name, no_on_change } => {
            let clear = Clear { cleanup_on_stop: *no_cleanup_on_stop, on_change: *no_on_change };
            tenant_set(settings, log, name, root.as_deref(), options, clear, disallow_name)
        }
        TenantCommand::Remove { name } => {
            // Removing a tenant never puts host-side state inside a jail, and may be the fix.
            let mut store = Store::open_existing(&settings.db)?.ok_or_else(|| missing_store(settings))?;
            if !store.remove(name)? {
                return Err(Error::UnknownTenant(clean(name)));
            }
            // Its memory fs would outlive it: hooks do nothing for a jail without a tenant.
            if tenant::validate_name(name).is_ok() {
                let place = crate::memfs::Place::new(&settings.run_dir, name);
                if place.may_exist() {
                    let done = crate::memfs::teardown(&place)?;
                    log.notice(&format!(
                        "unmounted the memory file system of tenant {} ({} mounts)",
                        clean(name),
                        done.unmounted.len()
                    ));
                }
            }
            log.notice(&format!("removed tenant {} (its env file and provision log are kept)", clean(name)));
            Ok(exit::OK)
        }
    }
}

fn tenant_add(
    settings: &Settings,
    log: &Log,
    name: &str,
    root: &std::path::Path,
    options: &TenantOptions,
) -> Result<u8> {
    tenant::validate_name(name)?;
    let root = tenant::validate_root(root, &settings.jail_root_base)?;
    let mut raw = RawTenant::new(name, &root);
    apply_options(&mut raw, options, &[])?;
    let t = raw.validate().map_err(Error::Usage)?;
    // The new root must not contain host-side state, nor may any registered one; checked
    // before a database is created.
    let existing = Store::open_existing(&settings.db)?;
    let mut roots = existing.as_ref().map(Store::roots).transpose()?.unwrap_or_default();
    roots.push((t.name.clone(), t.root.clone()));
    host_state::check_roots(settings, &roots)?;
    let mut store = match existing {
        Some(store) => store,
        None => Store::open_or_create(&settings.db)?,
    };
    check_root(log, &store, &t)?;
    store.insert(&t)?;
    log.notice(&format!(
        "registered tenant {} (root {}, collection {})",
        t.name,
        clean(&t.root.to_string_lossy()),
        clean(&t.collection)
    ));
    Ok(exit::OK)
}

fn tenant_list(settings: &Settings, log: &Log, json: bool) -> Result<u8> {
    let tenants = match open_store(settings)? {
        Some(store) => store.list()?,
        None => Vec::new(),
    };
    for bad in tenants.iter().filter_map(|t| t.as_ref().err()) {
        log.error(&bad.to_string());
    }
    if json {
        let rows: Vec<serde_json::Value> = tenants.iter().map(tenant_json).collect::<Result<_>>()?;
        output::print(&format!("{}\n", to_json(&rows)?))?;
    } else {
        let mut table = Table::new(&["NAME", "STATUS", "FORMAT", "OWNER", "FAILURE", "ROOT"]);
        for t in &tenants {
            match t {
                Ok(t) => table.row(vec![
                    clean(&t.name),
                    clean(&t.status),
                    t.options.format.to_string(),
                    t.options.owner.to_string(),
                    t.options.on_failure.to_string(),
                    clean(&t.root.to_string_lossy()),
                ]),
                Err(Error::BadRow { tenant, .. }) => {
                    let dash = || "-".to_owned();
                    table.row(vec![tenant.clone(), "invalid".into(), dash(), dash(), dash(), dash()]);
                }
                Err(_) => {}
            }
        }
        output::print(&table.render())?;
    }
    Ok(if tenants.iter().any(std::result::Result::is_err) { exit::CONFIG } else { exit::OK })
}

fn tenant_show(settings: &Settings, name: &str, json: bool) -> Result<u8> {
    let store = existing_store(settings)?;
    let t = get_tenant(&store, name)?;
    let last = store.last_log(&t.name, Some(&STATUS_OUTCOMES))?;
    let refresh = store.last_refresh(&t.name)?;
    if json {
        let mut value = serde_json::to_value(&t).map_err(json_error)?;
        value["last_provision"] =
            serde_json::to_value(last.as_ref().map(LastProvision::from)).map_err(json_error)?;
        value["last_refresh"] =
            serde_json::to_value(refresh.as_ref().map(LastRefresh::from)).map_err(json_error)?;
        output::print(&format!("{}\n", to_json(&value)?))?;
    } else {
        output::print(&describe(&t, last.as_ref(), refresh.as_ref()))?;
    }
    Ok(exit::OK)
}

/// What `tenant set` turns off (`--no-…`).
#[derive(Clone, Copy)]
struct Clear {
    cleanup_on_stop: bool,
    on_change: bool,
}

fn tenant_set(
    settings: &Settings,
    log: &Log,
    name: &str,
    root: Option<&std::path::Path>,
    options: &TenantOptions,
    clear: Clear,
    disallow: &[String],
) -> Result<u8> {
    let no_cleanup_on_stop = clear.cleanup_on_stop;
    // Not `existing_store`: moving a root away from host-side state must stay possible.
    let mut store = Store::open_existing(&settings.db)?.ok_or_else(|| missing_store(settings))?;
    let mut raw = store.get_raw(name)?.ok_or_else(|| Error::UnknownTenant(clean(name)))?;
    let before = raw.validate().ok();
    if let Some(root) = root {
        let root = tenant::validate_root(root, &settings.jail_root_base)?;
        raw.root = Value::Text(root.to_string_lossy().into_owned());
    }
    apply_options(&mut raw, options, disallow)?;
    if no_cleanup_on_stop {
        raw.cleanup_on_stop = Some(Value::Integer(0));
    }
    if clear.on_change {
        raw.on_change = Some(Value::Text(String::new()));
    }
    let t = raw.validate().map_err(|problem| {
        Error::Usage(format!(
            "tenant {}: {problem}; set a valid value with tenant set, or remove the tenant",
            clean(name)
        ))
    })?;
    tenant::validate_root(&t.root, &settings.jail_root_base)?;
    let mut roots = store.roots()?;
    roots.retain(|(other, _)| other != name);
    roots.push((t.name.clone(), t.root.clone()));
    host_state::check_roots(settings, &roots)?;
    check_root(log, &store, &t)?;
    store.update(&t)?;
    // Audit trail, and the end of the freshness window for what was written before.
    store.record(&tenant::LogRow::event(&t.name, "tenant-set", tenant::SETTINGS_CHANGED, 0, None))?;
    log.notice(&format!("updated tenant {}", t.name));
    let stop_hook = |t: &Tenant| t.options.cleanup_on_stop || needs_stop_hook(t);
    let cleanup_changed = before.as_ref().is_none_or(|b| stop_hook(b) != stop_hook(&t));
    if cleanup_changed && (options.cleanup_on_stop || no_cleanup_on_stop || options.delivery.is_some()) {
        log.notice(&format!(
            "the stop hook follows --cleanup-on-stop and --delivery memory only in jail.conf: run colibri-vault jail enable {} again (for a Bastille jail), or add/remove the exec.poststop line by hand",
            t.name
        ));
    }
    Ok(exit::OK)
}

/// Whether the tenant's jail needs the stop hook besides `--cleanup-on-stop`: a memory fs goes
/// at stop.
fn needs_stop_hook(t: &Tenant) -> bool {
    t.options.delivery == crate::delivery::Delivery::Memory
}

/// `tenant add|set`: the root must not be another tenant's, nor lie above or below one (one
/// tenant's secrets would land in another's jail); if it exists already it must be reachable
/// from `/` without a symlink (the walk the writer does), so a bad root is refused now, not at
/// the next jail start. A root that does not exist yet is accepted with a warning.
fn check_root(log: &Log, store: &Store, t: &Tenant) -> Result<()> {
    if let Some(other) = tenant::overlapping_root(&t.name, &t.root, &store.roots()?) {
        return Err(Error::Usage(format!(
            "jail root {} is, contains or lies inside the root of tenant {}: each tenant needs a root of its own",
            clean(&t.root.to_string_lossy()),
            clean(other)
        )));
    }
    if std::fs::symlink_metadata(&t.root).is_ok() {
        crate::safe_write::open_dir_nofollow(&t.root).map_err(|e| Error::Usage(format!("jail root: {e}")))?;
    } else {
        log.warn(&format!(
            "jail root {} does not exist yet: hooks for {} fail until the jail is created there (bastille create {}, or check --root)",
            clean(&t.root.to_string_lossy()),
            t.name,
            t.name
        ));
    }
    Ok(())
}

/// Log outcomes `status` reports as the last provision (a dry run provisions nothing).
const STATUS_OUTCOMES: [&str; 6] = ["written", "unchanged", "fresh", "failed", "removed", "absent"];

/// The last refresh as `tenant show` and `status` show it.
#[derive(Serialize)]
struct LastRefresh {
    at: String,
    outcome: String,
    /// Names whose value changed (`null`: not known, the file replaced was not colibri-vault's).
    changed_keys: Option<Vec<String>>,
    /// What the on-change command did (`null`: none ran).
    on_change: Option<String>,
    error: Option<String>,
}

impl From<&tenant::LogRow> for LastRefresh {
    fn from(l: &tenant::LogRow) -> Self {
        LastRefresh {
            at: crate::clock::iso(l.at_unix),
            outcome: clean(&l.outcome),
            changed_keys: l.changed_keys.as_ref().map(|k| k.iter().map(|n| clean(n)).collect()),
            on_change: l.on_change.as_deref().map(clean),
            error: l.error.as_deref().map(clean),
        }
    }
}

impl LastRefresh {
    /// "AT OUTCOME", then what changed and the on-change command's outcome, if any.
    fn text(&self, with_keys: bool) -> String {
        let mut text = format!("{} {}", self.at, self.outcome);
        if with_keys && self.outcome == "written" {
            match &self.changed_keys {
                Some(keys) if keys.is_empty() => text.push_str(", no value changed"),
                Some(keys) => {
                    let _ = write!(text, ", changed: {}", keys.join(", "));
                }
                None => text.push_str(", the file replaced was not colibri-vault's"),
            }
        }
        if let Some(on_change) = &self.on_change {
            let _ = write!(text, ", on-change {on_change}");
        }
        text
    }
}

/// The last provision as `tenant show` and `status` show it.
#[derive(Serialize)]
struct LastProvision {
    at: String,
    outcome: String,
    trigger: String,
    keys: Option<usize>,
    error: Option<String>,
}

impl From<&tenant::LogRow> for LastProvision {
    fn from(l: &tenant::LogRow) -> Self {
        LastProvision {
            at: crate::clock::iso(l.at_unix),
            outcome: clean(&l.outcome),
            trigger: clean(&l.trigger),
            keys: (l.outcome != "failed").then_some(l.keys.len()),
            error: l.error.as_deref().map(clean),
        }
    }
}

fn describe(t: &Tenant, last: Option<&tenant::LogRow>, refresh: Option<&tenant::LogRow>) -> String {
    let last = last.map(LastProvision::from);
    let last_text = last.as_ref().map_or_else(
        || "never".to_owned(),
        |l| {
            let keys = l.keys.map(|k| format!(", {}", provision::keys_count(k))).unwrap_or_default();
            format!("{} ({}, {}{keys})", l.at, l.outcome, l.trigger)
        },
    );
    let mut rows = vec![
        ("name", clean(&t.name)),
        ("root", clean(&t.root.to_string_lossy())),
        ("collection", clean(&t.collection)),
        ("status", clean(&t.status)),
        ("env path", clean(&t.options.env_path.to_string_lossy())),
        ("format", t.options.format.to_string()),
        ("owner", t.options.owner.to_string()),
        ("on failure", t.options.on_failure.to_string()),
        ("cleanup on stop", if t.options.cleanup_on_stop { "yes" } else { "no" }.into()),
        ("delivery", t.options.delivery.to_string()),
        ("layout", t.options.layout.to_string()),
        (
            "secrets dir",
            format!(
                "{}{}",
                clean(&t.options.secrets_dir().to_string_lossy()),
                if t.options.mount_point.is_none() { " (default)" } else { "" }
            ),
        ),
        (
            "allowed names",
            if t.options.allow_names.is_empty() { "-".into() } else { t.options.allow_names.join(", ") },
        ),
        ("on change", t.options.on_change.as_deref().map_or_else(|| "-".into(), clean)),
        ("created", t.created_at.as_deref().map_or_else(|| "-".into(), clean)),
        ("updated", t.updated_at.as_deref().map_or_else(|| "-".into(), clean)),
        ("last provision", last_text),
        ("last refresh", refresh.map_or_else(|| "never".into(), |r| LastRefresh::from(r).text(true))),
    ];
    if let Some(error) = last.and_then(|l| l.error) {
        rows.push(("last error", error));
    }
    rows.iter().fold(String::new(), |mut out, (k, v)| {
        let _ = writeln!(out, "{k:<16} {v}");
        out
    })
}

/// A `tenant list --json` entry: the tenant, or for a row that fails validation its name and
/// the problem.
fn tenant_json(t: &Result<Tenant>) -> Result<serde_json::Value> {
    match t {
        Ok(t) => serde_json::to_value(t).map_err(json_error),
        Err(Error::BadRow { tenant, problem, .. }) => {
            Ok(serde_json::json!({ "name": tenant, "invalid": clean(problem) }))
        }
        Err(e) => Ok(serde_json::json!({ "invalid": clean(&e.to_string()) })),
    }
}

#[allow(clippy::needless_pass_by_value, reason = "used as map_err(json_error)")]
fn json_error(e: serde_json::Error) -> Error {
    Error::Config(format!("could not encode JSON: {e}"))
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(json_error)
}

/// A text table whose columns are as wide as their widest cell (cells are sanitized already).
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table { rows: vec![header.iter().map(|h| (*h).to_owned()).collect()] }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let columns = self.rows[0].len();
        let width = |i: usize| self.rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The requests for `--all` (every tenant not destroyed) or the named jails (each a tenant).
fn requests(store: &Store, all: bool, jails: &[String]) -> Result<Vec<Request>> {
    if all {
        // Every row, as stored: one that fails validation is still requested, so that the
        // pipeline reports it (and the exit status says so) while every other tenant is served.
        return Ok(store
            .list_raw()?
            .into_iter()
            .filter(|raw| raw.status != Value::Text("destroyed".into()))
            .map(|raw| Request::named(&raw.name))
            .collect());
    }
    for jail in jails {
        tenant::validate_name(jail)?;
        if store.get_raw(jail)?.is_none() {
            return Err(Error::UnknownTenant(clean(jail)));
        }
    }
    Ok(jails.iter().map(|j| Request::named(j)).collect())
}

pub fn provision(settings: &Settings, log: &Log, args: &ProvisionArgs) -> Result<u8> {
    if args.boot && !args.all {
        return Err(Error::Usage(
            "--boot goes with --all (it is how the rc.d script pre-provisions every tenant at boot)".into(),
        ));
    }
    let mut store = existing_store(settings)?;
    let requests = requests(&store, args.all, &args.jails)?;
    let trigger = if args.boot { Trigger::Boot } else { Trigger::Manual };
    let opts = Options { trigger, dry_run: args.dry_run, use_freshness: false };
    let run = provision::run(&Ctx { settings, log }, &mut store, &requests, opts);
    for report in &run.reports {
        match &report.result {
            Ok(Done::DryRun { keys }) => {
                let mut text = format!(
                    "{}: {} (values not shown; sha256 prefixes to compare)\n",
                    clean(&report.jail),
                    provision::keys_count(keys.len())
                );
                for (name, hash) in keys {
                    let _ = writeln!(text, "  {} sha256:{}", clean(name), &hash[..16]);
                }
                output::print(&text)?;
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

/// `refresh`: the pipeline with trigger `refresh` (one vault session, rewriting only what
/// changed), which then runs the on-change command of each tenant whose content changed. The
/// exit status is the first failure's: a write's, else an on-change command's (69).
pub fn refresh(settings: &Settings, log: &Log, args: &RefreshArgs) -> Result<u8> {
    let mut store = existing_store(settings)?;
    let requests = requests(&store, args.all, &args.jails)?;
    let opts = Options { trigger: Trigger::Refresh, dry_run: false, use_freshness: false };
    let run = provision::run(&Ctx { settings, log }, &mut store, &requests, opts);
    let changed = run.reports.iter().filter(|r| matches!(r.result, Ok(Done::Written { .. }))).count();
    let failed = run.reports.iter().filter(|r| r.result.is_err()).count();
    let commands_failed = run.commands.iter().filter(|c| c.result.is_err()).count();
    log.info(&format!(
        "refresh: {} tenants, {changed} rewritten, {failed} failed; {} on-change commands, {commands_failed} failed",
        run.reports.len(),
        run.commands.len()
    ));
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
    last_refresh: Option<LastRefresh>,
    delivery: Option<String>,
    /// What is mounted for the tenant (delivery memory, or left from it).
    mounts: Vec<crate::memfs::MountReport>,
    /// One line about the mounts: "-" when the tenant has none and needs none.
    #[serde(skip)]
    mounts_text: String,
}

/// A tenant's mounts for `status`: in the table, a line saying what is mounted and what is
/// wrong; in JSON, each mount.
fn mounts_of(
    settings: &Settings,
    table: &mut Option<crate::memfs::Table>,
    t: &Tenant,
) -> Result<(Vec<crate::memfs::MountReport>, String)> {
    let place = crate::memfs::Place::new(&settings.run_dir, &t.name);
    let memory = t.options.delivery == crate::delivery::Delivery::Memory;
    if !memory && !place.may_exist() {
        return Ok((Vec::new(), "-".into()));
    }
    if table.is_none() {
        *table = Some(crate::memfs::Table::read()?);
    }
    let state = table.as_ref().map(|table| table.of(&place)).unwrap_or_default();
    let intended = if memory {
        t.root.join(crate::delivery::relative(&t.options.secrets_dir()))
    } else {
        std::path::PathBuf::new()
    };
    Ok((state.report(), clean(&state.describe(&intended))))
}

pub fn status(settings: &Settings, log: &Log, only: Option<&str>, json: bool) -> Result<u8> {
    let Some(store) = open_store(settings)? else {
        if only.is_some() {
            return Err(Error::UnknownTenant(clean(only.unwrap_or_default())));
        }
        if json {
            output::print("[]\n")?;
        } else {
            output::print(&format!(
                "no tenant database at {} (no tenant registered yet)\n",
                settings.db.display()
            ))?;
        }
        return Ok(exit::OK);
    };
    let tenants = match only {
        Some(name) => vec![Ok(get_tenant(&store, name)?)],
        None => store.list()?,
    };
    let mut rows = Vec::new();
    let mut table = None;
    for t in &tenants {
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                log.error(&e.to_string());
                if let Error::BadRow { tenant, problem, .. } = e {
                    rows.push(StatusRow {
                        tenant: tenant.clone(),
                        status: "invalid".into(),
                        last_provision: None,
                        outcome: None,
                        trigger: None,
                        keys: None,
                        error: Some(clean(problem)),
                        delivery: None,
                        mounts: Vec::new(),
                        mounts_text: "-".into(),
                        last_refresh: None,
                    });
                }
                continue;
            }
        };
        let last = store.last_log(&t.name, Some(&STATUS_OUTCOMES))?;
        let last = last.as_ref().map(LastProvision::from);
        let (mounts, mounts_text) = mounts_of(settings, &mut table, t)?;
        let refresh = store.last_refresh(&t.name)?;
        rows.push(StatusRow {
            delivery: Some(format!("{}/{}", t.options.delivery, t.options.layout)),
            mounts,
            mounts_text,
            tenant: clean(&t.name),
            status: clean(&t.status),
            last_provision: last.as_ref().map(|l| l.at.clone()),
            outcome: last.as_ref().map(|l| l.outcome.clone()),
            trigger: last.as_ref().map(|l| l.trigger.clone()),
            keys: last.as_ref().and_then(|l| l.keys),
            error: last.and_then(|l| l.error),
            last_refresh: refresh.as_ref().map(LastRefresh::from),
        });
    }
    if json {
        output::print(&format!("{}\n", to_json(&rows)?))?;
    } else {
        let mut table = Table::new(&[
            "TENANT",
            "STATUS",
            "LAST PROVISION",
            "OUTCOME",
            "KEYS",
            "LAST REFRESH",
            "DELIVERY",
            "MOUNTS",
            "ERROR",
        ]);
        for r in rows {
            table.row(vec![
                r.tenant,
                r.status,
                r.last_provision.unwrap_or_else(|| "never".into()),
                r.outcome.unwrap_or_else(|| "-".into()),
                r.keys.map_or_else(|| "-".into(), |k| k.to_string()),
                r.last_refresh.map_or_else(|| "never".into(), |l| l.text(false)),
                r.delivery.unwrap_or_else(|| "-".into()),
                r.mounts_text,
                r.error.unwrap_or_default(),
            ]);
        }
        output::print(&table.render())?;
    }
    Ok(if tenants.iter().any(std::result::Result::is_err) { exit::CONFIG } else { exit::OK })
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
            // A memory fs must go at stop, whatever the cleanup setting.
            let with_stop = tenant.is_some_and(|t| t.options.cleanup_on_stop || needs_stop_hook(&t));
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
