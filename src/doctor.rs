//! `colibri-vault doctor`: checks the host's setup and says what to fix.
//!
//! Read-only: it runs no `bw` session and writes nothing. Each finding is `ok`, `warning` (works,
//! but not as an administrator would want) or `problem` (provisioning will fail); the exit
//! status is 78 when there is a problem. Beyond the settings it checks every tenant: its root,
//! its Bastille hook lines (stage and `exec.timeout`), and whether the env file on disk is the
//! one colibri-vault last wrote for it — a different file is what a cloned jail carries.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Settings, SourceKind};
use crate::error::Result;
use crate::exit;
use crate::jailconf::{self, Hook, Stage};
use crate::provision::{self, Request};
use crate::sanitize::clean;
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
            match crate::bw::find(&settings.bw) {
                Some(path) => f.ok(&format!("bw found at {}", path.display())),
                None => f.problem(&format!(
                    "bw not found on {} (pkg install bitwarden-cli, or set COLIBRI_BW)",
                    crate::bw::FIXED_PATH
                )),
            }
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
    let current = crate::safe_write::inspect(&root, &tenant.options.env_path, tenant.options.owner);
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
