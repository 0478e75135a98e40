//! Steps 4–6 for one tenant, after the vault session has closed: the tenant's items become
//! entries, the entries are rendered in the tenant's format (and, for the `files` layout, as
//! one file per variable), and delivered where the tenant's delivery puts them (`deliver`:
//! beneath the jail root with `safe_write`, or into its memory file system; no link followed,
//! atomic, checked by reading back). A dry run stops before the write and keeps value hashes
//! instead. Content over the writers' limits is refused (65, bad vault data) before either,
//! naming the limit.
//!
//! Whether the content changed is the content hash of what is delivered now against the new
//! one. Which keys changed is found without storing anything: the env file about to be
//! replaced is read back (no link followed) and, if it is the one colibri-vault last wrote for
//! this tenant (its content hash says so: never a file the jail wrote, whose names could be
//! anything), parsed and compared with the new entries. Only names come out; without an env
//! file (layout `files`) they are unknown. Also here: removing a file another tenant's jail
//! was cloned with (`clones`), before the session.

use std::collections::{BTreeMap, BTreeSet};

use super::{Changed, Ctx, Done, Pending, deliver};
use crate::delivery::{self, Delivery};
use crate::envfile::{self, Entries, Format};
use crate::error::{Error, Result};
use crate::safe_write::{self, Outcome, set};
use crate::secret::Secret;
use crate::source::Fetched;
use crate::tenant::{FileRecord, Tenant};

/// What one tenant's materialization produced.
pub(super) struct Materialized {
    pub done: Done,
    pub keys: Vec<String>,
    /// The content hash (`delivery::digest`; none for a dry run).
    pub hash: Option<String>,
    /// For a write: the names whose value was added, changed or removed (`None`: unknown).
    pub changed: Option<Vec<String>>,
    /// Whether the content differs from what was delivered before (nothing there counts).
    pub content_changed: bool,
    /// The env file written or left alone on the jail's disk, for the record of files.
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

/// Entries → bytes → delivery, for one tenant. `view`: show a memory file system in the jail
/// (every trigger but the boot batch).
pub(super) fn materialize(
    ctx: &Ctx<'_>,
    p: &Pending,
    fetched: &Fetched,
    dry_run: bool,
    view: bool,
) -> Result<Materialized> {
    let (tenant, root) = (&p.tenant, p.root.as_path());
    let entries = entries(tenant, fetched, &mut |w| ctx.log.warn(&w))?;
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
    // What is delivered before this run: whether anything changed, and which keys.
    let before = deliver::current(ctx.settings, tenant, root).ok().flatten();
    let content_changed = before.as_ref().is_none_or(|b| b.hash != hash);
    let env_before = deliver::env_now(ctx.settings, tenant, root);
    let check = |back: &[u8]| envfile::round_trips(format, back, &entries);
    let content = deliver::Content { env: &bytes, files: &files, check: &check };
    let delivered = deliver::deliver(ctx.settings, ctx.log, tenant, root, &content, view)?;
    let path = deliver::shown_path(tenant, root);
    let file = match (options.delivery, delivered.env_on_disk, &hash) {
        (Delivery::File, Some(id), Some(hash)) => Some(FileRecord {
            tenant: tenant.name.clone(),
            root: root.to_owned(),
            path: options.env_path.clone(),
            id,
            content_hash: hash.clone(),
        }),
        _ => None,
    };
    let mut replaced = Vec::new();
    let (done, changed) = match delivered.outcome {
        Outcome::Written => {
            let changed = match (&before, &env_before) {
                (None, _) => Changed::NewFile,
                (Some(_), _) if !content_changed => Changed::Keys(Vec::new()),
                (Some(b), Some(env)) if b.hash.is_some() && p.last_hash == b.hash => {
                    match compare(format, env.bytes(), &entries) {
                        Some((names, old)) => {
                            replaced = old;
                            Changed::Keys(names)
                        }
                        None => Changed::Unknown,
                    }
                }
                _ => Changed::Unknown,
            };
            let names = changed.names(&keys);
            (Done::Written { path, keys: keys.clone(), changed }, names)
        }
        Outcome::Unchanged => (Done::Unchanged { path, keys: keys.clone() }, Some(Vec::new())),
    };
    Ok(Materialized { done, keys, hash, changed, content_changed, file, replaced })
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
