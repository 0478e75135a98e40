//! The real `bw` CLI against colibri-bwserver: the whole cycle, the failure answers bw must
//! turn into its real messages, and proof that the server is faithful (dropping one field bw
//! needs breaks the cycle). Each scenario has its own server and its own bw app-data dir, so
//! the tests run in parallel.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Bw, CLIENT_SECRET, PASSWORD, Server, bw_or_skip, by_name, default_spec, names};

const KNOWN_PATHS: [&str; 4] =
    ["/identity/connect/token", "/api/config", "/api/sync", "/api/accounts/revision-date"];

#[test]
fn full_cycle_returns_the_spec_items_decrypted() {
    let Some(bw_path) = bw_or_skip("full_cycle_returns_the_spec_items_decrypted") else { return };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);

    bw.config_server().ok();
    let login = bw.login(&server.client_id(), CLIENT_SECRET);
    assert!(login.ok().stdout.starts_with("You are logged in!"), "{login:#?}");
    assert_eq!(server.token_requests(), 1, "login --apikey is one token request");
    assert_eq!(server.count("/api/sync"), 1, "login does a full sync");

    let unlock = bw.unlock(PASSWORD);
    let session = unlock.ok().stdout.clone();
    assert_eq!(session.len(), 88, "{unlock:#?}");

    let collections = bw.with_session(&session, &["list", "collections"]).ok().json();
    assert_eq!(names(&collections), ["proof0", "proof1"]);
    assert_eq!(collections[0]["organizationId"], server.org_id().as_str());

    let all = bw.with_session(&session, &["list", "items"]).ok().json();
    assert_eq!(names(&all), ["FIRST_PROOF_KEY", "PERSONAL", "SECOND_KEY", "bundle", "visa"]);
    let login_item = by_name(&all, "FIRST_PROOF_KEY").unwrap();
    assert_eq!(login_item["type"], 1);
    assert_eq!(login_item["login"]["password"], "s3cret");
    assert_eq!(login_item["login"]["username"], "svc");
    assert_eq!(by_name(&all, "SECOND_KEY").unwrap()["login"]["password"], "p'$`\\x");
    let note = by_name(&all, "bundle").unwrap();
    assert_eq!((note["type"].clone(), note["notes"].clone()), (json!(2), json!("A=1\nB=two words")));
    let card = by_name(&all, "visa").unwrap();
    assert_eq!((card["type"].clone(), card["card"]["number"].clone()), (json!(3), json!("4111111111111111")));
    let personal = by_name(&all, "PERSONAL").unwrap();
    assert!(personal["organizationId"].is_null(), "personal item: {personal}");
    assert_eq!(personal["login"]["password"], "mine");

    let proof0 = server.collection_id("proof0");
    let in_proof0 = bw.with_session(&session, &["list", "items", "--collectionid", &proof0]).ok().json();
    assert_eq!(names(&in_proof0), ["FIRST_PROOF_KEY", "bundle"], "the trashed item is not listed");
    let org = server.org_id();
    let in_org = bw.with_session(&session, &["list", "items", "--organizationid", &org]).ok().json();
    assert_eq!(names(&in_org), ["FIRST_PROOF_KEY", "SECOND_KEY", "bundle", "visa"]);

    let sync = bw.with_session(&session, &["sync"]);
    assert_eq!(sync.ok().stdout, "Syncing complete.");
    assert_eq!(server.count("/api/accounts/revision-date"), 1);
    assert_eq!(server.token_requests(), 1, "nothing changed: no new login, no full sync");
    assert_eq!(server.count("/api/sync"), 1);

    assert_eq!(bw.run(&["lock"], &[]).ok().stdout, "Your vault is locked.");
    assert_eq!(bw.run(&["logout"], &[]).ok().stdout, "You have logged out.");

    assert_no_credentials_left(&bw, &server);
    let requests = server.requests();
    for r in &requests {
        assert_eq!(r["status"], 200, "unexpected answer: {r}");
        assert!(KNOWN_PATHS.contains(&r["path"].as_str().unwrap()), "unexpected request: {r}");
    }
    let token = requests.iter().find(|r| r["path"] == KNOWN_PATHS[0]).unwrap();
    assert_eq!(token["grant_type"], "client_credentials");
    let log = std::fs::read_to_string(server.state().join("requests.jsonl")).unwrap();
    assert!(!log.contains(CLIENT_SECRET) && !log.contains(PASSWORD), "the request log holds a secret");
}

#[test]
fn items_changed_on_the_server_reach_bw_after_sync() {
    let Some(bw_path) = bw_or_skip("items_changed_on_the_server_reach_bw_after_sync") else { return };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    let session = bw.session(&server);
    let proof0 = server.collection_id("proof0");

    let mut spec = default_spec();
    let items = spec["items"].as_array_mut().unwrap();
    items[0]["password"] = json!("rotated");
    items.remove(1); // the Secure Note
    items.push(json!({"type": "login", "name": "LATE_KEY", "password": "late", "collections": ["proof0"]}));
    server.set_knobs(&json!({"items": items}));

    let stale = bw.with_session(&session, &["list", "items", "--collectionid", &proof0]).ok().json();
    assert_eq!(names(&stale), ["FIRST_PROOF_KEY", "bundle"], "bw lists from its cache until sync");

    assert_eq!(bw.with_session(&session, &["sync"]).ok().stdout, "Syncing complete.");
    assert_eq!(server.token_requests(), 2, "a full sync forces a fresh API-key login");
    assert_eq!(server.count("/api/sync"), 2);

    let fresh = bw.with_session(&session, &["list", "items", "--collectionid", &proof0]).ok().json();
    assert_eq!(names(&fresh), ["FIRST_PROOF_KEY", "LATE_KEY"]);
    assert_eq!(by_name(&fresh, "FIRST_PROOF_KEY").unwrap()["login"]["password"], "rotated");

    // The deleted item is served (with a deletedDate), not just left out.
    let trash = bw.with_session(&session, &["list", "items", "--trash"]).ok().json();
    assert_eq!(names(&trash), ["TRASHED_KEY"]);
    bw.run(&["logout"], &[]).ok();
}

#[test]
fn wrong_api_key_and_token_errors_print_bws_real_messages() {
    let Some(bw_path) = bw_or_skip("wrong_api_key_and_token_errors_print_bws_real_messages") else {
        return;
    };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    bw.config_server().ok();

    bw.login(&server.client_id(), "not-the-secret").fails_with("Incorrect client_secret");
    bw.login("user.00000000-0000-4000-8000-000000000000", CLIENT_SECRET).fails_with("Invalid client_id");
    server.set_knobs(&json!({"token": "invalid_client"}));
    bw.login(&server.client_id(), CLIENT_SECRET)
        .fails_with("client_id or client_secret is incorrect. Try again.");
    server.set_knobs(&json!({"token": "internal_error"}));
    bw.login(&server.client_id(), CLIENT_SECRET).fails_with("Internal error");

    let statuses: Vec<_> = server.requests().iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, [400, 400, 400, 500], "one token request per attempt, nothing else");
    assert!(!bw.data_json().contains(CLIENT_SECRET));
}

#[test]
fn wrong_master_password_fails_unlock_client_side() {
    let Some(bw_path) = bw_or_skip("wrong_master_password_fails_unlock_client_side") else { return };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    bw.config_server().ok();
    bw.login(&server.client_id(), CLIENT_SECRET).ok();
    let before = server.requests().len();
    let unlock = bw.unlock("not the master password");
    unlock.fails_with("The decryption operation failed");
    assert_eq!(unlock.stdout, "");
    assert!(
        server.requests()[before..].iter().all(|r| r["path"] == "/api/config"),
        "unlock is client-side: the password never reaches the server"
    );
    bw.run(&["logout"], &[]).ok();
}

#[test]
fn rate_limited_logins_get_bws_rate_limit_message() {
    let Some(bw_path) = bw_or_skip("rate_limited_logins_get_bws_rate_limit_message") else { return };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    bw.config_server().ok();

    server.set_knobs(&json!({"token": "rate_limited"}));
    bw.login(&server.client_id(), CLIENT_SECRET).fails_with("Rate limit exceeded. Try again later.");

    // Vaultwarden's limiter, with a burst of one: the second login within the period is refused.
    server.set_knobs(&json!({"rate_limit": {"max_burst": 1, "period_secs": 600}}));
    bw.login(&server.client_id(), CLIENT_SECRET).ok();
    bw.run(&["logout"], &[]).ok();
    bw.login(&server.client_id(), CLIENT_SECRET).fails_with("Rate limit exceeded. Try again later.");

    let tokens: Vec<_> = server
        .requests()
        .iter()
        .filter(|r| r["path"] == "/identity/connect/token")
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(tokens, [429, 200, 429]);
}

#[test]
fn sync_failure_during_login_yields_an_empty_session_key() {
    let Some(bw_path) = bw_or_skip("sync_failure_during_login_yields_an_empty_session_key") else {
        return;
    };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    bw.config_server().ok();
    server.set_knobs(&json!({"sync": "internal_error"}));

    let login = bw.login(&server.client_id(), CLIENT_SECRET);
    assert!(login.ok().stdout.starts_with("You are logged in!"), "bw swallows the sync error");
    assert_eq!(server.token_requests(), 1);
    let unlock = bw.unlock(PASSWORD);
    assert_eq!((unlock.rc, unlock.stdout.as_str()), (0, ""), "{unlock:#?}");

    // A later sync repairs it.
    server.set_knobs(&json!({}));
    bw.run(&["sync"], &[]).ok();
    assert_eq!(bw.unlock(PASSWORD).ok().stdout.len(), 88);
    bw.run(&["logout"], &[]).ok();
}

#[test]
fn fidelity_login_fails_without_account_keys_in_the_token_response() {
    let Some(bw_path) = bw_or_skip("fidelity_login_fails_without_account_keys") else { return };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    bw.config_server().ok();

    server.set_knobs(&json!({"omit_fields": ["token.AccountKeys"]}));
    let broken = bw.login(&server.client_id(), CLIENT_SECRET);
    broken.fails_with("toWrappedAccountCryptographicState");

    // The same server, the same bw, with the field: login works. The failed login left bw
    // logged in (and the client secret in data.json), hence the logout first.
    bw.run(&["logout"], &[]).ok();
    server.set_knobs(&json!({}));
    bw.login(&server.client_id(), CLIENT_SECRET).ok();
    bw.run(&["logout"], &[]).ok();
}

#[test]
fn fidelity_unlock_fails_without_the_private_key_in_sync() {
    let Some(bw_path) = bw_or_skip("fidelity_unlock_fails_without_the_private_key") else { return };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    bw.config_server().ok();

    server.set_knobs(&json!({"omit_fields": ["sync.profile.privateKey"]}));
    bw.login(&server.client_id(), CLIENT_SECRET).ok();
    let unlock = bw.unlock(PASSWORD);
    assert_eq!(unlock.rc, 1, "bw needs profile.privateKey: {unlock:#?}");
    assert!(unlock.stderr.contains("private_key"), "{unlock:#?}");
    bw.run(&["logout"], &[]).ok();
}

#[test]
fn token_delay_knob_slows_login_down() {
    let Some(bw_path) = bw_or_skip("token_delay_knob_slows_login_down") else { return };
    let server = Server::start(&default_spec());
    let bw = Bw::new(&bw_path, &server);
    bw.config_server().ok();
    server.set_knobs(&json!({"token": {"delay_secs": 3}}));
    let login = bw.login(&server.client_id(), CLIENT_SECRET);
    assert!(login.ok().secs >= 3.0, "{login:#?}");
    let token = server.requests().into_iter().find(|r| r["path"] == KNOWN_PATHS[0]).unwrap();
    assert_eq!(token["delay_secs"], 3.0);
    bw.run(&["logout"], &[]).ok();
}

/// After `bw logout`: the token keys are still in data.json, but null, and neither the client
/// secret nor an access token (a JWT, `eyJ…`) appears anywhere.
fn assert_no_credentials_left(bw: &Bw, server: &Server) {
    let data: serde_json::Value = serde_json::from_str(&bw.data_json()).expect("bw's data.json");
    for (key, value) in data.as_object().unwrap() {
        if key.contains("_token_") {
            assert!(value.is_null(), "data.json {key} = {value} after logout");
        }
    }
    let text = bw.data_json();
    for secret in [CLIENT_SECRET, "eyJ", server.client_id().as_str()] {
        assert!(!text.contains(secret), "data.json still holds {secret:?} after logout");
    }
}

/// Needs no bw: the server must not outlive the test that started it.
#[test]
fn server_exits_on_stdin_eof_and_on_sigterm() {
    let mut server = Server::start(&default_spec());
    assert!(server.close_stdin_and_wait(Duration::from_secs(10)), "stdin EOF stops the server");

    let mut server = Server::start(&default_spec());
    let status =
        std::process::Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(server.wait(Duration::from_secs(10)), "SIGTERM stops the server");
}
