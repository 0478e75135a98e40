//! Asking the kernel about a running jail.
//!
//! On FreeBSD the `jail` crate answers with the jail's JID and path (`jail_get(2)`); the pipeline
//! compares that path with the tenant's registered root. Elsewhere (and for a jail that is not
//! running, e.g. at boot) there is no kernel answer and the registered root is used.

use std::path::PathBuf;

use crate::error::Result;

#[cfg(target_os = "freebsd")]
#[path = "freebsd.rs"]
mod imp;

#[cfg(not(target_os = "freebsd"))]
#[path = "portable.rs"]
mod imp;

/// A running jail as the kernel sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub name: String,
    pub jid: i32,
    pub path: PathBuf,
}

/// Whether [`by_name`]'s `None` means "not running" (the kernel was asked), rather than "no
/// kernel here to ask".
pub const KERNEL_KNOWS: bool = cfg!(target_os = "freebsd");

/// The running jail called `name`, or `None` when no such jail runs (or no kernel can say).
pub fn by_name(name: &str) -> Result<Option<Running>> {
    imp::by_name(name)
}

/// The running jail with `jid` (for the devd hook, which only knows the JID).
pub fn by_jid(jid: i32) -> Result<Running> {
    imp::by_jid(jid)
}
