//! Signals, closed pipes, absurd durations and the exit statuses they end in (issue 9, item 5),
//! through the built binary against the fake bw.
//!
//! The kill loop sends every catchable terminating signal at a random moment of a session
//! (the fake's latency makes each call slow, so the moment falls inside some call, between
//! calls, or in the wait for the host-wide lock) and checks what must hold after any of them:
//! status 128 + signal, bw logged out, no temporary file in the jail, the lock free.
//! The random seed is printed on failure; set `COLIBRI_TEST_SEED` to replay a run.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::core::web;
use crate::support::host::names;
use crate::vault::{Vault, vault};

/// Every signal whose default action ends a process and that a handler can catch, minus the
/// synchronous faults: colibri-vault's own list (checked against the kernel's default actions by
/// a unit test in src/signals.rs), which must hold at least those the audit named.
fn terminating_signals() -> Vec<i32> {
    let signals: Vec<i32> =
        colibri_vault::signals::terminating().into_iter().filter(|s| !realtime_range().contains(s)).collect();
    for named in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGPIPE,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
    ] {
        assert!(signals.contains(&named), "signal {named} is not caught");
    }
    signals
}

/// The real-time signals' numbers.
fn realtime_range() -> std::ops::RangeInclusive<i32> {
    #[cfg(target_os = "linux")]
    let range = libc::SIGRTMIN()..=libc::SIGRTMAX();
    #[cfg(not(target_os = "linux"))]
    let range = 65..=126;
    range
}

/// Real-time signals, which also terminate by default: the ends of the range and one between.
fn realtime_signals(rng: &mut Rng) -> Vec<i32> {
    let (min, max) = realtime_range().into_inner();
    let between = rng.below(u64::try_from(max - min - 1).unwrap());
    vec![min, min + 1 + i32::try_from(between).unwrap(), max]
}

/// xorshift64*: enough randomness for test timing, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let seed = std::env::var("COLIBRI_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now.as_secs().rotate_left(32) ^ u64::from(now.subsec_nanos()));
        // xorshift never leaves 0.
        (Rng(seed | 1), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn pid_of(child: &Child) -> i32 {
    i32::try_from(child.id()).unwrap()
}

/// Waits until `pid` catches `signal` (its handlers are installed): a kill before that would
/// meet the default action, which no program can prevent.
#[track_caller]
fn wait_until_caught(pid: i32, signal: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (signal - 1)) != 0);
        if caught || !Path::new("/proc/self/status").exists() {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} never caught signal {signal}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[track_caller]
fn wait_with_deadline(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: colibri-vault did not end");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Holds the host-wide lock as another colibri-vault would.
fn hold_lock(run_dir: &Path) -> std::fs::File {
    std::fs::create_dir_all(run_dir).unwrap();
    let lock = std::fs::File::create(run_dir.join("vault.lock")).unwrap();
    // SAFETY: flock(2) on a descriptor we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    lock
}

/// Per-call latency of the fake: a session is 6 calls, so at least 6 × this long.
const LATENCY: f64 = 0.15;

/// One run: a session, `signal` after `delay` (from the moment the handlers are in place),
/// optionally first a wait for a lock held for `locked`. Returns a description on failure.
fn one_kill(signal: i32, command: &[&str], delay: Duration, locked: Option<Duration>) -> Result<(), String> {
    let what = format!("signal {signal} after {delay:?} into `{}` (lock held {locked:?})", command.join(" "));
    let mut v = vault(&["web"]);
    v.fake.set_latency(LATENCY);
    v.fake.install();
    let lock = locked.map(|_| hold_lock(&v.host.run_dir));
    let mut child = v.host.command(command).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = pid_of(&child);
    wait_until_caught(pid, signal);
    let started = Instant::now();
    if let (Some(lock), Some(locked)) = (lock, locked) {
        let release = std::thread::spawn(move || {
            std::thread::sleep(locked);
            drop(lock);
        });
        std::thread::sleep(delay);
        release.join().unwrap();
    } else {
        std::thread::sleep(delay);
    }
    // SAFETY: kill(2) on the child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let sent_after = started.elapsed();
    let status = wait_with_deadline(&mut child, &what);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let fail = |why: String| Err(format!("{what} (sent after {sent_after:?}): {why}\n--- stderr:\n{stderr}"));
    if status.code() != Some(128 + signal) {
        return fail(format!("status {status:?}, not {}", 128 + signal));
    }
    if stderr.contains("panicked") {
        return fail("a panic".into());
    }
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.assert_clean())) {
        let message = e.downcast_ref::<String>().cloned().unwrap_or_default();
        return fail(format!("not clean: {message}; calls: {:?}", v.steps()));
    }
    let root = v.host.root_of("web");
    let left: Vec<String> = names(&root).into_iter().filter(|n| n != ".env").collect();
    if !left.is_empty() {
        return fail(format!("left in the jail: {left:?}"));
    }
    Ok(())
}

#[test]
fn every_terminating_signal_at_a_random_moment_ends_with_its_status_and_logged_out() {
    let (mut rng, seed) = Rng::seeded();
    let commands: [&[&str]; 3] = [&["provision", "web"], &["hook", "start", "web"], &["provision", "--all"]];
    // 6 calls of at least LATENCY each: any delay below that falls before the logout ended.
    let session = Duration::from_secs_f64(6.0 * LATENCY);
    let mut runs = VecDeque::new();
    for (signal, times) in terminating_signals()
        .into_iter()
        .map(|s| (s, 3))
        .chain(realtime_signals(&mut rng).into_iter().map(|s| (s, 2)))
    {
        for _ in 0..times {
            let command = commands[usize::try_from(rng.below(3)).unwrap()];
            let delay = Duration::from_millis(rng.below(u64::try_from(session.as_millis()).unwrap()));
            // One run in four meets a lock held by another run for part of the time.
            let locked = (rng.below(4) == 0).then(|| Duration::from_millis(rng.below(400)));
            runs.push_back((signal, command, delay, locked));
        }
    }
    let total = runs.len();
    let runs = Arc::new(Mutex::new(runs));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (runs, failures) = (Arc::clone(&runs), Arc::clone(&failures));
            std::thread::spawn(move || {
                loop {
                    let Some((signal, command, delay, locked)) = runs.lock().unwrap().pop_front() else {
                        return;
                    };
                    if let Err(e) = one_kill(signal, command, delay, locked) {
                        failures.lock().unwrap().push(e);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {total} runs failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_signal_its_parent_ignored_still_ends_the_run_through_the_logout() {
    // A background job of a non-interactive shell starts with SIGINT and SIGQUIT ignored.
    let mut v = vault(&["web"]);
    v.fake.set_step_latency("list items", 3.0);
    v.fake.install();
    let mut command = v.host.command(&["provision", "web"]);
    // SAFETY: signal(3) in the forked child before exec, async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
                libc::signal(signal, libc::SIG_IGN);
            }
            Ok(())
        })
    };
    let mut child = command.stderr(Stdio::null()).spawn().unwrap();
    let pid = pid_of(&child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !v.steps().contains(&"list collections".to_owned()) {
        assert!(Instant::now() < deadline, "list collections never finished: {:?}", v.steps());
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGQUIT) }, 0);
    let status = wait_with_deadline(&mut child, "SIGQUIT");
    assert_eq!(status.code(), Some(128 + libc::SIGQUIT));
    assert_eq!(v.steps().last().map(String::as_str), Some("logout"), "{:?}", v.steps());
    v.assert_clean();
}

/// A pipe whose reading end is already closed: every write to the other end fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read);
    Stdio::from(write)
}

struct Ended {
    code: Option<i32>,
    stderr: String,
}

fn run_with(mut command: Command, stdout: Stdio, stderr: Stdio) -> Ended {
    let mut child = command.stdout(stdout).stderr(stderr).spawn().unwrap();
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut text).unwrap();
    }
    let status = wait_with_deadline(&mut child, "closed pipe");
    Ended { code: status.code(), stderr: text }
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly_with_141() {
    let (host, _root) = web(&[]);
    let commands: [&[&str]; 13] = [
        &["status"],
        &["status", "--json"],
        &["status", "web"],
        &["tenant", "list"],
        &["tenant", "list", "--json"],
        &["tenant", "show", "web"],
        &["tenant", "show", "web", "--json"],
        &["doctor"],
        &["provision", "--dry-run", "web"],
        &["provision", "--dry-run", "--all"],
        &["--help"],
        &["--version"],
        &["tenant", "--help"],
    ];
    for args in commands {
        let ended = run_with(host.command(args), closed_pipe(), Stdio::piped());
        assert_eq!(ended.code, Some(141), "{args:?}:\n{}", ended.stderr);
        for noise in ["panicked", "Broken pipe", "error"] {
            assert!(!ended.stderr.contains(noise), "{args:?} printed {noise:?}:\n{}", ended.stderr);
        }
    }
    // Without a database, status still prints (a line saying so).
    let empty = crate::support::host::Host::new();
    let ended = run_with(empty.command(&["status"]), closed_pipe(), Stdio::piped());
    assert_eq!(ended.code, Some(141), "{}", ended.stderr);
}

#[test]
fn a_failing_stdout_is_an_io_error_not_a_panic() {
    let (host, _root) = web(&[]);
    for args in [&["status"][..], &["tenant", "list"], &["doctor"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let ended = run_with(host.command(args), Stdio::from(full), Stdio::piped());
        assert_eq!(ended.code, Some(74), "{args:?}:\n{}", ended.stderr);
        assert!(ended.stderr.contains("could not write to standard output"), "{}", ended.stderr);
        assert!(!ended.stderr.contains("panicked"), "{}", ended.stderr);
    }
}

#[test]
fn debug_logging_into_a_closed_stderr_neither_panics_nor_stops_the_session() {
    let v = vault(&["web"]);
    for args in [&["-vv", "provision", "web"][..], &["-vv", "hook", "start", "web"], &["-vv", "status"]] {
        let ended = run_with(v.host.command(args), Stdio::null(), closed_pipe());
        assert_eq!(ended.code, Some(0), "{args:?}");
        v.assert_clean();
    }
    assert!(v.host.root_of("web").join(".env").exists());
    // Both streams closed: the dry run's listing cannot be delivered (141), the session still ends.
    let ended =
        run_with(v.host.command(&["-vv", "provision", "--dry-run", "web"]), closed_pipe(), closed_pipe());
    assert_eq!(ended.code, Some(141));
    v.assert_clean();
    assert_eq!(
        v.steps().iter().filter(|s| *s == "login").count(),
        v.steps().iter().filter(|s| *s == "logout").count()
    );
}

#[test]
fn durations_past_their_range_are_refused_with_78_and_the_range() {
    let v: Vault = vault(&["web"]);
    let values = ["18446744073709551615", "18446744073709551616", "9223372036854775808", "99999999999"];
    for (flag, var, range) in [
        ("--bw-timeout", "COLIBRI_BW_TIMEOUT", "from 1 to 3600"),
        ("--lock-timeout", "COLIBRI_LOCK_TIMEOUT", "from 0 to 86400"),
        ("--fresh-for", "COLIBRI_FRESH_FOR", "from 0 to 2592000"),
        ("--on-change-timeout", "COLIBRI_ON_CHANGE_TIMEOUT", "from 1 to 3600"),
    ] {
        for value in values {
            for args in [
                &["provision", flag, value, "web"][..],
                &["status", flag, value],
                &["hook", "start", "web", flag, value],
            ] {
                let out = v.host.run(args);
                assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
                out.stderr_has(var).stderr_has(range);
                // A hook answers through the tenant's failure policy (continue: 0).
                out.expect(if args[0] == "hook" { 0 } else { 78 });
            }
            let mut host_env = v.host.command(&["provision", "web"]);
            host_env.env(var, value);
            let out = host_env.output().unwrap();
            assert_eq!(out.status.code(), Some(78), "{var}={value}");
        }
    }
    assert!(v.steps().is_empty(), "no bw call with a refused setting: {:?}", v.steps());
    // The maxima themselves are accepted.
    v.host
        .run(&[
            "provision",
            "--bw-timeout",
            "3600",
            "--lock-timeout",
            "86400",
            "--fresh-for",
            "2592000",
            "--on-change-timeout",
            "3600",
            "web",
        ])
        .expect(0);
    v.assert_clean();
    // A value past the maximum in the provider env is refused too.
    let (host, _) = web(&[]);
    host.append_provider_env("COLIBRI_LOCK_TIMEOUT=86401\n");
    host.run(&["provision", "web"]).expect(78).stderr_has("from 0 to 86400");
}

#[test]
fn a_holder_stopped_by_a_signal_hands_its_waiters_back_to_serve_themselves() {
    let mut v = vault(&["holder", "waiter"]);
    v.host.run(&["tenant", "set", "waiter", "--on-failure", "fail"]).expect(0);
    v.fake.set_step_latency("unlock", 1.0).set_step_latency("list items", 3.0);
    v.fake.install();
    let steps_seen = |step: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !v.steps().iter().any(|s| s == step) {
            assert!(Instant::now() < deadline, "{step} never finished: {:?}", v.steps());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut holder = v.host.command(&["hook", "start", "holder"]).stderr(Stdio::null()).spawn().unwrap();
    steps_seen("login");
    // The waiter finds the lock taken and registers; the holder claims it before its listing.
    let mut waiter = v.host.command(&["hook", "start", "waiter"]).stderr(Stdio::piped()).spawn().unwrap();
    steps_seen("list collections");
    let spool = v.host.run_dir.join("spool");
    assert!(names(&spool).iter().any(|n| n.ends_with(".claimed")), "not claimed: {:?}", names(&spool));
    // SAFETY: kill(2) on the child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid_of(&holder), libc::SIGTERM) }, 0);
    assert_eq!(wait_with_deadline(&mut holder, "holder").code(), Some(128 + libc::SIGTERM));
    // Not the holder's 143 through policy fail: the waiter ran a session of its own.
    v.fake.set_step_latency("list items", 0.0);
    v.fake.install();
    let status = wait_with_deadline(&mut waiter, "waiter");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut waiter.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(std::fs::read_to_string(v.host.root_of("waiter").join(".env")).unwrap().contains("pw-of-waiter"));
    assert_eq!(v.steps().iter().filter(|s| *s == "login").count(), 2, "{:?}", v.steps());
    v.assert_clean();
}

#[test]
fn a_write_past_the_file_size_limit_is_a_failed_write_not_a_death_by_sigxfsz() {
    // With SIGXFSZ at its default, such a write used to kill colibri-vault outright, leaving
    // its temporary file, secrets included, in the jail.
    let (host, root) = web(&["--on-failure", "fail"]);
    host.secrets("web", &format!("BIG={}\n", "b".repeat(300_000)));
    let mut command = host.command(&["hook", "start", "web"]);
    // SAFETY: setrlimit(2) in the forked child before exec, async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 200_000, rlim_max: 200_000 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &raw const limit);
            Ok(())
        })
    };
    let ended = run_with(command, Stdio::null(), Stdio::piped());
    assert_eq!(ended.code, Some(73), "{}", ended.stderr);
    assert!(ended.stderr.contains("could not write"), "{}", ended.stderr);
    assert!(names(&root).is_empty(), "left in the jail: {:?}", names(&root));
    // Sent by a process, SIGXFSZ still ends the run with 153: the kill loop above checks it.
}
