//! Elsewhere (neither FreeBSD nor Linux): delivery `memory` is not available; every verb says
//! so, and nothing is ever listed as mounted.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::Path;

use super::Mounted;
use crate::tenant::Owner;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Id;

const UNAVAILABLE: &str = "delivery memory needs FreeBSD or Linux";

pub fn mount_memory(_: &OwnedFd, _: &str, _: Owner, _: u64) -> Result<(), String> {
    Err(UNAVAILABLE.into())
}

pub fn bind_read_only(_: &OwnedFd, _: &Path, _: &OwnedFd, _: &OsStr, _: &OwnedFd) -> Result<(), String> {
    Err(UNAVAILABLE.into())
}

pub fn on_mount(_: &OwnedFd, _: &Mounted) -> bool {
    false
}

pub fn unmount(_: &Mounted) -> Result<(), String> {
    Err(UNAVAILABLE.into())
}

pub fn is_memory(_: &Mounted, _: &Path, _: &str) -> bool {
    false
}

pub fn is_view(_: &Mounted, _: &Path, _: &str) -> bool {
    false
}

pub fn mounted() -> std::io::Result<Vec<Mounted>> {
    Ok(Vec::new())
}
