//! Host-side state never inside a jail (issue 9, item 7; DESIGN.md invariant 7). A jail's root
//! user is uid 0, so ownership checks alone pass whatever it planted: every host-side setting
//! (state dir, run dir, database, secrets dir, provider env, bastille.conf, the bw and jexec
//! executables, `NODE_EXTRA_CA_CERTS`) that lies inside the jail root base or a tenant's root is refused with
//! 78, naming the setting and the path, whatever its shape (trailing slash, `..`, not created
//! yet, reached through a symlink on the host, a dangling one); `tenant add|set` refuse a root
//! that contains host-side state; `doctor` reports each; a hook for a jail without a tenant
//! still exits 0, one with a tenant follows its policy.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::core::{s, web};
use crate::support::host::{Host, names};

/// The settings that name a host-side path: (flag, variable).
const SETTINGS: [(&str, &str); 8] = [
    ("--state-dir", "COLIBRI_STATE_DIR"),
    ("--run-dir", "COLIBRI_RUN_DIR"),
    ("--db", "COLIBRI_DB"),
    ("--secrets-dir", "COLIBRI_SECRETS_DIR"),
    ("--provider-env", "COLIBRI_PROVIDER_ENV"),
    ("--bastille-config", "BASTILLE_CONFIG"),
    ("--bw", "COLIBRI_BW"),
    ("--jexec", "COLIBRI_JEXEC"),
];

/// Paths that all lie inside jail `web`'s root, in every shape a path can take.
fn shapes_inside(host: &Host, root: &Path) -> Vec<PathBuf> {
    let outside = host.path().join("host");
    fs::create_dir_all(&outside).unwrap();
    let link = outside.join("link-to-root");
    if !link.exists() {
        symlink(root, &link).unwrap();
        symlink(root.join("not-yet/made"), outside.join("dangling")).unwrap();
        symlink("../jails/web", outside.join("relative")).unwrap();
    }
    let text = |p: &Path| s(p).to_owned();
    vec![
        root.join("colibri"),
        PathBuf::from(format!("{}/", text(&root.join("colibri")))),
        PathBuf::from(format!("{}//./colibri", text(root))),
        PathBuf::from(format!("{}/../root/colibri", text(root))),
        root.join("a/b/c/not/created/yet"),
        root.to_owned(),
        host.base.clone(),
        PathBuf::from(format!("{}/", text(&host.base))),
        link.join("colibri"),
        outside.join("dangling"),
        outside.join("dangling/deeper"),
        outside.join("relative/root/x"),
        outside.join("no-such-dir/../link-to-root/x"),
    ]
}

#[test]
fn every_host_side_setting_inside_the_jail_root_base_is_refused_in_every_shape() {
    let (host, root) = web(&[]);
    let before = crate::support::host::snapshot(&root);
    for (flag, var) in SETTINGS {
        for path in shapes_inside(&host, &root) {
            let out = host.run(&["provision", flag, s(&path), "web"]);
            out.expect(78).stderr_has(var).stderr_has("inside").stderr_has("jail root base");
            assert!(out.stderr.contains(s(&path).trim_end_matches('/')), "{var}: {}", out.stderr);
        }
        // The same through the environment.
        let mut env_host = Host::new();
        env_host.secrets("web", "A=1\n");
        let env_root = env_host.tenant("web", &[]);
        env_host.set_env(var, env_root.join("colibri").into_os_string());
        env_host.run(&["provision", "web"]).expect(78).stderr_has(var);
        env_host.run(&["status"]).expect(78).stderr_has(var);
        assert!(names(&env_root).is_empty(), "{var}: something was created in the jail");
    }
    assert_eq!(crate::support::host::snapshot(&root), before, "nothing was created in the jail");
    // Outside, the same shapes are fine.
    host.run(&["provision", "--state-dir", &format!("{}/", s(&host.path().join("state2"))), "web"]).expect(0);
}

#[test]
fn the_ca_bundle_inside_a_jail_is_refused() {
    let (host, root) = web(&[]);
    let ca = root.join("etc/ca.pem");
    fs::create_dir_all(ca.parent().unwrap()).unwrap();
    fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    host.append_provider_env(&format!("NODE_EXTRA_CA_CERTS={}\n", s(&ca)));
    host.run(&["provision", "web"]).expect(78).stderr_has("NODE_EXTRA_CA_CERTS").stderr_has("inside");
}

#[test]
fn a_provider_env_inside_a_jail_is_refused_before_it_is_read() {
    let (host, root) = web(&[]);
    let planted = root.join("provider.env");
    crate::support::host::write_private(
        &planted,
        b"COLIBRI_BW=/tmp/planted-by-the-jail\nnot an assignment\n",
    );
    let out = host.run(&["provision", "--provider-env", s(&planted), "web"]);
    out.expect(78).stderr_has("COLIBRI_PROVIDER_ENV");
    assert!(!out.stderr.contains("expected KEY=value"), "the file was read: {}", out.stderr);
}

#[test]
fn host_side_state_inside_any_registered_tenants_root_is_refused() {
    let (host, root) = web(&["--on-failure", "fail"]);
    // A root colibri-vault would not accept, registered anyway: the run dir lies inside it.
    let other = host.path().join("elsewhere/evil/root");
    fs::create_dir_all(&other).unwrap();
    host.insert_raw("evil", &other, "evil");
    let run_dir = other.join("var/run/colibri");
    let run = |args: &[&str]| {
        let mut full = vec!["--run-dir", s(&run_dir)];
        full.extend_from_slice(args);
        host.run(&full)
    };
    run(&["provision", "web"]).expect(78).stderr_has("COLIBRI_RUN_DIR").stderr_has("of tenant evil");
    run(&["tenant", "list"]).expect(78);
    assert!(!other.join("var").exists(), "the run dir was created inside the jail");
    // Hooks: no tenant, no block; a tenant with policy fail, its status.
    // A jail without a tenant is left alone before anything else is checked (it does nothing).
    run(&["hook", "start", "ghost"]).expect(0);
    run(&["hook", "start", "web", s(&root)]).expect(78);
    run(&["hook", "stop", "ghost"]).expect(0);
    let out = run(&["doctor"]);
    out.expect(78);
    assert!(out.stdout.contains("problem  COLIBRI_RUN_DIR"), "{}", out.stdout);
    // The way out stays open: moving or removing the tenant whose root holds the state.
    let fixed = host.base.join("evil/root");
    fs::create_dir_all(&fixed).unwrap();
    run(&["tenant", "set", "evil", "--root", s(&fixed)]).expect(0);
    run(&["provision", "web"]).expect(0);
    host.insert_raw("evil2", &other, "evil2");
    run(&["provision", "web"]).expect(78);
    run(&["tenant", "remove", "evil2"]).expect(0);
    run(&["provision", "web"]).expect(0);
}

#[test]
fn a_database_inside_a_tenants_root_is_not_trusted_for_the_hooks_policy() {
    let (host, root) = web(&["--on-failure", "fail"]);
    let other = host.path().join("elsewhere/evil/root");
    fs::create_dir_all(&other).unwrap();
    host.insert_raw("evil", &other, "evil");
    let db = other.join("colibri.sqlite");
    let conn = rusqlite::Connection::open(&host.db).unwrap();
    conn.execute("VACUUM INTO ?1", [s(&db)]).unwrap();
    drop(conn);
    let out = host.run(&["--db", s(&db), "hook", "start", "web", s(&root)]);
    out.expect(0).stderr_has("COLIBRI_DB");
    // Also when the settings fail for another reason (a provider env open to others) and the
    // hook looks for the tenant's policy on its own.
    fs::set_permissions(&host.provider_env, fs::Permissions::from_mode(0o644)).unwrap();
    host.run(&["--db", s(&db), "hook", "start", "web", s(&root)]).expect(0);
    host.run(&["hook", "start", "web", s(&root)]).expect(77);
    assert!(!root.join(".env").exists());
}

#[test]
fn tenant_add_and_set_refuse_a_root_that_contains_host_side_state() {
    let host = Host::new();
    host.secrets("web", "A=1\n");
    host.secrets("shop", "A=1\n");
    // Under the base, `web` is a link to a directory elsewhere: the state dir there lies inside
    // the root about to be registered, though not (as text) under the base.
    let elsewhere = host.path().join("elsewhere/web");
    fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, host.base.join("web")).unwrap();
    let state = elsewhere.join("root/state");
    let root = host.base.join("web/root");
    let out = host.run(&["--state-dir", s(&state), "tenant", "add", "web", "--root", s(&root)]);
    out.expect(78).stderr_has("COLIBRI_STATE_DIR").stderr_has("of tenant web");
    assert!(!host.db.exists(), "a refused tenant add created the database");
    let shop = host.tenant("shop", &[]);
    let out = host.run(&["--state-dir", s(&state), "tenant", "set", "shop", "--root", s(&root)]);
    out.expect(78).stderr_has("COLIBRI_STATE_DIR");
    let out = host.run(&["tenant", "show", "shop"]);
    assert!(out.stdout.contains(s(&shop)), "the root was not changed: {}", out.stdout);
}

#[test]
fn hooks_pass_the_refusal_through_the_tenants_policy() {
    let (host, root) = web(&[]);
    let inside = root.join("state");
    let hook = |args: &[&str]| {
        let mut full = vec!["--state-dir", s(&inside), "hook"];
        full.extend_from_slice(args);
        host.run(&full)
    };
    hook(&["start", "ghost"]).expect(0);
    hook(&["stop", "ghost"]).expect(0);
    hook(&["start", "web", s(&root)]).expect(0).stderr_has("policy continue");
    host.run(&["tenant", "set", "web", "--on-failure", "fail"]).expect(0);
    hook(&["start", "web", s(&root)]).expect(78);
    assert!(!inside.exists());
    assert!(!root.join(".env").exists());
}

#[test]
fn doctor_reports_each_host_side_setting_inside_a_jail() {
    let (host, root) = web(&[]);
    let out = host.run(&["--state-dir", s(&root.join("s")), "--run-dir", s(&root.join("r")), "doctor"]);
    out.expect(78);
    for var in ["COLIBRI_STATE_DIR", "COLIBRI_RUN_DIR"] {
        assert!(out.stdout.contains(&format!("problem  {var} ")), "{var}: {}", out.stdout);
    }
    // A database inside a jail is reported and not opened.
    let out = host.run(&["--db", s(&root.join("db.sqlite")), "doctor"]);
    out.expect(78);
    assert!(out.stdout.contains("problem  COLIBRI_DB "), "{}", out.stdout);
    assert!(out.stdout.contains("was not opened"), "{}", out.stdout);
    assert!(!root.join("db.sqlite").exists());
    // And a provider env inside one: reported, and the rest still checked.
    let planted = root.join("provider.env");
    crate::support::host::write_private(&planted, b"COLIBRI_SOURCE=dir\n");
    let out = host.run(&["--provider-env", s(&planted), "doctor"]);
    out.expect(78);
    assert!(out.stdout.contains("problem  COLIBRI_PROVIDER_ENV "), "{}", out.stdout);
    assert!(out.stdout.contains("tenant database"), "{}", out.stdout);
    let out = host.run(&["doctor"]);
    out.expect(0);
    assert!(out.stdout.contains("no host-side state"), "{}", out.stdout);
}
