//! Finding the real Bitwarden CLI for the tiers that run it.
//!
//! In CI (`CI=true`) the real bw must be there (`.ci/run` installs it from npm): its absence
//! fails the test. Elsewhere a missing bw is announced loudly on stderr and the caller returns
//! early; it is never silent.

use std::path::PathBuf;

/// The real `bw`: `$REAL_BW`, else `bw` on this process's `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REAL_BW") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("bw")).find(|p| p.is_file())
}

/// The real bw, or `None` after a loud notice (and a failure in CI).
#[track_caller]
pub fn require(what: &str) -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the real bw must be installed in CI (npm install -g @bitwarden/cli) for: {what}"
        );
        eprintln!("\n!!!!!!!! SKIPPED (real bw not installed): {what} !!!!!!!!\n");
    }
    found
}
