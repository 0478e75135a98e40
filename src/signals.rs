//! Every catchable signal that would end the process, during a run.
//!
//! A signal must not kill colibri-vault between `bw login` and `bw logout`: that would leave
//! bw logged in, with the API client secret in clear text in its data file. So from the first
//! line of `run` on, every signal whose default action terminates the process ([`terminating`],
//! derived per platform here and nowhere else) is caught, and the handler only records it; the
//! waits (the lock, each `bw` child) poll [`received`], kill what they wait for, and unwind
//! through the normal cleanup (logout), after which the process exits with the conventional
//! status 128 + signal. A signal ignored by whoever started colibri-vault (`nohup`, a
//! background job) is caught too: the run ends cleanly rather than carrying the ignored
//! disposition into its children, which [`reset_in_child`] starts from the defaults anyway.
//!
//! Not caught, on purpose: SIGKILL and SIGSTOP (the kernel does not allow it; a run killed
//! outright takes its bw call with it and the next run logs out first, see `bw::process`), and
//! the synchronous faults SIGSEGV, SIGBUS, SIGILL and SIGFPE: returning from their handler
//! re-runs the faulting instruction, the memory a logout would run from is not trustworthy,
//! and Rust's runtime uses SIGSEGV/SIGBUS itself to report stack overflows.
//!
//! SIGPIPE and SIGXFSZ are special: the kernel raises them in this very process for a write of
//! ours that also fails with an error, to a closed pipe (`status | true`, stderr closed: EPIPE)
//! or past the file-size limit (EFBIG). Those are not requests to stop: the write's error is
//! handled where it happens (`output`, the writer's cleanup). Only the same signal sent by
//! another process is recorded.

use std::ops::RangeInclusive;
use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};

/// The first signal received since `install`; 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// This process's pid, to tell a SIGPIPE raised by our own write from one a process sent.
static OWN_PID: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// Signals whose default action would end the process but that are deliberately not caught
/// (see the module documentation for why).
pub const NOT_CAUGHT: [i32; 6] =
    [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// Every signal colibri-vault catches: those whose default action terminates the process on
/// this platform, minus [`NOT_CAUGHT`] and the ones the C library reserves for itself.
pub fn terminating() -> Vec<i32> {
    let mut signals = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGSYS,
    ];
    signals.extend(platform::OTHERS);
    signals.extend(platform::numbered());
    signals
}

#[cfg(target_os = "linux")]
mod platform {
    /// signal(7): SIGIO (= SIGPOLL), SIGPWR and SIGSTKFLT terminate by default on Linux.
    pub const OTHERS: [i32; 3] = [libc::SIGIO, libc::SIGPWR, libc::SIGSTKFLT];

    /// The real-time signals, which all terminate by default. The C library's range: glibc
    /// keeps 32 and 33 for its threads, which is why its `SIGRTMIN()` is 34.
    pub fn numbered() -> std::ops::RangeInclusive<i32> {
        libc::SIGRTMIN()..=libc::SIGRTMAX()
    }

    /// The highest signal number.
    pub fn max() -> i32 {
        libc::SIGRTMAX()
    }
}

#[cfg(target_os = "freebsd")]
mod platform {
    /// `sys/kern/kern_sig.c`, `sigproptbl`: SIGEMT terminates (with a core); SIGLIBRT has no
    /// entry, which means terminate. SIGIO is ignored by default on FreeBSD, unlike Linux.
    /// SIGTHR (32) belongs to libthr, which handles it; sigaction(2) refuses it anyway.
    pub const OTHERS: [i32; 2] = [libc::SIGEMT, libc::SIGLIBRT];

    /// 34 to `_SIG_MAXSIG` (128): no `sigproptbl` entry either, so they terminate; the
    /// real-time signals SIGRTMIN (65) to SIGRTMAX (126) are among them.
    pub fn numbered() -> std::ops::RangeInclusive<i32> {
        34..=max()
    }

    /// `_SIG_MAXSIG` in sys/signal.h.
    pub fn max() -> i32 {
        128
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
mod platform {
    pub const OTHERS: [i32; 0] = [];

    pub fn numbered() -> std::ops::RangeInclusive<i32> {
        1..=0
    }

    pub fn max() -> i32 {
        31
    }
}

/// Every signal number there is, for resetting dispositions.
fn all() -> RangeInclusive<i32> {
    1..=platform::max()
}

/// Installs the recording handlers (idempotent). Call it first thing: until then a signal
/// still has its default action.
pub fn install() {
    INSTALL.call_once(|| {
        OWN_PID.store(std::process::id().cast_signed(), Ordering::SeqCst);
        for signal in terminating() {
            // SAFETY: the action only reads the siginfo it is given and does atomic operations,
            // which is async-signal-safe; `terminating` holds no signal signal-hook forbids
            // (a unit test checks), so registration cannot panic. An error (a number the C
            // library keeps for itself) leaves that signal as it was.
            let _ = unsafe {
                signal_hook_registry::register_sigaction(signal, move |info| on_signal(signal, info))
            };
        }
    });
}

/// Signals the kernel raises for a failed system call of ours, which reports the failure too.
const RAISED_BY_OUR_WRITES: [i32; 2] = [libc::SIGPIPE, libc::SIGXFSZ];

fn on_signal(signal: i32, info: &libc::siginfo_t) {
    if RAISED_BY_OUR_WRITES.contains(&signal) {
        let code = info.si_code;
        // SAFETY: si_pid is set for the codes `sender` reads it for (kill, sigqueue, tgkill).
        let sender = sender(code, || unsafe { info.si_pid() });
        if sender.is_none_or(|pid| pid == OWN_PID.load(Ordering::SeqCst)) {
            return;
        }
    }
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

#[cfg(target_os = "linux")]
const SENT: [i32; 3] = [libc::SI_USER, libc::SI_QUEUE, libc::SI_TKILL];
/// FreeBSD's sys/signal.h: `SI_USER`, `SI_QUEUE`, `SI_LWP` (`thr_kill`); not in the libc crate.
#[cfg(target_os = "freebsd")]
const SENT: [i32; 3] = [0x10001, 0x10002, 0x10007];
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
const SENT: [i32; 1] = [0];

/// The process that sent a signal with this `si_code`, if a process sent it (kill(2),
/// sigqueue(3)); `None` when the kernel raised it. For a write to a closed pipe or past the
/// file-size limit Linux reports our own pid with `SI_USER`, FreeBSD `SI_KERNEL`.
fn sender(code: i32, pid: impl FnOnce() -> i32) -> Option<i32> {
    SENT.contains(&code).then(pid)
}

/// The signal received since `install`, if any (the first one, when several came).
pub fn received() -> Option<i32> {
    let value = RECEIVED.load(Ordering::SeqCst);
    (value != 0).then_some(value)
}

/// For a forked child before exec: every signal back to its default disposition, and none
/// blocked. exec resets caught signals, but keeps ignored ones and the signal mask, and std's
/// `Command` resets only SIGPIPE: an ignored SIGCHLD or a blocked SIGTERM inherited from whoever
/// started colibri-vault would change how bw waits for its children or ends.
/// Only async-signal-safe calls; errors (SIGKILL, SIGSTOP) are ignored.
pub fn reset_in_child() {
    for signal in all() {
        set_default(signal);
    }
    // SAFETY: sigemptyset(3) and sigprocmask(2) on a set that lives for the duration of the
    // calls; both async-signal-safe. The child has one thread, so the process mask is its mask.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const none, std::ptr::null_mut());
    }
}

/// On Linux through the system call itself: glibc's sigaction(2) refuses the numbers it keeps
/// for its threads (32, 33), which may arrive ignored all the same.
#[cfg(target_os = "linux")]
fn set_default(signal: i32) {
    // The kernel's struct sigaction, all zero: SIG_DFL, no flags, no restorer, empty mask.
    let action = [0_u64; 4];
    // SAFETY: rt_sigaction(2) reads the action (which lives for the duration of the call) and
    // writes no old action; the mask size is the kernel's (64 signals, 8 bytes).
    unsafe {
        libc::syscall(libc::SYS_rt_sigaction, signal, action.as_ptr(), std::ptr::null_mut::<u64>(), 8_usize)
    };
}

#[cfg(not(target_os = "linux"))]
fn set_default(signal: i32) {
    // SAFETY: sigaction(2) with a zeroed action (SIG_DFL, empty mask, no flags) that lives for
    // the duration of the call; async-signal-safe, allowed between fork and exec.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &raw const action, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn nothing_caught_is_forbidden_or_listed_twice() {
        let caught = terminating();
        let set: BTreeSet<i32> = caught.iter().copied().collect();
        assert_eq!(set.len(), caught.len(), "a duplicate in {caught:?}");
        for signal in &caught {
            assert!(!signal_hook_registry::FORBIDDEN.contains(signal), "{signal}");
            assert!(!NOT_CAUGHT.contains(signal), "{signal}");
            assert!(all().contains(signal), "{signal}");
        }
    }

    #[test]
    fn a_sigpipe_or_sigxfsz_counts_only_when_a_process_sent_it() {
        #[cfg(target_os = "linux")]
        let (user, kernel) = (libc::SI_USER, libc::SI_KERNEL);
        #[cfg(target_os = "freebsd")]
        let (user, kernel) = (0x10001, 0x10006);
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        {
            assert_eq!(sender(user, || 4242), Some(4242));
            assert_eq!(sender(kernel, || unreachable!("si_pid is not read for the kernel")), None);
        }
    }

    /// What the default action of `signal` does to a process: forks a child that restores the
    /// default, unblocks the signal and raises it (raise delivers before it returns).
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    fn default_action(signal: i32) -> &'static str {
        // SAFETY: fork(2), then the child makes only async-signal-safe calls (setrlimit, prctl,
        // sigaction, sigprocmask, raise, _exit); the parent waits for it with waitpid(2) on a
        // status it owns, and kills it if it stopped.
        unsafe {
            let child = libc::fork();
            assert!(child >= 0, "fork failed");
            if child == 0 {
                let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::setrlimit(libc::RLIMIT_CORE, &raw const none);
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_DUMPABLE, 0);
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &raw const action, std::ptr::null_mut());
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&raw mut set);
                libc::sigaddset(&raw mut set, signal);
                libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
                libc::raise(signal);
                libc::_exit(0);
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(child, &raw mut status, libc::WUNTRACED), child);
            if libc::WIFSTOPPED(status) {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, &raw mut status, 0);
                "stops"
            } else if libc::WIFSIGNALED(status) {
                assert_eq!(libc::WTERMSIG(status), signal);
                "terminates"
            } else {
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "signal {signal}: {status:#x}"
                );
                "is ignored"
            }
        }
    }

    /// The list is derived by hand per platform; this checks it against the kernel: exactly the
    /// signals whose default action terminates, minus those deliberately not caught.
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    #[test]
    fn the_list_is_every_signal_whose_default_action_terminates() {
        #[cfg(target_os = "linux")]
        let reserved: Vec<i32> = (32..libc::SIGRTMIN()).collect();
        #[cfg(target_os = "freebsd")]
        let reserved: Vec<i32> = vec![libc::SIGTHR];
        let mut terminate = BTreeSet::new();
        for signal in all().filter(|s| !reserved.contains(s)) {
            if signal == libc::SIGKILL {
                terminate.insert(signal); // raise(SIGKILL) would do the same; no need to fork
                continue;
            }
            if default_action(signal) == "terminates" {
                terminate.insert(signal);
            }
        }
        let expected: BTreeSet<i32> =
            terminate.difference(&NOT_CAUGHT.into_iter().collect()).copied().collect();
        let caught: BTreeSet<i32> = terminating().into_iter().collect();
        assert_eq!(caught, expected);
    }
}
