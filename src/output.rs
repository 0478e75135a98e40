//! What commands print for people and scripts on stdout (tables, `--json`, dry runs).
//!
//! One function, so that every command treats a closed stdout the same way (`status | head`).
//! Messages for people go through `logging` to stderr instead.

use std::io::Write;

use crate::error::{Error, Result};

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Config(format!("could not write to stdout: {e}")))
}
