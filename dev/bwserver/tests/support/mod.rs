//! Test helpers: start `colibri-bwserver` as a subprocess, and run the real `bw` against it with
//! a fresh app-data dir, stdin at /dev/null, `--nointeraction` and an environment built from
//! scratch (`PATH`, `HOME`, `BITWARDENCLI_APPDATA_DIR`, `NODE_EXTRA_CA_CERTS`, and the `BW_*` variables a
//! step needs).
//!
//! When `bw` is not on PATH the tests print a loud skip message, unless `CI=true`, where they
//! fail: CI must run them.

#![allow(dead_code)] // each helper is used by some tests, not all

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// No bw call in these tests should take long; bw itself has no timeout (protocol doc §1).
const BW_TIMEOUT: Duration = Duration::from_secs(90);

pub const EMAIL: &str = "Acceptance@Example.com";
pub const PASSWORD: &str = "correct horse battery staple";
pub const CLIENT_SECRET: &str = "k3y-s3cret-for-tests";

/// The account most tests use: one org, two collections, a login, a Secure Note, a card, a
/// personal login and a deleted login.
pub fn default_spec() -> Value {
    json!({
        "email": EMAIL,
        "master_password": PASSWORD,
        "kdf_iterations": 5000,
        "client_secret": CLIENT_SECRET,
        "organization": {"name": "Hive"},
        "collections": [{"name": "proof0"}, {"name": "proof1"}],
        "items": [
            {"type": "login", "name": "FIRST_PROOF_KEY", "username": "svc", "password": "s3cret",
             "collections": ["proof0"]},
            {"type": "note", "name": "bundle", "notes": "A=1\nB=two words",
             "collections": ["proof0"]},
            {"type": "card", "name": "visa", "collections": ["proof1"],
             "details": {"cardholderName": "Jo Doe", "number": "4111111111111111",
                         "expMonth": "1", "expYear": "2030", "code": "123", "brand": "Visa"}},
            {"type": "login", "name": "SECOND_KEY", "password": "p'$`\\x", "collections": ["proof1"]},
            {"type": "login", "name": "PERSONAL", "password": "mine"},
            {"type": "login", "name": "TRASHED_KEY", "password": "gone", "collections": ["proof0"],
             "deleted": true}
        ]
    })
}

/// The real `bw` (`$REAL_BW`, else `bw` on `PATH`), or `None` after a loud skip message.
/// Panics under `CI=true`.
pub fn bw_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("REAL_BW").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join("bw")).find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the real bw CLI is not on PATH and CI=true: install it (npm install -g @bitwarden/cli)"
        );
        // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED {test}: the real `bw` is not on PATH \
             (npm install -g @bitwarden/cli). Under CI=true this is a failure. !!!!!!!!\n"
        );
    }
    found
}

pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: TempDir,
    pub url: String,
    pub account: Value,
}

impl Server {
    pub fn start(spec: &Value) -> Self {
        let dir = tempfile::Builder::new().prefix("bwserver-").tempdir().unwrap();
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let state = dir.path().join("state");
        let mut child = Command::new(env!("CARGO_BIN_EXE_colibri-bwserver"))
            .arg("--spec")
            .arg(&spec_path)
            .arg("--dir")
            .arg(&state)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("colibri-bwserver starts");
        let stdin = child.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(state.join("url")) {
                break url;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("colibri-bwserver exited before writing its url: {status}");
            }
            assert!(Instant::now() < deadline, "colibri-bwserver wrote no url within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let account = read_json(&state.join("account.json"));
        Self { child, stdin, dir, url, account }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn ca(&self) -> PathBuf {
        self.state().join("ca.pem")
    }

    pub fn client_id(&self) -> String {
        self.account["client_id"].as_str().unwrap().to_owned()
    }

    pub fn org_id(&self) -> String {
        self.account["organization"]["id"].as_str().unwrap().to_owned()
    }

    pub fn collection_id(&self, name: &str) -> String {
        let collections = self.account["collections"].as_array().unwrap();
        let c = collections.iter().find(|c| c["name"] == name).expect("collection in spec");
        c["id"].as_str().unwrap().to_owned()
    }

    /// Replace `knobs.json` atomically; the server obeys it from its next request.
    pub fn set_knobs(&self, knobs: &Value) {
        let tmp = self.state().join("knobs.json.tmp");
        std::fs::write(&tmp, knobs.to_string()).unwrap();
        std::fs::rename(&tmp, self.state().join("knobs.json")).unwrap();
    }

    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state().join("requests.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r["path"] == path).count()
    }

    pub fn token_requests(&self) -> usize {
        self.count("/identity/connect/token")
    }

    /// Close stdin and wait for the server to exit; true if it did within `timeout`.
    pub fn close_stdin_and_wait(&mut self, timeout: Duration) -> bool {
        drop(self.stdin.take());
        wait_for(&mut self.child, timeout)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(&mut self, timeout: Duration) -> bool {
        wait_for(&mut self.child, timeout)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.close_stdin_and_wait(Duration::from_secs(5)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// One bw "installation": its own `HOME` and `BITWARDENCLI_APPDATA_DIR`.
pub struct Bw {
    program: PathBuf,
    dir: TempDir,
    ca: PathBuf,
    url: String,
}

#[derive(Debug)]
pub struct Out {
    pub args: String,
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
}

impl Out {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.rc, 0, "bw {} failed: {self:#?}", self.args);
        self
    }

    #[track_caller]
    pub fn fails_with(&self, message: &str) -> &Self {
        assert_eq!(self.rc, 1, "bw {} should fail: {self:#?}", self.args);
        assert!(self.stderr.contains(message), "bw {} should print {message:?}: {self:#?}", self.args);
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bw {} printed no JSON ({e}): {self:#?}", self.args))
    }
}

impl Bw {
    pub fn new(bw: &Path, server: &Server) -> Self {
        Self {
            program: bw.to_owned(),
            dir: tempfile::Builder::new().prefix("bw-appdata-").tempdir().unwrap(),
            ca: server.ca(),
            url: server.url.clone(),
        }
    }

    pub fn appdata(&self) -> PathBuf {
        self.dir.path().join("appdata")
    }

    pub fn data_json(&self) -> String {
        std::fs::read_to_string(self.appdata().join("data.json")).unwrap_or_default()
    }

    /// Run `bw ARGS --nointeraction` with only the listed BW_* variables.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .arg("--nointeraction")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("BITWARDENCLI_APPDATA_DIR", self.appdata())
            .env("NODE_EXTRA_CA_CERTS", &self.ca)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("bw starts");
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                s
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        if !wait_for(&mut child, BW_TIMEOUT) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bw {args:?} did not finish within {BW_TIMEOUT:?}");
        }
        let status = child.wait().unwrap();
        Out {
            args: args.join(" "),
            rc: status.code().unwrap_or(-1),
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
            secs: started.elapsed().as_secs_f64(),
        }
    }

    pub fn config_server(&self) -> Out {
        self.run(&["config", "server", &self.url], &[])
    }

    pub fn login(&self, client_id: &str, client_secret: &str) -> Out {
        self.run(&["login", "--apikey"], &[("BW_CLIENTID", client_id), ("BW_CLIENTSECRET", client_secret)])
    }

    pub fn unlock(&self, password: &str) -> Out {
        self.run(&["unlock", "--passwordenv", "BW_PASSWORD", "--raw"], &[("BW_PASSWORD", password)])
    }

    /// `config server` + `login --apikey` + `unlock`: the session key.
    pub fn session(&self, server: &Server) -> String {
        self.config_server().ok();
        self.login(&server.client_id(), CLIENT_SECRET).ok();
        let unlock = self.unlock(PASSWORD);
        unlock.ok();
        assert_eq!(unlock.stdout.len(), 88, "unlock --raw prints the session key: {unlock:#?}");
        unlock.stdout
    }

    pub fn with_session(&self, session: &str, args: &[&str]) -> Out {
        self.run(args, &[("BW_SESSION", session)])
    }
}

/// Items from `bw list items` JSON, by name.
pub fn by_name<'a>(items: &'a Value, name: &str) -> Option<&'a Value> {
    items.as_array().unwrap().iter().find(|i| i["name"] == name)
}

pub fn names(items: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        items.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}
