//! Steps 4–6 for one tenant, after the vault session has closed: the tenant's items become
//! entries, the entries are rendered in the tenant's format, and the bytes are written beneath
//! the jail root (`safe_write`: no link followed, 0600, atomic, checked by parsing back).
//! A dry run stops before the write and keeps value hashes instead. Content over the
//! writer's size limit is refused (65, bad vault data) before either, naming the limit.

use std::path::Path;

use super::{Ctx, Done};
use crate::envfile::{self, Entries};
use crate::error::{Error, Result};
use crate::safe_write::{self, Outcome};
use crate::source::Fetched;
use crate::tenant::Tenant;

/// What one tenant's materialization produced: the outcome, its key names, the content hash.
pub(super) type Materialized = (Done, Vec<String>, Option<String>);

/// Entries → bytes → file, for one tenant.
pub(super) fn materialize(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    root: &Path,
    fetched: &Fetched,
    dry_run: bool,
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
    let format = tenant.options.format;
    let bytes = envfile::render(format, &entries)?;
    within_limit(tenant, &entries, bytes.len())?;
    let hash = envfile::sha256_hex(&bytes);
    if dry_run {
        let hashes = entries
            .values()
            .map(|e| (e.name.clone(), envfile::sha256_hex(e.value.expose().as_bytes())))
            .collect();
        // Key names are logged (never values); no content hash: nothing was written.
        return Ok((Done::DryRun { keys: hashes }, keys, None));
    }
    let env_path = &tenant.options.env_path;
    let path = root.join(env_path);
    let check = |back: &[u8]| envfile::round_trips(format, back, &entries);
    let done = match safe_write::write(root, env_path, &bytes, tenant.options.owner, &check)? {
        Outcome::Written => Done::Written { path, keys: keys.clone() },
        Outcome::Unchanged => Done::Unchanged { path, keys: keys.clone() },
    };
    Ok((done, keys, Some(hash)))
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
