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
pub mod bwserver;
pub mod fake_bw;
pub mod host;
pub mod real_bw;
