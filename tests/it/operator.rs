//! The operator's verbs through the built binary: `tenant add|list|show|set|remove` and their
//! validation, `status [--json]`, `provision --dry-run`, `hook stop` cleanup, and what the
//! provision log (and every other file colibri-vault writes on the host) contains: key names,
//! never values.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::core::{EXPECTED_SH, VALUES, s, web};
use crate::support::host::{Host, file_state, names};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn tenant_add_list_show_set_remove_round_trip() {
    let host = Host::new();
    let root = host.jail("web");
    host.run(&[
        "tenant",
        "add",
        "web",
        "--root",
        &format!("{}/", s(&root)),
        "--collection",
        "web-secrets",
        "--env-path",
        "usr/local/etc/web.env",
        "--format",
        "dotenv",
        "--owner",
        "80:80",
        "--on-failure",
        "fail",
        "--cleanup-on-stop",
    ])
    .expect(0)
    .stderr_has("registered tenant web");
    host.tenant("shop", &[]);

    let list = host.run(&["tenant", "list"]);
    list.expect(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", list.stdout);
    assert!(lines[0].starts_with("NAME"));
    assert!(lines[1].starts_with("shop ") && lines[2].starts_with("web "), "sorted: {lines:?}");
    assert!(lines[2].contains("dotenv") && lines[2].contains("80:80") && lines[2].contains("fail"));

    let listed = json(&host.run(&["tenant", "list", "--json"]).expect(0).stdout);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let mut shown = json(&host.run(&["tenant", "show", "web", "--json"]).expect(0).stdout);
    assert_eq!(shown["last_provision"], Value::Null, "never provisioned");
    assert_eq!(shown["last_refresh"], Value::Null, "never refreshed");
    shown.as_object_mut().unwrap().remove("last_provision");
    shown.as_object_mut().unwrap().remove("last_refresh");
    assert_eq!(shown, listed[1]);
    assert_eq!(shown["name"], "web");
    assert_eq!(shown["root"], s(&root), "trailing slash normalized");
    assert_eq!(shown["collection"], "web-secrets");
    assert_eq!(shown["status"], "provisioned");
    assert_eq!(shown["env_path"], "usr/local/etc/web.env");
    assert_eq!(shown["format"], "dotenv");
    assert_eq!(shown["owner"], serde_json::json!({"uid": 80, "gid": 80}));
    assert_eq!(shown["on_failure"], "fail");
    assert_eq!(shown["cleanup_on_stop"], true);
    let text = host.run(&["tenant", "show", "web"]).expect(0).stdout.clone();
    assert!(text.contains("collection       web-secrets") && text.contains("cleanup on stop  yes"), "{text}");

    host.run(&[
        "tenant",
        "set",
        "web",
        "--format",
        "json",
        "--owner",
        "1001",
        "--on-failure",
        "continue",
        "--no-cleanup-on-stop",
        "--env-path",
        ".env",
    ])
    .expect(0);
    let shown = json(&host.run(&["tenant", "show", "web", "--json"]).expect(0).stdout);
    assert_eq!(shown["format"], "json");
    assert_eq!(shown["owner"], serde_json::json!({"uid": 1001, "gid": 0}));
    assert_eq!(shown["on_failure"], "continue");
    assert_eq!(shown["cleanup_on_stop"], false);
    assert_eq!(shown["env_path"], ".env");
    assert_eq!(shown["collection"], "web-secrets", "unchanged options stay");

    host.run(&["tenant", "remove", "web"]).expect(0).stderr_has("removed tenant web");
    host.run(&["tenant", "show", "web"]).expect(66);
    host.run(&["tenant", "remove", "web"]).expect(66);
    let listed = json(&host.run(&["tenant", "list", "--json"]).expect(0).stdout);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(root.exists(), "removing a tenant leaves its jail alone");
}

#[test]
fn tenant_validation_errors_exit_64_and_store_nothing() {
    let host = Host::new();
    let root = host.jail("web");
    let root = s(&root);
    let base = s(&host.base);
    let outside = host.path().join("outside/root");
    let climbing = format!("{base}/../x/root");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["-x", "--root", root], ""),
        (vec!["a.b", "--root", root], "invalid jail name"),
        (vec!["a/b", "--root", root], "invalid jail name"),
        (vec!["12", "--root", root], "invalid jail name"),
        (vec!["_x", "--root", root], "invalid jail name"),
        (vec!["", "--root", root], "invalid jail name"),
        (vec!["web", "--root", "jails/web/root"], "must be an absolute path"),
        (vec!["web", "--root", base], "must lie strictly under the jail root base"),
        (vec!["web", "--root", s(&outside)], "must lie strictly under the jail root base"),
        (vec!["web", "--root", &climbing], "must be normalized"),
        (vec!["web", "--root", root, "--env-path", "../x"], "env path ../x must be"),
        (vec!["web", "--root", root, "--env-path", "a/../b"], "without '..'"),
        (vec!["web", "--root", root, "--env-path", "/etc/rc.conf"], "must be relative"),
        (vec!["web", "--root", root, "--env-path", ""], "--env-path"),
        (vec!["web", "--root", root, "--format", "yaml"], "format must be sh, dotenv or json"),
        (vec!["web", "--root", root, "--owner", "www"], "owner must be UID or UID:GID"),
        (vec!["web", "--root", root, "--on-failure", "maybe"], "failure policy must be continue or fail"),
        (vec!["web", "--root", root, "--collection", "../x"], "invalid collection name"),
        (vec!["web"], "--root"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["tenant", "add"];
        args.extend(&extra);
        host.run(&args).expect(64).stderr_has(message);
    }
    assert!(!host.db.exists(), "nothing was registered, so no database was created");

    host.tenant("web", &[]);
    host.run(&["tenant", "add", "web", "--root", root]).expect(64).stderr_has("already registered");
    let shop = host.jail("shop");
    host.run(&["tenant", "add", "shop", "--root", s(&shop), "--collection", "web"])
        .expect(64)
        .stderr_has("already registered");
    host.run(&["tenant", "set", "web", "--env-path", "a//b"]).expect(64);
    host.run(&["tenant", "set", "web", "--root", "relative"]).expect(64);
    host.run(&["tenant", "set", "web", "--cleanup-on-stop", "--no-cleanup-on-stop"]).expect(64);
    // A hook never blocks a jail over its name: one with a '/' cannot be a tenant's.
    host.run(&["hook", "start", "../web"]).expect(0).stderr_has("not a name a tenant can have");
    host.run(&["no-such-verb"]).expect(64);
    let listed = json(&host.run(&["tenant", "list", "--json"]).expect(0).stdout);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["env_path"], ".env");
}

#[test]
fn status_after_runs_shows_outcome_and_key_count() {
    let (host, root) = web(&[]);
    host.tenant("shop", &[]);
    let out = host.run(&["status"]);
    out.expect(0);
    assert!(out.stdout.lines().any(|l| l.starts_with("shop") && l.contains("never")), "{}", out.stdout);

    host.run(&["hook", "start", "web", s(&root)]).expect(0);
    let out = host.run(&["status"]);
    let line = out.stdout.lines().find(|l| l.starts_with("web ")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1..], ["active", fields[2], "written", "3", "never", "file/env", "-"], "{line}");

    let rows = json(&host.run(&["status", "--json"]).expect(0).stdout);
    let web_row = rows.as_array().unwrap().iter().find(|r| r["tenant"] == "web").unwrap();
    assert_eq!(web_row["status"], "active");
    assert_eq!(web_row["outcome"], "written");
    assert_eq!(web_row["trigger"], "hook");
    assert_eq!(web_row["keys"], 3);
    assert_eq!(web_row["error"], Value::Null);
    assert!(web_row["last_provision"].as_str().unwrap().ends_with('Z'));
    // The next start finds the file fresh: still 3 keys (the file has them), not 0.
    host.run(&["hook", "start", "web", s(&root)]).expect(0).stderr_has("is fresh");
    let rows = json(&host.run(&["status", "--json"]).expect(0).stdout);
    let web_row = rows.as_array().unwrap().iter().find(|r| r["tenant"] == "web").unwrap();
    assert_eq!((&web_row["outcome"], &web_row["keys"]), (&Value::from("fresh"), &Value::from(3)));
    let shop_row = rows.as_array().unwrap().iter().find(|r| r["tenant"] == "shop").unwrap();
    assert_eq!(shop_row["status"], "provisioned");
    assert_eq!(shop_row["outcome"], Value::Null);

    // A failure: outcome failed, the sanitized reason, no key count.
    fs::remove_file(host.secrets_path("web")).unwrap();
    host.run(&["provision", "web"]).expect(66);
    let rows = json(&host.run(&["status", "web", "--json"]).expect(0).stdout);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["outcome"], "failed");
    assert_eq!(rows[0]["trigger"], "manual");
    assert_eq!(rows[0]["keys"], Value::Null);
    assert!(rows[0]["error"].as_str().unwrap().contains("collection web does not exist"));
    assert_eq!(rows[0]["status"], "active", "a failure does not undo the last success");
    host.run(&["status", "nobody"]).expect(66);
}

#[test]
fn dry_run_shows_names_and_hashes_but_no_value_and_writes_nothing() {
    let (host, root) = web(&[]);
    let out = host.run(&["provision", "--dry-run", "web"]);
    out.expect(0);
    for (name, value) in VALUES {
        assert!(out.stdout.contains(&format!("  {name} sha256:")), "{}", out.stdout);
        for line in value.lines().filter(|l| l.len() >= 6) {
            assert!(!out.all_output().contains(line), "value fragment {line:?} shown");
        }
    }
    assert!(!out.all_output().contains("key-Zr81Lw04") && !out.all_output().contains("pw-Qx7"));
    assert!(names(&root).is_empty(), "nothing written");

    host.run(&["provision", "web"]).expect(0);
    let before = file_state(&root.join(".env"));
    host.secrets("web", "API_KEY=changed-Pp09\n");
    let out = host.run(&["provision", "--all", "--dry-run"]);
    out.expect(0);
    assert!(out.stdout.contains("web: 1 key ("), "{}", out.stdout);
    assert!(!out.all_output().contains("changed-Pp09"));
    assert_eq!(file_state(&root.join(".env")), before, "an existing file is not touched");
}

#[test]
fn hook_stop_removes_the_file_only_when_the_tenant_asked() {
    let (host, root) = web(&[]);
    host.run(&["hook", "start", "web", s(&root)]).expect(0);
    host.run(&["hook", "stop", "web", s(&root)]).expect(0);
    assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), EXPECTED_SH, "kept by default");

    host.run(&["tenant", "set", "web", "--cleanup-on-stop"]).expect(0);
    host.run(&["hook", "stop", "web", s(&root)]).expect(0).stderr_has("removed");
    assert!(names(&root).is_empty());
    host.run(&["hook", "stop", "web", s(&root)]).expect(0);
    // A stop for a path that is not the registered root removes nothing.
    host.run(&["tenant", "set", "web", "--on-failure", "fail"]).expect(0);
    host.run(&["provision", "web"]).expect(0);
    let other = host.jail("other");
    host.run(&["hook", "stop", "web", s(&other)]).expect(73).stderr_has("differs from the registered root");
    assert!(root.join(".env").exists());
    // An unregistered jail: nothing to do.
    host.run(&["hook", "stop", "other", s(&other)]).expect(0);
}

/// Every file under `dir`, recursively (no symlinks followed).
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            files(&path, out);
        } else if meta.is_file() {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_provision_log_has_a_row_per_run_with_key_names_and_no_value_anywhere() {
    let (host, root) = web(&[]);
    host.run(&["hook", "start", "web", s(&root)]).expect(0); // written
    host.run(&["provision", "web"]).expect(0); // unchanged
    host.run(&["hook", "start", "web", s(&root)]).expect(0); // fresh
    host.run(&["provision", "--dry-run", "web"]).expect(0); // dry-run
    host.run(&["hook", "start", "web", "/elsewhere"]).expect(0); // failed (refused)

    let conn = rusqlite::Connection::open(&host.db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT tenant_id, jail, trigger, keys, outcome, content_hash, error
             FROM colibri_vault_provision_log ORDER BY id",
        )
        .unwrap();
    let rows: Vec<[Option<String>; 7]> = stmt
        .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?]))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let summary: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[2].as_deref().unwrap(), r[3].as_deref().unwrap(), r[4].as_deref().unwrap()))
        .collect();
    let keys = "API_KEY,DB_PASSWORD,GREETING";
    assert_eq!(
        summary,
        [
            ("hook", keys, "written"),
            ("manual", keys, "unchanged"),
            ("hook", keys, "fresh"),
            ("manual", keys, "dry-run"),
            ("hook", "", "failed"),
        ]
    );
    assert!(rows.iter().all(|r| r[0].as_deref() == Some("web") && r[1].as_deref() == Some("web")));
    assert_eq!(rows[0][5].as_deref().map(str::len), Some(64), "sha256 of the content");
    assert_eq!(rows[2][5], rows[0][5], "a fresh row carries the hash of the file it found");
    assert_eq!(rows[3][5], None, "a dry run wrote nothing");
    assert!(rows[4][6].as_deref().unwrap().contains("refused"));
    drop(stmt);
    drop(conn);

    // No value in the database (WAL and shm included), the state or run directories, or
    // anywhere else on the host except the secrets source and the env file itself.
    let mut all = Vec::new();
    files(host.path(), &mut all);
    let env_file = root.join(".env");
    let checked: Vec<_> =
        all.iter().filter(|p| **p != env_file && !p.starts_with(&host.secrets_dir)).collect();
    assert!(checked.iter().any(|p| p.starts_with(host.db.parent().unwrap())));
    for path in checked {
        let bytes = fs::read(path).unwrap();
        for (_, value) in VALUES {
            for fragment in value.split('\n') {
                assert!(!contains(&bytes, fragment.as_bytes()), "{} holds a secret", path.display());
            }
        }
    }
    // Files colibri-vault created for itself are private.
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&host.db), 0o600);
    assert_eq!(mode(host.db.parent().unwrap()), 0o700);
    assert_eq!(mode(&host.run_dir), 0o700);
}

#[test]
fn a_secrets_file_with_a_bad_line_names_file_and_line_but_no_value() {
    let (host, root) = web(&[]);
    host.secrets("web", "API_KEY=ok\nthis is not an assignment sec-Lk29\n");
    host.run(&["provision", "web"])
        .expect(78)
        .stderr_has(&format!("{}:2: expected KEY=value", host.secrets_path("web").display()));
    assert!(!host.run(&["provision", "web"]).all_output().contains("sec-Lk29"));
    assert!(names(&root).is_empty());
}
