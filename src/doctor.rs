//! `colibri-vault doctor`: checks the host's setup and says what to fix.
//!
//! Read-only: it runs no `bw` session and writes nothing (`bw --version` runs in a throw-away
//! app-data dir). With the bw source it shows bw's path and version and the server's name and
//! version (asked without credentials, `serverinfo`), and compares them with the tested versions
//! and the known-bad pairs (`compat`). Each finding is `ok`, `warning` (works,
//! but not as an administrator would want) or `problem` (provisioning will fail); the exit
//! status is 78 when there is a problem. Beyond the settings it checks every tenant: its root,
//! its Bastille hook lines (stage and `exec.timeout`), and whether the env file on disk is the
//! one colibri-vault last wrote for it — a different file is what a cloned jail carries.

use std::fmt::Write as _;
use std::path::Path;

use crate::compat::{self, Verdict, Version};
use crate::config::{Settings, SourceKind};
use crate::error::Result;
use crate::exit;
use crate::jailconf::{self, Hook, Stage};
use crate::provision::{self, Request};
use crate::sanitize::clean;
use crate::serverinfo::{self, ServerInfo};
use crate::tenant::{FRESH_OUTCOMES, Store, Tenant};

#[derive(Default)]
struct Findings {
    text: String,
    problems: usize,
}

impl Findings {
    fn ok(&mut self, what: &str) {
        let _ = writeln!(self.text, "ok       {what}");
    }
    fn warn(&mut self, what: &str) {
        let _ = writeln!(self.text, "warning  {what}");
    }
    fn problem(&mut self, what: &str) {
        self.problems += 1;
        let _ = writeln!(self.text, "problem  {what}");
    }
}

pub fn run(settings: &Settings) -> Result<u8> {
    let mut f = Findings::default();
    check_source(settings, &mut f);
    match Store::open_existing(&settings.db) {
        Ok(None) => f.warn(&format!(
            "no tenant database at {} yet (colibri-vault tenant add creates it)",
            settings.db.display()
        )),
        Err(e) => f.problem(&e.to_string()),
        Ok(Some(store)) => {
            let tenants = store.list().unwrap_or_default();
            f.ok(&format!("tenant database {} ({} tenants)", settings.db.display(), tenants.len()));
            let jailsdir = jailconf::bastille_jailsdir(&settings.bastille_config);
            for tenant in &tenants {
                check_tenant(settings, &store, tenant, jailsdir.as_deref().ok(), &mut f);
            }
        }
    }
    print!("{}", f.text);
    Ok(if f.problems == 0 { exit::OK } else { exit::CONFIG })
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
                && !server.expose().starts_with("https://")
            {
                f.problem("BW_SERVER is not https:// (bw refuses plain http)");
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
    // An http:// server was reported above; bw would refuse it anyway.
    let server = settings.credential("BW_SERVER").filter(|s| s.expose().starts_with("https://"))?;
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
    jailsdir: Option<&Path>,
    f: &mut Findings,
) {
    let name = clean(&tenant.name);
    let root = match provision::check_root(settings, tenant, &Request::named(&tenant.name)) {
        Ok((root, _)) => {
            f.ok(&format!("{name}: root {} is usable", root.display()));
            root
        }
        Err(e) => {
            f.problem(&format!("{name}: {e}"));
            return;
        }
    };
    let last = store.last_log(&tenant.name, Some(&FRESH_OUTCOMES)).ok().flatten();
    match (crate::safe_write::read(&root, &tenant.options.env_path), last) {
        (Ok(Some(bytes)), Some(last)) if last.content_hash.as_deref() != Some(&crate::envfile::sha256_hex(&bytes)) => {
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
    let Some(jailsdir) = jailsdir else { return };
    let Ok(path) = jailconf::jail_conf_path(jailsdir, &tenant.name) else { return };
    let Ok(text) = std::fs::read_to_string(&path) else {
        f.warn(&format!("{name}: no Bastille jail.conf at {} (hooks set up another way?)", path.display()));
        return;
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
            for note in found.notes {
                f.warn(&format!("{name}: {note}"));
            }
            if !text.contains("exec.timeout") {
                f.warn(&format!(
                    "{name}: no exec.timeout in {}: jail(8) waits for hooks forever; colibri-vault's own deadlines are COLIBRI_LOCK_TIMEOUT plus COLIBRI_BW_TIMEOUT per bw call",
                    path.display()
                ));
            }
        }
    }
}
