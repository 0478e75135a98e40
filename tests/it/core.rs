//! The pipeline through the built binary with the `dir` source: what gets written, with which
//! bytes, mode and owner; when nothing is written; failure policies; configuration errors;
//! unchanged content; the `sh` file read back by the real /bin/sh.
//!
//! Hostile jail roots are in `hostile.rs`, the operator's verbs and the provision log in
//! `operator.rs`, the format round-trip properties in `formats.rs`.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::support::host::{Host, file_state, names, set_mtime};

/// Owner of the env files in these tests: not root, so that a missing chown shows.
pub const OWNER: &str = "1234:5678";

/// Distinctive values (each must appear nowhere but in the env file) in the `dir` source's
/// syntax, sh's: single quotes are literal, in double quotes a backslash escapes only `"`, `\`,
/// `$`, `` ` `` and a newline, and a newline inside quotes belongs to the value.
pub const SECRETS: &str = "# the web tenant\n\
    DB_PASSWORD='pw-Qx7\"$HOME`id`\\n-end'\n\
    export API_KEY=key-Zr81Lw04\n\
    GREETING=\"it's \\\"quoted\\\"\nline-Tq2\"\n";

/// The values `SECRETS` means, by name, sorted.
pub const VALUES: [(&str, &str); 3] = [
    ("API_KEY", "key-Zr81Lw04"),
    ("DB_PASSWORD", "pw-Qx7\"$HOME`id`\\n-end"),
    ("GREETING", "it's \"quoted\"\nline-Tq2"),
];

/// `SECRETS` rendered in the default `sh` format.
pub const EXPECTED_SH: &str = "API_KEY='key-Zr81Lw04'\n\
    DB_PASSWORD='pw-Qx7\"$HOME`id`\\n-end'\n\
    GREETING='it'\\''s \"quoted\"\nline-Tq2'\n";

/// A host with tenant `web` (owner `OWNER`, `extra` options) and its secrets; returns the
/// host and the jail root.
pub fn web(extra: &[&str]) -> (Host, std::path::PathBuf) {
    let host = Host::new();
    host.secrets("web", SECRETS);
    let mut options = vec!["--owner", OWNER];
    options.extend_from_slice(extra);
    let root = host.tenant("web", &options);
    (host, root)
}

pub fn s(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_jail_without_a_tenant_is_a_quiet_no_op() {
    let (host, _) = web(&[]);
    let ghost = host.jail("ghost");
    let out = host.run(&["hook", "start", "ghost", s(&ghost)]);
    out.expect(0);
    assert_eq!(out.stderr, "", "a hook for an unregistered jail says nothing by default");
    assert!(names(&ghost).is_empty(), "nothing written");
    // Named explicitly, an unknown tenant is an error (EX_NOINPUT).
    host.run(&["provision", "ghost"]).expect(66).stderr_has("no tenant is registered for jail ghost");
    assert!(names(&ghost).is_empty());
}

#[test]
fn a_tenant_gets_exactly_the_expected_bytes_mode_and_owner() {
    let (host, root) = web(&[]);
    let out = host.run(&["hook", "start", "web", s(&root)]);
    out.expect(0).stderr_has("3 keys: API_KEY, DB_PASSWORD, GREETING");
    let state = file_state(&root.join(".env"));
    assert_eq!(String::from_utf8(state.bytes).unwrap(), EXPECTED_SH);
    assert_eq!(state.mode, 0o600);
    assert_eq!((state.uid, state.gid), (1234, 5678));
    assert_eq!(names(&root), [".env"], "no temporary file left after success");
    assert_eq!(out.stdout, "");
}

#[test]
fn dotenv_and_json_formats_and_a_nested_env_path() {
    let (host, root) = web(&["--format", "dotenv", "--env-path", "usr/local/etc/app.env"]);
    fs::create_dir_all(root.join("usr/local/etc")).unwrap();
    host.run(&["provision", "web"]).expect(0);
    assert_eq!(
        fs::read_to_string(root.join("usr/local/etc/app.env")).unwrap(),
        "API_KEY=\"key-Zr81Lw04\"\n\
         DB_PASSWORD=\"pw-Qx7\\\"\\$HOME\"'`'\"id\"'`'\"\\\\n-end\"\n\
         GREETING=\"it's \\\"quoted\\\"\nline-Tq2\"\n"
    );
    assert!(!root.join(".env").exists());

    host.run(&["tenant", "set", "web", "--format", "json"]).expect(0);
    host.run(&["provision", "web"]).expect(0);
    let text = fs::read_to_string(root.join("usr/local/etc/app.env")).unwrap();
    let parsed: std::collections::BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
    let expected: std::collections::BTreeMap<String, String> =
        VALUES.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    assert_eq!(parsed, expected);
    assert!(text.ends_with("}\n"));
    assert_eq!(names(&root.join("usr/local/etc")), ["app.env"]);
}

#[test]
fn a_missing_env_directory_is_not_created() {
    let (host, root) = web(&["--env-path", "usr/local/etc/app.env", "--on-failure", "fail"]);
    host.run(&["hook", "start", "web"]).expect(73).stderr_has("does not exist");
    assert!(names(&root).is_empty());
}

#[test]
fn the_sh_file_sourced_by_bin_sh_gives_back_the_exact_values() {
    let (host, root) = web(&[]);
    host.run(&["hook", "start", "web", s(&root)]).expect(0);
    let out_dir = host.path().join("sourced");
    fs::create_dir(&out_dir).unwrap();
    // Each value printed with printf '%s' into its own file: no newline ambiguity. `set -a`
    // as rc.subr's ${name}_env_file handling does; `env` of a child shows the export worked.
    let mut script = String::from("set -a; . \"$1\"; set +a\n");
    for (name, _) in VALUES {
        let _ = writeln!(script, "printf '%s' \"${name}\" > \"$2/{name}\"");
        let _ = writeln!(script, "env | grep -q '^{name}=' || echo 'not exported: {name}' >&2");
    }
    let out = Command::new("/bin/sh")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-c", &script, "sh", s(&root.join(".env")), s(&out_dir)])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    for (name, value) in VALUES {
        assert_eq!(fs::read_to_string(out_dir.join(name)).unwrap(), value, "{name}");
    }
}

#[test]
fn the_path_given_by_the_hook_must_be_the_registered_root() {
    let (host, root) = web(&["--on-failure", "fail"]);
    let elsewhere = host.jail("other");
    let out = host.run(&["hook", "start", "web", s(&elsewhere)]);
    out.expect(73).stderr_has("refused: the jail's path").stderr_has("differs from the registered root");
    assert!(names(&root).is_empty() && names(&elsewhere).is_empty());
    // The same root with a trailing slash (as ${path} may come) is the same root.
    host.run(&["hook", "start", "web", &format!("{}/", s(&root))]).expect(0);
    assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), EXPECTED_SH);
}

#[test]
fn on_failure_continue_exits_0_and_fail_exits_non_zero_both_saying_why() {
    let (host, root) = web(&[]);
    host.run(&["hook", "start", "web"]).expect(0);
    let before = file_state(&root.join(".env"));
    fs::remove_file(host.secrets_path("web")).unwrap();
    host.append_provider_env("COLIBRI_FRESH_FOR=0\n");

    let out = host.run(&["hook", "start", "web", s(&root)]);
    out.expect(0)
        .stderr_has("collection web does not exist")
        .stderr_has("provisioning failed (status 66); policy continue");
    assert_eq!(file_state(&root.join(".env")), before, "policy continue keeps the existing file");

    host.run(&["tenant", "set", "web", "--on-failure", "fail"]).expect(0);
    let out = host.run(&["hook", "start", "web", s(&root)]);
    out.expect(66)
        .stderr_has("collection web does not exist")
        .stderr_has("so jail(8) does not start the jail");
    assert_eq!(file_state(&root.join(".env")), before);
}

#[test]
fn duplicate_names_exit_65_and_leave_the_existing_file_unchanged() {
    let (host, root) = web(&["--on-failure", "fail"]);
    host.append_provider_env("COLIBRI_FRESH_FOR=0\n");
    host.run(&["provision", "web"]).expect(0);
    set_mtime(&root.join(".env"), SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let before = file_state(&root.join(".env"));
    host.secrets("web", &format!("{SECRETS}API_KEY=dup-Vn55Ke\n"));
    let secrets = host.secrets_path("web");
    let out = host.run(&["provision", "web"]);
    out.expect(65)
        .stderr_has("duplicate variable API_KEY")
        .stderr_has(&format!("{}:3", secrets.display()))
        .stderr_has(&format!("{}:6", secrets.display()));
    assert!(!out.all_output().contains("dup-Vn55Ke") && !out.all_output().contains("key-Zr81Lw04"));
    assert_eq!(file_state(&root.join(".env")), before);
    // Through a hook with policy fail too.
    host.run(&["hook", "start", "web"]).expect(65);
    assert_eq!(file_state(&root.join(".env")), before);
    assert_eq!(names(&root), [".env"]);
}

#[test]
fn unchanged_secrets_keep_the_file_and_its_mtime() {
    let (host, root) = web(&[]);
    let env = root.join(".env");
    host.run(&["provision", "web"]).expect(0);
    // An old mtime, so that any rewrite shows however coarse the clock.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    set_mtime(&env, old);
    let before = file_state(&env);
    host.run(&["provision", "web"]).expect(0).stderr_has("unchanged (3 keys)");
    assert_eq!(file_state(&env), before, "same inode, bytes and mtime");
    assert_eq!(before.mtime, old);

    // Changed secrets: replaced (a new inode: written beside, renamed over), still 0600.
    host.secrets("web", &format!("{SECRETS}NEW_KEY=new-Jd63\n"));
    host.run(&["provision", "web"]).expect(0).stderr_has("4 keys");
    let after = file_state(&env);
    assert_ne!(after.ino, before.ino);
    assert_ne!(after.mtime, old);
    assert!(String::from_utf8(after.bytes).unwrap().ends_with("NEW_KEY='new-Jd63'\n"));
    assert_eq!((after.mode, after.uid, after.gid), (0o600, 1234, 5678));

    // Same bytes but a loosened mode or another owner: rewritten 0600 with the configured owner.
    fs::set_permissions(&env, fs::Permissions::from_mode(0o644)).unwrap();
    host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
    assert_eq!(file_state(&env).mode, 0o600);
    host.run(&["tenant", "set", "web", "--owner", "80:80"]).expect(0);
    host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
    let state = file_state(&env);
    assert_eq!((state.uid, state.gid), (80, 80));
}

#[test]
fn a_hook_within_the_freshness_window_skips_the_source() {
    let (host, root) = web(&[]);
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("wrote");
    // Changed at the source: a hook inside the window does not ask it; `provision` does.
    host.secrets("web", &format!("{SECRETS}NEW_KEY=new-Jd63\n"));
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("is fresh; vault not asked");
    assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), EXPECTED_SH);
    // A file tampered with in the jail is not fresh.
    fs::write(root.join(".env"), "API_KEY='x'\n").unwrap();
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("wrote");
    assert!(fs::read_to_string(root.join(".env")).unwrap().contains("NEW_KEY='new-Jd63'"));
}

#[test]
fn an_open_provider_env_is_refused_with_the_fix() {
    let (host, root) = web(&[]);
    fs::set_permissions(&host.provider_env, fs::Permissions::from_mode(0o644)).unwrap();
    let out = host.run(&["provision", "web"]);
    out.expect(77)
        .stderr_has("accessible by group or others (mode 0644)")
        .stderr_has(&format!("fix it with: chmod 600 {}", host.provider_env.display()));
    assert!(names(&root).is_empty());
    // Hooks go through the tenant's failure policy even then: `continue` lets the jail start,
    // `fail` stops it, and a jail without a tenant is never blocked.
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("chmod 600").stderr_has("policy continue");
    // `tenant set` needs no credentials: it goes on, and says what to fix.
    host.run(&["tenant", "set", "web", "--on-failure", "fail"])
        .expect(0)
        .stderr_has("chmod 600")
        .stderr_has("needs no credentials");
    fs::set_permissions(&host.provider_env, fs::Permissions::from_mode(0o644)).unwrap();
    host.run(&["hook", "start", "web"]).expect(77).stderr_has("policy fail");
    host.run(&["hook", "start", "no-tenant-here"]).expect(0).stderr_has("chmod 600");
    assert!(names(&root).is_empty());
}

#[test]
fn an_open_secrets_file_is_refused() {
    let (host, root) = web(&[]);
    fs::set_permissions(host.secrets_path("web"), fs::Permissions::from_mode(0o640)).unwrap();
    host.run(&["provision", "web"])
        .expect(77)
        .stderr_has(&format!("fix it with: chmod 600 {}", host.secrets_path("web").display()));
    assert!(names(&root).is_empty());
}

#[test]
fn without_a_database_a_hook_is_a_quiet_no_op_and_provision_an_error() {
    let host = Host::new();
    host.secrets("web", SECRETS);
    let root = host.jail("web");
    for args in [["hook", "start", "web", s(&root)], ["hook", "stop", "web", s(&root)]] {
        let out = host.run(&args);
        out.expect(0);
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""), "{args:?}");
    }
    assert!(!host.db.exists(), "a hook does not create the database");
    assert!(names(&root).is_empty());
    host.run(&["provision", "web"])
        .expect(78)
        .stderr_has(&format!("tenant database {} does not exist", host.db.display()));
    assert!(!host.db.exists());
}

#[test]
fn provision_all_serves_every_tenant_and_reports_the_first_failure() {
    let (host, root) = web(&[]);
    host.secrets("shop", "SHOP_TOKEN=tok-Hh27\n");
    let shop = host.tenant("shop", &[]);
    std::os::unix::fs::symlink(host.path().join("nowhere"), shop.join(".env")).unwrap();
    let out = host.run(&["provision", "--all"]);
    out.expect(73).stderr_has("jail shop: could not write");
    assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), EXPECTED_SH);
    assert!(!host.path().join("nowhere").exists());
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
    let (host, root) = web(&["--on-failure", "fail"]);
    host.append_provider_env("COLIBRI_FRESH_FOR=0\n");
    host.run(&["provision", "web"]).expect(0);
    let before = file_state(&root.join(".env"));
    // A value larger than the file-size limit the binary runs under: the temporary file is
    // created and its write fails (EFBIG).
    host.secrets("web", &format!("{SECRETS}BIG={}\n", "b".repeat(300_000)));
    let out = host.run_with_file_size_limit(400, &["hook", "start", "web"]);
    out.expect(73).stderr_has("could not write");
    assert_eq!(file_state(&root.join(".env")), before);
    assert_eq!(names(&root), [".env"], "the temporary file was removed");
}

#[test]
fn a_nul_in_a_value_is_bad_data() {
    let (host, root) = web(&["--on-failure", "fail"]);
    host.secrets("web", "API_KEY='nul\0here'\n");
    host.run(&["hook", "start", "web"]).expect(65).stderr_has("contains a NUL byte");
    assert!(names(&root).is_empty());
}

/// Invariant 4 watched as it happens, not inferred from the final file: fanotify holds
/// colibri-vault at each open of a file in the jail root and at each read (the permission events
/// are answered only after the test has looked). The temporary file is seen the instant it
/// exists, before any `fchmod`, `fchown` or write could change it: 0600 and empty. It is seen
/// again when colibri-vault reads it back, which comes before the rename: 0600, the configured
/// owner, the whole content.
#[cfg(target_os = "linux")]
#[test]
fn the_temporary_file_is_0600_from_creation_and_owned_before_the_rename() {
    use nix::sys::fanotify::{
        EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response,
    };
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (host, root) = web(&[]);
    let fan = match Fanotify::init(
        InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE,
    ) {
        Ok(fan) => fan,
        Err(e) => return crate::support::skip("watching the temporary file", &format!("fanotify: {e}")),
    };
    let mask = MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_ACCESS_PERM | MaskFlags::FAN_EVENT_ON_CHILD;
    fan.mark(MarkFlags::FAN_MARK_ADD, mask, nix::fcntl::AT_FDCWD, Some(&root)).expect("fanotify_mark");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Every open and read of a file in the root, as the file was before the call returned.
            let mut seen: Vec<Seen> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let events = match fan.read_events() {
                    Ok(events) => events,
                    Err(nix::errno::Errno::EAGAIN) => {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    Err(e) => panic!("fanotify read: {e}"),
                };
                for event in events {
                    let fd = event.fd().expect("no queue overflow");
                    let st = nix::sys::stat::fstat(fd).expect("fstat");
                    let path = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("fd path");
                    seen.push(Seen {
                        open: event.mask().contains(MaskFlags::FAN_OPEN_PERM),
                        name: path.file_name().unwrap().to_string_lossy().into_owned(),
                        mode: st.st_mode & 0o7777,
                        owner: (st.st_uid, st.st_gid),
                        size: st.st_size,
                    });
                    fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW)).expect("allow");
                }
            }
            seen
        })
    };
    for i in 0..3 {
        // A new value each time, so every run writes a new file.
        host.secrets("web", &format!("{SECRETS}RUN='{i}'\n"));
        host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
    }
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("watcher");

    let final_state = file_state(&root.join(".env"));
    assert_eq!((final_state.mode, final_state.uid, final_state.gid), (0o600, 1234, 5678));
    let temp = |s: &&Seen| s.name.starts_with("..env.colibri-tmp.");
    let opened: Vec<_> = seen.iter().filter(temp).filter(|s| s.open).collect();
    assert_eq!(opened.len(), 3, "one temporary file per write, each held at its open: {seen:#?}");
    for s in opened {
        assert_eq!((s.mode, s.size), (0o600, 0), "{} at creation", s.name);
    }
    let read_back: Vec<_> = seen.iter().filter(temp).filter(|s| !s.open).collect();
    assert!(read_back.len() >= 3, "each temporary file is read back before the rename: {seen:#?}");
    let whole = i64::try_from(final_state.bytes.len()).unwrap();
    for s in read_back {
        assert_eq!((s.mode, s.owner, s.size), (0o600, (1234, 5678), whole), "{} before the rename", s.name);
    }
}

/// What the fanotify watcher saw of a file in the jail root.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Seen {
    /// An open (`FAN_OPEN_PERM`), else a read (`FAN_ACCESS_PERM`).
    open: bool,
    name: String,
    mode: u32,
    owner: (u32, u32),
    size: i64,
}

/// A hook for a jail without a tenant only reads the database: it writes (and syncs) nothing,
/// so it stays fast and never contends with writers.
#[test]
fn a_hook_for_a_jail_without_a_tenant_writes_nothing_to_the_database() {
    let (host, _root) = web(&[]);
    host.run(&["status"]).expect(0);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    set_mtime(&host.db, old);
    let before = fs::read(&host.db).unwrap();
    host.run(&["hook", "start", "ghost"]).expect(0);
    assert_eq!(fs::metadata(&host.db).unwrap().modified().unwrap(), old, "the database file was written");
    assert_eq!(fs::read(&host.db).unwrap(), before);
    for suffix in ["-wal", "-journal"] {
        let side = host.db.with_file_name(format!("colibri.sqlite{suffix}"));
        assert!(fs::metadata(&side).map_or(true, |m| m.len() == 0), "{} holds a write", side.display());
    }
}
