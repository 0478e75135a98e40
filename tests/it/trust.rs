//! What colibri-vault trusts, through the built binary (issue 9): hooks take every name jail(8)
//! accepts and never block a jail without a tenant, whatever the database looks like; values
//! read from the database are validated where they are used; roots are unique and never
//! nested; names that change how a sourcing shell behaves are refused by default; a write that
//! cannot be recorded is a failure; and the operator's output is aligned and sanitized.

use std::fs;
use std::path::Path;

use crate::core::{OWNER, s, web};
use crate::support::host::{Host, names};

fn sql(host: &Host, statement: &str) {
    rusqlite::Connection::open(&host.db).unwrap().execute_batch(statement).unwrap();
}

/// No raw control character reaches a terminal.
#[track_caller]
fn assert_printable(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached the output: {text:?}"
    );
}

#[test]
fn hooks_take_every_name_jail8_accepts_and_leave_jails_without_a_tenant_alone() {
    let names_jail8_accepts = ["app.example.org", "parent.child", "_x", "9lives", "42", "a-b_c.d"];
    // No database at all, then a database without these tenants.
    let (host, _) = web(&[]);
    let no_db = Host::new();
    for name in names_jail8_accepts {
        for h in [&no_db, &host] {
            let root = h.jail(name);
            for hook in ["start", "stop"] {
                h.run(&["hook", hook, name, s(&root)]).expect(0);
                h.run(&["hook", hook, name]).expect(0);
            }
            assert!(names(&root).is_empty(), "nothing written for {name}");
        }
    }
    // Unsafe names cannot be a tenant's: nothing is done and the jail is not blocked.
    for name in ["a/b", "x\u{1b}[2Jy", "line\nbreak"] {
        let out = host.run(&["hook", "start", name]);
        out.expect(0);
        assert_printable(&out.stderr);
    }
    // Bad arguments on a hook line: said, exit 0.
    host.run(&["hook", "start"]).expect(0).stderr_has("bad arguments");
    host.run(&["hook", "stop", "web", "/x", "extra"]).expect(0).stderr_has("bad arguments");
}

#[test]
fn an_unreadable_database_blocks_only_a_tenant_whose_policy_is_fail() {
    // A database that is not SQLite at all: nothing can be read, no jail is blocked.
    let host = Host::new();
    host.jail("web");
    fs::create_dir_all(host.db.parent().unwrap()).unwrap();
    fs::write(&host.db, b"this is not a database, it is garbage\n".repeat(200)).unwrap();
    for hook in ["start", "stop"] {
        host.run(&["hook", hook, "web"]).expect(0).stderr_has("could not use the tenant database");
        host.run(&["hook", hook, "ghost"]).expect(0);
    }

    // A database colibri-vault cannot use (a newer schema), whose rows are still readable:
    // the tenant's own policy decides, a jail without a tenant starts.
    let (host, _) = web(&["--on-failure", "fail"]);
    host.tenant("shop", &[]);
    host.secrets("shop", "A=1\n");
    sql(&host, "UPDATE colibri_vault_meta SET value = '999' WHERE key = 'schema_version'");
    host.run(&["hook", "start", "web"]).expect(78).stderr_has("newer than this program understands");
    host.run(&["hook", "start", "shop"]).expect(0).stderr_has("policy continue");
    host.run(&["hook", "start", "ghost"]).expect(0);
    host.run(&["hook", "stop", "ghost"]).expect(0);
    assert!(!host.root_of("web").join(".env").exists());
}

#[test]
fn a_bad_row_is_refused_with_its_policy_and_the_others_are_served() {
    let (host, web_root) = web(&[]);
    host.tenant("shop", &["--on-failure", "fail"]);
    host.secrets("shop", "A=1\n");
    host.jail("blog");
    host.secrets("blog", "B=2\n");
    host.insert_raw("blog", &host.root_of("blog"), "blog");
    sql(&host, "INSERT INTO colibri_vault_tenant_options (tenant_id, format) VALUES ('blog', 'xml')");
    sql(&host, "UPDATE colibri_vault_tenant_options SET owner_uid = -5 WHERE tenant_id = 'shop'");

    let list = host.run(&["tenant", "list"]);
    list.expect(78)
        .stderr_has("tenant blog: invalid stored format")
        .stderr_has("tenant shop: invalid stored owner uid");
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(rows.len(), 4, "{}", list.stdout);
    assert!(rows[1].starts_with("blog") && rows[1].contains("invalid"), "{rows:?}");
    assert!(rows[3].starts_with("web") && rows[3].contains(OWNER), "{rows:?}");
    let status = host.run(&["status"]);
    status.expect(78);
    assert!(status.stdout.lines().any(|l| l.starts_with("web ")), "{}", status.stdout);

    let all = host.run(&["provision", "--all"]);
    all.expect(78).stderr_has("tenant blog: invalid stored format");
    assert!(web_root.join(".env").exists(), "the valid tenant is served");
    assert!(names(&host.root_of("blog")).is_empty());
    // A hook reads the policy the bad row still holds.
    host.run(&["hook", "start", "shop"]).expect(78);
    host.run(&["hook", "start", "blog"]).expect(0).stderr_has("invalid stored format");
    // tenant set repairs it.
    host.run(&["tenant", "set", "blog", "--format", "sh"]).expect(0);
    host.run(&["hook", "start", "blog"]).expect(0);
    assert!(host.root_of("blog").join(".env").exists());
}

#[test]
fn a_collection_from_the_database_cannot_reach_outside_the_secrets_dir() {
    let (host, _) = web(&[]);
    let root = host.jail("evil");
    // A root-owned *.env elsewhere on the host, reachable by ../ from the secrets dir.
    let loot = host.path().join("etc/x/loot.env");
    crate::support::host::write_private(&loot, b"HOST_SECRET=host-only-Vv31\n");
    host.insert_raw("evil", &root, "../x/loot");
    let out = host.run(&["provision", "evil"]);
    out.expect(78).stderr_has("invalid stored collection");
    assert!(!out.all_output().contains("host-only-Vv31"));
    assert!(names(&root).is_empty(), "nothing read into the jail");
    host.run(&["hook", "start", "evil"]).expect(0);
    assert!(names(&root).is_empty());
}

#[test]
fn hostile_names_in_the_database_never_reach_the_terminal_raw() {
    let (host, web_root) = web(&[]);
    let evil = "ev\u{1b}]0;pwned\u{7}il\u{1b}[2J";
    host.jail("evil");
    host.insert_raw(evil, &host.root_of("evil"), "evil");
    for args in [
        &["provision", "--all", "--dry-run"][..],
        &["provision", "--all"],
        &["tenant", "list"],
        &["tenant", "list", "--json"],
        &["status"],
        &["status", "--json"],
        &["doctor"],
    ] {
        let out = host.run(args);
        assert_ne!(out.code, Some(0), "{args:?} reports the bad row");
        assert_printable(&out.stdout);
        assert_printable(&out.stderr);
    }
    assert!(web_root.join(".env").exists(), "the other tenant was served");
    assert!(names(&host.root_of("evil")).is_empty());
}

#[test]
fn roots_are_unique_and_never_nested() {
    let (host, web_root) = web(&[]);
    let inner = web_root.join("srv/inner");
    fs::create_dir_all(&inner).unwrap();
    let base = host.base.clone();
    // tenant add|set refuse: the same root, one inside it, one above it.
    for root in [web_root.clone(), inner.clone()] {
        host.run(&["tenant", "add", "other", "--root", s(&root)]).expect(64).stderr_has("root of tenant web");
    }
    fs::create_dir_all(base.join("web2/root")).unwrap();
    host.run(&["tenant", "add", "web2", "--root", s(&base.join("web2/root"))]).expect(0);
    host.run(&["tenant", "set", "web2", "--root", s(&inner)]).expect(64).stderr_has("root of tenant web");
    host.run(&["tenant", "add", "webx", "--root", s(&base.join("web"))]).expect(64);

    // The pipeline refuses rows written around these checks: both tenants of a shared root.
    host.insert_raw("twin", &web_root, "twin");
    host.secrets("twin", "TWIN_SECRET=twin-only-Kk44\n");
    let out = host.run(&["provision", "--all"]);
    out.expect(73).stderr_has("root of tenant twin").stderr_has("root of tenant web");
    assert!(!web_root.join(".env").exists(), "neither tenant writes into the shared root");
    host.run(&["hook", "start", "twin"]).expect(0).stderr_has("each tenant needs a root of its own");
    assert!(!fs::read_dir(&web_root).unwrap().any(|e| e.unwrap().file_name() == ".env"));
    let doctor = host.run(&["doctor"]);
    doctor.expect(78);
    assert!(doctor.stdout.contains("root of its own"), "{}", doctor.stdout);
}

#[test]
fn names_that_change_a_sourcing_shell_are_refused_unless_allowed() {
    let host = Host::new();
    host.secrets(
        "web",
        "PATH=/tmp/evil\nLD_PRELOAD=/tmp/evil.so\ncommand=/tmp/evil\nnginx_user=root\nIFS=x\nAPP_PATH=/srv/app\n",
    );
    let root = host.tenant("web", &[]);
    let out = host.run(&["provision", "web"]);
    out.expect(0);
    for name in ["PATH", "LD_PRELOAD", "command", "nginx_user", "IFS"] {
        out.stderr_has(&format!("{name} skipped"));
    }
    out.stderr_has("--allow-name");
    let text = fs::read_to_string(root.join(".env")).unwrap();
    assert_eq!(text, "APP_PATH='/srv/app'\n");
    host.run(&["tenant", "set", "web", "--allow-name", "PATH", "--allow-name", "command"]).expect(0);
    let show = host.run(&["tenant", "show", "web"]);
    assert!(show.expect(0).stdout.contains("PATH, command"), "{}", show.stdout);
    host.run(&["provision", "web"]).expect(0);
    let text = fs::read_to_string(root.join(".env")).unwrap();
    assert_eq!(text, "APP_PATH='/srv/app'\nPATH='/tmp/evil'\ncommand='/tmp/evil'\n");
    host.run(&["tenant", "set", "web", "--disallow-name", "PATH"]).expect(0);
    host.run(&["provision", "web"]).expect(0);
    assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), "APP_PATH='/srv/app'\ncommand='/tmp/evil'\n");
    host.run(&["tenant", "set", "web", "--allow-name", "not a name"]).expect(64);
}

#[test]
fn operator_output_is_aligned_and_says_what_it_means() {
    let host = Host::new();
    host.secrets("web", "A=1\n");
    host.secrets("a-much-longer-tenant-name", "A=1\nB=2\n");
    host.tenant("web", &["--format", "dotenv", "--owner", "80:80", "--on-failure", "fail"]);
    host.tenant("a-much-longer-tenant-name", &[]);
    host.run(&["provision", "web"]).expect(0).stderr_has("(1 key: A)");
    let list = host.run(&["tenant", "list"]);
    list.expect(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    // Each column starts at the same offset on every line.
    for header in ["STATUS", "FORMAT", "OWNER", "FAILURE", "ROOT"] {
        let at = lines[0].find(header).unwrap();
        for line in &lines[1..] {
            assert_ne!(line.as_bytes()[at], b' ', "{header} column does not start at {at}: {line}");
            assert_eq!(&line[at - 2..at], "  ", "{header} column misaligned:\n{}", list.stdout);
        }
    }
    let status = host.run(&["status"]);
    status.expect(0);
    let lines: Vec<&str> = status.stdout.lines().collect();
    let at = lines[0].find("OUTCOME").unwrap();
    assert!(lines.iter().skip(1).all(|l| l[at - 2..at] == *"  "), "{}", status.stdout);

    let show = host.run(&["tenant", "show", "web"]);
    show.expect(0);
    assert!(
        show.stdout.contains("last provision") && show.stdout.contains("written, manual, 1 key"),
        "{}",
        show.stdout
    );
    let never = host.run(&["tenant", "show", "a-much-longer-tenant-name"]);
    assert!(never.stdout.contains("last provision   never"), "{}", never.stdout);

    host.run(&["provision", "--boot", "web"]).expect(64).stderr_has("--boot goes with --all");
    let help = host.run(&["--help"]);
    help.expect(0);
    assert!(help.stdout.contains("Global options:"), "{}", help.stdout);
    assert!(help.stdout.contains("Exit status") && help.stdout.contains("75  "), "{}", help.stdout);
    let set_help = host.run(&["tenant", "set", "--help"]).stdout;
    assert!(!set_help.contains("[default: .env]") && !set_help.contains("[default: sh]"), "{set_help}");
    assert!(host.run(&["tenant", "add", "--help"]).stdout.contains("[default: .env]"));
}

#[test]
fn untrusted_operator_input_is_refused_or_shown_escaped() {
    use std::os::unix::ffi::OsStrExt;
    let host = Host::new();
    let root = host.jail("web");
    for (flag, value) in [("--collection", "x\u{1b}]0;t\u{7}y"), ("--env-path", "a\u{1b}[2Jb.env")] {
        let out = host.run(&["tenant", "add", "web", "--root", s(&root), flag, value]);
        out.expect(64);
        assert_printable(&out.stderr);
    }
    let evil_root = host.base.join("w\u{1b}[31meb/root");
    let out = host.run(&["tenant", "add", "web", "--root", s(&evil_root)]);
    out.expect(64);
    assert_printable(&out.stderr);
    // A non-UTF-8 env path is refused, not rewritten.
    let out = std::process::Command::new(crate::support::host::BIN)
        .args(["tenant", "add", "web", "--root", s(&root), "--env-path"])
        .arg(std::ffi::OsStr::from_bytes(b"app\xff.env"))
        .env_clear()
        .env("COLIBRI_PROVIDER_ENV", &host.provider_env)
        .env("COLIBRI_DB", &host.db)
        .env("COLIBRI_JAIL_ROOT_BASE", &host.base)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UTF-8"));
    // A root that does not exist yet: accepted, with a warning that says what it means.
    let later = host.base.join("later/root");
    host.run(&["tenant", "add", "later", "--root", s(&later)]).expect(0).stderr_has("does not exist yet");
    assert!(!Path::new(&later).exists());
}

/// The database stays locked by another process while a provision wants to record its
/// outcome: the file is written, but the run fails (75) instead of pretending all is well.
#[test]
fn a_write_that_cannot_be_recorded_is_a_failure() {
    use crate::vault::vault;
    let mut v = vault(&["web"]);
    // The logout's latency leaves time to take the lock between the listing and the record.
    v.fake.set_step_latency("logout", 3.0);
    v.fake.install();
    let child = v.host.command(&["provision", "web"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Once the session lists the vault, take the database's write lock and hold it past the
    // busy timeout (10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !v.steps().iter().any(|s| s == "list items") {
        assert!(std::time::Instant::now() < deadline, "the session never listed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let conn = rusqlite::Connection::open(&v.host.db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = child.wait_with_output().unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("stayed locked"), "{stderr}");
    assert!(v.host.root_of("web").join(".env").exists(), "the file itself was written");
    v.assert_clean();
}

/// What bw prints on stderr reaches messages, the database and `status` only scrubbed of every
/// form of every secret the session knows: the credentials, and the values it fetched.
#[test]
fn bw_stderr_is_scrubbed_of_encoded_credentials_and_session_values() {
    use crate::support::fake_bw::{Account, Fault};
    use crate::vault::vault;
    use base64::Engine as _;
    let account = Account::default();
    let b64 = base64::engine::general_purpose::STANDARD;
    let pct =
        |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
    let basic = b64.encode(format!("{}:{}", account.client_id, account.client_secret));
    let stderr = format!(
        "request failed: Authorization: Basic {basic}\nbody: client_secret={}&password={}\njson: {}",
        pct(&account.client_secret),
        pct(&account.master_password).replace("%20", "+"),
        serde_json::json!({ "password": account.master_password })
    );
    let mut v = vault(&["web"]);
    v.fake.fault(Fault::fail("list items", 1, &stderr));
    v.fake.install();
    let out = v.host.run(&["provision", "web"]);
    out.expect(69).stderr_has("[redacted]");
    let status = v.host.run(&["status", "--json"]);
    let db = String::from_utf8_lossy(&fs::read(&v.host.db).unwrap()).into_owned();
    let forms = [
        account.client_secret.clone(),
        basic.clone(),
        basic[8..40].to_owned(),
        pct(&account.client_secret),
        pct(&account.master_password).replace("%20", "+"),
        account.master_password.clone(),
    ];
    for text in [&out.all_output(), &status.stdout, &db] {
        for form in &forms {
            assert!(!text.contains(form.as_str()), "{form} leaked into:\n{text}");
        }
    }
    v.assert_clean();

    // A value fetched in the session, echoed by a later call (logout fails after the listing).
    let mut v = vault(&["web"]);
    let value = "pw-of-web";
    let leaked = format!("logout: server said {} / {}", b64.encode(format!("x:{value}:y")), pct(value));
    v.fake.fault(Fault::fail("logout", 1, &leaked));
    v.fake.install();
    let out = v.host.run(&["provision", "web"]);
    assert_ne!(out.code, Some(0));
    out.stderr_has("[redacted]");
    assert!(!out.all_output().contains(&b64.encode(format!("x:{value}:y"))[4..12]), "{}", out.stderr);
    assert!(!out.all_output().contains(value));
}

#[test]
fn a_bw_server_with_userinfo_or_plain_http_is_refused_without_echoing_it() {
    use crate::vault::vault;
    for url in
        ["https://admin:hunter2-Pw@vault.example.org", "http://admin:hunter2-Pw@vault.example.org:8080"]
    {
        let v = vault(&["web"]);
        v.host.append_provider_env(&format!("BW_SERVER={url}\n"));
        let out = v.host.run(&["provision", "web"]);
        out.expect(78).stderr_has("BW_SERVER");
        assert!(!out.all_output().contains("hunter2"), "{}", out.stderr);
        assert!(v.fake.calls().is_empty(), "bw never ran");
        let doctor = v.host.run(&["doctor"]);
        assert!(!doctor.all_output().contains("hunter2"), "{}", doctor.all_output());
    }
}

/// `tenant …`, `status` and `jail …` need no credentials: a provider env too open to hold them
/// still gives its settings (with a warning that says what to fix); commands that use the
/// credentials still refuse it.
#[test]
fn commands_without_credentials_work_with_a_too_open_provider_env() {
    use std::os::unix::fs::PermissionsExt;
    let (host, _) = web(&[]);
    // The database is named only in the provider env: it must still be found.
    let db = host.path().join("elsewhere/colibri.sqlite");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    fs::copy(&host.db, &db).unwrap();
    let mut host = host;
    host.set_env("COLIBRI_DB", "");
    host.append_provider_env(&format!("COLIBRI_DB={}\nBW_PASSWORD='not-read-Uu73'\n", db.display()));
    fs::set_permissions(&host.provider_env, fs::Permissions::from_mode(0o644)).unwrap();
    for args in [&["tenant", "list"][..], &["tenant", "show", "web"], &["status"]] {
        let out = host.run(args);
        out.expect(0).stderr_has("chmod 600").stderr_has("needs no credentials");
        assert!(out.stdout.contains("web"), "{args:?} used the provider env's COLIBRI_DB: {}", out.stdout);
    }
    host.run(&["provision", "web"]).expect(77).stderr_has("chmod 600");
    // Writable by others: its settings cannot be trusted either.
    fs::set_permissions(&host.provider_env, fs::Permissions::from_mode(0o666)).unwrap();
    host.run(&["tenant", "list"]).expect(77);
}
