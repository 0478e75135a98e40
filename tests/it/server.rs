//! colibri-vault with the REAL bw against the test Bitwarden-protocol server (issue 6, item 3):
//! the whole session — `config server`, `login --apikey`, `unlock`, `list collections`,
//! `list items`, `logout` — with data each test chooses and the server's failure knobs.
//!
//! Every run goes through `Tier::run`, which checks afterwards that bw is logged out: its
//! data.json holds neither the client secret nor any token (by value: bw keeps the keys with
//! null values), no `colibri-session` marker is left, and no bw process is still running on this
//! host's app-data dir.
//!
//! Each bw call costs 1–4 s (more under load), so every scenario has its own server, Host and
//! state dir, and they run in parallel on cargo's test threads. Missing bw or server: a failure
//! under `CI=true`, else a loud skip (`bwserver::require`).

use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::bwserver::{self, BwServer, CLIENT_SECRET, MASTER_PASSWORD, Spec};
use crate::support::host::{Host, Outcome, file_state};
use crate::support::real_bw;

/// The per-call timeout for the slow-server scenarios: far above a normal bw call on a loaded
/// 2-core machine (1–5 s), far below the knob's delay.
const SLOW_TIMEOUT_SECS: u64 = 15;
/// The knob's delay: if the timeout did not fire, the run would take at least this long.
const SERVER_DELAY_SECS: u32 = 120;

struct Tier {
    host: Host,
    server: BwServer,
    bw: PathBuf,
}

/// A server for `spec`, a host whose provider env points the bw source at it, and a tenant
/// registered for each of `tenants`.
fn tier(what: &str, spec: &Spec, tenants: &[&str]) -> Option<Tier> {
    let tools = bwserver::require(what)?;
    Some(tier_with(&tools.server, tools.bw, spec, tenants))
}

/// `tier` with a given bw and server binary.
fn tier_with(server: &Path, bw: PathBuf, spec: &Spec, tenants: &[&str]) -> Tier {
    let server = BwServer::start(server, spec);
    let host = Host::new();
    host.write_provider_env(&server.provider_env(&bw));
    for name in tenants {
        host.tenant(name, &[]);
    }
    Tier { host, server, bw }
}

impl Tier {
    fn appdata(&self) -> PathBuf {
        self.host.state_dir.join("bw")
    }

    /// Runs colibri-vault, then checks that bw ended logged out.
    #[track_caller]
    fn run(&self, args: &[&str]) -> Outcome {
        let out = self.host.run(args);
        self.assert_logged_out(&out);
        out
    }

    #[track_caller]
    fn assert_logged_out(&self, out: &Outcome) {
        let context = format!("--- stderr of the run:\n{}", out.stderr);
        assert_bw_logged_out(&self.appdata(), &context);
        for secret in [CLIENT_SECRET, MASTER_PASSWORD] {
            assert!(!out.all_output().contains(secret), "a secret in the output:\n{}", out.all_output());
        }
    }

    /// The request log has only the endpoints a session needs, all answered 200.
    #[track_caller]
    fn assert_clean_requests(&self) {
        for r in self.server.requests() {
            let path = r["path"].as_str().unwrap_or_default();
            assert!(
                ["/identity/connect/token", "/api/config", "/api/sync", "/api/accounts/revision-date"]
                    .contains(&path),
                "unexpected request {r}"
            );
            assert_eq!(r["status"], 200, "{r}");
        }
    }
}

/// bw's app data holds no credential, no session marker remains, and no bw runs on it.
#[track_caller]
fn assert_bw_logged_out(appdata: &Path, context: &str) {
    let data = std::fs::read_to_string(appdata.join("data.json")).unwrap_or_else(|_| "{}".into());
    assert!(!data.contains(CLIENT_SECRET), "client secret left in data.json\n{context}");
    let left = real_bw::credentials_in(&data);
    assert!(left.is_empty(), "credentials left in data.json: {left:?}\n{context}");
    assert!(!has_jwt(&data), "an access token (JWT) left in data.json\n{context}");
    assert!(!appdata.join("colibri-session").exists(), "session marker left behind\n{context}");
    let running = bw_processes_on(appdata);
    assert!(running.is_empty(), "bw still running on {}: pids {running:?}\n{context}", appdata.display());
}

/// Whether `text` holds something shaped like a JWT (`eyJ…` header, `.`, `eyJ…` claims).
fn has_jwt(text: &str) -> bool {
    text.match_indices("eyJ").any(|(at, _)| {
        let rest = &text[at..];
        let header = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        header.is_some_and(|end| rest[end..].starts_with(".eyJ"))
    })
}

/// Processes whose environment names `appdata` as bw's app-data dir (Linux /proc).
fn bw_processes_on(appdata: &Path) -> Vec<u32> {
    let needle = format!("BITWARDENCLI_APPDATA_DIR={}\0", appdata.display()).into_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_slice()))
        })
        .collect()
}

/// Runs the real bw directly (not through colibri-vault) on its own app-data dir.
fn bw_direct(
    bw: &Path,
    server: &BwServer,
    appdata: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    let mut child = Command::new(bw)
        .args(args)
        .arg("--nointeraction")
        .env_clear()
        .env("PATH", crate::support::host::PATH)
        .env("HOME", appdata)
        .env("BITWARDENCLI_APPDATA_DIR", appdata)
        .env("NODE_EXTRA_CA_CERTS", &server.ca)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bw");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bw {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn one_tenant_gets_exactly_its_logins_and_note_lines() {
    let mut spec = Spec::new();
    spec.tenant("web").tenant("shop");
    spec.login("web", "DB_PASSWORD", "pw'$x`y\\z\"")
        .login("web", "smtp-relay.password", "relay pass")
        .note(
            "web",
            "app settings",
            "API_URL='https://api.example/?a=1&b=$HOME'\r\n\n# a comment\nGREETING=hello world=1\n",
        )
        .card("web", "visa")
        .deleted_login("web", "OLD_TOKEN", "old-secret-value")
        .login("shop", "SHOP_KEY", "shop-secret-value")
        .personal_login("PERSONAL_TOKEN", "personal-secret-value");
    let Some(t) = tier("one tenant against the bw server", &spec, &["web", "shop"]) else { return };
    let started = Instant::now();
    let out = t.run(&["provision", "web"]);
    let secs = started.elapsed().as_secs_f64();
    out.expect(0).stderr_has(&format!(
        "item \"visa\" (id {}): skipped: a card item is not exported",
        t.server.item_id("visa")
    ));
    let env = t.host.root_of("web").join(".env");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "API_URL='https://api.example/?a=1&b=$HOME'\n\
         DB_PASSWORD='pw'\\''$x`y\\z\"'\n\
         GREETING='hello world=1'\n\
         smtp_relay_password='relay pass'\n"
    );
    assert_eq!(file_state(&env).mode, 0o600);
    // The trashed item never reaches colibri-vault (bw's `list items` leaves the trash out), and
    // another tenant's or the personal vault's items never reach this tenant.
    for absent in ["OLD_TOKEN", "old-secret-value", "shop-secret-value", "personal-secret-value"] {
        assert!(!out.all_output().contains(absent), "{absent} in the output");
    }
    assert!(!t.host.root_of("shop").join(".env").exists(), "only the named tenant is provisioned");
    assert_eq!(t.server.token_requests(), 1, "{:?}", t.server.requests());
    assert_eq!(t.server.count("/api/sync"), 1, "{:?}", t.server.requests());
    t.assert_clean_requests();
    eprintln!("one session (6 bw calls) took {secs:.1} s");
}

#[test]
fn twenty_tenants_cost_one_login() {
    let names: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    let mut spec = Spec::new();
    for name in &names {
        spec.tenant(name).login(name, "DB_PASSWORD", &format!("pw-of-{name}")).note(
            name,
            "settings",
            &format!("APP_NAME={name}\nSHARED=yes"),
        );
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let Some(t) = tier("provision --all for 20 tenants against the bw server", &spec, &refs) else { return };
    t.run(&["provision", "--all"]).expect(0);
    for name in &names {
        let env = std::fs::read_to_string(t.host.root_of(name).join(".env")).unwrap();
        assert_eq!(env, format!("APP_NAME='{name}'\nDB_PASSWORD='pw-of-{name}'\nSHARED='yes'\n"));
    }
    let requests = t.server.requests();
    assert_eq!(t.server.token_requests(), 1, "one login for 20 tenants: {requests:?}");
    assert_eq!(requests[0]["grant_type"], "client_credentials");
    assert_eq!(t.server.count("/api/sync"), 1, "{requests:?}");
    t.assert_clean_requests();
}

#[test]
fn duplicate_names_are_65_and_the_existing_file_stays() {
    let mut spec = Spec::new();
    spec.tenant("api")
        .login("api", "DB_PASSWORD", "first-dup-value")
        .login("api", "DB-PASSWORD", "second-dup-value")
        .login("api", "OTHER", "other");
    let Some(t) = tier("duplicate names against the bw server", &spec, &["api"]) else { return };
    let env = t.host.root_of("api").join(".env");
    crate::support::host::write_private(&env, b"DB_PASSWORD='the old one'\n");
    let before = file_state(&env);
    let out = t.run(&["provision", "api"]);
    out.expect(65)
        .stderr_has("duplicate variable DB_PASSWORD")
        .stderr_has(&format!("item \"DB_PASSWORD\" (id {})", t.server.item_id("DB_PASSWORD")))
        .stderr_has(&format!("item \"DB-PASSWORD\" (id {})", t.server.item_id("DB-PASSWORD")));
    assert!(!out.all_output().contains("dup-value"), "a value in the output");
    assert_eq!(file_state(&env), before, "the existing file must stay as it was");
}

#[test]
fn a_wrong_client_secret_is_77_with_bws_message() {
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("wrong client secret against the bw server", &spec, &["web"]) else { return };
    t.host.append_provider_env("BW_CLIENTSECRET=NotTheRightSecret99\n");
    let out = t.run(&["provision", "web"]);
    out.expect(77).stderr_has("Incorrect client_secret");
    assert!(!out.all_output().contains("NotTheRightSecret99"));
    assert_eq!(t.server.token_requests(), 1);
    assert!(!t.host.root_of("web").join(".env").exists());
}

#[test]
fn a_server_that_is_down_is_69() {
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(mut t) = tier("server down", &spec, &["web"]) else { return };
    t.server.stop();
    t.run(&["provision", "web"]).expect(69).stderr_has("bw login failed").stderr_has("ECONNREFUSED");
    assert!(!t.host.root_of("web").join(".env").exists());
}

#[test]
fn a_silent_token_endpoint_hits_the_per_call_timeout() {
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(mut t) = tier("slow token endpoint", &spec, &["web"]) else { return };
    t.host.set_env("COLIBRI_BW_TIMEOUT", SLOW_TIMEOUT_SECS.to_string());
    t.server.set_knobs(&json!({"token": {"delay_secs": SERVER_DELAY_SECS}}));
    let started = Instant::now();
    let out = t.run(&["provision", "web"]);
    let took = started.elapsed();
    out.expect(69).stderr_has(&format!("bw login did not finish within {SLOW_TIMEOUT_SECS} s"));
    assert!(took >= Duration::from_secs(SLOW_TIMEOUT_SECS), "{took:?}");
    assert!(
        took < Duration::from_secs(u64::from(SERVER_DELAY_SECS - 20)),
        "the timeout did not fire: {took:?}"
    );
    let requests = t.server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["delay_secs"], json!(f64::from(SERVER_DELAY_SECS)), "{requests:?}");
}

#[test]
fn a_silent_sync_during_login_times_out_and_the_half_login_is_logged_out() {
    // The token arrives (bw stores the client secret and the access token), then the sync that
    // `login` runs hangs: bw is killed at the deadline holding credentials, which only the
    // logout that follows removes.
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(mut t) = tier("slow sync during login", &spec, &["web"]) else { return };
    t.host.set_env("COLIBRI_BW_TIMEOUT", SLOW_TIMEOUT_SECS.to_string());
    t.server.set_knobs(&json!({"sync": {"delay_secs": SERVER_DELAY_SECS}}));
    let started = Instant::now();
    let child =
        t.host.command(&["provision", "web"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // While bw waits for the sync, it holds the credentials: the precondition of the test.
    let mut seen_logged_in = false;
    while started.elapsed() < Duration::from_secs(SLOW_TIMEOUT_SECS) {
        if t.server.count("/api/sync") > 0 {
            let data = std::fs::read_to_string(t.appdata().join("data.json")).unwrap_or_default();
            if data.contains(CLIENT_SECRET) && !real_bw::credentials_in(&data).is_empty() {
                seen_logged_in = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let out = Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    t.assert_logged_out(&out);
    assert!(seen_logged_in, "bw never held the credentials while the sync hung: the test proves nothing");
    out.expect(69).stderr_has(&format!("bw login did not finish within {SLOW_TIMEOUT_SECS} s"));
    assert!(
        took < Duration::from_secs(u64::from(SERVER_DELAY_SECS - 20)),
        "the timeout did not fire: {took:?}"
    );
}

#[test]
fn rate_limited_logins_are_69_with_bws_message() {
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("rate limited", &spec, &["web"]) else { return };
    t.server.set_knobs(&json!({"token": "rate_limited"}));
    t.run(&["provision", "web"]).expect(69).stderr_has("bw login failed: Rate limit exceeded");
    let requests = t.server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["status"], 429, "{requests:?}");
}

#[test]
fn a_failed_sync_during_login_is_69_not_an_empty_session() {
    // bw's login exits 0 although its sync failed, and unlock then prints an empty session key.
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("sync fails during login", &spec, &["web"]) else { return };
    t.server.set_knobs(&json!({"sync": "internal_error"}));
    t.run(&["provision", "web"]).expect(69).stderr_has("bw unlock failed").stderr_has("empty session key");
    assert!(!t.host.root_of("web").join(".env").exists());
    assert_eq!(t.server.token_requests(), 1);
}

#[test]
fn fidelity_a_login_that_fails_after_its_token_is_still_logged_out() {
    // Without `AccountKeys` in the token response the real bw 2026.6.0 fails its login (exit 1)
    // and yet stays logged in, the client secret and token in data.json. colibri-vault must
    // fail (69) and log out anyway.
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("fidelity: token without AccountKeys", &spec, &["web"]) else { return };
    t.server.set_knobs(&json!({"omit_fields": ["token.AccountKeys"]}));

    // The precondition, with bw alone: the failed login leaves credentials behind.
    let direct = t.host.path().join("direct-bw");
    std::fs::create_dir_all(&direct).unwrap();
    let (rc, err) = bw_direct(&t.bw, &t.server, &direct, &["config", "server", &t.server.url], &[]);
    assert_eq!(rc, 0, "{err}");
    let api_key = [("BW_CLIENTID", t.server.client_id()), ("BW_CLIENTSECRET", CLIENT_SECRET)];
    let (rc, err) = bw_direct(&t.bw, &t.server, &direct, &["login", "--apikey"], &api_key);
    assert_eq!(rc, 1, "bw's login should fail without AccountKeys: {err}");
    let data = std::fs::read_to_string(direct.join("data.json")).unwrap();
    assert!(!real_bw::credentials_in(&data).is_empty(), "precondition: bw stays logged in");

    t.run(&["provision", "web"])
        .expect(69)
        .stderr_has("bw login failed")
        .stderr_has("toWrappedAccountCryptographicState");
    assert!(!t.host.root_of("web").join(".env").exists());
}

#[test]
fn a_bw_left_logged_in_by_someone_else_is_logged_out_first() {
    // bw logged in on colibri-vault's app-data dir without its session marker (by hand, or by
    // another tool): bw refuses `config server` ("Logout required"), so colibri-vault logs out,
    // configures the server and runs its own session.
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("bw left logged in by someone else", &spec, &["web"]) else { return };
    let appdata = t.appdata();
    std::fs::create_dir_all(&t.host.state_dir).unwrap();
    std::fs::DirBuilder::new().mode(0o700).create(&appdata).unwrap();
    let (rc, err) = bw_direct(&t.bw, &t.server, &appdata, &["config", "server", &t.server.url], &[]);
    assert_eq!(rc, 0, "{err}");
    let api_key = [("BW_CLIENTID", t.server.client_id()), ("BW_CLIENTSECRET", CLIENT_SECRET)];
    let (rc, err) = bw_direct(&t.bw, &t.server, &appdata, &["login", "--apikey"], &api_key);
    assert_eq!(rc, 0, "{err}");
    let out = t.run(&["-vv", "provision", "web"]);
    out.expect(0);
    let calls: Vec<&str> = out.stderr.lines().filter_map(|l| l.strip_prefix("colibri-vault: bw ")).collect();
    let expected = [
        "config server",
        "logout",
        "config server",
        "login",
        "unlock",
        "list collections",
        "list items",
        "logout",
    ];
    assert_eq!(calls.len(), expected.len(), "{}", out.stderr);
    for (call, step) in calls.iter().zip(expected) {
        assert!(call.starts_with(step), "{call:?} is not {step:?}:\n{}", out.stderr);
    }
    assert_eq!(std::fs::read_to_string(t.host.root_of("web").join(".env")).unwrap(), "K='v'\n");
    assert_eq!(t.server.token_requests(), 2, "theirs and ours");
}

#[test]
fn a_run_killed_outright_takes_its_bw_along_and_the_next_run_logs_out_first() {
    // SIGKILL reaches no handler, so colibri-vault cannot log out. Its bw, hanging in the sync
    // that `login` runs while it holds the client secret and a token, dies with it (parent-death
    // signal) instead of finishing the login after the next run has logged out; the next run
    // finds the session marker, logs out first and runs its own session.
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("a run killed outright", &spec, &["web"]) else { return };
    t.server.set_knobs(&json!({"sync": {"delay_secs": SERVER_DELAY_SECS}}));
    let mut child =
        t.host.command(&["provision", "web"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    loop {
        let data = std::fs::read_to_string(t.appdata().join("data.json")).unwrap_or_default();
        if t.server.count("/api/sync") > 0 && data.contains(CLIENT_SECRET) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "bw never held the credentials");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bw_processes_on(&t.appdata()).is_empty() {
        assert!(Instant::now() < deadline, "bw outlived the colibri-vault that started it");
        std::thread::sleep(Duration::from_millis(50));
    }
    let data = std::fs::read_to_string(t.appdata().join("data.json")).unwrap();
    assert!(data.contains(CLIENT_SECRET), "precondition: killed while bw was logged in");

    t.server.set_knobs(&json!({}));
    t.run(&["provision", "web"]).expect(0).stderr_has("logging out first");
    assert_eq!(std::fs::read_to_string(t.host.root_of("web").join(".env")).unwrap(), "K='v'\n");
}

/// Words of `text` that look like a bw session key: 88 characters of base64 ending in `==`.
fn session_key_like(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
        .filter(|w| w.len() == 88 && w.ends_with("=="))
        .collect()
}

#[test]
fn one_device_identity_across_sessions_and_logouts_and_a_server_that_mails_new_devices() {
    // Vaultwarden mails the owner about every login from a device it does not know, and with
    // REQUIRE_DEVICE_EMAIL fails the login when the mail fails. The device is bw's app id, kept
    // in the app-data dir, which colibri-vault keeps across runs and logouts: one device, forever.
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("one device identity, new-device mail", &spec, &["web"]) else { return };

    // A first login while the server cannot mail: refused, with the cause and what to do.
    t.server.set_knobs(&json!({"require_device_email": true}));
    let out = t.run(&["provision", "web"]);
    out.expect(69)
        .stderr_has("Could not send login notification email")
        .stderr_has("REQUIRE_DEVICE_EMAIL")
        .stderr_has("fix the server's SMTP settings")
        .stderr_has("keep that directory");
    assert!(!t.host.root_of("web").join(".env").exists());

    // Mail works again: the session succeeds (at -vv, which shows every bw call).
    t.server.set_knobs(&json!({}));
    let out = t.run(&["-vv", "provision", "web"]);
    out.expect(0);
    // bw's login printed `$ export BW_SESSION="<88 chars>"` and unlock its key: neither shows.
    assert!(out.stderr.contains("colibri-vault: bw login"), "{}", out.stderr);
    assert!(!out.all_output().contains("BW_SESSION"), "{}", out.all_output());
    assert!(session_key_like(&out.all_output()).is_empty(), "{}", out.all_output());

    // The server cannot mail again: the device is known now, so the next session still works.
    t.server.set_knobs(&json!({"require_device_email": true}));
    t.run(&["provision", "web"]).expect(0);
    assert_eq!(std::fs::read_to_string(t.host.root_of("web").join(".env")).unwrap(), "K='v'\n");

    let tokens: Vec<Value> =
        t.server.requests().into_iter().filter(|r| r["path"] == "/identity/connect/token").collect();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    let devices: BTreeSet<&str> = tokens.iter().map(|r| r["device_identifier"].as_str().unwrap()).collect();
    assert_eq!(devices.len(), 1, "3 logins (2 logouts between them), one device: {tokens:?}");
    let new: Vec<bool> = tokens.iter().map(|r| r["new_device"].as_bool().unwrap()).collect();
    assert_eq!(new, [true, true, false], "new until its first successful login: {tokens:?}");
    // It is bw's app id, still in the app-data dir after the last logout.
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(t.appdata().join("data.json")).unwrap()).unwrap();
    assert_eq!(data["global_applicationId_appId"].as_str(), devices.first().copied());
}

#[test]
fn an_old_vaultwarden_is_named_with_what_to_do() {
    // Vaultwarden 1.35.2 reports itself so, and its API-key token response lacks the
    // UserDecryptionOptions (and AccountKeys) that bw 2025.12.0 and later require
    // (vaultwarden#6709, fixed in 1.35.3).
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let Some(t) = tier("an old Vaultwarden", &spec, &["web"]) else { return };
    t.server.set_knobs(&json!({
        "server_version": {"vaultwarden": "1.35.2", "api": "2025.12.0"},
        "omit_fields": ["token.UserDecryptionOptions", "token.AccountKeys"],
    }));
    let out = t.run(&["provision", "web"]);
    out.expect(69)
        .stderr_has("bw login failed")
        .stderr_has("known incompatibility")
        .stderr_has("vaultwarden#6709")
        .stderr_has("upgrade Vaultwarden to 1.35.3 or later")
        .stderr_has("bw said: Error: User Decryption Options are required");
    let out = t.host.run(&["doctor"]);
    out.expect(78);
    let bw_version = String::from_utf8(
        Command::new(&t.bw)
            .arg("--version")
            .env("BITWARDENCLI_APPDATA_DIR", t.host.path().join("v"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let expected = format!(
        "problem  bw {} with Vaultwarden 1.35.2: known-bad pair (vaultwarden#6709",
        bw_version.trim()
    );
    assert!(out.stdout.contains(&expected), "{expected:?} not in:\n{}", out.stdout);
    assert!(out.stdout.contains("Vaultwarden 1.35.2 (Bitwarden API 2025.12.0)"), "{}", out.stdout);
}

#[test]
fn bw_2026_9_against_a_vaultwarden_without_the_user_key_id_route() {
    // bw 2026.9.0 posts the user key's id after unlocking; Vaultwarden up to 1.37.3 answers 404
    // (vaultwarden#7750). CI installs that bw beside the recommended one (.ci/run).
    const VERSION: &str = "2026.9.0";
    let what = "bw 2026.9.0 and the user-key-id 404";
    let Some(server) = bwserver::require_server(what) else { return };
    let Some(bw) = real_bw::require_release(what, VERSION) else { return };
    let mut spec = Spec::new();
    spec.tenant("web").login("web", "K", "v");
    let t = tier_with(&server, bw, &spec, &["web"]);
    t.server.set_knobs(&json!({"user_key_id": "not_found"}));
    let out = t.run(&["provision", "web"]);
    out.expect(69)
        .stderr_has("bw unlock failed")
        .stderr_has("vaultwarden#7750")
        .stderr_has("npm install -g @bitwarden/cli@2026.6.0")
        .stderr_has("upgrade Vaultwarden to a release after 1.37.3")
        .stderr_has("bw said: ")
        .stderr_has("KeyIdBackfillError");
    assert!(!t.host.root_of("web").join(".env").exists());
    assert!(
        t.server
            .requests()
            .iter()
            .any(|r| r["path"] == "/api/accounts/key-management/user-key-id" && r["status"] == 404)
    );
    // doctor sees the same pair before any session: bw 2026.9.0 with Vaultwarden 1.37.2.
    let out = t.host.run(&["doctor"]);
    out.expect(78);
    assert!(
        out.stdout
            .contains("problem  bw 2026.9.0 with Vaultwarden 1.37.2: known-bad pair (vaultwarden#7750)"),
        "{}",
        out.stdout
    );
    // A Vaultwarden with the route (after 1.37.3): the same bw works.
    t.server.set_knobs(&json!({"server_version": {"vaultwarden": "1.37.4"}}));
    t.run(&["provision", "web"]).expect(0);
    assert_eq!(std::fs::read_to_string(t.host.root_of("web").join(".env")).unwrap(), "K='v'\n");
    let out = t.host.run(&["doctor"]);
    assert!(!out.stdout.contains("known-bad"), "{}", out.stdout);
}
