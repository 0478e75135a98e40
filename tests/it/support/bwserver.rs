//! The test-only Bitwarden-protocol server (`dev/bwserver`, binary `colibri-bwserver`) for the
//! tier that runs colibri-vault with the REAL bw against it.
//!
//! `require(what)` finds both tools: the real bw (`real_bw::find`) and the server binary. The
//! server is looked for at `$COLIBRI_BWSERVER`, else `$CARGO_TARGET_DIR/debug/colibri-bwserver`
//! when `CARGO_TARGET_DIR` is set (relative to the repository, as cargo resolves it from there),
//! else `dev/bwserver/target/debug/colibri-bwserver`. `make test` builds it first. Outside CI,
//! with the default target dir, the helper also runs `cargo build --locked --manifest-path
//! dev/bwserver/Cargo.toml` once per test process, so a plain `cargo test` neither misses the
//! server nor runs a stale one (a no-op build takes a fraction of a second). In CI (`CI=true`)
//! nothing is built here: a missing bw or server fails the test; elsewhere it is a loud skip.
//!
//! `BwServer::start(&spec)` writes the spec, spawns the server with a piped stdin that it keeps
//! open (the server exits on stdin EOF), waits for `DIR/url` (written last) and reads
//! `account.json`. Dropping it closes stdin and reaps the server (killing it after 5 s).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::real_bw;

pub const EMAIL: &str = "ops@example.com";
/// No single quote in it: the provider env quotes it with `'…'`.
pub const MASTER_PASSWORD: &str = "correct horse battery staple";
pub const CLIENT_SECRET: &str = "BwServerTierClientSecret42";

/// How long the server may take to generate the account and write its url (about 1 s on a
/// busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the one-off build of the server outside CI (a first build compiles RSA, rustls…).
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The repository (the root crate's manifest directory).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the server binary is expected, and whether it lives in its own default target dir.
fn expected_binary() -> (PathBuf, bool) {
    if let Some(path) = std::env::var_os("COLIBRI_BWSERVER") {
        return (PathBuf::from(path), false);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => (repo().join(dir).join("debug/colibri-bwserver"), false),
        _ => (repo().join("dev/bwserver/target/debug/colibri-bwserver"), true),
    }
}

/// Builds the server (outside CI, default target dir only: a shared `CARGO_TARGET_DIR` may be
/// locked by the cargo running these tests). Returns a note when the build did not succeed.
fn build() -> Option<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = repo().join("dev/bwserver/Cargo.toml");
    let mut child = match Command::new(&cargo)
        .args(["build", "--locked", "--manifest-path"])
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Some(format!("could not start {}: {e}", Path::new(&cargo).display())),
    };
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
            text
        })
    });
    if !wait_for(&mut child, BUILD_TIMEOUT) {
        let _ = child.kill();
        let _ = child.wait();
        return Some(format!("cargo build of the server took longer than {BUILD_TIMEOUT:?}"));
    }
    let status = child.wait().ok()?;
    let text = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if status.success() {
        None
    } else {
        let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        Some(format!("cargo build --manifest-path {} failed:\n{}", manifest.display(), tail.join("\n")))
    }
}

/// The server binary, or why there is none (located, and built once when allowed).
fn binary() -> &'static Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(|| {
        let (path, own_target_dir) = expected_binary();
        let build_note = if !super::in_ci() && own_target_dir { build() } else { None };
        match (path.is_file(), build_note) {
            (true, None) => Ok(path),
            (true, Some(note)) => {
                // A stale binary is still a faithful server most of the time; say so loudly.
                let _ =
                    writeln!(std::io::stderr(), "\n!!!!!!!! colibri-bwserver not rebuilt: {note} !!!!!!!!\n");
                Ok(path)
            }
            (false, note) => Err(format!(
                "{} is missing (`make test` builds it: cargo build --locked --manifest-path \
                 dev/bwserver/Cargo.toml){}",
                path.display(),
                note.map(|n| format!("; {n}")).unwrap_or_default()
            )),
        }
    })
}

/// The two programs this tier needs.
pub struct Tools {
    pub bw: PathBuf,
    pub server: PathBuf,
}

/// The real bw and the server binary; `None` after a loud notice when one is missing, and a
/// failure instead under `CI=true`.
#[track_caller]
pub fn require(what: &str) -> Option<Tools> {
    let bw = real_bw::require(what)?;
    match binary() {
        Ok(server) => Some(Tools { bw, server: server.clone() }),
        Err(why) => {
            super::skip(what, &format!("no colibri-bwserver: {why}"));
            None
        }
    }
}

/// The server binary alone, for tests that need no real bw (a fake bw, or none); `None` after
/// a loud notice, and a failure instead under `CI=true`.
#[track_caller]
pub fn require_server(what: &str) -> Option<PathBuf> {
    match binary() {
        Ok(server) => Some(server.clone()),
        Err(why) => {
            super::skip(what, &format!("no colibri-bwserver: {why}"));
            None
        }
    }
}

/// An account spec for the server, built up per test. Tenants are collections of the one
/// organization; items name the tenant (collection) they belong to.
pub struct Spec(Value);

impl Spec {
    pub fn new() -> Spec {
        Spec(json!({
            "email": EMAIL,
            "master_password": MASTER_PASSWORD,
            "kdf_iterations": 5000,
            "client_secret": CLIENT_SECRET,
            "organization": {"name": "Hive"},
            "collections": [],
            "items": [],
        }))
    }

    /// A collection named like the tenant.
    pub fn tenant(&mut self, name: &str) -> &mut Spec {
        self.list("collections").push(json!({"name": name}));
        self
    }

    pub fn login(&mut self, tenant: &str, name: &str, password: &str) -> &mut Spec {
        self.item(json!({"type": "login", "name": name, "username": "svc", "password": password,
                         "uris": ["https://app.example"], "collections": [tenant]}))
    }

    pub fn note(&mut self, tenant: &str, name: &str, notes: &str) -> &mut Spec {
        self.item(json!({"type": "note", "name": name, "notes": notes, "collections": [tenant]}))
    }

    pub fn card(&mut self, tenant: &str, name: &str) -> &mut Spec {
        self.item(json!({"type": "card", "name": name, "collections": [tenant],
                         "details": {"cardholderName": "Jo Doe", "number": "4111111111111111",
                                     "expMonth": "1", "expYear": "2030", "code": "123"}}))
    }

    /// A login in the trash.
    pub fn deleted_login(&mut self, tenant: &str, name: &str, password: &str) -> &mut Spec {
        self.item(json!({"type": "login", "name": name, "password": password, "collections": [tenant],
                         "deleted": true}))
    }

    /// A login in no collection (the account's personal vault).
    pub fn personal_login(&mut self, name: &str, password: &str) -> &mut Spec {
        self.item(json!({"type": "login", "name": name, "password": password}))
    }

    pub fn item(&mut self, item: Value) -> &mut Spec {
        self.list("items").push(item);
        self
    }

    fn list(&mut self, key: &str) -> &mut Vec<Value> {
        self.0[key].as_array_mut().expect("spec list")
    }
}

/// A running server; stopped (stdin closed, process reaped) on drop.
pub struct BwServer {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: TempDir,
    pub url: String,
    /// The throw-away CA, for `NODE_EXTRA_CA_CERTS`.
    pub ca: PathBuf,
    /// `account.json`: the generated ids (no secrets).
    pub account: Value,
}

impl BwServer {
    pub fn start(program: &Path, spec: &Spec) -> BwServer {
        let dir = tempfile::Builder::new().prefix("colibri-bwserver-").tempdir().expect("tempdir");
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, spec.0.to_string()).unwrap();
        let state = dir.path().join("state");
        let mut child = Command::new(program)
            .arg("--spec")
            .arg(&spec_path)
            .arg("--dir")
            .arg(&state)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let stdin = child.stdin.take();
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(state.join("url")) {
                break url;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("colibri-bwserver exited before writing its url: {status}");
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("colibri-bwserver wrote no url within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let account = serde_json::from_str(&std::fs::read_to_string(state.join("account.json")).unwrap())
            .expect("account.json");
        let ca = state.join("ca.pem");
        BwServer { child, stdin, dir, url, ca, account }
    }

    /// The server's directory (url, ca.pem, account.json, requests.jsonl, knobs.json).
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn client_id(&self) -> &str {
        self.account["client_id"].as_str().expect("client_id")
    }

    /// The item's id in `account.json` (the first item so named).
    pub fn item_id(&self, name: &str) -> &str {
        let items = self.account["items"].as_array().expect("items");
        items.iter().find(|i| i["name"] == name).and_then(|i| i["id"].as_str()).expect("item in the spec")
    }

    /// A complete provider env for the bw source with `bw` as the CLI.
    pub fn provider_env(&self, bw: &Path) -> String {
        format!(
            "BW_CLIENTID={}\nBW_CLIENTSECRET={CLIENT_SECRET}\nBW_PASSWORD='{MASTER_PASSWORD}'\n\
             BW_SERVER={}\nNODE_EXTRA_CA_CERTS={}\nCOLIBRI_BW={}\n",
            self.client_id(),
            self.url,
            self.ca.display(),
            bw.display()
        )
    }

    /// Replaces `knobs.json` atomically; the server obeys it from its next request.
    pub fn set_knobs(&self, knobs: &Value) {
        let tmp = self.state().join("knobs.json.tmp");
        std::fs::write(&tmp, knobs.to_string()).unwrap();
        std::fs::rename(&tmp, self.state().join("knobs.json")).unwrap();
    }

    /// The request log so far, one JSON object per request.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state().join("requests.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r["path"] == path).count()
    }

    /// Logins: each `bw login --apikey` is one token request.
    pub fn token_requests(&self) -> usize {
        self.count("/identity/connect/token")
    }

    /// Stops the server (stdin EOF) and waits until it has exited: its port is closed.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if !wait_for(&mut self.child, Duration::from_secs(10)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for BwServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
