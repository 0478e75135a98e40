//! No jail kernel here: every lookup says "unknown", and the registered root is used.

use super::Running;
use crate::error::{Error, Result};

#[allow(clippy::unnecessary_wraps)]
pub fn by_name(_name: &str) -> Result<Option<Running>> {
    Ok(None)
}

pub fn by_jid(jid: i32) -> Result<Running> {
    Err(Error::Jail(format!("cannot resolve JID {jid}: jails exist only on FreeBSD")))
}
