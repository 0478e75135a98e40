//! The `dir` source: one host-side file per collection, `$COLIBRI_SECRETS_DIR/<collection>.env`.
//!
//! The embedded default used by `make demo` and tests, and a way to run without a vault. Files
//! follow the provider env's syntax and ownership rules (private, owned by the running uid), and
//! are never reached through a symbolic link.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{Fetched, Item, ItemContent, Session};
use crate::error::Result;
use crate::kvfile;

pub struct DirSession {
    dir: PathBuf,
}

impl DirSession {
    pub fn new(dir: PathBuf) -> Self {
        DirSession { dir }
    }
}

impl Session for DirSession {
    fn fetch(&mut self, collections: &BTreeSet<String>) -> Result<Fetched> {
        let mut fetched = Fetched::new();
        for collection in collections {
            // Collection names are validated jail names: no '/' or '..' can reach the path.
            let path = self.dir.join(format!("{collection}.env"));
            let Some(bytes) = kvfile::read_private(&path, &crate::hostfile::SECRETS_FILE)? else {
                continue;
            };
            let items = kvfile::parse(&path, &bytes)?
                .into_iter()
                .map(|a| Item {
                    label: format!("{}:{}", path.display(), a.line),
                    content: ItemContent::Entry { name: a.key, value: a.value },
                })
                .collect();
            fetched.insert(collection.clone(), Ok(items));
        }
        Ok(fetched)
    }

    fn calls(&self) -> u32 {
        0
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
