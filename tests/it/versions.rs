//! Knowing the bw you run (issue 12, item 2): `doctor` shows bw's path and version and the
//! server's name and version, compares them with the tested versions and the known-bad pairs
//! (src/compat.rs), asks the server without credentials, within a deadline, and shows what the
//! server says only sanitized.
//!
//! A fake bw answers `--version` with whatever each test chooses (no real bw needed); the
//! server is `dev/bwserver` with its `server_version` knob. doctor runs no vault session.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::bwserver::{self, BwServer, Spec};
use crate::support::fake_bw::FakeBw;
use crate::support::host::{Host, Outcome};

struct Setup {
    host: Host,
    server: BwServer,
    fake: FakeBw,
}

/// A host whose provider env points at a running bwserver (trusted through its CA) and at a
/// fake bw that reports `bw_version`.
fn setup(what: &str, bw_version: &str) -> Option<Setup> {
    let program = bwserver::require_server(what)?;
    let mut spec = Spec::new();
    spec.tenant("web");
    let server = BwServer::start(&program, &spec);
    let host = Host::new();
    let mut fake = FakeBw::new(&host.path().join("fakebw"));
    fake.set_version(bw_version);
    let bw = fake.install();
    host.write_provider_env(&server.provider_env(&bw));
    Some(Setup { host, server, fake })
}

impl Setup {
    fn doctor(&self) -> Outcome {
        self.host.run(&["doctor"])
    }

    /// doctor asked the server only `/api/config` and `/api/version`, without credentials, and
    /// ran bw only for `--version`, outside colibri-vault's app-data dir (which it did not create).
    #[track_caller]
    fn assert_asked_politely(&self) {
        let requests = self.server.requests();
        assert!(!requests.is_empty(), "doctor asked the server nothing");
        for r in &requests {
            assert!(["/api/config", "/api/version"].contains(&r["path"].as_str().unwrap()), "{r}");
            assert_eq!(r["method"], "GET", "{r}");
            assert!(r.get("authorization").is_none(), "doctor sent credentials: {r}");
        }
        for call in self.fake.calls() {
            assert_eq!(call.argv, ["--version"], "doctor ran bw for more than its version");
            assert!(
                call.env.keys().all(|k| ["PATH", "HOME", "BITWARDENCLI_APPDATA_DIR"].contains(&k.as_str()))
            );
            assert!(!call.appdata.starts_with(&self.host.state_dir), "{}", call.appdata.display());
        }
        assert!(!self.host.state_dir.exists(), "doctor wrote into the state dir");
    }
}

fn line_with<'a>(out: &'a Outcome, needle: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{}", out.stdout))
}

#[test]
fn doctor_shows_bw_and_the_server_and_asks_without_credentials() {
    let Some(s) = setup("doctor against a healthy pair", "2026.6.0") else { return };
    let out = s.doctor();
    out.expect(0);
    let bw = line_with(&out, "bw 2026.6.0");
    assert!(bw.starts_with("ok ") && bw.contains(&s.fake.bw_path().display().to_string()), "{bw}");
    assert!(bw.contains("supported: 2026.6.0 to 2026.9.0"), "{bw}");
    let server = line_with(&out, "Vaultwarden 1.37.2");
    assert_eq!(
        server,
        format!("ok       server {}: Vaultwarden 1.37.2 (Bitwarden API 2026.6.0)", s.server.url)
    );
    s.assert_asked_politely();
    assert_eq!(s.server.token_requests(), 0);

    // Trust is bw's: without NODE_EXTRA_CA_CERTS the throw-away CA is unknown, and doctor says so.
    let env = std::fs::read_to_string(&s.host.provider_env).unwrap();
    let without_ca: String =
        env.lines().filter(|l| !l.starts_with("NODE_EXTRA_CA_CERTS=")).flat_map(|l| [l, "\n"]).collect();
    s.host.write_provider_env(&without_ca);
    let out = s.doctor();
    out.expect(78);
    let problem = line_with(&out, "could not ask the server");
    assert!(problem.starts_with("problem") && problem.contains("UnknownIssuer"), "{problem}");
}

#[test]
fn doctor_names_known_bad_pairs_and_the_fix() {
    let Some(mut s) = setup("doctor against known-bad pairs", "2026.9.0") else { return };
    // bw 2026.9.0 with Vaultwarden 1.37.2 (vaultwarden#7750).
    let out = s.doctor();
    out.expect(78);
    let problem = line_with(&out, "known-bad pair");
    assert!(problem.starts_with("problem  bw 2026.9.0 with Vaultwarden 1.37.2"), "{problem}");
    for needle in
        ["vaultwarden#7750", "user-key-id", "upgrade Vaultwarden", "npm install -g @bitwarden/cli@2026.6.0"]
    {
        assert!(problem.contains(needle), "{needle:?} missing: {problem}");
    }
    // A Vaultwarden after the fix: no known-bad pair, but not a tested release either.
    s.server.set_knobs(&json!({"server_version": {"vaultwarden": "1.38.0", "api": "2026.9.0"}}));
    let out = s.doctor();
    out.expect(0);
    assert!(!out.stdout.contains("known-bad"), "{}", out.stdout);
    assert!(line_with(&out, "Vaultwarden 1.38.0").starts_with("warning"), "{}", out.stdout);
    // The recommended bw with a Vaultwarden older than 1.35.3 (vaultwarden#6709).
    s.fake.set_version("2026.6.0");
    s.fake.install();
    s.server.set_knobs(&json!({"server_version": {"vaultwarden": "1.35.2", "api": "2025.12.0"}}));
    let out = s.doctor();
    out.expect(78);
    let problem = line_with(&out, "known-bad pair");
    assert!(problem.contains("vaultwarden#6709") && problem.contains("1.35.3 or later"), "{problem}");
    assert!(line_with(&out, "Vaultwarden 1.35.2 (Bitwarden API 2025.12.0)").starts_with("warning"));
    s.assert_asked_politely();
}

#[test]
fn doctor_warns_about_a_bw_outside_the_supported_range() {
    let Some(s) = setup("doctor with an untested bw", "2026.5.0") else { return };
    let out = s.doctor();
    out.expect(0);
    let warning = line_with(&out, "bw 2026.5.0");
    assert!(warning.starts_with("warning") && warning.contains("outside the supported range"), "{warning}");
    assert!(warning.contains("npm install -g @bitwarden/cli@2026.6.0"), "{warning}");
}

#[test]
fn doctor_shows_what_bw_and_the_server_say_only_sanitized() {
    let Some(s) = setup("doctor against a lying server", "\u{1b}]0;pwned\u{7}2026.6.0") else { return };
    s.server.set_knobs(&json!({"server_version": {
        "vaultwarden": "\u{1b}[2J1.37.2\nproblem  forged line\u{202e}",
        "api": "2026.6.0\u{1b}[31m",
    }}));
    let out = s.doctor();
    assert!(!out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{202e}'), "{:?}", out.stdout);
    assert!(!out.stdout.lines().any(|l| l.starts_with("problem  forged")), "{}", out.stdout);
    assert!(out.stdout.contains("\\x1b[2J1.37.2\\nproblem  forged line"), "{}", out.stdout);
    // An unparsable bw version is a problem that shows the text escaped.
    assert!(line_with(&out, "printed no version number").contains("\\x1b]0;pwned"), "{}", out.stdout);
    out.expect(78);
}

#[test]
fn doctor_bounds_its_wait_for_a_silent_server() {
    const SILENCE_SECS: u64 = 600;
    let Some(s) = setup("doctor against a silent server", "2026.6.0") else { return };
    s.server.set_knobs(&json!({"config": {"delay_secs": SILENCE_SECS}}));
    let started = Instant::now();
    let mut child =
        s.host.command(&["doctor"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(SILENCE_SECS / 2) {
            let _ = child.kill();
            panic!("doctor still waits for a silent server after {:?}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    let problem = stdout.lines().find(|l| l.contains("could not ask the server")).unwrap_or_default();
    assert!(problem.contains("/api/config") && problem.to_lowercase().contains("timeout"), "{stdout}");
}

#[test]
fn doctor_never_contacts_a_server_url_carrying_credentials() {
    let Some(s) = setup("doctor with credentials in BW_SERVER", "2026.6.0") else { return };
    let url = s.server.url.replacen("https://", "https://svc:UrlSecret77@", 1);
    s.host.append_provider_env(&format!("BW_SERVER={url}\n"));
    let out = s.doctor();
    out.expect(78);
    assert!(line_with(&out, "user name or password").starts_with("problem"), "{}", out.stdout);
    assert!(!out.all_output().contains("UrlSecret77"), "{}", out.all_output());
    assert!(s.server.requests().is_empty(), "{:?}", s.server.requests());
}

/// The bw found on the fixed PATH is the one shown, and a missing one says how to get one.
#[test]
fn doctor_without_bw_says_how_to_get_a_supported_one() {
    let Some(s) = setup("doctor without bw", "2026.6.0") else { return };
    let missing = PathBuf::from("/nonexistent/bw");
    s.host.append_provider_env(&format!("COLIBRI_BW={}\n", missing.display()));
    let out = s.doctor();
    out.expect(78);
    let problem = line_with(&out, "/nonexistent/bw");
    assert!(
        problem.starts_with("problem") && problem.contains("npm install -g @bitwarden/cli@2026.6.0"),
        "{problem}"
    );
    // The server is still asked: its version does not depend on bw.
    assert!(out.stdout.contains("Vaultwarden 1.37.2"), "{}", out.stdout);
}
