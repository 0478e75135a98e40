//! A fake `bw` (Bitwarden CLI 2026.6.0) for the integration tests, and the readers for what it saw.
//!
//! `FakeBw` describes the account, the vault it "serves", latency and injected faults; `install()`
//! writes `fake_bw.py` into the directory as an executable named `bw` (its first line names this
//! machine's python3 by absolute path, because colibri-vault runs bw with a from-scratch
//! environment) next to `fake-bw.json`, which is where the fake reads its configuration. The fake
//! keeps its state where the real bw does (`$BITWARDENCLI_APPDATA_DIR/data.json`) and, for the tests
//! only, appends every call to `calls.jsonl` and every overlapping session or secret in argv to
//! `violations.jsonl` in the same directory.
//!
//! The behaviour it mimics is recorded in `../shared/reference/bw-cli.md`; `fake_bw_fidelity.rs`
//! proves the match, partly against the real bw. Not for: anything that needs a real server.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Value, json};

/// The fake itself; `install()` replaces its first line with this machine's python3.
pub const FAKE_BW_PY: &str = include_str!("fake_bw.py");

/// Ids and names from the recording (bw-cli.md), used by the defaults and `with_recorded_vault()`.
pub const USER_ID: &str = "26fb04eb-a416-4088-a7b1-8d954bc53d3f";
pub const EMAIL: &str = "acceptance@example.com";
pub const ORG_ID: &str = "eb1789ac-94f7-47e4-a27f-4db7bd879610";
pub const ORG_NAME: &str = "Hive";
pub const PROOF0_ID: &str = "a11dc23c-f332-4943-a781-8f9fee137d89";
pub const PROOF1_ID: &str = "2de19c48-753c-4428-8cee-4340c135ab11";
pub const BUNDLE_ID: &str = "b81abd91-f71c-43e0-9e30-e91da8cefcd2";
pub const FIRST_PROOF_KEY_ID: &str = "919b3813-4b75-4c09-8f86-f595cd7d3759";
pub const SECOND_PROOF_KEY_ID: &str = "090d147b-85c4-4303-b1ab-41f632e41e77";
/// The server URL the recording used; the fake's default.
pub const SERVER_URL: &str = "https://127.0.0.1:8222";

/// The Bitwarden account whose API key and master password the fake accepts.
#[derive(Clone, Debug)]
pub struct Account {
    pub email: String,
    pub user_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub master_password: String,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            email: EMAIL.to_owned(),
            user_id: USER_ID.to_owned(),
            client_id: format!("user.{USER_ID}"),
            client_secret: "FakeClientSecret0123456789abcd".to_owned(),
            master_password: "fake master password 42".to_owned(),
        }
    }
}

/// Cipher types as bw numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemType {
    Login = 1,
    SecureNote = 2,
    Card = 3,
    Identity = 4,
}

/// One vault item as the fake serves it.
#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub kind: ItemType,
    pub name: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub notes: Option<String>,
    pub collection_ids: Vec<String>,
    pub deleted_date: Option<String>,
    pub creation_date: Option<String>,
    pub revision_date: Option<String>,
    /// Card or identity fields (`number`, `firstName`, ...), in bw's names.
    pub fields: BTreeMap<String, String>,
}

impl Item {
    fn new(kind: ItemType, id: &str, name: &str) -> Self {
        Item {
            id: id.to_owned(),
            kind,
            name: name.to_owned(),
            username: None,
            password: None,
            notes: None,
            collection_ids: Vec::new(),
            deleted_date: None,
            creation_date: None,
            revision_date: None,
            fields: BTreeMap::new(),
        }
    }

    /// A Login item holding `password`.
    pub fn login(id: &str, name: &str, password: &str) -> Self {
        let mut item = Item::new(ItemType::Login, id, name);
        item.password = Some(password.to_owned());
        item
    }

    /// A Secure Note holding `notes`.
    pub fn note(id: &str, name: &str, notes: &str) -> Self {
        let mut item = Item::new(ItemType::SecureNote, id, name);
        item.notes = Some(notes.to_owned());
        item
    }

    pub fn card(id: &str, name: &str) -> Self {
        Item::new(ItemType::Card, id, name)
    }

    pub fn identity(id: &str, name: &str) -> Self {
        Item::new(ItemType::Identity, id, name)
    }

    #[must_use]
    pub fn in_collection(mut self, collection_id: &str) -> Self {
        self.collection_ids.push(collection_id.to_owned());
        self
    }

    #[must_use]
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    #[must_use]
    pub fn notes(mut self, notes: &str) -> Self {
        self.notes = Some(notes.to_owned());
        self
    }

    /// In the trash since `date` (ISO 8601); `list items` leaves it out, as bw does.
    #[must_use]
    pub fn deleted(mut self, date: &str) -> Self {
        self.deleted_date = Some(date.to_owned());
        self
    }

    #[must_use]
    pub fn dates(mut self, creation: &str, revision: &str) -> Self {
        self.creation_date = Some(creation.to_owned());
        self.revision_date = Some(revision.to_owned());
        self
    }

    /// A card or identity field, e.g. `.field("number", "4111...")`.
    #[must_use]
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.fields.insert(name.to_owned(), value.to_owned());
        self
    }

    fn to_json(&self) -> Value {
        let mut o = json!({
            "id": self.id,
            "type": self.kind as i32,
            "name": self.name,
            "collectionIds": self.collection_ids,
        });
        let map = o.as_object_mut().expect("an object");
        if let Some(notes) = &self.notes {
            map.insert("notes".into(), json!(notes));
        }
        if self.kind == ItemType::Login {
            map.insert("login".into(), json!({"username": self.username, "password": self.password}));
        }
        let sub = match self.kind {
            ItemType::Card => Some("card"),
            ItemType::Identity => Some("identity"),
            _ => None,
        };
        if let Some(sub) = sub {
            map.insert(sub.into(), json!(self.fields));
        }
        for (key, value) in [
            ("deletedDate", &self.deleted_date),
            ("creationDate", &self.creation_date),
            ("revisionDate", &self.revision_date),
        ] {
            if let Some(v) = value {
                map.insert(key.into(), json!(v));
            }
        }
        o
    }
}

/// What an injected fault does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Exit with `rc`, printing `stdout` and `stderr` (replacing the normal output).
    Fail { rc: i32, stdout: String, stderr: String },
    /// Stop answering for `seconds` (default an hour), optionally with a forked helper in the same
    /// process group and with SIGTERM ignored. The caller's timeout must kill the group.
    Hang { seconds: f64, child: bool, ignore_term: bool },
    /// Exit 0 with unparsable stdout.
    Garbage(String),
    /// Exit 0 with empty stdout.
    Empty,
    /// Kill itself with this signal.
    Signal(i32),
    /// `login` only: the sync inside login fails, so login exits 0 as usual but `unlock --raw`
    /// then exits 0 with an empty key, lists say `Vault is locked.`, until a `sync` repairs it
    /// (bitwarden-protocol.md §6).
    SyncFails,
}

/// A fault at one step: `config`, `login`, `unlock`, `list collections`, `list items`,
/// `list organizations`, `sync`, `status`, `lock`, `logout` (also `login --check`,
/// `unlock --check`, `list org-collections`, `get <object>`, `version`).
#[derive(Clone, Debug)]
pub struct Fault {
    pub step: String,
    /// Only the nth call of that step (1-based, counted per installed fake); `None` = every call.
    pub nth: Option<u32>,
    /// Do the step's real work (state changes in data.json) first, then misbehave.
    pub after: bool,
    pub action: Action,
}

impl Fault {
    fn at(step: &str, action: Action) -> Self {
        Fault { step: step.to_owned(), nth: None, after: false, action }
    }

    pub fn fail(step: &str, rc: i32, stderr: &str) -> Self {
        Fault::at(step, Action::Fail { rc, stdout: String::new(), stderr: stderr.to_owned() })
    }

    pub fn hang(step: &str) -> Self {
        Fault::at(step, Action::Hang { seconds: 3600.0, child: false, ignore_term: false })
    }

    pub fn garbage(step: &str) -> Self {
        Fault::at(step, Action::Garbage("<html><body>502 Bad Gateway</body></html>".to_owned()))
    }

    pub fn empty(step: &str) -> Self {
        Fault::at(step, Action::Empty)
    }

    pub fn signal(step: &str, signal: i32) -> Self {
        Fault::at(step, Action::Signal(signal))
    }

    pub fn login_sync_fails() -> Self {
        Fault::at("login", Action::SyncFails)
    }

    #[must_use]
    pub fn nth(mut self, n: u32) -> Self {
        self.nth = Some(n);
        self
    }

    #[must_use]
    pub fn after(mut self) -> Self {
        self.after = true;
        self
    }

    /// For `fail`: also print this on stdout. For `garbage`: print this instead of the default.
    #[must_use]
    pub fn stdout(mut self, text: &str) -> Self {
        match &mut self.action {
            Action::Fail { stdout, .. } => text.clone_into(stdout),
            Action::Garbage(g) => text.clone_into(g),
            _ => panic!("stdout() applies to fail and garbage faults"),
        }
        self
    }

    /// For `hang`: how long before it gives up by itself (exit 0, empty stdout).
    #[must_use]
    pub fn for_seconds(mut self, secs: f64) -> Self {
        match &mut self.action {
            Action::Hang { seconds, .. } => *seconds = secs,
            _ => panic!("for_seconds() applies to hang faults"),
        }
        self
    }

    /// For `hang`: fork a helper into the same process group that also holds stdout/stderr.
    #[must_use]
    pub fn with_child(mut self) -> Self {
        match &mut self.action {
            Action::Hang { child, .. } => *child = true,
            _ => panic!("with_child() applies to hang faults"),
        }
        self
    }

    /// For `hang`: ignore SIGTERM, so only SIGKILL ends it.
    #[must_use]
    pub fn ignoring_term(mut self) -> Self {
        match &mut self.action {
            Action::Hang { ignore_term, .. } => *ignore_term = true,
            _ => panic!("ignoring_term() applies to hang faults"),
        }
        self
    }

    fn to_json(&self) -> Value {
        let mut o = match &self.action {
            Action::Fail { rc, stdout, stderr } => {
                json!({"action": "fail", "rc": rc, "stdout": stdout, "stderr": stderr})
            }
            Action::Hang { seconds, child, ignore_term } => json!({
                "action": "hang", "seconds": seconds, "child": child, "ignoreTerm": ignore_term,
            }),
            Action::Garbage(text) => json!({"action": "garbage", "stdout": text}),
            Action::Empty => json!({"action": "empty"}),
            Action::Signal(sig) => json!({"action": "signal", "signal": sig.to_string()}),
            Action::SyncFails => json!({"action": "sync_fails"}),
        };
        let map = o.as_object_mut().expect("an object");
        map.insert("step".into(), json!(self.step));
        map.insert("nth".into(), json!(self.nth));
        map.insert("when".into(), json!(if self.after { "after" } else { "before" }));
        o
    }
}

/// One invocation of the fake, as it recorded itself in `calls.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// Arguments after the program name.
    pub argv: Vec<String>,
    /// The environment exactly as the caller passed it.
    pub env: BTreeMap<String, String>,
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// `config`, `login`, `unlock`, `list items`, ... (see `Fault`).
    pub step: String,
    /// 1-based count of this step among all calls of this installed fake.
    pub nth: u32,
    /// The injected fault's action, if one applied.
    pub fault: Option<String>,
    /// `null`, `tty`, `pipe`, `file`, `socket`, `closed`, ...
    pub stdin: String,
    pub appdata: PathBuf,
    pub appdata_from_env: bool,
    pub cwd: Option<String>,
    /// Seconds since the epoch.
    pub start: f64,
    /// `None` when it hung (it records itself before it stops answering).
    pub end: Option<f64>,
    /// `None` when it hung or killed itself.
    pub rc: Option<i32>,
    pub signal: Option<i32>,
    pub hung: bool,
    pub child_pid: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Call {
    pub fn has_arg(&self, arg: &str) -> bool {
        self.argv.iter().any(|a| a == arg)
    }

    /// The value of `--name value` or `--name=value`.
    pub fn opt(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        let mut args = self.argv.iter();
        while let Some(a) = args.next() {
            if a == name {
                return args.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(&prefix) {
                return Some(v);
            }
        }
        None
    }
}

/// A line of `violations.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// `overlap` or `secret_in_argv`.
    pub kind: String,
    /// For overlaps: which sessions overlapped.
    pub message: Option<String>,
    /// For secrets: `client secret`, `master password` or `session key`.
    pub what: Option<String>,
    pub arg_index: Option<usize>,
    pub pid: i32,
    pub ppid: i32,
    pub step: String,
    pub appdata: PathBuf,
}

/// Describes and installs a fake `bw` in one directory. Reinstalling (e.g. after adding a fault or
/// an item on the "server") keeps the calls, violations and step counters recorded so far.
#[derive(Clone, Debug)]
pub struct FakeBw {
    dir: PathBuf,
    server_url: String,
    unreachable: bool,
    ca_file: Option<PathBuf>,
    account: Account,
    organization: (String, String),
    collections: Vec<(String, String)>,
    items: Vec<Item>,
    latency: f64,
    step_latency: BTreeMap<String, f64>,
    faults: Vec<Fault>,
    version: Option<String>,
}

impl FakeBw {
    /// The recorded account, organization `Hive` and server URL; no collections or items.
    pub fn new(dir: &Path) -> Self {
        FakeBw {
            dir: dir.to_owned(),
            server_url: SERVER_URL.to_owned(),
            unreachable: false,
            ca_file: None,
            account: Account::default(),
            organization: (ORG_ID.to_owned(), ORG_NAME.to_owned()),
            collections: Vec::new(),
            items: Vec::new(),
            latency: 0.0,
            step_latency: BTreeMap::new(),
            faults: Vec::new(),
            version: None,
        }
    }

    /// What `bw --version` prints (default: the recorded 2026.6.0), verbatim.
    pub fn set_version(&mut self, version: &str) -> &mut Self {
        self.version = Some(version.to_owned());
        self
    }

    /// Adds the recording's vault: collections `proof0` and `proof1`, Login `FIRST_PROOF_KEY`
    /// (`s3cret`) and Secure Note `bundle` (`A=1\nB=two words`) in proof0, Login
    /// `SECOND_PROOF_KEY` (`an0ther s3cret`) in proof1, with the recorded ids and dates.
    pub fn with_recorded_vault(&mut self) -> &mut Self {
        self.collection(PROOF0_ID, "proof0").collection(PROOF1_ID, "proof1");
        self.item(
            Item::note(BUNDLE_ID, "bundle", "A=1\nB=two words")
                .in_collection(PROOF0_ID)
                .dates("2026-11-22T07:41:41.475Z", "2026-11-22T07:41:41.476Z"),
        );
        self.item(
            Item::login(FIRST_PROOF_KEY_ID, "FIRST_PROOF_KEY", "s3cret")
                .in_collection(PROOF0_ID)
                .dates("2026-11-22T07:41:37.389Z", "2026-11-22T07:41:37.391Z"),
        );
        self.item(
            Item::login(SECOND_PROOF_KEY_ID, "SECOND_PROOF_KEY", "an0ther s3cret")
                .in_collection(PROOF1_ID)
                .dates("2026-11-22T07:41:47.711Z", "2026-11-22T07:41:47.712Z"),
        )
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `install()` puts the executable.
    pub fn bw_path(&self) -> PathBuf {
        self.dir.join("bw")
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn set_account(&mut self, account: Account) -> &mut Self {
        self.account = account;
        self
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The URL the fake "serves"; `login` and `sync` against any other configured URL fail as
    /// unreachable. An `http://` URL is refused before any of that, as the real bw does.
    pub fn set_server_url(&mut self, url: &str) -> &mut Self {
        url.clone_into(&mut self.server_url);
        self
    }

    /// Nothing listens at the server URL: `login` and `sync` fail with bw's ECONNREFUSED text,
    /// lists work from the cache with the `Unable to fetch ServerConfig` noise on stderr.
    pub fn set_unreachable(&mut self, unreachable: bool) -> &mut Self {
        self.unreachable = unreachable;
        self
    }

    /// The server's certificate comes from a throw-away CA: `login` and `sync` fail with node's
    /// `self-signed certificate in certificate chain` unless `NODE_EXTRA_CA_CERTS` names `ca_file`.
    pub fn set_ca_file(&mut self, ca_file: &Path) -> &mut Self {
        self.ca_file = Some(ca_file.to_owned());
        self
    }

    pub fn set_organization(&mut self, id: &str, name: &str) -> &mut Self {
        self.organization = (id.to_owned(), name.to_owned());
        self
    }

    pub fn collection(&mut self, id: &str, name: &str) -> &mut Self {
        self.collections.push((id.to_owned(), name.to_owned()));
        self
    }

    /// Items are listed in the order they were added (the real order is the server's).
    pub fn item(&mut self, item: Item) -> &mut Self {
        self.items.push(item);
        self
    }

    /// Changes the password of the Login item `id` on the "server" (a rotated secret); call
    /// `install()` to serve it.
    pub fn set_password(&mut self, id: &str, password: &str) -> &mut Self {
        let item = self.items.iter_mut().find(|i| i.id == id).expect("no such item");
        item.password = Some(password.to_owned());
        self
    }

    /// Seconds every call takes before it answers (the real bw: 1–4 s).
    pub fn set_latency(&mut self, seconds: f64) -> &mut Self {
        self.latency = seconds;
        self
    }

    /// Extra seconds for one step, on top of `set_latency`.
    pub fn set_step_latency(&mut self, step: &str, seconds: f64) -> &mut Self {
        self.step_latency.insert(step.to_owned(), seconds);
        self
    }

    /// The first fault matching a call's step and occurrence applies.
    pub fn fault(&mut self, fault: Fault) -> &mut Self {
        self.faults.push(fault);
        self
    }

    pub fn clear_faults(&mut self) -> &mut Self {
        self.faults.clear();
        self
    }

    /// The content of `fake-bw.json`.
    pub fn config_json(&self) -> Value {
        json!({
            "serverUrl": self.server_url,
            "unreachable": self.unreachable,
            "caFile": self.ca_file,
            "account": {
                "email": self.account.email,
                "userId": self.account.user_id,
                "clientId": self.account.client_id,
                "clientSecret": self.account.client_secret,
                "masterPassword": self.account.master_password,
            },
            "organization": {"id": self.organization.0, "name": self.organization.1},
            "collections": self.collections.iter()
                .map(|(id, name)| json!({"id": id, "name": name}))
                .collect::<Vec<_>>(),
            "items": self.items.iter().map(Item::to_json).collect::<Vec<_>>(),
            "latency": self.latency,
            "stepLatency": self.step_latency,
            "faults": self.faults.iter().map(Fault::to_json).collect::<Vec<_>>(),
            "version": self.version,
        })
    }

    /// Writes `fake-bw.json` and the executable `bw`; returns the path of `bw`. Both are replaced
    /// atomically, so a fake already running never reads half a file.
    pub fn install(&self) -> PathBuf {
        fs::create_dir_all(&self.dir).expect("create the fake bw's directory");
        let config = serde_json::to_vec_pretty(&self.config_json()).expect("serialize");
        write_atomically(&self.dir.join("fake-bw.json"), &config, 0o600);
        let script = script_for(python3());
        let bw = self.bw_path();
        if fs::read(&bw).ok().as_deref() != Some(script.as_bytes()) {
            write_atomically(&bw, script.as_bytes(), 0o755);
        }
        bw
    }

    /// Every call so far, in the order they started.
    pub fn calls(&self) -> Vec<Call> {
        let mut calls: Vec<Call> = read_lines(&self.dir.join("calls.jsonl"));
        calls.sort_by(|a, b| a.start.total_cmp(&b.start));
        calls
    }

    /// Calls of one step (`"login"`, `"list items"`, ...), in order.
    pub fn calls_of(&self, step: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.step == step).collect()
    }

    /// Overlapping sessions and secrets in argv seen so far.
    pub fn violations(&self) -> Vec<Violation> {
        read_lines(&self.dir.join("violations.jsonl"))
    }

    /// The parsed `data.json` of a bw app-data dir, or `None` when it does not exist.
    pub fn data_json(&self, appdata: &Path) -> Option<Value> {
        let text = self.data_json_text(appdata)?;
        Some(serde_json::from_str(&text).expect("data.json is JSON"))
    }

    /// The raw `data.json` of a bw app-data dir (to look for secrets in clear text).
    #[expect(clippy::unused_self, reason = "read like calls() and violations(), as a method")]
    pub fn data_json_text(&self, appdata: &Path) -> Option<String> {
        match fs::read_to_string(appdata.join("data.json")) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("read {}: {e}", appdata.display()),
        }
    }
}

/// The fake with its first line pointing at `python` (`-IS`: isolated from `PYTHON*` variables and
/// user site-packages, no `site` import: the fake is stdlib only).
pub fn script_for(python: &Path) -> String {
    let body = FAKE_BW_PY.split_once('\n').map_or("", |(_, rest)| rest);
    format!("#!{} -IS\n{body}", python.display())
}

/// An absolute python3 path usable in a `#!` line (no `env`, since bw's PATH is fixed).
pub fn python3() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"] {
            if Path::new(candidate).is_file() {
                return PathBuf::from(candidate);
            }
        }
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("the fake bw needs python3 (/usr/bin/python3 or on PATH)");
        let path = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(path.trim())
    })
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp).expect("create temp file");
        f.write_all(bytes).expect("write temp file");
        f.set_permissions(fs::Permissions::from_mode(mode)).expect("chmod");
        f.sync_all().expect("sync");
    }
    fs::rename(&tmp, path).expect("rename into place");
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line in {}: {e}", path.display())))
        .collect()
}
