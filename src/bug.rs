//! A bug (a panic) ends the run cleanly: vault session logged out, one sanitized line, status 70.
//!
//! The release profile unwinds (`panic = "unwind"` in Cargo.toml), so a panic runs every
//! destructor on its way up: the `bw` session's logout, the lock's release, the removal of a
//! temporary file in the jail. [`contain`] stops it at the top of `run`, which reports a
//! [`Bug`] and exits with `EX_SOFTWARE` (70). The panic hook replaces the default one, which
//! would print the panic's message: that text is built from whatever the failing code had at
//! hand, so it is never printed; only where in colibri-vault's source the panic happened.
//!
//! Not a recovery mechanism: nothing continues after a bug. The code on the cleanup path (the
//! logout, logging) must not panic itself, since a panic while unwinding aborts the process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

/// Where the first panic happened: a source file and line, never its message.
static LOCATION: OnceLock<String> = OnceLock::new();

/// Replaces the default panic hook with one that prints nothing and keeps the location.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        if let Some(location) = info.location() {
            let _ = LOCATION.set(format!("{}:{}", location.file(), location.line()));
        }
    }));
}

/// An unexpected panic, contained.
#[derive(Debug)]
pub struct Bug {
    location: Option<String>,
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "internal error (a bug in colibri-vault")?;
        if let Some(location) = &self.location {
            write!(f, " at {}", crate::sanitize::sanitize(location, 200))?;
        }
        write!(f, "); the run was stopped after its cleanup, which ends any bw session; please report it")
    }
}

/// Runs `f`; a panic inside it unwinds through every destructor and comes back as a `Bug`.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, Bug> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        // The payload is the panic's message (or any value): never shown, and not dropped
        // either, since a payload's destructor could panic in turn; the process ends soon.
        std::mem::forget(payload);
        Bug { location: LOCATION.get().cloned() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Cleanup(Arc<AtomicBool>);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_panic_runs_the_cleanup_and_its_message_is_not_reported() {
        let cleaned = Arc::new(AtomicBool::new(false));
        let guard = Cleanup(Arc::clone(&cleaned));
        let bug = contain(move || {
            let _guard = guard;
            panic!("a message holding hunter2");
        })
        .unwrap_err();
        assert!(cleaned.load(Ordering::SeqCst), "the destructor ran while unwinding");
        let text = bug.to_string();
        assert!(text.starts_with("internal error (a bug in colibri-vault"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn without_a_panic_the_value_comes_back() {
        assert_eq!(contain(|| 7).unwrap(), 7);
    }
}
