//! The `bw` source: one serialized session with the official Bitwarden CLI.
//!
//! Sequence (DESIGN.md "The vault session"; measured costs in docs/vault-session.md):
//! `config server` (only when the server differs from the last one configured) → `login
//! --apikey` → `unlock --passwordenv BW_PASSWORD --raw` → `list collections` → `list items`
//! → `logout` (falling back to `lock`). The listing serves any number of collections, so a
//! batch of tenants costs the same calls as one. The caller holds the host-wide lock.
//!
//! Guarantees: every call has `--nointeraction`, a from-scratch environment holding only the
//! `BW_*` variable its step needs, and a deadline; no secret is ever in argv (the password goes
//! through `--passwordenv`, the session key through `BW_SESSION`); a session that was started
//! ends with logout on success, error, timeout and signal alike, and a marker file lets the
//! next run log out first if this process was killed outright (SIGKILL, power loss). The
//! app-data dir is kept across runs and logouts: it holds bw's device identity, so every session
//! logs in as one device (docs/vault-session.md). A failure that matches a known bw/Vaultwarden
//! incompatibility is named in the error, before bw's own message (`compat::explain`).

mod parse;
pub(crate) mod process;
mod version;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::logging::Log;
use crate::sanitize;
use crate::secret::Secret;
use crate::source::{Fetched, Session};
use process::{Call, RunError};
pub use version::installed_version;

/// The only directories bw is looked up in, and the PATH its children get.
pub const FIXED_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// bw's default server when the provider env sets no `BW_SERVER`.
pub const DEFAULT_SERVER: &str = "https://vault.bitwarden.com";
/// Longest excerpt of bw's stderr in a message.
const STDERR_EXCERPT: usize = 1000;
/// Written before login, removed after logout: its presence means a run died logged in.
const SESSION_MARKER: &str = "colibri-session";
/// The server colibri-vault last configured successfully in this app-data dir.
const SERVER_STAMP: &str = "colibri-server";

struct Credentials {
    client_id: Secret,
    client_secret: Secret,
    password: Secret,
    server: String,
    ca_certs: Option<PathBuf>,
}

impl Credentials {
    fn from_settings(settings: &Settings) -> Result<Credentials> {
        let missing: Vec<&str> = ["BW_CLIENTID", "BW_CLIENTSECRET", "BW_PASSWORD"]
            .into_iter()
            .filter(|k| settings.credential(k).is_none())
            .collect();
        if !missing.is_empty() {
            let hint = if settings.provider_env_found { "" } else { " (the file does not exist)" };
            return Err(Error::Config(format!(
                "the provider env {}{hint} lacks {}; add the API key and master password of the vault account",
                settings.provider_env.display(),
                missing.join(", ")
            )));
        }
        let server =
            settings.credential("BW_SERVER").map_or(DEFAULT_SERVER, Secret::expose).trim_end_matches('/');
        check_server(server)?;
        let ca_certs = settings.credential("NODE_EXTRA_CA_CERTS").map(|v| PathBuf::from(v.expose()));
        if let Some(ca) = &ca_certs
            && !ca.is_absolute()
        {
            return Err(Error::Config("NODE_EXTRA_CA_CERTS must be an absolute path".into()));
        }
        let secret = |k: &str| settings.credential(k).cloned().unwrap_or_else(|| Secret::from(""));
        Ok(Credentials {
            client_id: secret("BW_CLIENTID"),
            client_secret: secret("BW_CLIENTSECRET"),
            password: secret("BW_PASSWORD"),
            server: server.to_owned(),
            ca_certs,
        })
    }
}

/// `BW_SERVER` must be an `https://` URL (bw refuses plain http, loopback included) without
/// userinfo: a `user:password@` would be echoed by bw and kept in its data file. The messages
/// never repeat the URL, which may hold such a password.
pub fn check_server(server: &str) -> Result<()> {
    let Some(rest) = server.strip_prefix("https://") else {
        let scheme = server.split_once("://").map_or("no scheme", |(scheme, _)| scheme);
        return Err(Error::Config(format!(
            "BW_SERVER must be an https:// URL (its scheme is {}): bw refuses plain http, loopback included (use TLS; for a self-signed certificate set NODE_EXTRA_CA_CERTS in the provider env)",
            sanitize::clean(&scheme.chars().take(16).collect::<String>())
        )));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(Error::Config(
            "BW_SERVER must not contain a user name or password (user:password@): bw would show and store it; the API key in BW_CLIENTID/BW_CLIENTSECRET is the login".into(),
        ));
    }
    if authority.is_empty() {
        return Err(Error::Config("BW_SERVER has no host name after https://".into()));
    }
    Ok(())
}

pub struct BwSession<'a> {
    program: PathBuf,
    appdata: PathBuf,
    credentials: Credentials,
    timeout: Duration,
    session_key: Option<Secret>,
    /// Every value the session fetched (item passwords, notes and their lines): scrubbed from
    /// whatever bw prints on stderr afterwards, with the credentials and the session key.
    fetched: Vec<Secret>,
    /// Set before login; cleared once logout is confirmed.
    maybe_logged_in: bool,
    calls: u32,
    log: &'a Log,
}

/// The bw executable colibri-vault would run, if there is one.
pub fn find(configured: &Path) -> Option<PathBuf> {
    process::find_program(configured, FIXED_PATH)
}

/// Opens a session: logs in and unlocks. On failure, whatever was started is logged out.
pub fn open<'a>(settings: &Settings, log: &'a Log) -> Result<Box<dyn Session + 'a>> {
    let credentials = Credentials::from_settings(settings)?;
    if let Some(ca) = &credentials.ca_certs {
        // bw (Node) reads it blocking: refuse a FIFO, device or unsafe file before it starts.
        crate::hostfile::open(ca, &crate::hostfile::CA_BUNDLE)?.ok_or_else(|| {
            Error::Config(format!(
                "NODE_EXTRA_CA_CERTS {} does not exist",
                sanitize::clean(&ca.to_string_lossy())
            ))
        })?;
    }
    let program = process::find_program(&settings.bw, FIXED_PATH).ok_or_else(|| Error::CommandInvoke {
        program: settings.bw.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("not found on {FIXED_PATH}; {}", crate::compat::install_hint()),
        ),
    })?;
    let appdata = app_data_dir(&settings.state_dir)?;
    let mut session = BwSession {
        program,
        appdata,
        credentials,
        timeout: settings.bw_timeout,
        session_key: None,
        fetched: Vec::new(),
        maybe_logged_in: false,
        calls: 0,
        log,
    };
    session.start()?;
    Ok(Box::new(session))
}

/// `$COLIBRI_STATE_DIR/bw`: created 0700 (with that mode, not chmod'ed later); refused if it is
/// a symlink, someone else's, or open to group/other. Never inside a jail.
fn app_data_dir(state_dir: &Path) -> Result<PathBuf> {
    if !state_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| Error::CreateDir { path: state_dir.to_owned(), source })?;
    }
    let dir = state_dir.join("bw");
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::CreateDir { path: dir.clone(), source })?,
        Err(source) => return Err(Error::ReadFile { path: dir, source }),
        Ok(meta) => {
            let me = nix::unistd::geteuid().as_raw();
            if meta.file_type().is_symlink() || !meta.is_dir() {
                return Err(Error::InsecureFile {
                    path: dir.clone(),
                    problem: "not a plain directory (a symlink?)".into(),
                    fix: format!("rm {} and let colibri-vault recreate it", dir.display()),
                });
            }
            if meta.uid() != me {
                return Err(Error::InsecureFile {
                    path: dir.clone(),
                    problem: format!("owned by uid {}, not {me}", meta.uid()),
                    fix: format!("chown -R {me} {}", dir.display()),
                });
            }
            if meta.mode() & 0o077 != 0 {
                return Err(Error::InsecureFile {
                    path: dir.clone(),
                    problem: format!("open to group or others (mode {:04o})", meta.mode() & 0o7777),
                    fix: format!("chmod 700 {}", dir.display()),
                });
            }
        }
    }
    Ok(dir)
}

/// Which secret a step hands to bw through its environment.
#[derive(Clone, Copy)]
enum Needs {
    Nothing,
    ApiKey,
    Password,
    SessionKey,
}

impl BwSession<'_> {
    fn start(&mut self) -> Result<()> {
        let result = self.login_and_unlock();
        if result.is_err()
            && self.maybe_logged_in
            && let Err(e) = self.end()
        {
            self.log.error(&format!("could not end the bw session after a failure: {e}"));
        }
        result
    }

    fn login_and_unlock(&mut self) -> Result<()> {
        self.discard_unreadable_data();
        if self.appdata.join(SESSION_MARKER).exists() {
            self.log.warn("a previous run ended without logging bw out; logging out first");
            self.maybe_logged_in = true;
            self.end()?;
        }
        self.configure_server()?;
        self.mark_session(true)?;
        self.maybe_logged_in = true;
        let out = self.bw("login", &["login", "--apikey"], Needs::ApiKey, true);
        let out = match out {
            Err(Error::Vault { message, .. }) if message.contains("You are already logged in") => {
                // Left logged in by something we did not record: log out, then log in once more.
                self.end()?;
                self.mark_session(true)?;
                self.maybe_logged_in = true;
                self.bw("login", &["login", "--apikey"], Needs::ApiKey, true)?
            }
            other => other?,
        };
        // Exit 0 is success; the text differs with --nointeraction (bw.js prints the unlock
        // hint then), so only a blank stdout — bw's prompt trap — is refused.
        if out.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::Vault {
                step: "login".into(),
                message: "bw login exited 0 without output (it wanted to prompt)".into(),
            });
        }
        let out =
            self.bw("unlock", &["unlock", "--passwordenv", "BW_PASSWORD", "--raw"], Needs::Password, true)?;
        let key =
            parse::session_key(&out).map_err(|message| Error::Vault { step: "unlock".into(), message })?;
        self.session_key = Some(key);
        Ok(())
    }

    /// Points bw at `BW_SERVER`, unless this app-data dir is already configured for it.
    fn configure_server(&mut self) -> Result<()> {
        let stamp = self.appdata.join(SERVER_STAMP);
        let configured = crate::hostfile::read(&stamp, &crate::hostfile::OWN_FILE)
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok());
        if configured.as_deref() == Some(self.credentials.server.as_str())
            && self.appdata.join("data.json").exists()
        {
            return Ok(());
        }
        // Fail closed: forget the old server before changing it, so a crash in between cannot
        // leave a stamp that names a server bw is not configured for.
        let _ = std::fs::remove_file(&stamp);
        let server = self.credentials.server.clone();
        match self.bw("config server", &["config", "server", &server], Needs::Nothing, true) {
            Err(Error::Vault { message, .. }) if message.contains("Logout required") => {
                self.maybe_logged_in = true;
                self.end()?;
                self.bw("config server", &["config", "server", &server], Needs::Nothing, true)?;
            }
            other => {
                other?;
            }
        }
        std::fs::write(&stamp, &server).map_err(|e| Error::write(&stamp, e.to_string()))
    }

    fn mark_session(&self, open: bool) -> Result<()> {
        let marker = self.appdata.join(SESSION_MARKER);
        if open {
            std::fs::write(&marker, std::process::id().to_string())
                .map_err(|e| Error::write(&marker, e.to_string()))
        } else {
            match std::fs::remove_file(&marker) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::write(&marker, e.to_string()))
                }
                _ => Ok(()),
            }
        }
    }

    /// Logs out (falling back to `lock`). Runs even after a signal: it is the cleanup.
    /// Tried once per run: if it fails, the session marker stays and the next run logs out first.
    fn end(&mut self) -> Result<()> {
        self.session_key = None;
        self.maybe_logged_in = false;
        match self.bw("logout", &["logout"], Needs::Nothing, false) {
            Ok(_) => {}
            Err(Error::Vault { message, .. }) if message.contains("You are not logged in") => {}
            Err(logout) => {
                if self.discard_unreadable_data() {
                    return self.mark_session(false);
                }
                let locked = self.bw("lock", &["lock"], Needs::Nothing, false);
                return Err(Error::Vault {
                    step: "logout".into(),
                    message: match locked {
                        Ok(_) => format!(
                            "{logout}; the vault was locked instead (the API key stays in bw's data until a logout succeeds)"
                        ),
                        Err(lock) => format!("{logout}; lock failed too: {lock}"),
                    },
                });
            }
        }
        self.mark_session(false)
    }

    /// bw killed while it wrote its data file (by our deadline or a signal, or a crash) can leave
    /// it unreadable: bw then can neither log out nor lock, and whatever the file holds — maybe
    /// the API client secret, in clear — would stay for good, and every later session fail.
    /// Such a file cannot hold a usable session, so it is removed (bw makes a new one; the next
    /// login counts as a new device). Returns whether it did that.
    fn discard_unreadable_data(&self) -> bool {
        let data = self.appdata.join("data.json");
        let unreadable = match std::fs::read(&data) {
            Ok(bytes) => serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err(),
            Err(_) => false,
        };
        if unreadable && std::fs::remove_file(&data).is_ok() {
            let _ = std::fs::remove_file(self.appdata.join(SERVER_STAMP));
            self.log.warn(&format!(
                "{} was not readable (bw was stopped while writing it); removed it, so that nothing of a session stays in it",
                data.display()
            ));
            return true;
        }
        false
    }

    fn child_env(&self, needs: Needs) -> Vec<(&'static str, OsString)> {
        let mut env = vec![
            ("PATH", OsString::from(FIXED_PATH)),
            ("HOME", self.appdata.clone().into_os_string()),
            ("BITWARDENCLI_APPDATA_DIR", self.appdata.clone().into_os_string()),
        ];
        if let Some(ca) = &self.credentials.ca_certs {
            env.push(("NODE_EXTRA_CA_CERTS", ca.clone().into_os_string()));
        }
        let c = &self.credentials;
        match needs {
            Needs::Nothing => {}
            Needs::ApiKey => {
                env.push(("BW_CLIENTID", OsString::from(c.client_id.expose())));
                env.push(("BW_CLIENTSECRET", OsString::from(c.client_secret.expose())));
            }
            Needs::Password => env.push(("BW_PASSWORD", OsString::from(c.password.expose()))),
            Needs::SessionKey => {
                if let Some(key) = &self.session_key {
                    env.push(("BW_SESSION", OsString::from(key.expose())));
                }
            }
        }
        env
    }

    /// One bw call. Returns stdout on exit 0; maps every failure to a typed error whose message
    /// carries bw's stderr (scrubbed of our secrets, sanitized, capped) and never its stdout.
    fn bw(
        &mut self,
        step: &str,
        args: &[&str],
        needs: Needs,
        interruptible: bool,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let mut full: Vec<&str> = args.to_vec();
        full.push("--nointeraction");
        let env = self.child_env(needs);
        self.calls += 1;
        self.log.debug(&format!("bw {}", full.join(" ")));
        let call =
            Call { program: &self.program, args: &full, env: &env, timeout: self.timeout, interruptible };
        // Zeroize the environment copies holding secrets once the child has them.
        let result = process::run(&call);
        drop(env);
        let out = match result {
            Ok(out) => out,
            Err(RunError::Start(source)) => {
                return Err(Error::CommandInvoke { program: self.program.clone(), source });
            }
            Err(RunError::Timeout) => {
                return Err(Error::VaultTimeout { step: step.into(), seconds: self.timeout.as_secs() });
            }
            Err(RunError::Interrupted(signal)) => return Err(Error::Interrupted(signal)),
        };
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = self.excerpt(&out.stderr);
        let message = if stderr.is_empty() {
            match out.status.code() {
                Some(code) => format!("exited with status {code} and no message"),
                None => "was killed by a signal".into(),
            }
        } else {
            stderr
        };
        // A known incompatibility or server policy is named, with bw's own words after it.
        let message = match crate::compat::explain(&message) {
            Some(why) => format!("{why}; bw said: {message}"),
            None => message,
        };
        if parse::is_credential_error(&message) {
            Err(Error::VaultAuth { step: step.into(), message })
        } else {
            Err(Error::Vault { step: step.into(), message })
        }
    }

    fn excerpt(&self, stderr: &[u8]) -> String {
        let c = &self.credentials;
        let mut secrets = vec![&c.client_secret, &c.password, &c.client_id];
        if let Some(key) = &self.session_key {
            secrets.push(key);
        }
        secrets.extend(self.fetched.iter());
        let text = sanitize::scrub(&parse::meaningful_stderr(stderr), &secrets);
        sanitize::sanitize(&text, STDERR_EXCERPT)
    }
}

impl Session for BwSession<'_> {
    fn fetch(&mut self, collections: &BTreeSet<String>) -> Result<Fetched> {
        let out = self.bw("list collections", &["list", "collections"], Needs::SessionKey, true)?;
        let listed = parse::collections(&out)
            .map_err(|message| Error::Vault { step: "list collections".into(), message })?;
        let mut ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in &listed {
            if collections.contains(&c.name) {
                ids.entry(c.name.as_str()).or_default().push(c.id.as_str());
            }
        }
        let mut fetched = Fetched::new();
        if ids.is_empty() {
            return Ok(fetched);
        }
        let out = self.bw("list items", &["list", "items"], Needs::SessionKey, true)?;
        let items =
            parse::items(&out).map_err(|message| Error::Vault { step: "list items".into(), message })?;
        self.fetched.extend(items.iter().flat_map(|i| session_values(&i.item.content)));
        for (name, matching) in ids {
            let entry = if let [id] = matching[..] {
                Ok(items
                    .iter()
                    .filter(|i| i.collection_ids.iter().any(|c| c == id))
                    .map(|i| i.item.clone())
                    .collect())
            } else {
                Err(format!(
                    "the collection name {name} matches {} collections; rename one of them",
                    matching.len()
                ))
            };
            fetched.insert(name.to_owned(), entry);
        }
        Ok(fetched)
    }

    fn calls(&self) -> u32 {
        self.calls
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.end()
    }
}

/// The values an item holds, for scrubbing: a login's password; a note's whole text, each of its
/// lines and the part of each line after its first `=`.
fn session_values(content: &crate::source::ItemContent) -> Vec<Secret> {
    use crate::source::ItemContent;
    match content {
        ItemContent::Entry { value, .. } => vec![value.clone()],
        ItemContent::Bundle(notes) => {
            let mut values = vec![notes.clone()];
            for line in notes.expose().lines() {
                values.push(Secret::from(line));
                if let Some((_, value)) = line.split_once('=') {
                    values.push(Secret::from(value));
                }
            }
            values
        }
        ItemContent::Skip(_) => Vec::new(),
    }
}

impl Drop for BwSession<'_> {
    fn drop(&mut self) {
        if self.maybe_logged_in
            && let Err(e) = self.end()
        {
            self.log.error(&format!("could not end the bw session: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A panic while a session is open unwinds through its destructor, which logs bw out.
    #[test]
    fn a_panic_inside_a_session_still_logs_out() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let program = dir.path().join("bw");
        std::fs::write(&program, format!("#!/bin/sh\necho \"$1\" >> '{}'\n", calls.display())).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let appdata = app_data_dir(&dir.path().join("state")).unwrap();
        std::fs::write(appdata.join(SESSION_MARKER), "1").unwrap();
        let log = Log::quiet();
        let bug = crate::bug::contain(|| {
            let _session = BwSession {
                program,
                appdata: appdata.clone(),
                credentials: Credentials {
                    client_id: Secret::from("id"),
                    client_secret: Secret::from("secret"),
                    password: Secret::from("password"),
                    server: DEFAULT_SERVER.into(),
                    ca_certs: None,
                },
                timeout: Duration::from_secs(30),
                session_key: Some(Secret::from("key")),
                fetched: Vec::new(),
                maybe_logged_in: true,
                calls: 0,
                log: &log,
            };
            panic!("inside the session");
        });
        assert!(bug.is_err());
        assert_eq!(std::fs::read_to_string(&calls).unwrap(), "logout\n");
        assert!(!appdata.join(SESSION_MARKER).exists(), "the logout was confirmed");
    }
}
