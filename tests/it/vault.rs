//! The `bw` source through the built binary, against the fake bw (issue 3): the call sequence,
//! what each call's argv and environment hold, logout on every path, the host-wide lock, and
//! error messages that carry bw's stderr but never its stdout.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::fake_bw::{self, Account, FakeBw, Fault, Item};
use crate::support::host::Host;

pub struct Vault {
    pub host: Host,
    pub fake: FakeBw,
}

/// A host using the bw source, with a fake bw serving one collection per tenant name.
pub fn vault(tenants: &[&str]) -> Vault {
    let host = Host::new();
    let mut fake = FakeBw::new(&host.path().join("fakebw"));
    for (i, name) in tenants.iter().enumerate() {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        fake.collection(&id, name);
        fake.item(
            Item::login(&format!("10000000-0000-4000-8000-{i:012}"), "DB_PASSWORD", &format!("pw-of-{name}"))
                .in_collection(&id),
        );
        fake.item(
            Item::note(
                &format!("20000000-0000-4000-8000-{i:012}"),
                "app settings",
                "API_URL='https://api.example/$x'\nMODE='prod'",
            )
            .in_collection(&id),
        );
    }
    let bw = fake.install();
    let account = Account::default();
    host.write_provider_env(&format!(
        "BW_CLIENTID={}\nBW_CLIENTSECRET={}\nBW_PASSWORD='{}'\nBW_SERVER={}\nCOLIBRI_BW={}\n",
        account.client_id,
        account.client_secret,
        account.master_password,
        fake_bw::SERVER_URL,
        bw.display()
    ));
    for name in tenants {
        host.tenant(name, &[]);
    }
    Vault { host, fake }
}

impl Vault {
    pub fn appdata(&self) -> PathBuf {
        self.host.state_dir.join("bw")
    }

    pub fn steps(&self) -> Vec<String> {
        self.fake.calls().into_iter().map(|c| c.step).collect()
    }

    /// bw is logged out: its data holds neither the client secret nor a token, and the fake saw
    /// no overlapping session and no secret in argv.
    #[track_caller]
    pub fn assert_clean(&self) {
        if let Some(data) = self.fake.data_json_text(&self.appdata()) {
            assert!(
                !data.contains(&Account::default().client_secret),
                "client secret left in data.json:\n{data}"
            );
            let left = crate::support::real_bw::credentials_in(&data);
            assert!(left.is_empty(), "credentials left in data.json: {left:?}");
        }
        assert!(self.fake.violations().is_empty(), "{:?}", self.fake.violations());
        assert!(!self.appdata().join("colibri-session").exists(), "session marker left behind");
        assert_lock_free(&self.host.run_dir);
    }
}

#[track_caller]
fn assert_lock_free(run_dir: &Path) {
    let path = run_dir.join("vault.lock");
    if let Ok(file) = std::fs::File::open(&path) {
        // SAFETY: flock(2) on a descriptor we own, for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(rc, 0, "the host-wide lock is still held");
    }
}

pub const SESSION: [&str; 6] = ["config", "login", "unlock", "list collections", "list items", "logout"];

#[test]
fn one_tenant_costs_one_session_and_writes_its_entries() {
    let v = vault(&["web"]);
    v.host.run(&["provision", "web"]).expect(0);
    assert_eq!(v.steps(), SESSION);
    let env = std::fs::read_to_string(v.host.root_of("web").join(".env")).unwrap();
    assert_eq!(env, "API_URL='https://api.example/$x'\nDB_PASSWORD='pw-of-web'\nMODE='prod'\n");
    v.assert_clean();

    // The server is configured once per app-data dir: the next session skips `config server`.
    v.host.run(&["provision", "web"]).expect(0);
    assert_eq!(v.steps()[SESSION.len()..], SESSION[1..]);
    v.assert_clean();
}

#[test]
fn twenty_tenants_share_one_session() {
    let names: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let v = vault(&refs);
    v.host.run(&["provision", "--all"]).expect(0);
    assert_eq!(v.steps(), SESSION, "20 tenants, one login, one listing");
    for name in &names {
        let env = std::fs::read_to_string(v.host.root_of(name).join(".env")).unwrap();
        assert!(env.contains(&format!("DB_PASSWORD='pw-of-{name}'")), "{name}: {env}");
    }
    v.assert_clean();
}

#[test]
fn no_secret_in_argv_and_each_call_gets_only_what_it_needs() {
    let v = vault(&["web"]);
    v.host.run(&["provision", "web"]).expect(0);
    let account = Account::default();
    let base: BTreeSet<&str> = ["PATH", "HOME", "BITWARDENCLI_APPDATA_DIR"].into();
    for call in v.fake.calls() {
        assert!(call.has_arg("--nointeraction"), "{call:?}");
        for arg in &call.argv {
            assert!(
                !arg.contains(&account.client_secret) && !arg.contains(&account.master_password),
                "{arg}"
            );
            assert!(arg.len() < 80 || !arg.ends_with("=="), "a session key in argv? {arg}");
        }
        let extra: BTreeSet<&str> =
            call.env.keys().map(String::as_str).filter(|k| !base.contains(k)).collect();
        let expected: BTreeSet<&str> = match call.step.as_str() {
            "login" => ["BW_CLIENTID", "BW_CLIENTSECRET"].into(),
            "unlock" => ["BW_PASSWORD"].into(),
            "list collections" | "list items" => ["BW_SESSION"].into(),
            _ => BTreeSet::new(),
        };
        assert_eq!(extra, expected, "environment of {}", call.step);
        assert_eq!(call.env["PATH"], "/usr/local/bin:/usr/bin:/bin");
        assert_eq!(Path::new(&call.env["BITWARDENCLI_APPDATA_DIR"]), v.appdata());
    }
    v.assert_clean();
}

#[test]
fn logout_follows_every_failure_at_every_step() {
    let failures: Vec<(&str, Fault)> = vec![
        ("login", Fault::fail("login", 1, "FetchError: request failed, reason: connect ECONNREFUSED")),
        ("unlock", Fault::fail("unlock", 1, "Cryptography error, The decryption operation failed")),
        ("unlock", Fault::empty("unlock")),
        ("unlock", Fault::garbage("unlock")),
        ("unlock", Fault::signal("unlock", libc::SIGSEGV)),
        ("list collections", Fault::fail("list collections", 1, "Vault is locked.")),
        ("list collections", Fault::garbage("list collections")),
        ("list collections", Fault::empty("list collections")),
        ("list items", Fault::fail("list items", 1, "Not found.")),
        ("list items", Fault::garbage("list items")),
        ("list items", Fault::signal("list items", libc::SIGKILL)),
        ("login", Fault::login_sync_fails()),
    ];
    for (step, fault) in failures {
        let mut v = vault(&["web"]);
        v.fake.fault(fault.clone());
        v.fake.install();
        let out = v.host.run(&["provision", "web"]);
        assert_ne!(out.code, Some(0), "{fault:?}");
        let steps = v.steps();
        assert!(steps.contains(&step.to_owned()), "{fault:?}: {steps:?}");
        assert_eq!(steps.last().map(String::as_str), Some("logout"), "{fault:?}: {steps:?}");
        assert!(!v.host.root_of("web").join(".env").exists(), "{fault:?}");
        v.assert_clean();
    }
}

#[test]
fn a_failing_config_server_never_logs_in() {
    let mut v = vault(&["web"]);
    v.fake.fault(Fault::fail("config", 1, "Logout required before server config update."));
    v.fake.install();
    v.host.run(&["provision", "web"]).expect(69).stderr_has("Logout required");
    assert!(!v.steps().contains(&"login".to_owned()), "{:?}", v.steps());
    v.assert_clean();
}

#[test]
fn a_hung_bw_is_killed_at_the_deadline_and_then_logged_out() {
    let mut v = vault(&["web"]);
    v.host.set_env("COLIBRI_BW_TIMEOUT", "2");
    v.fake.fault(Fault::hang("list items").with_child().ignoring_term());
    v.fake.install();
    let started = Instant::now();
    v.host.run(&["provision", "web"]).expect(69).stderr_has("bw list items did not finish within 2 s");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(v.steps().last().map(String::as_str), Some("logout"));
    v.assert_clean();
}

/// Returns while the slow `list items` call runs: the fake records a call when it ends, so wait
/// for `list collections` to be recorded, then a little more.
fn wait_inside_list_items(v: &Vault) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !v.steps().contains(&"list collections".to_owned()) {
        assert!(Instant::now() < deadline, "list collections never finished: {:?}", v.steps());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(!v.steps().contains(&"list items".to_owned()), "list items finished too early");
}

#[test]
fn sigterm_mid_session_still_logs_out() {
    let mut v = vault(&["web"]);
    v.fake.set_step_latency("list items", 3.0);
    v.fake.install();
    let mut child = v.host.command(&["provision", "web"]).spawn().unwrap();
    wait_inside_list_items(&v);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
    assert_eq!(v.steps().last().map(String::as_str), Some("logout"), "{:?}", v.steps());
    assert!(!v.host.root_of("web").join(".env").exists());
    v.assert_clean();
}

#[test]
fn a_failed_logout_falls_back_to_lock_and_says_so() {
    let mut v = vault(&["web"]);
    v.fake.fault(Fault::fail("logout", 1, "logout exploded"));
    v.fake.install();
    v.host.run(&["provision", "web"]).expect(69).stderr_has("logout exploded").stderr_has("locked instead");
    assert_eq!(v.steps()[SESSION.len() - 1..], ["logout", "lock"]);
}

#[test]
fn a_crashed_run_is_logged_out_by_the_next_one() {
    let mut v = vault(&["web"]);
    // The first run dies outright (SIGKILL cannot be caught) while bw hangs in the listing.
    v.fake.fault(Fault::hang("list items").for_seconds(60.0));
    v.fake.install();
    let mut child = v.host.command(&["provision", "web"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let bw = loop {
        if let Some(call) = v.fake.calls_of("list items").into_iter().find(|c| c.hung) {
            break call.pid;
        }
        assert!(Instant::now() < deadline, "list items never started: {:?}", v.steps());
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // Its bw call dies with it (parent-death signal), not 60 s later as an orphan.
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::support::alive(bw) {
        assert!(Instant::now() < deadline, "bw (pid {bw}) outlived the colibri-vault that started it");
        std::thread::sleep(Duration::from_millis(20));
    }
    let data = v.fake.data_json_text(&v.appdata()).unwrap();
    assert!(data.contains(&Account::default().client_secret), "precondition: left logged in");
    v.fake.clear_faults();
    v.fake.install();
    v.host.run(&["provision", "web"]).expect(0).stderr_has("logging out first");
    v.assert_clean();
}

#[test]
fn concurrent_runs_never_overlap_sessions() {
    let names: Vec<String> = (0..16).map(|i| format!("c{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let v = vault(&refs);
    let children: Vec<_> = names
        .iter()
        .map(|n| v.host.command(&["provision", n]).stderr(std::process::Stdio::null()).spawn().unwrap())
        .collect();
    for mut child in children {
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
    for name in &names {
        assert!(v.host.root_of(name).join(".env").exists(), "{name}");
    }
    let logins = v.steps().iter().filter(|s| *s == "login").count();
    let logouts = v.steps().iter().filter(|s| *s == "logout").count();
    assert_eq!(logins, logouts);
    v.assert_clean();
}

#[test]
fn waiting_for_the_lock_past_its_deadline_is_75() {
    let mut v = vault(&["web"]);
    std::fs::create_dir_all(&v.host.run_dir).unwrap();
    let lock = std::fs::File::create(v.host.run_dir.join("vault.lock")).unwrap();
    // SAFETY: flock(2) on a descriptor we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    v.host.set_env("COLIBRI_LOCK_TIMEOUT", "1");
    v.host.run(&["provision", "web"]).expect(75).stderr_has("waiting for the host-wide lock");
    assert!(v.fake.calls().is_empty(), "no bw call without the lock");
}

#[test]
fn errors_carry_bws_stderr_never_its_stdout() {
    let mut v = vault(&["web"]);
    v.fake.fault(Fault::fail("list items", 1, "Something broke: details").stdout("STDOUT-MARKER s3cret-ish"));
    v.fake.install();
    let out = v.host.run(&["provision", "web"]);
    out.expect(69).stderr_has("bw list items failed: Something broke: details");
    assert!(!out.all_output().contains("STDOUT-MARKER"));
}

#[test]
fn wrong_credentials_are_77_with_bws_message() {
    let v = vault(&["web"]);
    v.host.append_provider_env("BW_CLIENTSECRET=wrong-secret-value\n");
    let out = v.host.run(&["provision", "web"]);
    out.expect(77).stderr_has("Incorrect client_secret");
    assert!(!out.all_output().contains("wrong-secret-value"));
    v.assert_clean();

    let v = vault(&["web"]);
    v.host.append_provider_env("BW_PASSWORD=not-the-master-password\n");
    let out = v.host.run(&["provision", "web"]);
    out.expect(77).stderr_has("The decryption operation failed");
    assert!(!out.all_output().contains("not-the-master-password"));
    v.assert_clean();
}

#[test]
fn transport_problems_are_69() {
    let mut v = vault(&["web"]);
    v.fake.set_unreachable(true);
    v.fake.install();
    v.host.run(&["provision", "web"]).expect(69).stderr_has("ECONNREFUSED");
    v.assert_clean();

    let v = vault(&["web"]);
    v.host.append_provider_env("BW_SERVER=http://127.0.0.1:8222\n");
    v.host.run(&["provision", "web"]).expect(78).stderr_has("must be an https:// URL");
    assert!(v.fake.calls().is_empty());
}

#[test]
fn a_missing_collection_is_66_and_other_tenants_still_get_theirs() {
    let v = vault(&["web"]);
    let root = v.host.jail("shop");
    v.host.run(&["tenant", "add", "shop", "--root", root.to_str().unwrap()]).expect(0);
    v.host.run(&["provision", "--all"]).expect(66).stderr_has("collection shop does not exist");
    assert!(v.host.root_of("web").join(".env").exists());
    v.assert_clean();
}

#[test]
fn other_item_types_and_deleted_items_are_skipped_with_a_warning() {
    let mut v = vault(&["web"]);
    let id = "00000000-0000-4000-8000-000000000000";
    v.fake.item(Item::card("30000000-0000-4000-8000-000000000000", "visa").in_collection(id));
    v.fake.install();
    let out = v.host.run(&["provision", "web"]);
    out.expect(0).stderr_has("item \"visa\"").stderr_has("card item is not exported");
}

#[test]
fn missing_credentials_are_a_configuration_error() {
    let v = vault(&["web"]);
    v.host.write_provider_env(&format!("BW_CLIENTID=user.x\nCOLIBRI_BW={}\n", v.fake.bw_path().display()));
    v.host.run(&["provision", "web"]).expect(78).stderr_has("lacks BW_CLIENTSECRET, BW_PASSWORD");
    assert!(v.fake.calls().is_empty());
}

#[test]
fn hostile_item_names_and_bw_stderr_reach_the_terminal_escaped() {
    let mut v = vault(&["web"]);
    let id = "00000000-0000-4000-8000-000000000000";
    // An item name that would clear the screen and forge a log line if printed raw.
    v.fake.item(
        Item::login("50000000-0000-4000-8000-000000000000", "evil\u{1b}[2J\nforged: ok", "x")
            .in_collection(id),
    );
    v.fake.install();
    let out = v.host.run(&["provision", "web"]);
    out.expect(0).stderr_has("evil\\x1b[2J\\nforged: ok");
    assert!(!out.stderr.contains('\u{1b}'), "raw ESC on the terminal: {:?}", out.stderr);
    assert!(!out.stderr.lines().any(|l| l.starts_with("forged")), "{:?}", out.stderr);

    let mut v = vault(&["web"]);
    v.fake.fault(Fault::fail("list items", 1, "boom\u{1b}]0;pwned\u{7}\r\nforged: line"));
    v.fake.install();
    let out = v.host.run(&["provision", "web"]);
    out.expect(69).stderr_has("boom\\x1b]0;pwned\\x07");
    assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'), "{:?}", out.stderr);
    assert!(!out.stderr.lines().any(|l| l.starts_with("forged")), "{:?}", out.stderr);
}

#[test]
fn the_app_data_dir_must_be_private_and_ours() {
    // A symlink where bw's data dir goes (e.g. into a jail): refused before any bw call.
    let v = vault(&["web"]);
    std::fs::create_dir_all(&v.host.state_dir).unwrap();
    let elsewhere = v.host.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, v.appdata()).unwrap();
    v.host.run(&["provision", "web"]).expect(77).stderr_has("not a plain directory");
    assert!(v.fake.calls().is_empty());

    // Someone else's directory, or one open to others: refused with the fix.
    let v = vault(&["web"]);
    std::fs::create_dir_all(v.appdata()).unwrap();
    std::os::unix::fs::chown(v.appdata(), Some(4321), None).unwrap();
    v.host.run(&["provision", "web"]).expect(77).stderr_has("owned by uid 4321");
    std::os::unix::fs::chown(v.appdata(), Some(nix::unistd::geteuid().as_raw()), None).unwrap();
    std::fs::set_permissions(v.appdata(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    v.host.run(&["provision", "web"]).expect(77).stderr_has("chmod 700");
    assert!(v.fake.calls().is_empty());

    // Created fresh, it is 0700.
    let v = vault(&["web"]);
    v.host.run(&["provision", "web"]).expect(0);
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(v.appdata()).unwrap()) & 0o777, 0o700);
}

#[test]
fn a_changed_server_is_configured_before_the_next_login() {
    let mut v = vault(&["web"]);
    v.host.run(&["provision", "web"]).expect(0);
    // The operator moves to another server; the fake now serves only that one.
    v.fake.set_server_url("https://vault.example.org");
    v.fake.install();
    v.host.append_provider_env("BW_SERVER=https://vault.example.org\n");
    v.host.run(&["provision", "web"]).expect(0);
    let calls = v.fake.calls();
    let second: Vec<&str> = calls[SESSION.len()..].iter().map(|c| c.step.as_str()).collect();
    assert_eq!(second, SESSION, "config server again, while logged out, before login");
    assert_eq!(calls[SESSION.len()].argv[..3], ["config", "server", "https://vault.example.org"]);
    v.assert_clean();
}

/// bw killed while writing its data file (here: a run stopped in the middle of `login`) leaves
/// it unreadable, perhaps with the API secret in clear: the next run removes it instead of
/// failing for good, and nothing of the session stays.
#[test]
fn an_unreadable_data_file_left_by_a_killed_bw_is_removed_not_kept() {
    let v = vault(&["web"]);
    v.host.run(&["provision", "web"]).expect(0);
    let data = v.appdata().join("data.json");
    let truncated = format!(
        "{{\"global_account_accounts\":{{}},\"user_x_token_apiKeyClientSecret\":\"{}\",\"user_x_tok",
        Account::default().client_secret
    );
    std::fs::write(&data, truncated).unwrap();
    std::fs::write(v.appdata().join("colibri-session"), "1").unwrap();
    let out = v.host.run(&["provision", "web"]);
    out.expect(0).stderr_has("was not readable");
    v.assert_clean();
    let left = std::fs::read_to_string(&data).unwrap_or_default();
    assert!(!left.contains(&Account::default().client_secret), "{left}");
}

/// The text between `export BW_SESSION="` and the next `"` in `stdout`, if any.
fn printed_session_key(stdout: &str) -> Option<String> {
    let rest = stdout.split("export BW_SESSION=\"").nth(1)?;
    rest.split('"').next().map(str::to_owned)
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if meta.is_file()
            && std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        {
            found.push(path);
        }
    }
    found
}

/// `bw login --apikey --nointeraction` prints a session key (`$ export BW_SESSION="…"`) that
/// unlocks nothing, and `unlock --raw` prints the real one: neither may reach the terminal, the
/// log (even at -vv), the database or any file of ours. The real key goes only into the
/// environment of the calls that need it.
#[test]
fn session_keys_printed_by_bw_go_nowhere_even_at_debug_level() {
    let v = vault(&["web"]);
    let out = v.host.run(&["-vv", "provision", "web"]);
    out.expect(0);
    let calls = v.fake.calls();
    let login = calls.iter().find(|c| c.step == "login").expect("a login call");
    let login_key = printed_session_key(&login.stdout).expect("the fake prints bw's export line on login");
    let unlock = calls.iter().find(|c| c.step == "unlock").expect("an unlock call");
    let session_key = unlock.stdout.trim().to_owned();
    assert!(login_key.len() >= 64 && session_key.len() >= 64, "{login_key:?} {session_key:?}");
    assert!(out.stderr.contains("colibri-vault: bw login"), "-vv shows the calls:\n{}", out.stderr);
    for (what, key) in [("login's printed key", &login_key), ("the session key", &session_key)] {
        assert!(!out.all_output().contains(key.as_str()), "{what} in the output:\n{}", out.all_output());
        // The fake's own records (calls.jsonl) hold what it printed; nothing of ours may.
        let leaked: Vec<PathBuf> = files_containing(v.host.path(), key.as_bytes())
            .into_iter()
            .filter(|p| !p.starts_with(v.fake.dir()))
            .collect();
        assert!(leaked.is_empty(), "{what} written to {leaked:?}");
    }
    assert!(!out.all_output().contains("BW_SESSION"), "{}", out.all_output());
    // The real key was handed on through the environment, and only to the listings.
    for call in calls.iter().filter(|c| c.step.starts_with("list")) {
        assert_eq!(call.env.get("BW_SESSION"), Some(&session_key), "{}", call.step);
    }
    assert!(calls.iter().all(|c| c.env.get("BW_SESSION") != Some(&login_key)), "login's key was used");
    v.assert_clean();
}
