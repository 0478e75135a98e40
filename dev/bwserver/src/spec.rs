//! The account a test asks for (`--spec SPEC.json`), and the item and collection lists that
//! `knobs.json` may swap in between two sessions.
//!
//! Everything is plain text here; [`crate::account`] turns it into keys and ids, and
//! [`crate::wire`] encrypts it into what `bw` downloads. Unknown fields are rejected so that a
//! typo in a test's spec fails loudly instead of silently serving something else.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// bw's SDK refuses PBKDF2 below this at unlock (protocol doc §4.6); lower values are allowed so
/// a test can provoke `Insufficient KDF parameters`.
pub const DEFAULT_KDF_ITERATIONS: u32 = 5000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub email: String,
    /// Display name; defaults to the e-mail's local part.
    #[serde(default)]
    pub name: Option<String>,
    pub master_password: String,
    #[serde(default = "default_iterations")]
    pub kdf_iterations: u32,
    /// Defaults to a random UUID per run.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// Defaults to `user.<user_id>`, the form Vaultwarden hands out (bw rejects ids that do not
    /// start with `user`).
    #[serde(default)]
    pub client_id: Option<String>,
    pub client_secret: String,
    #[serde(default)]
    pub organization: OrganizationSpec,
    #[serde(default)]
    pub collections: Vec<CollectionSpec>,
    #[serde(default)]
    pub items: Vec<ItemSpec>,
}

fn default_iterations() -> u32 {
    DEFAULT_KDF_ITERATIONS
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSpec {
    #[serde(default = "default_org_name")]
    pub name: String,
    #[serde(default)]
    pub id: Option<Uuid>,
}

impl Default for OrganizationSpec {
    fn default() -> Self {
        Self { name: default_org_name(), id: None }
    }
}

fn default_org_name() -> String {
    "Hive".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSpec {
    pub name: String,
    /// Defaults to a UUID derived from the organization id and the name, so it stays the same
    /// when `knobs.json` replaces the collection list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    Login,
    #[serde(alias = "secure_note")]
    Note,
    Card,
    Identity,
}

impl ItemType {
    /// Bitwarden's `CipherType`.
    pub fn code(self) -> u8 {
        match self {
            ItemType::Login => 1,
            ItemType::Note => 2,
            ItemType::Card => 3,
            ItemType::Identity => 4,
        }
    }
}

/// One vault item, in clear text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    #[serde(rename = "type")]
    pub kind: ItemType,
    pub name: String,
    /// Names of the collections holding the item. Empty: a personal item (no organization,
    /// encrypted with the user key), which no `--collectionid` listing returns.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Defaults to a UUID derived from the collections, the name and the occurrence count, so
    /// it is stable across `knobs.json` replacements and distinct for duplicate names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Login only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Login only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Login only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    /// Card or identity only: Bitwarden's camelCase field names (`cardholderName`, `number`,
    /// `expMonth`, `code`, … / `firstName`, `email`, …) to clear-text values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Custom fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldSpec>,
    /// In the trash: served with a `deletedDate`, so `bw list items` leaves it out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub value: String,
    /// Bitwarden field type 1 (hidden) instead of 0 (text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let spec: Spec = serde_json::from_str(text).map_err(|e| format!("invalid spec: {e}"))?;
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        if self.email.trim().is_empty() {
            return Err("invalid spec: email is empty".into());
        }
        if self.kdf_iterations == 0 {
            return Err("invalid spec: kdf_iterations must be at least 1".into());
        }
        if self.client_secret.is_empty() {
            return Err("invalid spec: client_secret is empty".into());
        }
        validate_vault(&self.collections, &self.items).map_err(|e| format!("invalid spec: {e}"))
    }

    /// The KDF salt: the lower-cased, trimmed e-mail (§4.1). It is also what the server sends
    /// as `Salt`, so bw derives the same key.
    pub fn salt(&self) -> String {
        self.email.trim().to_lowercase()
    }
}

/// Collection names unique, every item's collections known, item kinds and fields consistent.
pub fn validate_vault(collections: &[CollectionSpec], items: &[ItemSpec]) -> Result<(), String> {
    let mut names = HashSet::new();
    for c in collections {
        if !names.insert(c.name.as_str()) {
            return Err(format!("collection {:?} is listed twice", c.name));
        }
    }
    for item in items {
        for c in &item.collections {
            if !names.contains(c.as_str()) {
                return Err(format!("item {:?} names unknown collection {c:?}", item.name));
            }
        }
        let is_login = item.kind == ItemType::Login;
        if !is_login && (item.username.is_some() || item.password.is_some() || !item.uris.is_empty()) {
            return Err(format!("item {:?}: username/password/uris are for logins", item.name));
        }
        let has_details = matches!(item.kind, ItemType::Card | ItemType::Identity);
        if !has_details && !item.details.is_empty() {
            return Err(format!("item {:?}: details are for cards and identities", item.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "email": " Acceptance@Example.com ",
            "master_password": "pw",
            "client_secret": "s",
            "collections": [{"name": "proof0"}],
            "items": [
                {"type": "login", "name": "K", "password": "v", "collections": ["proof0"]},
                {"type": "secure_note", "name": "bundle", "notes": "A=1", "collections": ["proof0"]},
                {"type": "card", "name": "visa", "details": {"number": "4111"}, "collections": []}
            ]
        })
    }

    #[test]
    fn parses_with_defaults() {
        let spec = Spec::parse(&minimal().to_string()).unwrap();
        assert_eq!(spec.kdf_iterations, 5000);
        assert_eq!(spec.organization.name, "Hive");
        assert_eq!(spec.salt(), "acceptance@example.com");
        assert_eq!(spec.items[1].kind, ItemType::Note);
        assert_eq!(spec.items[2].kind.code(), 3);
    }

    #[test]
    fn rejects_typos_and_dangling_references() {
        let mut v = minimal();
        v["itmes"] = serde_json::json!([]);
        assert!(Spec::parse(&v.to_string()).unwrap_err().contains("itmes"));

        let mut v = minimal();
        v["items"][0]["collections"] = serde_json::json!(["nope"]);
        assert!(Spec::parse(&v.to_string()).unwrap_err().contains("unknown collection"));

        let mut v = minimal();
        v["collections"] = serde_json::json!([{"name": "a"}, {"name": "a"}]);
        v["items"] = serde_json::json!([]);
        assert!(Spec::parse(&v.to_string()).unwrap_err().contains("twice"));

        let mut v = minimal();
        v["items"][1]["password"] = serde_json::json!("x");
        assert!(Spec::parse(&v.to_string()).unwrap_err().contains("for logins"));
    }
}
