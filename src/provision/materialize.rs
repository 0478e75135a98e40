//! Steps 4–6 for one tenant, after the vault session has closed: the tenant's items become
//! entries, the entries are rendered in the tenant's format, and the bytes are written beneath
//! the jail root (`safe_write`: no link followed, 0600, atomic, checked by parsing back).
//! A dry run stops before the write and keeps value hashes instead. Content over the
//! writer's size limit is refused (65, bad vault data) before either, naming the limit.
//!
//! Which keys changed is found without storing anything: the file about to be replaced is read
//! back (no link followed) and, if it is the one colibri-vault last wrote for this tenant (its
//! content hash says so: never a file the jail wrote, whose names could be anything), parsed
//! and compared with the new entries. Only names come out. Also here: removing a file another
//! tenant's jail was cloned with (`clones`), before the session.

use std::collections::{BTreeMap, BTreeSet};

use super::{Changed, Ctx, Done, Pending};
use crate::envfile::{self, Entries, Format};
use crate::error::{Error, Result};
use crate::safe_write::{self, Outcome};
use crate::secret::Secret;
use crate::source::Fetched;
use crate::tenant::{FileRecord, Tenant};

/// What one tenant's materialization produced.
pub(super) struct Materialized {
    pub done: Done,
    pub keys: Vec<String>,
    /// The content hash of the file (none for a dry run).
    pub hash: Option<String>,
    /// For a write: the names whose value was added, changed or removed (`None`: unknown).
    pub changed: Option<Vec<String>>,
    /// Whether the file's bytes differ from what was there before (nothing there counts).
    pub content_changed: bool,
    /// The file written or left alone, for the record of files.
    pub file: Option<FileRecord>,
    /// The values of the file replaced, when it was colibri-vault's own: kept out of the logs
    /// as well as the new ones (an on-change command may print either).
    pub replaced: Vec<Secret>,
}

/// The tenant's entries as the pipeline serves them: its collection's items, minus the names
/// a sourcing shell would misread unless the tenant allows them. Warnings go to `warn`.
pub(super) fn entries(tenant: &Tenant, fetched: &Fetched, warn: &mut dyn FnMut(String)) -> Result<Entries> {
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
        warn(format!("tenant {}: {w}", tenant.name));
    })?;
    entries.retain(|name, entry| match crate::names::sensitive(name) {
        Some(reason) if !tenant.options.allow_names.contains(name) => {
            warn(format!(
                "tenant {}: {}: {name} skipped: a shell sourcing the env file would change behaviour ({reason}); to allow it: colibri-vault tenant set {} --allow-name {name}",
                tenant.name, entry.origin, tenant.name
            ));
            false
        }
        _ => true,
    });
    Ok(entries)
}

/// Entries → bytes → file, for one tenant.
pub(super) fn materialize(
    ctx: &Ctx<'_>,
    p: &Pending,
    fetched: &Fetched,
    dry_run: bool,
) -> Result<Materialized> {
    let (tenant, root) = (&p.tenant, p.root.as_path());
    let entries = entries(tenant, fetched, &mut |w| ctx.log.warn(&w))?;
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
        let done = Done::DryRun { keys: hashes };
        return Ok(Materialized {
            done,
            keys,
            hash: None,
            changed: None,
            content_changed: false,
            file: None,
            replaced: Vec::new(),
        });
    }
    let env_path = &tenant.options.env_path;
    let path = root.join(env_path);
    // What is there before the write: to say which keys changed, and whether anything did.
    let before = safe_write::inspect(root, env_path, tenant.options.owner).ok().flatten();
    let content_changed = before.as_ref().is_none_or(|b| b.bytes() != bytes.as_slice());
    let check = |back: &[u8]| envfile::round_trips(format, back, &entries);
    let (outcome, id) = safe_write::write_identified(root, env_path, &bytes, tenant.options.owner, &check)?;
    let file = FileRecord {
        tenant: tenant.name.clone(),
        root: root.to_owned(),
        path: env_path.clone(),
        id,
        content_hash: hash.clone(),
    };
    let mut replaced = Vec::new();
    let (done, changed) = match outcome {
        Outcome::Written => {
            let changed = match &before {
                None => Changed::NewFile,
                Some(_) if !content_changed => Changed::Keys(Vec::new()),
                Some(b) if p.last_hash.as_deref() == Some(&envfile::sha256_hex(b.bytes())) => {
                    match compare(format, b.bytes(), &entries) {
                        Some((names, old)) => {
                            replaced = old;
                            Changed::Keys(names)
                        }
                        None => Changed::Unknown,
                    }
                }
                Some(_) => Changed::Unknown,
            };
            let names = changed.names(&keys);
            (Done::Written { path, keys: keys.clone(), changed }, names)
        }
        Outcome::Unchanged => (Done::Unchanged { path, keys: keys.clone() }, Some(Vec::new())),
    };
    Ok(Materialized { done, keys, hash: Some(hash), changed, content_changed, file: Some(file), replaced })
}

/// The names whose value differs between `old` (our own earlier file, in `format`) and
/// `entries` (added, changed or removed), and the old values. `None` if `old` does not parse
/// (it was written in another format).
fn compare(format: Format, old: &[u8], entries: &Entries) -> Option<(Vec<String>, Vec<Secret>)> {
    let old: BTreeMap<String, Secret> = envfile::parse(format, old).ok()?.into_iter().collect();
    let mut changed: BTreeSet<String> = entries
        .iter()
        .filter(|(name, e)| old.get(*name).is_none_or(|v| v.expose() != e.value.expose()))
        .map(|(name, _)| name.clone())
        .collect();
    changed.extend(old.keys().filter(|name| !entries.contains_key(*name)).cloned());
    Some((changed.into_iter().collect(), old.into_values().collect()))
}

/// Removes each pending tenant's foreign file (one colibri-vault wrote for another tenant:
/// `clones`), if its name still leads to the file judged (the record stays: it is the other
/// tenant's). A failure is said, and left to the write, which then fails too.
pub(super) fn remove_foreign(ctx: &Ctx<'_>, pending: &[Pending]) {
    for p in pending {
        let Some(foreign) = &p.foreign else { continue };
        let rel = &p.tenant.options.env_path;
        let shown = p.root.join(rel);
        match safe_write::remove_if(&p.root, rel, foreign.id) {
            Ok(true) => ctx.log.notice(&format!(
                "jail {}: removed {} (tenant {}'s secrets)",
                p.jail,
                shown.display(),
                crate::sanitize::clean(&foreign.owner)
            )),
            Ok(false) => {}
            Err(e) => {
                ctx.log.error(&format!("jail {}: could not remove another tenant's env file: {e}", p.jail));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envfile::Entry;

    fn entries(pairs: &[(&str, &str)]) -> Entries {
        pairs
            .iter()
            .map(|(k, v)| {
                let entry = Entry { name: (*k).into(), value: Secret::from(*v), origin: format!("item {k}") };
                ((*k).to_owned(), entry)
            })
            .collect()
    }

    #[test]
    fn changed_names_are_added_changed_and_removed_ones() {
        let old = b"A='1'\nB='2'\nGONE='x'\n";
        let new = entries(&[("A", "1"), ("B", "two"), ("NEW", "n")]);
        let (names, old_values) = compare(Format::Sh, old, &new).unwrap();
        assert_eq!(names, ["B", "GONE", "NEW"]);
        let mut values: Vec<&str> = old_values.iter().map(Secret::expose).collect();
        values.sort_unstable();
        assert_eq!(values, ["1", "2", "x"]);
        assert_eq!(compare(Format::Sh, b"A='1'\n", &entries(&[("A", "1")])).unwrap().0, Vec::<String>::new());
        // Our earlier file in another format: nothing to compare with.
        assert!(compare(Format::Json, old, &new).is_none());
    }
}
