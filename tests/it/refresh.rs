//! `refresh` (issue 11, part 1) through the built binary, with the fake bw and a fake jexec:
//! one vault session, only changed files rewritten, the on-change command run once inside the
//! jail for each tenant whose content changed (never with a secret in its argv or environment),
//! failures and hangs reported without a retry, and the provision log and `status` telling it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::host::{FileState, file_state, set_mtime};
use crate::support::jexec::FakeJexec;
use crate::vault::{SESSION, Vault, vault};

/// The Login item holding tenant number `i`'s `DB_PASSWORD` (see `vault()`).
fn password_item(i: usize) -> String {
    format!("10000000-0000-4000-8000-{i:012}")
}

/// A vault for `tenants` with a fake jexec (`stopped`: jails it says are not running), each
/// tenant provisioned once, with the on-change command `commands[i]` (if any).
fn setup(tenants: &[&str], commands: &[Option<&str>], stopped: &[&str]) -> (Vault, FakeJexec) {
    let mut v = vault(tenants);
    let jexec = FakeJexec::install(&v.host.path().join("fakejexec"), &v.host.base, stopped);
    v.host.set_env("COLIBRI_JEXEC", jexec.path.as_os_str());
    for (name, command) in tenants.iter().zip(commands) {
        if let Some(command) = command {
            v.host.run(&["tenant", "set", name, "--on-change", command]).expect(0);
        }
    }
    v.host.run(&["provision", "--all"]).expect(0);
    (v, jexec)
}

fn env_file(v: &Vault, jail: &str) -> std::path::PathBuf {
    v.host.root_of(jail).join(".env")
}

/// The env file's state, with its mtime moved back so that any rewrite shows.
fn aged(v: &Vault, jail: &str) -> FileState {
    set_mtime(&env_file(v, jail), SystemTime::now() - Duration::from_secs(3600));
    file_state(&env_file(v, jail))
}

/// How many times the command ran in `jail` (each run appends a line to `ran.log` there).
fn runs(v: &Vault, jail: &str) -> usize {
    std::fs::read_to_string(v.host.root_of(jail).join("ran.log")).map_or(0, |t| t.lines().count())
}

/// The newest provision-log row of `tenant`: trigger, outcome, `changed_keys`, `on_change`.
fn last_row(db: &Path, tenant: &str) -> (String, String, Option<String>, Option<String>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT trigger, outcome, changed_keys, on_change FROM colibri_vault_provision_log
         WHERE tenant_id = ?1 ORDER BY id DESC LIMIT 1",
        [tenant],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

fn status_of(v: &Vault, tenant: &str) -> serde_json::Value {
    let out = v.host.run(&["status", tenant, "--json"]);
    out.expect(0);
    serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}

#[test]
fn a_changed_value_is_rewritten_and_its_command_runs_once_inside_the_jail() {
    let (mut v, jexec) = setup(
        &["web", "shop", "quiet"],
        &[Some("echo ran >> ran.log; echo reloaded"), None, Some("echo ran >> ran.log")],
        &[],
    );
    let logins = |v: &Vault| v.steps().iter().filter(|s| *s == "login").count();
    assert_eq!(logins(&v), 1);

    // Nothing changed in the vault: nothing is written and nothing runs.
    let before: Vec<FileState> = ["web", "shop", "quiet"].iter().map(|j| aged(&v, j)).collect();
    v.host.run(&["refresh", "--all"]).expect(0);
    let after: Vec<FileState> =
        ["web", "shop", "quiet"].iter().map(|j| file_state(&env_file(&v, j))).collect();
    assert_eq!(before, after, "unchanged files keep their bytes, inode and mtime");
    assert!(jexec.calls().is_empty(), "{:?}", jexec.calls());
    assert_eq!(logins(&v), 2, "one session for every tenant");
    assert_eq!(
        last_row(&v.host.db, "web"),
        ("refresh".into(), "unchanged".into(), Some(String::new()), None)
    );

    // web's and shop's passwords are rotated: both files change, and only web has a command.
    v.fake.set_password(&password_item(0), "rotated-web-pw");
    v.fake.set_password(&password_item(1), "rotated-shop-pw");
    v.fake.install();
    let quiet = aged(&v, "quiet");
    let out = v.host.run(&["refresh", "--all"]);
    out.expect(0);
    assert_eq!(logins(&v), 3);
    assert_eq!(v.steps()[v.steps().len() - (SESSION.len() - 1)..], SESSION[1..], "one session, config done");
    assert!(std::fs::read_to_string(env_file(&v, "web")).unwrap().contains("DB_PASSWORD='rotated-web-pw'"));
    assert!(std::fs::read_to_string(env_file(&v, "shop")).unwrap().contains("DB_PASSWORD='rotated-shop-pw'"));
    assert_eq!(file_state(&env_file(&v, "quiet")), quiet);
    assert_eq!((runs(&v, "web"), runs(&v, "quiet")), (1, 0));
    out.stderr_has("jail web: wrote").stderr_has("changed: DB_PASSWORD");
    out.stderr_has("jail web: on-change command ran inside the jail (exit 0); stdout: reloaded");

    // Inside the jail, as jexec -l, with no secret in its argv or environment.
    let calls = jexec.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].args, ["-l", "web", "/bin/sh", "-c", "echo ran >> ran.log; echo reloaded"]);
    let env: Vec<&str> = calls[0]
        .env
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with("PWD=") && !e.starts_with("SHLVL=") && !e.starts_with("_="))
        .collect();
    assert_eq!(env, ["PATH=/sbin:/bin:/usr/sbin:/usr/bin"]);
    let account = crate::support::fake_bw::Account::default();
    let everything = format!("{calls:?}");
    for secret in ["rotated-web-pw", "pw-of-web", account.client_secret.as_str(), &account.master_password] {
        assert!(!everything.contains(secret), "{secret} reached jexec");
    }

    // The log: trigger refresh, the names that changed, the command's outcome; `status` too.
    assert_eq!(
        last_row(&v.host.db, "web"),
        ("refresh".into(), "written".into(), Some("DB_PASSWORD".into()), Some("ok".into()))
    );
    assert_eq!(
        last_row(&v.host.db, "shop"),
        ("refresh".into(), "written".into(), Some("DB_PASSWORD".into()), None)
    );
    let web = status_of(&v, "web");
    assert_eq!(web["last_refresh"]["outcome"], "written");
    assert_eq!(web["last_refresh"]["changed_keys"], serde_json::json!(["DB_PASSWORD"]));
    assert_eq!(web["last_refresh"]["on_change"], "ok");
    let text = v.host.run(&["status"]);
    assert!(
        text.stdout.contains("LAST REFRESH") && text.stdout.contains("written, on-change ok"),
        "{}",
        text.stdout
    );
    let show = v.host.run(&["tenant", "show", "web"]);
    assert!(show.stdout.contains("changed: DB_PASSWORD, on-change ok"), "{}", show.stdout);
    for file in [v.host.db.clone(), v.host.db.with_extension("sqlite-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!bytes.windows(14).any(|w| w == b"rotated-web-pw"), "a value in {}", file.display());
    }

    // Nothing changed since: the command does not run again.
    v.host.run(&["refresh", "web"]).expect(0);
    assert_eq!(runs(&v, "web"), 1);
    assert_eq!(jexec.calls().len(), 1);
    v.assert_clean();
}

#[test]
fn a_failing_or_hanging_command_is_reported_keeps_the_new_file_and_is_not_run_again() {
    let marker = "grandchild-survived";
    let (mut v, jexec) = setup(&["web"], &[Some("echo ran >> ran.log; echo broken >&2; exit 3")], &[]);
    v.fake.set_password(&password_item(0), "second-pw");
    v.fake.install();
    let out = v.host.run(&["refresh", "web"]);
    out.expect(69).stderr_has("jail web: on-change command exited with status 3; stderr: broken");
    out.stderr_has("the env file stays the new one");
    assert!(std::fs::read_to_string(env_file(&v, "web")).unwrap().contains("second-pw"));
    assert_eq!(last_row(&v.host.db, "web").3.as_deref(), Some("failed: exited with status 3"));
    assert_eq!(status_of(&v, "web")["last_refresh"]["on_change"], "failed: exited with status 3");
    // Not retried: the content did not change again.
    v.host.run(&["refresh", "web"]).expect(0);
    assert_eq!((runs(&v, "web"), jexec.calls().len()), (1, 1));

    // A command that hangs (and leaves a grandchild behind) is killed with its process group.
    let hang = format!("echo ran >> ran.log; (sleep 3; touch {marker}) & sleep 60");
    v.host.run(&["tenant", "set", "web", "--on-change", &hang]).expect(0);
    v.fake.set_password(&password_item(0), "third-pw");
    v.fake.install();
    v.host.set_env("COLIBRI_ON_CHANGE_TIMEOUT", "1");
    let out = v.host.run_bounded(&["refresh", "web"]);
    out.expect(69).stderr_has("did not finish within 1 s (COLIBRI_ON_CHANGE_TIMEOUT) and was killed");
    assert!(std::fs::read_to_string(env_file(&v, "web")).unwrap().contains("third-pw"));
    assert_eq!(runs(&v, "web"), 2);
    v.host.run(&["refresh", "web"]).expect(0);
    assert_eq!(runs(&v, "web"), 2, "a hung command is not run again either");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!v.host.root_of("web").join(marker).exists(), "the command's process group was killed");
    v.assert_clean();
}

#[test]
fn a_jail_that_is_not_running_is_reported_and_the_others_are_served() {
    let cmd = Some("echo ran >> ran.log");
    let (mut v, jexec) = setup(&["up", "down"], &[cmd, cmd], &["down"]);
    for i in 0..2 {
        v.fake.set_password(&password_item(i), &format!("new-pw-{i}"));
    }
    v.fake.install();
    let out = v.host.run(&["refresh", "--all"]);
    // On FreeBSD the kernel says "not running" first (no command, no failure); here, without a
    // kernel to ask, jexec's refusal is the report.
    out.expect(69).stderr_has(
        "jail down: on-change command exited with status 1; stderr: jexec: jail \"down\" not found",
    );
    assert_eq!(runs(&v, "up"), 1);
    assert!(
        std::fs::read_to_string(env_file(&v, "down")).unwrap().contains("new-pw-1"),
        "written all the same"
    );
    assert_eq!(jexec.calls_for("up").len(), 1);
    // A session that fails changes nothing and runs nothing.
    v.fake.set_password(&password_item(0), "newer-pw");
    v.fake.fault(crate::support::fake_bw::Fault::fail("list items", 1, "Something broke"));
    v.fake.install();
    v.host.run(&["refresh", "--all"]).expect(69).stderr_has("Something broke");
    assert_eq!((runs(&v, "up"), jexec.calls().len()), (1, 2));
    assert!(std::fs::read_to_string(env_file(&v, "up")).unwrap().contains("new-pw-0"));
    v.assert_clean();
}

#[test]
fn what_the_command_prints_is_logged_without_the_tenants_values() {
    // A careless command that prints the env file it was told about, and a copy of the one
    // before (the rotated-away values are secrets too).
    let (mut v, _jexec) = setup(&["web"], &[Some("cat old.env .env; printf 'bell\\007\\n' >&2")], &[]);
    std::fs::copy(env_file(&v, "web"), v.host.root_of("web").join("old.env")).unwrap();
    v.fake.set_password(&password_item(0), "printed-secret-value");
    v.fake.install();
    let out = v.host.run(&["-v", "refresh", "web"]);
    out.expect(0).stderr_has("DB_PASSWORD='[redacted]'").stderr_has("stderr: bell\\x07");
    for value in ["printed-secret-value", "pw-of-web", "https://api.example/$x"] {
        assert!(!out.all_output().contains(value), "{value}: {}", out.all_output());
    }
    assert!(!out.all_output().contains('\u{7}'));
    v.assert_clean();
}

#[test]
fn a_signal_during_the_command_kills_it_and_the_run_ends_with_its_status() {
    let (mut v, _jexec) = setup(&["web"], &[Some("echo ran >> ran.log; sleep 60")], &[]);
    v.fake.set_password(&password_item(0), "fourth-pw");
    v.fake.install();
    let child = v.host.spawn(&["refresh", "web"]);
    let pid = i32::try_from(child.id()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while runs(&v, "web") == 0 {
        assert!(std::time::Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals the colibri-vault this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = crate::support::host::bounded(child, Duration::from_secs(30));
    assert_eq!(out.code, Some(143), "{}", out.stderr);
    assert_eq!(last_row(&v.host.db, "web").3.as_deref(), Some("not finished: interrupted by signal 15"));
    assert!(std::fs::read_to_string(env_file(&v, "web")).unwrap().contains("fourth-pw"));
    v.assert_clean();
}

#[test]
fn on_change_commands_are_validated_and_cleared() {
    let v = vault(&["web"]);
    for bad in ["", "   ", "reload\nrm -rf /", "a\u{1b}[2Jb", "-i"] {
        let arg = format!("--on-change={bad}");
        v.host.run(&["tenant", "set", "web", &arg]).expect(64).stderr_has("on-change command");
    }
    let long = "x".repeat(1025);
    v.host.run(&["tenant", "set", "web", "--on-change", &long]).expect(64);
    v.host.run(&["tenant", "set", "web", "--on-change", "service nginx reload"]).expect(0);
    let show = v.host.run(&["tenant", "show", "web", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(json["on_change"], "service nginx reload");
    v.host.run(&["tenant", "set", "web", "--no-on-change"]).expect(0);
    let show = v.host.run(&["tenant", "show", "web", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&show.stdout).unwrap()["on_change"],
        serde_json::Value::Null
    );
    // A bad value stored by another program is a bad row, reported like any other.
    let conn = rusqlite::Connection::open(&v.host.db).unwrap();
    conn.execute("UPDATE colibri_vault_tenant_options SET on_change = 'a\nb' WHERE tenant_id = 'web'", [])
        .unwrap();
    v.host.run(&["tenant", "show", "web"]).expect(78).stderr_has("invalid stored on-change command");
    v.host.run(&["refresh", "web"]).expect(78);
}

/// `refresh` with delivery memory and layout both (issue 11 with issue 10): the whole set in
/// the memory file system is swapped in, the command runs once, nothing reaches the jail's
/// disk, and an unchanged vault runs nothing.
#[cfg(target_os = "linux")]
#[test]
fn refresh_swaps_a_memory_delivered_set_and_runs_the_command_once() {
    use crate::support::mounts::{self, Unmount};
    mounts::private("refresh with delivery memory (tmpfs and a read-only bind mount)", || {
        let mut v = vault(&["web"]);
        let _unmount = Unmount(v.host.path().to_owned());
        let jexec = FakeJexec::install(&v.host.path().join("fakejexec"), &v.host.base, &[]);
        v.host.set_env("COLIBRI_JEXEC", jexec.path.as_os_str());
        let root = v.host.root_of("web");
        v.host
            .run(&[
                "tenant",
                "set",
                "web",
                "--delivery",
                "memory",
                "--layout",
                "both",
                "--on-change",
                "echo ran >> /tmp/ran.log",
            ])
            .expect(0);
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        v.host.run(&["hook", "start", "web", root.to_str().unwrap()]).expect(0);
        let view = root.join("var/run/secrets");
        let read = |name: &str| std::fs::read_to_string(view.join(name)).unwrap();
        assert_eq!(read("DB_PASSWORD"), "pw-of-web");

        v.host.run(&["refresh", "web"]).expect(0);
        assert!(jexec.calls().is_empty(), "nothing changed, nothing runs");

        v.fake.set_password(&password_item(0), "rotated-in-memory");
        v.fake.install();
        let out = v.host.run(&["refresh", "web"]);
        out.expect(0).stderr_has("changed: DB_PASSWORD");
        assert_eq!(read("DB_PASSWORD"), "rotated-in-memory");
        assert!(read(".env").contains("DB_PASSWORD='rotated-in-memory'"));
        assert_eq!(jexec.calls().len(), 1, "{:?}", jexec.calls());
        assert_eq!(
            last_row(&v.host.db, "web"),
            ("refresh".into(), "written".into(), Some("DB_PASSWORD".into()), Some("ok".into()))
        );
        v.host.run(&["refresh", "web"]).expect(0);
        assert_eq!(jexec.calls().len(), 1, "not run again while nothing changes");
        v.host.run(&["hook", "stop", "web", root.to_str().unwrap()]).expect(0);
        assert!(!view.join("DB_PASSWORD").exists(), "gone at stop");
        v.assert_clean();
    });
}
