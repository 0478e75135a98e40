//! Step 6 by delivery and layout: where the rendered env file and the per-variable files go,
//! what is there now (for freshness), and what a stop takes away.
//!
//! - `file`: the env file at `--env-path` beneath the jail root (`safe_write::write`), the set
//!   in the secrets directory on the jail's disk (made with the no-follow walk, 0700, the
//!   configured owner; `safe_write::set`).
//! - `memory`: both inside the tenant's memory file system (`memfs`), through its checked root
//!   descriptor, the env file named like `--env-path`'s file name; the file system is shown
//!   read-only in the jail at the secrets directory. The view is made before anything is
//!   written (so a planted link refuses the delivery with nothing in memory) — except at boot,
//!   when the jails are not running yet and their start hooks make it. Should the view be
//!   refused, or the write fail while the memory file system held no complete earlier content
//!   (a first start, a crash between mount and write), everything is unmounted: nothing half
//!   made stays mounted.
//!
//! Either delivery also clears what the other left: a `file` tenant's memory file system (the
//! delivery was changed) goes at its next start or stop.

use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::delivery::{self, Delivery};
use crate::envfile;
use crate::error::{Error, Result};
use crate::logging::Log;
use crate::memfs::{self, Place};
use crate::safe_write::{self, NewDir, Outcome, set};
use crate::tenant::Tenant;

/// What to write.
pub(crate) struct Content<'a> {
    /// The rendered env file (used when the layout has one).
    pub env: &'a [u8],
    /// The per-variable files (used when the layout has them).
    pub files: &'a set::Files<'a>,
    /// Accepts the env file's bytes read back before its rename.
    pub check: &'a dyn Fn(&[u8]) -> bool,
}

/// What a delivery did.
pub(crate) struct Delivered {
    pub outcome: Outcome,
    /// The device and inode of the env file on the jail's disk (delivery `file`): for the
    /// record that finds a cloned jail's copy (`clones`).
    pub env_on_disk: Option<safe_write::FileId>,
}

/// The secrets directory relative to the jail root.
fn secrets_rel(tenant: &Tenant) -> PathBuf {
    delivery::relative(&tenant.options.secrets_dir())
}

pub(crate) fn place(settings: &Settings, tenant: &Tenant) -> Place {
    Place::new(&settings.run_dir, &tenant.name)
}

/// The path a report shows: the env file as the jail has it, or the secrets directory.
pub(crate) fn shown_path(tenant: &Tenant, root: &Path) -> PathBuf {
    let o = &tenant.options;
    match (o.delivery, o.layout.has_env()) {
        (Delivery::File, true) => root.join(&o.env_path),
        (Delivery::Memory, true) => root.join(secrets_rel(tenant)).join(memfs::env_name(&o.env_path)),
        (_, false) => root.join(secrets_rel(tenant)),
    }
}

fn either(a: Outcome, b: Outcome) -> Outcome {
    if a == Outcome::Written || b == Outcome::Written { Outcome::Written } else { Outcome::Unchanged }
}

/// Writes `content` where the tenant's delivery and layout put it. `view`: make sure the
/// memory file system is shown in the jail (every trigger but the boot batch).
pub(crate) fn deliver(
    settings: &Settings,
    log: &Log,
    tenant: &Tenant,
    root: &Path,
    content: &Content<'_>,
    view: bool,
) -> Result<Delivered> {
    match tenant.options.delivery {
        Delivery::File => {
            tidy(settings, log, tenant);
            deliver_file(tenant, root, content)
        }
        Delivery::Memory => deliver_memory(settings, log, tenant, root, content, view),
    }
}

fn deliver_file(tenant: &Tenant, root: &Path, content: &Content<'_>) -> Result<Delivered> {
    let o = &tenant.options;
    let mut outcome = Outcome::Unchanged;
    let mut env_on_disk = None;
    if o.layout.has_env() {
        let (written, id) =
            safe_write::write_identified(root, &o.env_path, content.env, o.owner, content.check)?;
        outcome = either(outcome, written);
        env_on_disk = Some(id);
    }
    if o.layout.has_files() {
        let rel = secrets_rel(tenant);
        let (_, _, dir) = safe_write::open_dir_creating(root, &rel, NewDir { mode: 0o700, owner: o.owner })?;
        outcome = either(outcome, set::write(&dir, &root.join(&rel), content.files, o.owner)?);
    }
    Ok(Delivered { outcome, env_on_disk })
}

fn deliver_memory(
    settings: &Settings,
    log: &Log,
    tenant: &Tenant,
    root: &Path,
    content: &Content<'_>,
    view: bool,
) -> Result<Delivered> {
    let o = &tenant.options;
    let place = place(settings, tenant);
    let memory = memfs::ensure_memory(&place, &settings.run_dir, o.owner)?;
    let complete_before =
        current_in_memory(tenant, &place, &memory).is_ok_and(|c| c.is_some_and(|c| c.problems.is_empty()));
    let undo = |e: Error| {
        if let Err(t) = memfs::teardown(&place) {
            log.error(&format!("jail {}: {t}", tenant.name));
        }
        e
    };
    if view {
        memfs::ensure_view(&place, &memory, root, &secrets_rel(tenant)).map_err(undo)?;
    }
    let written = (|| {
        let mut outcome = Outcome::Unchanged;
        if o.layout.has_env() {
            let name = memfs::env_name(&o.env_path);
            let full = place.dir.join(name);
            outcome = either(
                outcome,
                safe_write::write_in(&memory, name, &full, content.env, o.owner, content.check)?,
            );
        }
        if o.layout.has_files() {
            outcome = either(outcome, set::write(&memory, &place.dir, content.files, o.owner)?);
        }
        Ok(Delivered { outcome, env_on_disk: None })
    })();
    match written {
        Err(e) if !complete_before => Err(undo(e)),
        other => other,
    }
}

/// After a run that could not deliver (the fetch failed): a `memory` tenant's file system that
/// holds no complete content (a first start, a crash between mount and write) goes, so that
/// nothing half made stays mounted; one with earlier content stays, as an env file would.
pub(crate) fn abandon_incomplete(settings: &Settings, log: &Log, tenant: &Tenant) {
    let place = place(settings, tenant);
    if tenant.options.delivery != Delivery::Memory || !place.may_exist() {
        return;
    }
    let complete = memfs::open_memory(&place).ok().flatten().is_some_and(|memory| {
        current_in_memory(tenant, &place, &memory).is_ok_and(|c| c.is_some_and(|c| c.problems.is_empty()))
    });
    if !complete && let Err(e) = memfs::teardown(&place) {
        log.error(&format!("jail {}: {e}", tenant.name));
    }
}

/// A `file` tenant's memory file system (left from when its delivery was `memory`) goes.
pub(crate) fn tidy(settings: &Settings, log: &Log, tenant: &Tenant) {
    let place = place(settings, tenant);
    if tenant.options.delivery == Delivery::File && place.may_exist() {
        match memfs::teardown(&place) {
            Ok(done) if !done.unmounted.is_empty() => log.notice(&format!(
                "jail {}: delivery is file now: unmounted its memory file system ({} mounts)",
                tenant.name,
                done.unmounted.len()
            )),
            Ok(_) => {}
            Err(e) => log.error(&format!("jail {}: {e}", tenant.name)),
        }
    }
}

/// Makes sure a `memory` tenant's content, found fresh, is shown in the jail.
pub(crate) fn show(settings: &Settings, tenant: &Tenant, root: &Path) -> Result<()> {
    if tenant.options.delivery != Delivery::Memory {
        return Ok(());
    }
    let place = place(settings, tenant);
    let memory = memfs::open_memory(&place)?
        .ok_or_else(|| Error::write(&place.dir, "the memory file system is not mounted any more"))?;
    memfs::ensure_view(&place, &memory, root, &secrets_rel(tenant))
}

/// What is delivered now, judged as the writers judge it.
pub(crate) struct Current {
    /// The content hash (`delivery::digest`), when every part of the layout is there.
    pub hash: Option<String>,
    /// What is not as the writers leave it, each naming its path.
    pub problems: Vec<String>,
}

/// The tenant's delivered content as it is now; `None` when nothing is there.
pub(crate) fn current(settings: &Settings, tenant: &Tenant, root: &Path) -> Result<Option<Current>> {
    let o = &tenant.options;
    match o.delivery {
        Delivery::Memory => {
            let place = place(settings, tenant);
            match memfs::open_memory(&place)? {
                Some(memory) => current_in_memory(tenant, &place, &memory),
                None => Ok(None),
            }
        }
        Delivery::File => {
            let env = if o.layout.has_env() {
                let full = root.join(&o.env_path);
                safe_write::inspect(root, &o.env_path, o.owner)?.map(|c| (full, c))
            } else {
                None
            };
            let set = if o.layout.has_files() {
                let dir = root.join(secrets_rel(tenant));
                match safe_write::open_dir_nofollow(&dir) {
                    Ok(fd) => set::inspect(&fd, &dir, o.owner)?.map(|s| (dir, s)),
                    Err(_) if std::fs::symlink_metadata(&dir).is_err() => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            Ok(judge(tenant, env.as_ref(), set.as_ref()))
        }
    }
}

/// The tenant's env file as it is now, in either delivery (`None`: the layout has none, or
/// nothing is there): what `refresh` compares the new entries with, to say which keys changed.
pub(crate) fn env_now(settings: &Settings, tenant: &Tenant, root: &Path) -> Option<safe_write::Current> {
    let o = &tenant.options;
    if !o.layout.has_env() {
        return None;
    }
    match o.delivery {
        Delivery::File => safe_write::inspect(root, &o.env_path, o.owner).ok().flatten(),
        Delivery::Memory => {
            let place = place(settings, tenant);
            let memory = memfs::open_memory(&place).ok().flatten()?;
            let name = memfs::env_name(&o.env_path);
            safe_write::inspect_in(&memory, name, &place.dir.join(name), o.owner).ok().flatten()
        }
    }
}

fn current_in_memory(
    tenant: &Tenant,
    place: &Place,
    memory: &std::os::fd::OwnedFd,
) -> Result<Option<Current>> {
    let o = &tenant.options;
    let env = if o.layout.has_env() {
        let name = memfs::env_name(&o.env_path);
        let full = place.dir.join(name);
        safe_write::inspect_in(memory, name, &full, o.owner)?.map(|c| (full, c))
    } else {
        None
    };
    let set = if o.layout.has_files() {
        set::inspect(memory, &place.dir, o.owner)?.map(|s| (place.dir.clone(), s))
    } else {
        None
    };
    Ok(judge(tenant, env.as_ref(), set.as_ref()))
}

fn judge(
    tenant: &Tenant,
    env: Option<&(PathBuf, safe_write::Current)>,
    set: Option<&(PathBuf, set::CurrentSet)>,
) -> Option<Current> {
    if env.is_none() && set.is_none() {
        return None;
    }
    let layout = tenant.options.layout;
    let mut problems = Vec::new();
    if let Some((path, c)) = env
        && let Some(p) = c.problem()
    {
        problems.push(format!("{} is {p}", path.display()));
    }
    if let Some((path, s)) = set
        && let Some(p) = s.problem()
    {
        problems.push(format!("the set in {} is not as written ({p})", path.display()));
    }
    if layout.has_env() && env.is_none() {
        problems.push("the env file is missing".into());
    }
    if layout.has_files() && set.is_none() {
        problems.push("the per-variable files are missing".into());
    }
    let env_hash = env.map(|(_, c)| envfile::sha256_hex(c.bytes()));
    let set_hash = set.map(|(_, s)| s.digest());
    Some(Current { hash: delivery::digest(layout, env_hash.as_deref(), set_hash.as_deref()), problems })
}

/// What [`at_stop`] did.
pub(crate) struct Stopped {
    /// One phrase per thing taken away (mounts, files).
    pub done: Vec<String>,
    /// Whether the env file on the jail's disk was removed (its record of files goes too).
    pub env_removed: bool,
}

/// At the jail's stop: a `memory` tenant's file system and views go, whatever else; a `file`
/// tenant's files go when it asked for cleanup (`root`: its checked root, needed only then).
pub(crate) fn at_stop(
    settings: &Settings,
    tenant: &Tenant,
    root: impl FnOnce() -> Result<PathBuf>,
) -> Result<Stopped> {
    let mut done = Vec::new();
    let mut env_removed = false;
    let place = place(settings, tenant);
    if tenant.options.delivery == Delivery::Memory || place.may_exist() {
        let t = memfs::teardown(&place)?;
        done.extend(t.unmounted.iter().map(|p| format!("unmounted {}", p.display())));
    }
    let o = &tenant.options;
    if o.delivery == Delivery::File && o.cleanup_on_stop {
        let root = root()?;
        if o.layout.has_env() && safe_write::remove(&root, &o.env_path)? {
            done.push(format!("removed {}", root.join(&o.env_path).display()));
            env_removed = true;
        }
        if o.layout.has_files() {
            let dir = root.join(secrets_rel(tenant));
            if std::fs::symlink_metadata(&dir).is_ok()
                && set::remove(&safe_write::open_dir_nofollow(&dir)?, &dir)?
            {
                done.push(format!("removed the per-variable files in {}", dir.display()));
            }
        }
    }
    Ok(Stopped { done, env_removed })
}
