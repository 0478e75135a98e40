//! Running one `bw` call: a from-scratch environment, a deadline, no deadlock, no leftovers.
//!
//! bw has no timeout of its own (it waited 400 s for a silent server), so every call has one;
//! on expiry, or when colibri-vault receives a terminating signal (`signals`), the child's
//! whole process group is killed (bw is a Node program and may have helpers). stdout and
//! stderr are drained on threads so a chatty child cannot block on a full pipe. stdout may
//! hold secrets (the session key, decrypted items) and is kept in zeroizing memory; it never
//! reaches an error. stdin is /dev/null, so bw can never wait for a prompt answer. A
//! colibri-vault killed outright (SIGKILL, which no handler sees) takes its bw call with it:
//! the child asks the kernel for SIGKILL when its parent dies, so no orphaned bw finishes a
//! login after the next run has logged out, or runs beside it on the same app data. The child
//! starts with every signal at its default disposition and none blocked, whatever
//! colibri-vault or its parent set. Nothing here panics: this code also runs the logout while
//! a panic unwinds.
//!
//! [`run`] keeps every byte and reads until both pipes close (bw, `/bin/sh` reading
//! bastille.conf). [`run_with`] and [`Capture::LOG`] are for a command whose output only goes to
//! a log (a tenant's on-change command): a little of each stream is kept, and once the command
//! has ended its output is waited for only briefly, so a background process it left holding
//! the pipes cannot hold up the run.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::deadline::Deadline;

/// Most of a child's stderr kept (the rest is read and dropped).
const STDERR_CAP: usize = 64 * 1024;
/// Most of a child's stdout kept: a large vault listing fits many times over.
const STDOUT_CAP: usize = 256 * 1024 * 1024;

/// How much of a child's output is kept, and how long it is waited for once the child ended.
#[derive(Clone, Copy, Debug)]
pub struct Capture {
    stdout_cap: usize,
    stderr_cap: usize,
    /// After the child ended (or was killed): how long its pipes may stay open, held by a
    /// process it left behind; `None`: until they close.
    linger: Option<Duration>,
}

impl Capture {
    /// Every byte of stdout (up to 256 MiB), 64 KiB of stderr, read until the pipes close.
    pub const WHOLE: Capture = Capture { stdout_cap: STDOUT_CAP, stderr_cap: STDERR_CAP, linger: None };
    /// For a log: 16 KiB of each stream, and at most a second's wait for output once the
    /// command has ended (a daemon it started in the background may keep the pipes open).
    pub const LOG: Capture =
        Capture { stdout_cap: 16 * 1024, stderr_cap: 16 * 1024, linger: Some(Duration::from_secs(1)) };
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Zeroizing<Vec<u8>>,
    pub stderr: Vec<u8>,
}

#[derive(Debug)]
pub enum RunError {
    /// The program could not be started ("could not start", kept apart from a failed run).
    Start(std::io::Error),
    /// It ran past the deadline and was killed.
    Timeout,
    /// colibri-vault received this signal; the child was killed.
    Interrupted(i32),
}

/// One call: program, arguments, the complete environment, the deadline.
pub struct Call<'a> {
    pub program: &'a Path,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, OsString)],
    pub timeout: Duration,
    /// Whether a received signal aborts this call. Cleanup calls (logout) are not aborted.
    pub interruptible: bool,
}

/// Runs `call`, keeping all its output ([`Capture::WHOLE`]).
pub fn run(call: &Call<'_>) -> Result<Output, RunError> {
    run_with(call, Capture::WHOLE)
}

/// Runs `call`, keeping and waiting for its output as `capture` says.
pub fn run_with(call: &Call<'_>, capture: Capture) -> Result<Output, RunError> {
    let mut command = Command::new(call.program);
    command
        .args(call.args)
        .env_clear()
        .envs(call.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a kill reaches every helper it started.
        .process_group(0);
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // system calls (sigaction, prctl or procctl, getppid); it allocates nothing, takes no lock.
    unsafe {
        command.pre_exec(move || {
            crate::signals::reset_in_child();
            die_with_parent(parent)
        })
    };
    let mut child = command.spawn().map_err(RunError::Start)?;
    // Never a panic here, not even when no thread can be started: this path runs the logout,
    // also while a panic unwinds (a second panic would abort the process).
    let stdout = child.stdout.take().map(|out| drain(out, capture.stdout_cap));
    let stderr = child.stderr.take().map(|err| drain(err, capture.stderr_cap));
    let (stdout, stderr) = match (stdout.transpose(), stderr.transpose()) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(e), _) | (_, Err(e)) => {
            kill_group(&mut child);
            return Err(RunError::Start(e));
        }
    };
    let waited = wait(&mut child, call);
    let stdout = stdout.map(|d| d.collect(capture.linger)).unwrap_or_default();
    let stderr = stderr.map(|d| d.collect(capture.linger)).unwrap_or_default();
    let status = waited?;
    Ok(Output { status, stdout, stderr: stderr.to_vec() })
}

fn wait(child: &mut Child, call: &Call<'_>) -> Result<ExitStatus, RunError> {
    let deadline = Deadline::after(call.timeout);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => {
                kill_group(child);
                return Err(RunError::Start(e));
            }
        }
        if call.interruptible
            && let Some(signal) = crate::signals::received()
        {
            kill_group(child);
            return Err(RunError::Interrupted(signal));
        }
        if deadline.passed() {
            kill_group(child);
            return Err(RunError::Timeout);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group id is the child's pid (process_group(0)).
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// In the child, before exec: SIGKILL when the parent dies, and give up at once if it already has.
fn die_with_parent(parent: nix::unistd::Pid) -> std::io::Result<()> {
    set_parent_death_signal()?;
    if nix::unistd::getppid() == parent {
        Ok(())
    } else {
        Err(std::io::Error::other("colibri-vault ended before bw started"))
    }
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal() -> std::io::Result<()> {
    // Linux sends it when the forking *thread* ends; bw is always started by the main thread.
    Ok(nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?)
}

#[cfg(target_os = "freebsd")]
fn set_parent_death_signal() -> std::io::Result<()> {
    let mut signal: libc::c_int = libc::SIGKILL;
    // SAFETY: procctl(2) on our own pid (0) with PROC_PDEATHSIG_CTL reads one c_int from
    // `signal`, which lives for the duration of the call.
    let rc = unsafe {
        libc::procctl(libc::P_PID, 0, libc::PROC_PDEATHSIG_CTL, (&raw mut signal).cast::<libc::c_void>())
    };
    Ok(nix::errno::Errno::result(rc).map(drop)?)
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn set_parent_death_signal() -> std::io::Result<()> {
    Ok(())
}

/// A stream being read on its own thread into shared memory, and the signal that it closed.
struct Drain {
    kept: Arc<Mutex<Zeroizing<Vec<u8>>>>,
    closed: Receiver<()>,
}

impl Drain {
    /// What was read: everything once the stream closes, or, after `linger` (when given),
    /// whatever had arrived by then (the reading thread is left to end with the process).
    fn collect(self, linger: Option<Duration>) -> Zeroizing<Vec<u8>> {
        // Closed, the thread gone, or the wait over: the bytes so far are what there is.
        let _ = match linger {
            None => self.closed.recv().ok(),
            Some(linger) => self.closed.recv_timeout(linger).ok(),
        };
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        Zeroizing::new(kept.to_vec())
    }
}

fn drain<R: Read + Send + 'static>(mut reader: R, cap: usize) -> std::io::Result<Drain> {
    let kept = Arc::new(Mutex::new(Zeroizing::new(Vec::new())));
    let (done, closed) = mpsc::channel();
    let shared = Arc::clone(&kept);
    std::thread::Builder::new().spawn(move || {
        let mut buf = Zeroizing::new([0u8; 8192]);
        loop {
            match reader.read(&mut buf[..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut kept = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        let _ = done.send(());
    })?;
    Ok(Drain { kept, closed })
}

/// Finds `bw`: a path with a `/` is used as is, a bare name is looked up on `path_list` only.
pub fn find_program(name: &Path, path_list: &str) -> Option<PathBuf> {
    if name.as_os_str().is_empty() {
        return None;
    }
    if name.components().count() > 1 || name.is_absolute() {
        return Some(name.to_owned());
    }
    path_list.split(':').map(|dir| Path::new(dir).join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str, timeout: Duration) -> Result<Output, RunError> {
        let env = [("PATH", OsString::from("/usr/bin:/bin")), ("ONLY", OsString::from("this"))];
        run(&Call {
            program: Path::new("/bin/sh"),
            args: &["-c", script],
            env: &env,
            timeout,
            interruptible: true,
        })
    }

    #[test]
    fn captures_both_streams_and_the_status() {
        let out = sh("printf out; printf err >&2; exit 3", Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout.as_slice(), b"out");
        assert_eq!(out.stderr, b"err");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn the_environment_is_only_what_we_pass() {
        let out = sh("env | sort", Duration::from_secs(10)).unwrap();
        let text = String::from_utf8(out.stdout.to_vec()).unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split('=').next())
            .filter(|n| *n != "PWD" && *n != "SHLVL" && *n != "_")
            .collect();
        assert_eq!(names, ["ONLY", "PATH"]);
    }

    #[test]
    fn a_chatty_child_does_not_deadlock() {
        let out =
            sh("head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2", Duration::from_secs(30)).unwrap();
        assert_eq!(out.stdout.len(), 3_000_000);
        assert_eq!(out.stderr.len(), STDERR_CAP);
    }

    #[test]
    fn a_hung_child_and_its_group_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-alive");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let started = Instant::now();
        let e = sh(&script, Duration::from_millis(300)).err().unwrap();
        assert!(matches!(e, RunError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild was killed with the group");
    }

    /// A signal ignored or blocked here (by colibri-vault's parent, say) does not reach bw.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_child_starts_with_default_signal_dispositions() {
        // SAFETY: SIGUSR2 ignored process-wide and SIGUSR1 blocked in this thread for the length
        // of one call, both restored after; nothing in the test binary uses either.
        let (old_action, old_mask) = unsafe {
            let mut ignore: libc::sigaction = std::mem::zeroed();
            ignore.sa_sigaction = libc::SIG_IGN;
            let mut old_action: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGUSR2, &raw const ignore, &raw mut old_action);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            libc::sigaddset(&raw mut set, libc::SIGUSR1);
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, &raw mut old_mask);
            (old_action, old_mask)
        };
        let out = run(&Call {
            program: Path::new("/bin/cat"),
            args: &["/proc/self/status"],
            env: &[],
            timeout: Duration::from_secs(10),
            interruptible: true,
        });
        // SAFETY: restores what the block above saved.
        unsafe {
            libc::sigaction(libc::SIGUSR2, &raw const old_action, std::ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old_mask, std::ptr::null_mut());
        }
        let status = String::from_utf8(out.unwrap().stdout.to_vec()).unwrap();
        let mask = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(mask("SigIgn:"), 0, "no signal ignored");
        assert_eq!(mask("SigBlk:"), 0, "no signal blocked");
    }

    /// A command logged, not parsed: its output is capped, and a process it left in the
    /// background holding the pipes does not hold up the run past a short linger.
    #[test]
    fn logged_output_is_capped_and_not_waited_for_past_the_linger() {
        let env = [("PATH", OsString::from("/usr/bin:/bin"))];
        let logged = |script: &str| {
            let call = Call {
                program: Path::new("/bin/sh"),
                args: &["-c", script],
                env: &env,
                timeout: Duration::from_secs(30),
                interruptible: true,
            };
            run_with(&call, Capture::LOG).unwrap()
        };
        let out = logged("head -c 100000 /dev/zero; head -c 100000 /dev/zero >&2");
        assert_eq!((out.stdout.len(), out.stderr.len()), (16 * 1024, 16 * 1024));
        let started = Instant::now();
        let out = logged("echo started; sleep 20 & exit 4");
        assert!(started.elapsed() < Duration::from_secs(15), "waited for the background sleep");
        assert_eq!(out.stdout.as_slice(), b"started\n");
        assert_eq!(out.status.code(), Some(4));
    }

    #[test]
    fn a_missing_program_is_a_start_error() {
        let e = run(&Call {
            program: Path::new("/nonexistent/bw"),
            args: &[],
            env: &[],
            timeout: Duration::from_secs(1),
            interruptible: true,
        });
        assert!(matches!(e, Err(RunError::Start(_))));
    }

    #[test]
    fn bw_is_found_on_the_fixed_path_only() {
        assert_eq!(find_program(Path::new("sh"), "/nonexistent:/bin").unwrap(), Path::new("/bin/sh"));
        assert!(find_program(Path::new("sh"), "/nonexistent").is_none());
        assert_eq!(find_program(Path::new("/opt/bw"), "").unwrap(), Path::new("/opt/bw"));
    }
}
