//! Steps 4–6 for one tenant, after the vault session has closed: the tenant's items become
//! entries, the entries are rendered in the tenant's format (and, for the `files` layout, as
//! one file per variable), and delivered where the tenant's delivery puts them (`deliver`:
//! beneath the jail root with `safe_write`, or into its memory file system; no link followed,
//! atomic, checked by reading back). A dry run stops before the write and keeps value hashes
//! instead. Content over the writers' limits is refused (65, bad vault data) before either,
//! naming the limit.

use std::path::{Path, PathBuf};

use super::{Ctx, Done, deliver};
use crate::delivery;
use crate::envfile::{self, Entries};
use crate::error::{Error, Result};
use crate::safe_write::{self, Outcome, set};
use crate::source::Fetched;
use crate::tenant::Tenant;

/// What one tenant's materialization produced.
pub(super) struct Materialized {
    pub done: Done,
    /// Its key names.
    pub keys: Vec<String>,
    /// The content hash (`delivery::digest`), when something was delivered.
    pub hash: Option<String>,
    /// Host paths written or found right: the env file, the secrets directory.
    #[allow(dead_code, reason = "for the record of what was written (issue 11)")]
    pub paths: Vec<PathBuf>,
}

/// Entries → bytes → file, for one tenant.
pub(super) fn materialize(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    root: &Path,
    fetched: &Fetched,
    dry_run: bool,
    view: bool,
) -> Result<Materialized> {
    let items = match fetched.get(&tenant.collection) {
        None => {
            return Err(Error::UnknownCollection {
                tenant: tenant.name.clone(),
                collection: tenant.collection.clone(),
            });
        }
        Some(Err(problem)) => return Err(Error::bad_data(&tenant.name, problem.clone())),
        Some(Ok(items)) => items,
    };
    let mut entries: Entries = envfile::entries_from_items(&tenant.name, items, &mut |w| {
        ctx.log.warn(&format!("tenant {}: {w}", tenant.name));
    })?;
    entries.retain(|name, entry| match crate::names::sensitive(name) {
        Some(reason) if !tenant.options.allow_names.contains(name) => {
            ctx.log.warn(&format!(
                "tenant {}: {}: {name} skipped: a shell sourcing the env file would change behaviour ({reason}); to allow it: colibri-vault tenant set {} --allow-name {name}",
                tenant.name, entry.origin, tenant.name
            ));
            false
        }
        _ => true,
    });
    let keys: Vec<String> = entries.keys().cloned().collect();
    let options = &tenant.options;
    let format = options.format;
    let bytes = envfile::render(format, &entries)?;
    if options.layout.has_env() {
        within_limit(tenant, &entries, bytes.len())?;
    }
    let files: Vec<(&str, &[u8])> =
        entries.values().map(|e| (e.name.as_str(), e.value.expose().as_bytes())).collect();
    if options.layout.has_files()
        && let Some(problem) = set::too_large_or_invalid(&files)
    {
        return Err(Error::bad_data(
            &tenant.name,
            format!("the per-variable files cannot be written: {problem}; nothing was written"),
        ));
    }
    let env_hash = options.layout.has_env().then(|| envfile::sha256_hex(&bytes));
    let set_hash = options.layout.has_files().then(|| delivery::set_digest(files.iter().copied()));
    let hash = delivery::digest(options.layout, env_hash.as_deref(), set_hash.as_deref());
    if dry_run {
        let hashes = entries
            .values()
            .map(|e| (e.name.clone(), envfile::sha256_hex(e.value.expose().as_bytes())))
            .collect();
        // Key names are logged (never values); no content hash: nothing was written.
        return Ok(Materialized { done: Done::DryRun { keys: hashes }, keys, hash: None, paths: Vec::new() });
    }
    let check = |back: &[u8]| envfile::round_trips(format, back, &entries);
    let content = deliver::Content { env: &bytes, files: &files, check: &check };
    let delivered = deliver::deliver(ctx.settings, ctx.log, tenant, root, &content, view)?;
    let path = deliver::shown_path(tenant, root);
    let done = match delivered.outcome {
        Outcome::Written => Done::Written { path, keys: keys.clone() },
        Outcome::Unchanged => Done::Unchanged { path, keys: keys.clone() },
    };
    Ok(Materialized { done, keys, hash, paths: delivered.paths })
}

/// Refuses a rendered file over the writer's limit (`safe_write::MAX_FILE`) before anything is
/// written, naming the format, the size, the limit and the largest variable (its name and its
/// size: never any part of a value).
fn within_limit(tenant: &Tenant, entries: &Entries, size: usize) -> Result<()> {
    if size as u64 <= safe_write::MAX_FILE {
        return Ok(());
    }
    let largest = entries
        .values()
        .max_by_key(|e| e.value.expose().len())
        .map(|e| format!("; the largest value is {}'s ({} bytes)", e.name, e.value.expose().len()))
        .unwrap_or_default();
    Err(Error::bad_data(
        &tenant.name,
        format!(
            "the env file {} would be {size} bytes in format {}, over the {} limit{largest}; nothing \
             was written (keep large data out of env files)",
            tenant.options.env_path.display(),
            tenant.options.format,
            safe_write::MAX_FILE_TEXT
        ),
    ))
}
