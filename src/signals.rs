//! SIGTERM, SIGINT and SIGHUP during a run.
//!
//! A signal must not kill colibri-vault between `bw login` and `bw logout`: that would leave
//! bw logged in, with the API client secret in clear text in its data file. So the handlers
//! only record the signal; the waits (the lock, each `bw` child) poll for it, kill what they
//! wait for, and unwind through the normal cleanup (logout), after which the process exits
//! with the conventional status 128 + signal.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the recording handlers (idempotent).
pub fn install() {
    let flag = RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // Registration only fails for forbidden signals (SIGKILL…), which these are not.
        let _ =
            signal_hook::flag::register_usize(signal, Arc::clone(flag), usize::try_from(signal).unwrap_or(0));
    }
}

/// The signal received since `install`, if any.
pub fn received() -> Option<i32> {
    let value = RECEIVED.get()?.load(Ordering::SeqCst);
    (value != 0).then(|| i32::try_from(value).unwrap_or(libc::SIGTERM))
}
