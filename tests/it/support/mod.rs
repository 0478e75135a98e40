//! Test helpers.

use std::io::Write as _;

/// Whether this run is CI (`.ci/run` exports `CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A test that cannot run here: fails in CI, else says so loudly and lets the caller return.
/// Written straight to the process's stderr, since libtest hides `eprintln!` of passing tests.
#[track_caller]
pub fn skip(what: &str, why: &str) {
    assert!(!in_ci(), "{what} must run in CI, but: {why}");
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! SKIPPED ({why}): {what} !!!!!!!!\n");
}
/// Whether process `pid` runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            !matches!(stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()), Some("Z" | "X"))
        }
        // SAFETY: kill with signal 0 only checks that the process exists.
        Err(_) => unsafe { libc::kill(pid, 0) == 0 },
    }
}

pub mod bwserver;
pub mod fake_bw;
pub mod host;
pub mod jexec;
#[cfg(target_os = "linux")]
pub mod mounts;
pub mod real_bw;
