//! Cloned-jail detection: whose env file is this?
//!
//! `bastille clone web web2`, a `zfs clone` or a copied jail directory carries web's env file
//! into web2, which would start with another tenant's secrets. colibri-vault wrote that file, so
//! it can tell: every file it writes is recorded (tenant, jail root, env path, device and inode,
//! content hash: `tenant::FileRecord`), and the provision log keeps every content hash it ever
//! wrote per tenant. A file at a jail's env path is **foreign** to that jail when either
//! - it is the very file (same device and inode) recorded for another tenant, and that tenant's
//!   recorded path still leads to it (a hard link, a directory mounted into both jails; a record
//!   whose file has gone does not count, so a reused inode number is never taken for it), or
//! - its content is what colibri-vault wrote for another tenant, and never for this one (a copy,
//!   a ZFS clone: another device, the same bytes).
//!
//! What callers do with a finding: the pipeline removes a tenant's foreign file before its vault
//! session and writes the tenant's own (`provision`); a hook for a jail without a tenant only
//! reports, it never deletes in a jail that is not a tenant's; `doctor` reports, and removes with
//! `--fix`. This module only reads, never reads through a link, and names tenants and paths,
//! never a value. For a jail without a tenant it costs one query and one `lstat` per distinct
//! env path colibri-vault has written (usually one); only a regular file found there is opened
//! (walking from `/` without following a link), read and hashed.

use std::path::{Path, PathBuf};

use crate::envfile;
use crate::error::Result;
use crate::safe_write::{self, Current, FileId};
use crate::sanitize::clean;
use crate::tenant::{Owner, Store};

/// A file colibri-vault wrote for another tenant, found where it does not belong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Foreign {
    /// The tenant it was written for.
    pub owner: String,
    pub how: How,
    /// The file found (what may be removed: only while its name still leads to it).
    pub id: FileId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// The same file as the one recorded at `path` (a hard link, or a directory shared with
    /// that jail).
    SameFile { path: PathBuf },
    /// A copy of what colibri-vault wrote for that tenant.
    SameContent,
}

impl Foreign {
    /// "PATH is …, written for tenant T …": what was found, for a log line or doctor.
    pub fn describe(&self, path: &Path) -> String {
        let owner = clean(&self.owner);
        let path = clean(&path.to_string_lossy());
        match &self.how {
            How::SameFile { path: other } => format!(
                "{path} is the env file colibri-vault wrote for tenant {owner} at {} (the same file: a hard link, or a directory shared with that jail); it holds tenant {owner}'s secrets",
                clean(&other.to_string_lossy())
            ),
            How::SameContent => format!(
                "{path} is a copy of an env file colibri-vault wrote for tenant {owner} (a cloned or copied jail?); it holds tenant {owner}'s secrets"
            ),
        }
    }
}

/// Whether `current`, found at `root/rel` in the jail `me` (a tenant's name, or the name of a
/// jail without one), is a file colibri-vault wrote for another tenant.
pub fn judge(store: &Store, me: &str, root: &Path, rel: &Path, current: &Current) -> Result<Option<Foreign>> {
    let id = current.id();
    for record in store.files_with_id(id)? {
        if record.tenant == me {
            continue;
        }
        // The record still describes that file: its own path leads to this inode.
        let here = record.root == root && record.path == rel;
        if here || safe_write::id_at(&record.root, &record.path).ok().flatten() == Some(id) {
            let path = record.root.join(&record.path);
            return Ok(Some(Foreign { owner: record.tenant, how: How::SameFile { path }, id }));
        }
    }
    let hash = envfile::sha256_hex(current.bytes());
    let tenants = store.tenants_with_hash(&hash)?;
    if tenants.iter().any(|t| t == me) {
        return Ok(None);
    }
    Ok(tenants.into_iter().next().map(|owner| Foreign { owner, how: How::SameContent, id }))
}

/// For a jail without a tenant (`jail`, rooted at `root`): each env path colibri-vault has
/// written anywhere, looked up beneath `root`, and what is foreign there. Anything that cannot
/// be looked at (a missing directory, a link, a FIFO) is no finding.
pub fn scan(store: &Store, jail: &str, root: &Path) -> Result<Vec<(PathBuf, Foreign)>> {
    let mut found = Vec::new();
    for rel in store.file_paths()? {
        // Most jails have nothing there: one lstat says so before the no-follow walk (which
        // alone decides what is read: this look may pass a link the jail planted, and only
        // sees that something is there).
        if !std::fs::symlink_metadata(root.join(&rel)).is_ok_and(|m| m.file_type().is_file()) {
            continue;
        }
        // The owner only matters for the writer's own judgement; nothing is written here.
        let Ok(Some(current)) = safe_write::inspect(root, &rel, Owner { uid: 0, gid: 0 }) else { continue };
        if let Some(foreign) = judge(store, jail, root, &rel, &current)? {
            found.push((rel, foreign));
        }
    }
    Ok(found)
}
