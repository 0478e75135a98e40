//! Host-side inputs that are not what they should be (issue 9, item 9): a FIFO or a device (or a
//! link to one) at the provider env, a `<collection>.env`, the tenant database, the lock file,
//! jail.conf, bastille.conf or `NODE_EXTRA_CA_CERTS` is refused promptly with its status, the
//! run never hangs (each runs under a watchdog that kills it and fails the test) and leaves no
//! lock held; `bastille.conf` with an unsafe owner or mode is refused before /bin/sh runs it (a
//! marker file it would create stays absent), a hung one is killed at its deadline, and SIGTERM
//! during its read ends the run with its shell.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::Mode;

use crate::core::{s, web};
use crate::support::host::{Host, Outcome, WATCHDOG, bounded};

fn fifo(path: &Path) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let _ = fs::remove_file(path);
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).unwrap();
}

fn link(target: &str, path: &Path) {
    let _ = fs::remove_file(path);
    symlink(target, path).unwrap();
}

/// Nobody holds the host-wide lock (the refused run did not leave it taken).
#[track_caller]
fn lock_is_free(host: &Host) {
    let path = host.run_dir.join("vault.lock");
    let Ok(file) = fs::File::open(&path) else { return };
    assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok(), "the host-wide lock is still held");
}

/// Each shape (FIFO, link to a device, link at all where none is followed) at `place`, run
/// `args` under the watchdog, expect `code` and `said` on stderr, and a free lock after.
#[track_caller]
fn refused_each_shape(host: &Host, place: &Path, shapes: &[&str], args: &[&str], code: i32, said: &str) {
    for shape in shapes {
        match *shape {
            "fifo" => fifo(place),
            device => link(device, place),
        }
        let out = host.run_bounded(args);
        assert_eq!(out.code, Some(code), "{shape} at {}: {out:?}", place.display());
        assert!(out.stderr.contains(said), "{shape}: stderr lacks {said:?}:\n{}", out.stderr);
        lock_is_free(host);
        fs::remove_file(place).unwrap();
    }
}

#[test]
fn a_fifo_or_device_as_the_provider_env_is_refused_at_once() {
    let (host, root) = web(&[]);
    let env = host.provider_env.clone();
    for shape in ["fifo", "/dev/zero", "/dev/null"] {
        match shape {
            "fifo" => fifo(&env),
            device => link(device, &env),
        }
        host.run_bounded(&["provision", "web"]).expect(77).stderr_has("not a regular file");
        // A hook for a jail without a tenant is never blocked; one with a tenant follows its
        // policy (continue: the jail starts).
        host.run_bounded(&["hook", "start", "ghost"]).expect(0);
        host.run_bounded(&["hook", "start", "web", s(&root)]).expect(0);
        lock_is_free(&host);
        fs::remove_file(&env).unwrap();
    }
    assert!(!root.join(".env").exists());
}

#[test]
fn a_fifo_device_or_link_as_a_secrets_file_is_refused_under_the_lock_and_releases_it() {
    let (host, root) = web(&[]);
    let place = host.secrets_path("web");
    refused_each_shape(
        &host,
        &place,
        &["fifo", "/dev/zero", "/dev/null"],
        &["provision", "web"],
        77,
        "not a regular file",
    );
    // A link is not followed even to a good private file (it could name another collection's).
    let other = host.secrets("other", "A=1\n");
    link(s(&other), &place);
    host.run_bounded(&["provision", "web"]).expect(77).stderr_has("a symbolic link");
    // Hooks: the failure goes through the tenant's policy, and the next run finds the lock free.
    fifo(&place);
    host.run_bounded(&["hook", "start", "web", s(&root)]).expect(0);
    host.run(&["tenant", "set", "web", "--on-failure", "fail"]).expect(0);
    host.run_bounded(&["hook", "start", "web", s(&root)]).expect(77);
    lock_is_free(&host);
    assert!(!root.join(".env").exists());
}

#[test]
fn a_fifo_at_the_database_or_its_journal_is_refused_at_once() {
    let (host, _) = web(&[]);
    for companion in ["", "-wal", "-shm", "-journal"] {
        let mut place = host.db.clone().into_os_string();
        place.push(companion);
        let place = PathBuf::from(place);
        let saved = place.with_extension("saved");
        let existed = place.exists();
        if existed {
            fs::rename(&place, &saved).unwrap();
        }
        fifo(&place);
        host.run_bounded(&["provision", "web"]).expect(77).stderr_has("a FIFO, not a regular file");
        host.run_bounded(&["status"]).expect(77);
        fs::remove_file(&place).unwrap();
        if existed {
            fs::rename(&saved, &place).unwrap();
        }
    }
    host.run_bounded(&["provision", "web"]).expect(0);
}

#[test]
fn a_fifo_as_the_lock_file_is_refused_at_once() {
    let (host, _) = web(&[]);
    fs::create_dir_all(&host.run_dir).unwrap();
    fs::set_permissions(&host.run_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let lock = host.run_dir.join("vault.lock");
    fifo(&lock);
    host.run_bounded(&["provision", "web"]).expect(77).stderr_has("a FIFO");
    fs::remove_file(&lock).unwrap();
    host.run_bounded(&["provision", "web"]).expect(0);
}

#[test]
fn a_fifo_or_device_as_the_ca_bundle_is_refused_before_bw_runs() {
    let v = crate::vault::vault(&["web"]);
    let ca = v.host.path().join("etc/ca.pem");
    v.host.append_provider_env(&format!("NODE_EXTRA_CA_CERTS={}\n", s(&ca)));
    for shape in ["fifo", "/dev/zero"] {
        match shape {
            "fifo" => fifo(&ca),
            device => link(device, &ca),
        }
        v.host.run_bounded(&["provision", "web"]).expect(77).stderr_has("not a regular file");
        assert!(v.steps().is_empty(), "{shape}: bw was run: {:?}", v.steps());
        lock_is_free(&v.host);
        fs::remove_file(&ca).unwrap();
    }
}

/// A Bastille layout: `bastille.conf` (mode 0644) whose jails directory is `<tmp>/bastille/jails`,
/// holding `web/jail.conf`. Returns (bastille.conf, jail.conf).
fn bastille(host: &mut Host, conf_text: &str) -> (PathBuf, PathBuf) {
    let jails = host.path().join("bastille/jails");
    fs::create_dir_all(jails.join("web")).unwrap();
    let conf = host.path().join("bastille.conf");
    write_conf(&conf, conf_text, 0o644);
    host.set_env("BASTILLE_CONFIG", conf.as_os_str());
    let jail_conf = jails.join("web/jail.conf");
    fs::write(&jail_conf, format!("web {{\n  path = {};\n}}\n", s(&host.root_of("web")))).unwrap();
    (conf, jail_conf)
}

fn write_conf(path: &Path, text: &str, mode: u32) {
    let _ = fs::remove_file(path);
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A bastille.conf that would leave `marker` behind if /bin/sh ever ran it.
fn marking_conf(host: &Host, marker: &Path) -> String {
    format!("touch {}\nbastille_jailsdir={}\n", s(marker), s(&host.path().join("bastille/jails")))
}

#[test]
fn a_fifo_or_device_as_jail_conf_or_bastille_conf_is_refused_at_once() {
    let mut host = Host::new();
    host.tenant("web", &[]);
    let (conf, jail_conf) = bastille(&mut host, "");
    let text = format!("bastille_jailsdir={}\n", s(&host.path().join("bastille/jails")));
    write_conf(&conf, &text, 0o644);
    host.run_bounded(&["jail", "enable", "web"]).expect(0);
    for (place, shapes) in [(&jail_conf, ["fifo", "/dev/zero"]), (&conf, ["fifo", "/dev/zero"])] {
        let saved = fs::read(place).unwrap();
        for shape in shapes {
            match shape {
                "fifo" => fifo(place),
                device => link(device, place),
            }
            let out = host.run_bounded(&["jail", "enable", "web"]);
            out.expect(77);
            assert!(out.stderr.contains(&format!("{} is a", place.display())), "{}", out.stderr);
            let out = host.run_bounded(&["doctor"]);
            out.expect(78);
            assert!(out.stdout.contains("problem"), "{shape}: {}", out.stdout);
            fs::remove_file(place).unwrap();
        }
        fs::write(place, saved).unwrap();
        fs::set_permissions(place, fs::Permissions::from_mode(0o644)).unwrap();
    }
    // A jail.conf reached through a link is refused too: `jail enable` replaces it by a rename.
    let real = host.path().join("real-jail.conf");
    fs::rename(&jail_conf, &real).unwrap();
    link(s(&real), &jail_conf);
    host.run_bounded(&["jail", "enable", "web"]).expect(77).stderr_has("a symbolic link");
    assert!(fs::symlink_metadata(&jail_conf).unwrap().file_type().is_symlink());
}

#[test]
fn bastille_conf_open_to_others_is_refused_before_it_runs() {
    let mut host = Host::new();
    host.tenant("web", &[]);
    let marker = host.path().join("bastille.conf-ran");
    let (conf, _) = bastille(&mut host, "");
    let text = marking_conf(&host, &marker);
    for mode in [0o664, 0o646, 0o666, 0o620] {
        write_conf(&conf, &text, mode);
        let out = host.run_bounded(&["jail", "enable", "web"]);
        out.expect(77).stderr_has("writable by group or others").stderr_has("chmod go-w");
        host.run_bounded(&["doctor"]).expect(78);
        assert!(!marker.exists(), "mode {mode:o}: /bin/sh ran bastille.conf");
    }
    // The same file, safe: it runs (the marker proves this test could see it run).
    write_conf(&conf, &text, 0o644);
    host.run_bounded(&["jail", "enable", "web"]).expect(0);
    assert!(marker.exists());
}

#[test]
fn bastille_conf_owned_by_someone_else_is_refused_before_it_runs() {
    if !nix::unistd::geteuid().is_root() {
        crate::support::skip("bastille_conf_owned_by_someone_else", "chown needs root");
        return;
    }
    let mut host = Host::new();
    host.tenant("web", &[]);
    let marker = host.path().join("bastille.conf-ran");
    let (conf, _) = bastille(&mut host, "");
    write_conf(&conf, &marking_conf(&host, &marker), 0o644);
    std::os::unix::fs::chown(&conf, Some(4242), Some(4242)).unwrap();
    host.run_bounded(&["jail", "enable", "web"]).expect(77).stderr_has("owned by uid 4242");
    let out = host.run_bounded(&["doctor"]);
    out.expect(78);
    assert!(out.stdout.contains("owned by uid 4242"), "{}", out.stdout);
    assert!(!marker.exists(), "/bin/sh ran a bastille.conf owned by another user");
}

#[test]
fn a_hung_bastille_conf_is_killed_at_its_deadline() {
    let mut host = Host::new();
    host.tenant("web", &[]);
    let pids = host.path().join("pids");
    let (conf, _) = bastille(&mut host, "");
    write_conf(&conf, &format!("sleep 600 & echo $! > {}\nwait\n", s(&pids)), 0o644);
    let out = bounded(host.spawn(&["jail", "enable", "web"]), WATCHDOG);
    out.expect(78).stderr_has("did not finish reading");
    let sleeper: i32 = fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
    gone(sleeper);
}

#[test]
fn sigterm_while_bastille_conf_is_read_ends_the_run_and_its_shell() {
    let mut host = Host::new();
    host.tenant("web", &[]);
    let pids = host.path().join("pids");
    let (conf, _) = bastille(&mut host, "");
    write_conf(&conf, &format!("sleep 600 & echo $! > {}\nwait\n", s(&pids)), 0o644);
    let child = host.spawn(&["jail", "enable", "web"]);
    let pid = i32::try_from(child.id()).unwrap();
    let started = Instant::now();
    while fs::read_to_string(&pids).map_or(true, |t| !t.ends_with('\n')) {
        assert!(started.elapsed() < WATCHDOG, "bastille.conf never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals the colibri-vault process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out: Outcome = bounded(child, WATCHDOG);
    out.expect(143);
    let sleeper: i32 = fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
    gone(sleeper);
}

/// Waits (under the watchdog) until `pid` no longer runs.
#[track_caller]
fn gone(pid: i32) {
    let started = Instant::now();
    while crate::support::alive(pid) {
        assert!(started.elapsed() < WATCHDOG, "process {pid} survived colibri-vault");
        std::thread::sleep(Duration::from_millis(20));
    }
}
