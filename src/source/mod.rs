//! Secrets sources behind one interface.
//!
//! A source opens one *session* (for `bw`: login and unlock), answers one `fetch` for a set of
//! collections, and is closed (for `bw`: logout). The pipeline asks for every collection it
//! serves in a single `fetch`, so a batch of tenants costs one session whatever its size.
//! Sources return raw items; turning them into entries is `envfile`'s job, shared by all.
//!
//! This module holds only the shared types and the `dir` source; the `bw` source (`crate::bw`)
//! implements [`Session`] on its own, and the pipeline picks one (`provision::session`), so
//! neither source depends on the other or on the pipeline.

pub mod dir;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::secret::Secret;

/// One item of a collection, as the source found it.
#[derive(Clone)]
pub struct Item {
    /// Names the item in messages: never its value.
    pub label: String,
    pub content: ItemContent,
}

#[derive(Clone)]
pub enum ItemContent {
    /// One variable: a Login item (name = `login.password`) or a `KEY=VALUE` line of a file.
    Entry { name: String, value: Secret },
    /// A Secure Note: one variable per `KEY=VALUE` line of its notes.
    Bundle(Secret),
    /// Not exported (other item types, deleted items); the reason is logged as a warning.
    Skip(String),
}

/// Items per collection name. A requested collection missing from the map does not exist; an
/// `Err` says why that one collection cannot be used (e.g. its name matches two collections).
pub type Fetched = BTreeMap<String, std::result::Result<Vec<Item>, String>>;

pub trait Session {
    /// The items of each of `collections` (by name), in one round.
    fn fetch(&mut self, collections: &BTreeSet<String>) -> Result<Fetched>;

    /// How many external calls (`bw` runs) the session has made so far.
    fn calls(&self) -> u32;

    /// Ends the session. Sources must also end it when dropped without `close`.
    fn close(self: Box<Self>) -> Result<()>;
}
