//! Writing to standard output and standard error without ever panicking.
//!
//! `println!` panics when the write fails, and a reader that goes away (`status | head -1`,
//! `tenant list | true`) makes it fail with EPIPE. Every command prints to stdout through
//! [`print`] instead: a closed pipe becomes [`Error::OutputClosed`], a quiet exit with status
//! 141 (128 + SIGPIPE, what a shell reports for a pipeline member killed by SIGPIPE), and any
//! other failure (a full disk behind a redirection) an error with status 74. Messages go to
//! stderr through [`stderr`], which ignores failures: with stderr closed there is nobody to
//! tell, and the run (and its logout) must go on.

use std::io::Write as _;

use crate::error::{Error, Result};

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe { Error::OutputClosed } else { Error::Output(e) }
    })
}

/// Writes `text` to stderr in one call, best effort.
pub fn stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
