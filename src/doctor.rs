//! `colibri-vault doctor`: checks the host's setup and says what to fix.
//!
//! Read-only: it runs no `bw` session and writes nothing (`bw --version` runs in a throw-away
//! app-data dir), except that `--fix` removes env files found in a jail they were not written
//! for (`clones`: a cloned or copied jail's copy of another tenant's secrets). With the bw
//! source it shows bw's path and version and the server's name and version (asked without
//! credentials, `serverinfo`), and compares them with the tested versions
//! and the known-bad pairs (`compat`). Each finding is `ok`, `warning` (works,
//! but not as an administrator would want) or `problem` (provisioning will fail); the exit
//! status is 78 when there is a problem. Beyond the settings it checks every tenant: its root,
//! its Bastille hook lines (stage and `exec.timeout`), and whether the env file on disk is the
//! one colibri-vault last wrote for it; and every other jail under the jail root base (a jail
//! without a tenant) for an env file colibri-vault wrote for a tenant — what a cloned jail
//! carries. Such a file is a problem, named with the tenant it belongs to. For
//! delivery `memory`: the memory fs and its read-only view (missing, writable, stale), the stop
//! hook, and jail(8)'s own mounts (`mount`, `mount.fstab`, Bastille's fstab) at, above or below
//! the secrets directory; for delivery `file`: a root on a ZFS dataset with snapshots (`zfs`).

use std::path::{Path, PathBuf};

use crate::bastille;
use crate::clones;
use crate::compat::{self, Verdict, Version};
use crate::config::{Flags, Settings, SourceKind};
use crate::delivery::Delivery;
use crate::error::{Error, Result};
use crate::exit;
use crate::host_state;
use crate::hostfile;
use crate::jailconf::{self, Hook, Stage};
use crate::memfs;
use crate::provision::{self, Request};
use crate::sanitize::{clean, sanitize};
use crate::serverinfo::{self, ServerInfo};
use crate::tenant::{FRESH_OUTCOMES, Store, Tenant};

/// Longest line doctor prints, in characters.
const MAX_LINE: usize = 4096;

#[derive(Default)]
struct Findings {
    text: String,
    problems: usize,
}

impl Findings {
    // Every line is sanitized: it carries paths and names from the database, the environment,
    // jail.conf files and the jails themselves.
    fn line(&mut self, label: &str, what: &str) -> bool {
        let line = format!("{label}{}\n", sanitize(what, MAX_LINE));
        // The same finding reached two ways (e.g. a refused provider env) is shown once.
        let new = !self.text.contains(&line);
        if new {
            self.text.push_str(&line);
        }
        new
    }
    fn ok(&mut self, what: &str) {
        self.line("ok       ", what);
    }
    fn warn(&mut self, what: &str) {
        self.line("warning  ", what);
    }
    fn problem(&mut self, what: &str) {
        if self.line("problem  ", what) {
            self.problems += 1;
        }
    }

    fn finish(self) -> Result<u8> {
        crate::output::print(&self.text)?;
        Ok(if self.problems == 0 { exit::OK } else { exit::CONFIG })
    }
}

pub fn run(settings: &Settings, fix: bool) -> Result<u8> {
    let mut f = Findings::default();
    check_source(settings, &mut f);
    check_host(settings, &mut f, fix);
    f.finish()
}

/// The settings could not be resolved (e.g. the provider env is unusable): report why, then
/// check everything else with the settings from flags, the environment and the defaults.
pub fn run_unresolved(flags: &Flags, error: &Error, fix: bool) -> Result<u8> {
    let mut f = Findings::default();
    f.problem(&error.to_string());
    let env = |key: &str| std::env::var_os(key);
    match Settings::resolve_without_provider_env(flags, &env) {
        Ok(settings) => {
            f.warn("the checks below use flags, the environment and defaults only: the provider env was not read");
            check_host(&settings, &mut f, fix);
        }
        Err(e) => f.problem(&e.to_string()),
    }
    f.finish()
}

/// Host-side state, Bastille's layout, the database and every tenant.
fn check_host(settings: &Settings, f: &mut Findings, fix: bool) {
    let base_refusals = host_state::findings(settings, &[]);
    let db_inside =
        base_refusals.iter().any(|e| matches!(e, Error::HostStateInJail { setting: "COLIBRI_DB", .. }));
    let jailsdir = check_bastille(settings, f);
    let store = if db_inside {
        for e in &base_refusals {
            f.problem(&e.to_string());
        }
        f.warn(&format!(
            "the tenant database {} was not opened: it lies inside a jail",
            settings.db.display()
        ));
        return;
    } else {
        match Store::open_existing(&settings.db) {
            Ok(store) => store,
            Err(e) => {
                for e in &base_refusals {
                    f.problem(&e.to_string());
                }
                f.problem(&e.to_string());
                return;
            }
        }
    };
    let Some(store) = store else {
        for e in &base_refusals {
            f.problem(&e.to_string());
        }
        f.warn(&format!(
            "no tenant database at {} yet (colibri-vault tenant add creates it)",
            settings.db.display()
        ));
        return;
    };
    let roots = match store.roots() {
        Ok(roots) => roots,
        Err(e) => {
            f.problem(&e.to_string());
            Vec::new()
        }
    };
    let refusals = host_state::findings(settings, &roots);
    if refusals.is_empty() {
        f.ok("no host-side state (provider env, database, state, run and secrets dirs, bastille.conf, bw, jexec, CA bundle) lies inside the jail root base or a tenant's root");
    }
    for e in &refusals {
        f.problem(&e.to_string());
    }
    let tenants = match store.list() {
        Ok(tenants) => tenants,
        Err(e) => {
            f.problem(&e.to_string());
            Vec::new()
        }
    };
    f.ok(&format!("tenant database {} ({} tenants)", settings.db.display(), tenants.len()));
    for tenant in &tenants {
        match tenant {
            Ok(tenant) => {
                if let Some(other) = crate::tenant::overlapping_root(&tenant.name, &tenant.root, &roots) {
                    f.problem(&format!(
                        "{}: its root is, contains or lies inside the root of tenant {}: give each tenant a root of its own (colibri-vault tenant set)",
                        clean(&tenant.name),
                        clean(other)
                    ));
                }
                check_tenant(settings, &store, tenant, &roots, jailsdir.as_deref(), f, fix);
            }
            Err(e) => f.problem(&e.to_string()),
        }
    }
    check_other_jails(settings, &store, &roots, f, fix);
}

/// Every jail under the jail root base that is no tenant's (`BASE/NAME/root`, Bastille's
/// layout, or `BASE/NAME`): an env file colibri-vault wrote for a tenant there is a problem.
fn check_other_jails(
    settings: &Settings,
    store: &Store,
    roots: &[(String, PathBuf)],
    f: &mut Findings,
    fix: bool,
) {
    let Ok(entries) = std::fs::read_dir(&settings.jail_root_base) else { return };
    let mut jails: Vec<(String, PathBuf)> = entries
        .filter_map(std::result::Result::ok)
        // Directories only, never through a link (a jail's root user cannot plant one here,
        // but a host's admin may have).
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let dir = e.path();
            let root = dir.join("root");
            let root = if std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) { root } else { dir };
            (e.file_name().to_string_lossy().into_owned(), root)
        })
        .filter(|(_, root)| !roots.iter().any(|(_, r)| r.starts_with(root) || root.starts_with(r)))
        .collect();
    jails.sort();
    for (jail, root) in jails {
        let found = match clones::scan(store, &jail, &root) {
            Ok(found) => found,
            Err(e) => {
                f.problem(&e.to_string());
                continue;
            }
        };
        for (rel, foreign) in found {
            let what = foreign.describe(&root.join(&rel));
            let name = clean(&jail);
            if fix {
                removed(f, &format!("jail {name} (no tenant)"), &root, &rel, &foreign, &what, "");
            } else {
                f.problem(&format!(
                    "jail {name} (no tenant): {what}; remove it: colibri-vault doctor --fix (or register the jail with colibri-vault tenant add, and provision it)"
                ));
            }
        }
    }
}

/// `--fix`: removes a foreign file (if its name still leads to the file judged) and says so.
fn removed(
    f: &mut Findings,
    who: &str,
    root: &Path,
    rel: &Path,
    foreign: &clones::Foreign,
    what: &str,
    next: &str,
) {
    match crate::safe_write::remove_if(root, rel, foreign.id) {
        Ok(true) => f.ok(&format!("{who}: removed {} (--fix): {what}{next}", root.join(rel).display())),
        Ok(false) => f.warn(&format!(
            "{who}: {} changed meanwhile; not removed, run doctor again",
            root.join(rel).display()
        )),
        Err(e) => f.problem(&format!("{who}: {what}; could not remove it: {e}")),
    }
}

/// `bastille.conf`: read safely, and its jails directory compared with the jail root base.
/// Returns the jails directory when Bastille's settings could be read.
fn check_bastille(settings: &Settings, f: &mut Findings) -> Option<std::path::PathBuf> {
    let config = &settings.bastille_config;
    if std::fs::symlink_metadata(config).is_err() {
        f.ok(&format!(
            "no Bastille settings at {} (Bastille's default jails directory {} assumed)",
            config.display(),
            bastille::DEFAULT_JAILSDIR
        ));
        return Some(bastille::DEFAULT_JAILSDIR.into());
    }
    match bastille::jailsdir(config) {
        Ok(jailsdir) => {
            match bastille::base_finding(&settings.jail_root_base, &jailsdir, config) {
                Some(warning) => f.warn(&warning),
                None => f.ok(&format!(
                    "COLIBRI_JAIL_ROOT_BASE is Bastille's jails directory {}",
                    jailsdir.display()
                )),
            }
            Some(jailsdir)
        }
        Err(e) => {
            f.problem(&format!("Bastille's settings: {e}"));
            None
        }
    }
}

fn check_source(settings: &Settings, f: &mut Findings) {
    if settings.provider_env_found {
        f.ok(&format!("provider env {} is private", settings.provider_env.display()));
    } else {
        f.warn(&format!("no provider env at {}", settings.provider_env.display()));
    }
    match settings.source {
        SourceKind::Dir => f.ok(&format!("secrets source: dir ({})", settings.secrets_dir.display())),
        SourceKind::Bw => {
            let missing: Vec<&str> = ["BW_CLIENTID", "BW_CLIENTSECRET", "BW_PASSWORD", "BW_SERVER"]
                .into_iter()
                .filter(|k| settings.credential(k).is_none())
                .collect();
            if missing.is_empty() {
                f.ok("provider env has BW_CLIENTID, BW_CLIENTSECRET, BW_PASSWORD and BW_SERVER");
            } else {
                f.problem(&format!("provider env lacks {}", missing.join(", ")));
            }
            if let Some(server) = settings.credential("BW_SERVER")
                && let Err(e) = crate::bw::check_server(server.expose())
            {
                f.problem(&e.to_string());
            }
            let bw = check_bw(settings, f);
            let server = check_server(settings, f);
            check_pair(bw, server.as_ref(), f);
        }
    }
}

/// bw's path and version, against the supported range (compat.rs).
fn check_bw(settings: &Settings, f: &mut Findings) -> Option<Version> {
    let Some(path) = crate::bw::find(&settings.bw) else {
        f.problem(&format!("bw not found on {}: {}", crate::bw::FIXED_PATH, compat::install_hint()));
        return None;
    };
    let shown = clean(&path.display().to_string());
    match crate::bw::installed_version(&path, settings.bw_timeout) {
        Err(e) => {
            f.problem(&format!("bw at {shown}: {e}; {}", compat::install_hint()));
            None
        }
        Ok(found) if compat::bw_supported(found.version) && !found.dev => {
            f.ok(&format!(
                "bw {} at {shown} (supported: {} to {}; tested: {})",
                found.version,
                compat::BW_TESTED[0],
                compat::BW_TESTED[compat::BW_TESTED.len() - 1],
                compat::list(&compat::BW_TESTED)
            ));
            Some(found.version)
        }
        Ok(found) => {
            f.warn(&format!(
                "bw {}{} at {shown} is outside the supported range {} to {} (tested: {}); pin the recommended one: {} (or set COLIBRI_BW to a supported bw)",
                found.version,
                if found.dev { " (a development build)" } else { "" },
                compat::BW_TESTED[0],
                compat::BW_TESTED[compat::BW_TESTED.len() - 1],
                compat::list(&compat::BW_TESTED),
                compat::pin_command()
            ));
            Some(found.version)
        }
    }
}

/// The server's name and version, asked without credentials (serverinfo.rs).
fn check_server(settings: &Settings, f: &mut Findings) -> Option<ServerInfo> {
    // A server that is not https://, or carries a user:password@, was reported above and is
    // never contacted.
    let server = settings.credential("BW_SERVER").filter(|s| crate::bw::check_server(s.expose()).is_ok())?;
    let ca = settings.credential("NODE_EXTRA_CA_CERTS").map(|c| std::path::PathBuf::from(c.expose()));
    let info = match serverinfo::query(server.expose(), ca.as_deref(), serverinfo::TIMEOUT) {
        Ok(info) => info,
        Err(e) => {
            f.problem(&format!("could not ask the server for its version: {e}"));
            return None;
        }
    };
    let name = info.name.as_deref().unwrap_or("a server that gives no name (Bitwarden's own?)");
    let version = info.version_text.as_deref().unwrap_or("(no /api/version)");
    let api = info.api_version.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    let described = format!("server {}: {name} {version} (Bitwarden API {api})", clean(server.expose()));
    match info.version {
        _ if !info.is_vaultwarden() => f.warn(&format!(
            "{described}: colibri-vault is tested with Vaultwarden only (tested: {})",
            compat::list(&compat::VAULTWARDEN_TESTED)
        )),
        Some(parsed) if compat::VAULTWARDEN_TESTED.contains(&parsed.version) && !parsed.dev => {
            f.ok(&described);
        }
        _ => f.warn(&format!(
            "{described}: not a Vaultwarden release colibri-vault was tested with (tested: {})",
            compat::list(&compat::VAULTWARDEN_TESTED)
        )),
    }
    Some(info)
}

/// Known-bad pairs of the bw and the Vaultwarden found.
fn check_pair(bw: Option<Version>, server: Option<&ServerInfo>, f: &mut Findings) {
    let (Some(bw), Some(server)) = (bw, server) else { return };
    let Some(version) = server.version.filter(|_| server.is_vaultwarden()) else { return };
    for verdict in compat::check_pair(bw, version) {
        match verdict {
            Verdict::Bad(text) => f.problem(&text),
            Verdict::Doubtful(text) => f.warn(&text),
        }
    }
}

fn check_tenant(
    settings: &Settings,
    store: &Store,
    tenant: &Tenant,
    roots: &[(String, PathBuf)],
    jailsdir: Option<&Path>,
    f: &mut Findings,
    fix: bool,
) {
    let name = clean(&tenant.name);
    match provision::check_root(settings, tenant, &Request::named(&tenant.name)) {
        Ok((root, _)) => {
            f.ok(&format!("{name}: root {} is usable", root.display()));
            match tenant.options.delivery {
                Delivery::Memory => check_memory(settings, tenant, &root, f),
                Delivery::File => {
                    if tenant.options.layout.has_env() {
                        check_env_file(store, tenant, &root, f, fix);
                    }
                    check_snapshots(tenant, &root, f);
                }
            }
        }
        Err(e) => f.problem(&format!("{name}: {e}")),
    }
    if let Some(jailsdir) = jailsdir {
        check_jail_conf(settings, tenant, roots, jailsdir, f);
    }
}

/// A `memory` tenant's mounts: its memory fs and the read-only view at its secrets directory.
fn check_memory(settings: &Settings, tenant: &Tenant, root: &Path, f: &mut Findings) {
    let name = clean(&tenant.name);
    let table = match memfs::Table::read() {
        Ok(table) => table,
        Err(e) => return f.problem(&format!("{name}: {e}")),
    };
    // What delivery file wrote before the switch stays on the jail's disk until removed.
    let leftovers = [
        tenant.options.layout.has_env().then(|| root.join(&tenant.options.env_path)),
        Some(
            root.join(crate::delivery::relative(crate::delivery::default_dir(Delivery::File))).join("..data"),
        ),
    ];
    let intended = root.join(crate::delivery::relative(&tenant.options.secrets_dir()));
    for left in leftovers.into_iter().flatten() {
        if !left.starts_with(&intended) && std::fs::symlink_metadata(&left).is_ok() {
            f.warn(&format!(
                "{name}: delivery memory, but {} (written with delivery file?) is still on the jail's disk, and in its snapshots: remove it",
                left.display()
            ));
        }
    }
    let state = table.of(&provision::deliver::place(settings, tenant));
    if state.is_right(&intended) {
        return f.ok(&format!("{name}: memory fs mounted, read-only at {}", intended.display()));
    }
    if state.is_empty() {
        let running = crate::jail::by_name(&tenant.name).ok().flatten().is_some();
        return if running {
            f.warn(&format!(
                "{name}: the jail runs but its memory fs is not mounted: run colibri-vault provision {name}"
            ));
        } else {
            f.ok(&format!(
                "{name}: delivery memory, nothing mounted (the jail is not running, or its start hook has not run)"
            ));
        };
    }
    for v in &state.views {
        if !v.read_only {
            f.problem(&format!(
                "{name}: the view at {} is writable: run colibri-vault hook stop {name}, then start the jail again",
                v.target.display()
            ));
        }
        if v.target != intended {
            f.warn(&format!(
                "{name}: a stale view at {} (an earlier root or mount point): the next start or stop removes it",
                v.target.display()
            ));
        }
    }
    if state.memory.len() > 1 {
        f.warn(&format!(
            "{name}: {} memory file systems are mounted: the next stop removes them",
            state.memory.len()
        ));
    }
    if !state.memory.is_empty() && !state.views.iter().any(|v| v.target == intended) {
        f.warn(&format!(
            "{name}: the memory fs is mounted but not shown in the jail at {} (provisioned at boot, the jail not started yet?)",
            intended.display()
        ));
    }
}

/// A `file` tenant whose root lies on a ZFS dataset with snapshots: the secrets are in them.
fn check_snapshots(tenant: &Tenant, root: &Path, f: &mut Findings) {
    let Some(dataset) = crate::zfs::dataset_of(root) else { return };
    match crate::zfs::snapshots(&dataset) {
        Ok(snapshots) => {
            if let Some(warning) = crate::zfs::finding(&clean(&tenant.name), root, &dataset, &snapshots) {
                f.warn(&warning);
            }
        }
        Err(e) => f.warn(&format!("{}: could not list the snapshots of {dataset}: {e}", clean(&tenant.name))),
    }
}

/// Whether the env file on disk is the one colibri-vault last wrote for this tenant, and not
/// one it wrote for another tenant (a cloned jail).
fn check_env_file(store: &Store, tenant: &Tenant, root: &Path, f: &mut Findings, fix: bool) {
    let name = clean(&tenant.name);
    let rel = &tenant.options.env_path;
    let last = store.last_log(&tenant.name, Some(&FRESH_OUTCOMES)).ok().flatten();
    let current = crate::safe_write::inspect(root, rel, tenant.options.owner);
    if let Ok(Some(current)) = &current {
        match clones::judge(store, &tenant.name, root, rel, current) {
            Ok(Some(foreign)) => {
                let what = foreign.describe(&root.join(rel));
                let next = format!("; run colibri-vault provision {name} to write its own");
                if fix {
                    removed(f, &name, root, rel, &foreign, &what, &next);
                } else {
                    f.problem(&format!(
                        "{name}: {what}{next} (or colibri-vault doctor --fix to remove it now)"
                    ));
                }
                return;
            }
            Ok(None) => {}
            Err(e) => f.problem(&format!("{name}: {e}")),
        }
    }
    if let Ok(Some(current)) = &current
        && let Some(problem) = current.problem()
    {
        f.warn(&format!(
            "{name}: {} is {problem}; the next hook or provision rewrites it",
            root.join(&tenant.options.env_path).display()
        ));
    }
    match (current, last) {
        (Ok(Some(current)), Some(last)) if last.content_hash.as_deref() != Some(&crate::envfile::sha256_hex(current.bytes())) => {
            f.warn(&format!(
                "{name}: {} differs from what colibri-vault last wrote for this tenant (edited, or a cloned jail carrying another tenant's file?); run: colibri-vault provision {name}",
                root.join(&tenant.options.env_path).display()
            ));
        }
        (Ok(Some(_)), None) => f.warn(&format!(
            "{name}: {} exists but colibri-vault never wrote it (a cloned jail?); run: colibri-vault provision {name}",
            root.join(&tenant.options.env_path).display()
        )),
        (Err(e), _) => f.problem(&format!("{name}: {e}")),
        _ => {}
    }
}

/// jail(8)'s own mounts for the jail (the block's `mount` lines, its `mount.fstab` file or
/// Bastille's `<jailsdir>/<jail>/fstab`) at, above or below a `memory` tenant's secrets
/// directory: one mount hides the other, depending on which comes last.
fn check_mounts(
    tenant: &Tenant,
    found: &jailconf::Inspection,
    conf: &Path,
    jailsdir: &Path,
    f: &mut Findings,
) {
    let name = clean(&tenant.name);
    let intended = tenant.root.join(crate::delivery::relative(&tenant.options.secrets_dir()));
    // (where it is set, the fstab line)
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut fstabs: Vec<PathBuf> = Vec::new();
    for m in &found.mounts {
        for value in m.values.iter().flatten() {
            match m.param.as_str() {
                "mount" => lines.push((format!("{} line {}", conf.display(), m.line), value.clone())),
                _ => fstabs.push(PathBuf::from(value)),
            }
        }
    }
    if !found.mounts.iter().any(|m| m.param == "mount.fstab") {
        fstabs.push(jailsdir.join(&tenant.name).join("fstab"));
    }
    for fstab in fstabs {
        match hostfile::read(&fstab, &hostfile::JAIL_CONF) {
            Ok(Some(bytes)) => {
                for (n, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
                    lines.push((format!("{} line {}", fstab.display(), n + 1), line.to_owned()));
                }
            }
            Ok(None) => {}
            Err(e) => f.warn(&format!("{name}: {e}")),
        }
    }
    for (at, line) in lines {
        let mut fields = line.split_whitespace();
        let (Some(from), Some(point)) = (fields.next(), fields.next()) else { continue };
        if from.starts_with('#') {
            continue;
        }
        let point = crate::config::normalize_dir(Path::new(point));
        let relation = if point == intended {
            "at"
        } else if intended.starts_with(&point) {
            "above"
        } else if point.starts_with(&intended) {
            "below"
        } else {
            continue;
        };
        f.warn(&format!(
            "{name}: {at} mounts {from} on {}, {relation} the memory fs's view at {}: one hides the other, depending on which is mounted last (jail(8) mounts its own before any hook); keep jail mounts off the secrets directory or choose another --mount-point",
            point.display(),
            intended.display()
        ));
    }
}

/// The tenant's Bastille jail.conf: where it is, the hook lines, `exec.timeout`, and its `path`
/// against the registered root.
fn check_jail_conf(
    settings: &Settings,
    tenant: &Tenant,
    roots: &[(String, PathBuf)],
    jailsdir: &Path,
    f: &mut Findings,
) {
    let name = clean(&tenant.name);
    let Ok(path) = jailconf::jail_conf_path(jailsdir, &tenant.name) else { return };
    if let Err(e) = host_state::check_jail_conf(&path, roots) {
        f.problem(&format!("{name}: {e}"));
        return;
    }
    let text = match hostfile::read(&path, &hostfile::JAIL_CONF) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => {
            f.warn(&format!(
                "{name}: no Bastille jail.conf at {} (hooks set up another way?)",
                path.display()
            ));
            return;
        }
        Err(e) => {
            f.problem(&format!("{name}: {e}"));
            return;
        }
    };
    match jailconf::inspect(&text, &tenant.name) {
        Err(e) => f.warn(&format!("{name}: {}: {e}", path.display())),
        Ok(found) => {
            let starts: Vec<_> =
                found.hooks.iter().filter(|h| matches!(h.hook, Hook::Start(_)) && h.effective).collect();
            match starts.first().map(|h| h.hook) {
                None => f.warn(&format!("{name}: no hook in {}: run colibri-vault jail enable {name}", path.display())),
                Some(Hook::Start(Stage::Poststart)) => f.warn(&format!(
                    "{name}: the hook runs at exec.poststart, after the jail's services started; exec.created is better: colibri-vault jail enable {name}"
                )),
                Some(_) => f.ok(&format!("{name}: hook at exec.created")),
            }
            for note in &found.notes {
                f.warn(&format!("{name}: {note}"));
            }
            if tenant.options.delivery == Delivery::Memory {
                let stops = found.hooks.iter().any(|h| h.hook == Hook::Stop && h.effective);
                if !stops {
                    f.warn(&format!(
                        "{name}: no stop hook in {}: its memory fs stays mounted after the jail stops (until the next start); run colibri-vault jail enable {name}",
                        path.display()
                    ));
                }
                check_mounts(tenant, &found, &path, jailsdir, f);
            }
            if !text.contains("exec.timeout") {
                f.warn(&format!(
                    "{name}: no exec.timeout in {}: jail(8) waits for hooks forever; colibri-vault's own deadlines are COLIBRI_LOCK_TIMEOUT plus COLIBRI_BW_TIMEOUT per bw call",
                    path.display()
                ));
            }
            let warnings = bastille::jail_findings(
                &path,
                &tenant.name,
                &found.path,
                &settings.jail_root_base,
                Some(&tenant.root),
            );
            if warnings.is_empty() && matches!(found.path, jailconf::JailPath::Literal(_)) {
                f.ok(&format!("{name}: the path in {} is the registered root", path.display()));
            }
            for warning in warnings {
                f.warn(&warning);
            }
        }
    }
}
