//! The generated account: ids and keys made once per run from the spec, and the vault contents
//! (collections and items) that `knobs.json` may replace while the server runs.
//!
//! The vault remembers when each item last changed and bumps the account revision date on any
//! change, which is what makes a later `bw sync` download the new data (protocol doc §3.4).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::crypto::{SymmetricKey, UserKeyPair};
use crate::spec::{CollectionSpec, ItemSpec, Spec, validate_vault};

pub struct Account {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    /// The lower-cased, trimmed e-mail the master key was derived with.
    pub salt: String,
    pub kdf_iterations: u32,
    pub security_stamp: Uuid,
    pub user_key: SymmetricKey,
    /// `EncString` type 2 of the user key under the stretched master key.
    pub master_key_encrypted_user_key: String,
    pub public_key_b64: String,
    /// `EncString` type 2 of the PKCS#8 private key under the user key.
    pub wrapped_private_key: String,
    pub org_id: Uuid,
    pub org_name: String,
    pub org_key: SymmetricKey,
    /// `EncString` type 4 of the org key under the user's RSA public key.
    pub org_key_for_user: String,
    /// HMAC key signing this run's access tokens.
    pub token_key: [u8; 32],
}

impl Account {
    pub fn generate(spec: &Spec) -> Self {
        let user_id = spec.user_id.unwrap_or_else(Uuid::new_v4);
        let salt = spec.salt();
        let stretched = SymmetricKey::stretched_master_key(&spec.master_password, &salt, spec.kdf_iterations);
        let user_key = SymmetricKey::random();
        let key_pair = UserKeyPair::generate();
        let org_key = SymmetricKey::random();
        Self {
            user_id,
            email: spec.email.trim().to_owned(),
            name: spec
                .name
                .clone()
                .unwrap_or_else(|| spec.email.trim().split('@').next().unwrap_or_default().to_owned()),
            client_id: spec.client_id.clone().unwrap_or_else(|| format!("user.{user_id}")),
            client_secret: spec.client_secret.clone(),
            kdf_iterations: spec.kdf_iterations,
            security_stamp: Uuid::new_v4(),
            master_key_encrypted_user_key: stretched.encrypt(&user_key.to_bytes()),
            public_key_b64: key_pair.public_key_b64(),
            wrapped_private_key: user_key.encrypt(&key_pair.private_key_pkcs8()),
            org_id: spec.organization.id.unwrap_or_else(Uuid::new_v4),
            org_name: spec.organization.name.clone(),
            org_key_for_user: key_pair.encrypt_oaep_sha1(&org_key.to_bytes()),
            org_key,
            user_key,
            salt,
            token_key: crate::crypto::random_bytes(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: Uuid,
    pub spec: ItemSpec,
    pub collection_ids: Vec<Uuid>,
    pub created: SystemTime,
    pub revised: SystemTime,
}

pub struct Vault {
    pub collections: Vec<Collection>,
    pub items: Vec<Item>,
    /// The account revision date `GET /api/accounts/revision-date` returns.
    pub revision: SystemTime,
}

impl Vault {
    pub fn new(
        org_id: Uuid,
        collections: &[CollectionSpec],
        items: &[ItemSpec],
        now: SystemTime,
    ) -> Result<Self, String> {
        let mut vault = Self { collections: Vec::new(), items: Vec::new(), revision: now };
        vault.update(org_id, collections, items, now)?;
        vault.revision = now;
        Ok(vault)
    }

    /// Make the vault hold exactly `collections` and `items`. Items that are new or differ get
    /// `revised = now`; if anything at all changed, the account revision becomes `now` (and
    /// strictly later than before, so bw's `revision > lastSync` test sees it).
    pub fn update(
        &mut self,
        org_id: Uuid,
        collections: &[CollectionSpec],
        items: &[ItemSpec],
        now: SystemTime,
    ) -> Result<bool, String> {
        validate_vault(collections, items)?;
        let new_collections: Vec<Collection> = collections
            .iter()
            .map(|c| Collection {
                id: c.id.unwrap_or_else(|| derived_id(org_id, &["collection", &c.name])),
                name: c.name.clone(),
            })
            .collect();
        let ids_by_name: HashMap<&str, Uuid> =
            new_collections.iter().map(|c| (c.name.as_str(), c.id)).collect();

        let old: HashMap<Uuid, &Item> = self.items.iter().map(|i| (i.id, i)).collect();
        let mut seen: HashMap<(Vec<String>, String), usize> = HashMap::new();
        let mut new_items = Vec::with_capacity(items.len());
        let mut changed = new_collections != self.collections || items.len() != self.items.len();
        for spec in items {
            let id = spec.id.unwrap_or_else(|| {
                let occurrence = seen.entry((spec.collections.clone(), spec.name.clone())).or_default();
                *occurrence += 1;
                let n = occurrence.to_string();
                let cols = spec.collections.join("\u{1f}");
                derived_id(org_id, &["item", &cols, &spec.name, &n])
            });
            let collection_ids = spec.collections.iter().map(|n| ids_by_name[n.as_str()]).collect();
            let (created, revised) = match old.get(&id) {
                Some(prev) if prev.spec == *spec && prev.collection_ids == collection_ids => {
                    (prev.created, prev.revised)
                }
                Some(prev) => {
                    changed = true;
                    (prev.created, now)
                }
                None => {
                    changed = true;
                    (now, now)
                }
            };
            new_items.push(Item { id, spec: spec.clone(), collection_ids, created, revised });
        }
        let mut ids: Vec<Uuid> = new_items.iter().map(|i| i.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("two items have the same id".into());
        }
        self.collections = new_collections;
        self.items = new_items;
        if changed {
            self.revision = now.max(self.revision + Duration::from_millis(1));
        }
        Ok(changed)
    }
}

/// A UUID that depends only on the organization and the parts, so the same name gets the same
/// id across `knobs.json` replacements.
fn derived_id(org_id: Uuid, parts: &[&str]) -> Uuid {
    Uuid::new_v5(&org_id, parts.join("\0").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ItemType;

    fn login(name: &str, password: &str) -> ItemSpec {
        ItemSpec {
            kind: ItemType::Login,
            name: name.into(),
            collections: vec!["c".into()],
            id: None,
            notes: None,
            username: None,
            password: Some(password.into()),
            uris: vec![],
            details: std::collections::BTreeMap::default(),
            fields: vec![],
            deleted: false,
        }
    }

    #[test]
    fn ids_are_stable_and_duplicates_distinct() {
        let org = Uuid::new_v4();
        let cols = [CollectionSpec { name: "c".into(), id: None }];
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let items = [login("A", "1"), login("A", "2"), login("B", "3")];
        let v1 = Vault::new(org, &cols, &items, t0).unwrap();
        let v2 = Vault::new(org, &cols, &items, t0).unwrap();
        let ids1: Vec<Uuid> = v1.items.iter().map(|i| i.id).collect();
        let ids2: Vec<Uuid> = v2.items.iter().map(|i| i.id).collect();
        assert_eq!(ids1, ids2);
        assert_ne!(ids1[0], ids1[1]);
        assert_eq!(v1.collections[0].id, v2.collections[0].id);
        assert_eq!(v1.items[0].collection_ids, vec![v1.collections[0].id]);
    }

    #[test]
    fn changes_bump_the_revision_and_only_the_changed_item() {
        let org = Uuid::new_v4();
        let cols = [CollectionSpec { name: "c".into(), id: None }];
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let t1 = t0 + Duration::from_secs(5);
        let mut v = Vault::new(org, &cols, &[login("A", "1"), login("B", "2")], t0).unwrap();
        assert!(!v.update(org, &cols, &[login("A", "1"), login("B", "2")], t1).unwrap());
        assert_eq!(v.revision, t0);
        assert!(v.update(org, &cols, &[login("A", "1"), login("B", "changed")], t1).unwrap());
        assert_eq!(v.revision, t1);
        assert_eq!(v.items[0].revised, t0);
        assert_eq!(v.items[1].revised, t1);
        assert_eq!(v.items[1].created, t0);
        // Removing an item is a change too, and the revision never goes backwards.
        assert!(v.update(org, &cols, &[login("A", "1")], t0).unwrap());
        assert!(v.revision > t1);
    }
}
