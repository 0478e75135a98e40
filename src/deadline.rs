//! When a wait gives up: the end of one `bw` call, of the wait for the host-wide lock.
//!
//! `Instant + Duration` panics when the sum does not fit the clock; a deadline is computed with
//! checked arithmetic instead. The settings refuse durations past their documented maxima
//! (`config`), so a deadline that does not fit cannot come from them; should one reach here
//! anyway, it is one that never passes rather than a panic.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline { at: Instant::now().checked_add(timeout) }
    }

    /// Whether the deadline has come.
    pub fn passed(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_duration_is_a_deadline_without_panicking() {
        assert!(Deadline::after(Duration::ZERO).passed());
        assert!(!Deadline::after(Duration::from_secs(3600)).passed());
        assert!(!Deadline::after(Duration::from_secs(u64::MAX)).passed());
        assert!(!Deadline::after(Duration::MAX).passed());
    }
}
