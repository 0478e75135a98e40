//! Every JSON document the server sends, built in this one place.
//!
//! The shapes follow `/work/shared/reference/bitwarden-protocol.md` (§3 and §5): the recommended
//! responses there, which bw 2026.6.0 was shown to need field by field, plus the optional fields
//! the extra item kinds use (cards, identities, custom fields, URIs, the trash). Nothing lax is
//! added on purpose: if a later bw needs more, the real-bw tests fail instead of this server
//! papering over it.
//!
//! [`omit_fields`] removes named fields after construction (`knobs.json` `omit_fields`), so a
//! test can prove that bw really needs a field by watching the cycle fail without it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::account::{Account, Item, Vault};
use crate::crypto::SymmetricKey;
use crate::spec::ItemType;

/// PBKDF2-SHA256 in Bitwarden's `KdfType`.
const KDF_PBKDF2: u8 = 0;

/// `POST /identity/connect/token`, API-key grant (§3.1). `PascalCase` at the top level as
/// Vaultwarden sends it.
pub fn token_response(account: &Account, access_token: &str, lifetime_secs: u64) -> Value {
    json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime_secs,
        "Kdf": KDF_PBKDF2,
        "KdfIterations": account.kdf_iterations,
        "AccountKeys": {
            "publicKeyEncryptionKeyPair": {
                "wrappedPrivateKey": account.wrapped_private_key,
                "publicKey": account.public_key_b64,
            }
        },
        "UserDecryptionOptions": {
            "HasMasterPassword": true,
            "MasterPasswordUnlock": {
                "Kdf": {"KdfType": KDF_PBKDF2, "Iterations": account.kdf_iterations},
                "MasterKeyEncryptedUserKey": account.master_key_encrypted_user_key,
                "Salt": account.salt,
            }
        }
    })
}

/// The access token's claims (§5). bw only decodes them; `sub` is the one it cannot do without.
pub fn token_claims(account: &Account, issuer: &str, now: u64, lifetime_secs: u64) -> Value {
    json!({
        "nbf": now,
        "exp": now + lifetime_secs,
        "iss": format!("{issuer}|login"),
        "sub": account.user_id,
        "email": account.email,
        "email_verified": true,
        "name": account.name,
        "premium": false,
        "sstamp": account.security_stamp,
        "scope": ["api"],
        "amr": ["Application"],
    })
}

/// `GET /api/sync` (§3.3).
pub fn sync_response(account: &Account, vault: &Vault) -> Value {
    let org_key = &account.org_key;
    json!({
        "profile": {
            "id": account.user_id,
            "email": account.email,
            "name": account.name,
            "privateKey": account.wrapped_private_key,
            "securityStamp": account.security_stamp,
            "organizations": [{
                "id": account.org_id,
                "name": account.org_name,
                "key": account.org_key_for_user,
                "status": 2,
                "type": 0,
                "enabled": true,
                // As Vaultwarden sends it; bw 2026.9.0's policy filter needs the boolean.
                "usePolicies": true,
            }],
        },
        "collections": vault.collections.iter().map(|c| json!({
            "id": c.id,
            "organizationId": account.org_id,
            "name": org_key.encrypt_str(&c.name),
            "externalId": null,
        })).collect::<Vec<_>>(),
        "ciphers": vault.items.iter().map(|i| cipher(account, i)).collect::<Vec<_>>(),
        "userDecryption": {
            "masterPasswordUnlock": {
                "kdf": {"kdfType": KDF_PBKDF2, "iterations": account.kdf_iterations},
                "masterKeyEncryptedUserKey": account.master_key_encrypted_user_key,
                "salt": account.salt,
            }
        }
    })
}

fn cipher(account: &Account, item: &Item) -> Value {
    let spec = &item.spec;
    // Organization items are encrypted with the org key; personal items with the user key.
    let (org_id, key): (Option<Uuid>, &SymmetricKey) = if spec.collections.is_empty() {
        (None, &account.user_key)
    } else {
        (Some(account.org_id), &account.org_key)
    };
    let enc = |s: &str| Value::String(key.encrypt_str(s));
    let enc_opt = |s: &Option<String>| s.as_deref().map_or(Value::Null, enc);

    let mut c = Map::new();
    c.insert("id".into(), json!(item.id));
    c.insert("type".into(), json!(spec.kind.code()));
    c.insert("organizationId".into(), json!(org_id));
    c.insert("collectionIds".into(), json!(item.collection_ids));
    c.insert("name".into(), enc(&spec.name));
    c.insert("notes".into(), enc_opt(&spec.notes));
    match spec.kind {
        ItemType::Login => {
            let mut login = json!({
                "username": enc_opt(&spec.username),
                "password": enc_opt(&spec.password),
            });
            if !spec.uris.is_empty() {
                login["uris"] = spec.uris.iter().map(|u| json!({"uri": enc(u), "match": null})).collect();
            }
            c.insert("login".into(), login);
        }
        ItemType::Note => {
            c.insert("secureNote".into(), json!({"type": 0}));
        }
        ItemType::Card | ItemType::Identity => {
            let details: Map<String, Value> = spec.details.iter().map(|(k, v)| (k.clone(), enc(v))).collect();
            let field = if spec.kind == ItemType::Card { "card" } else { "identity" };
            c.insert(field.into(), Value::Object(details));
        }
    }
    if !spec.fields.is_empty() {
        let fields = spec
            .fields
            .iter()
            .map(|f| {
                json!({"type": u8::from(f.hidden), "name": enc(&f.name), "value": enc(&f.value),
                       "linkedId": null})
            })
            .collect();
        c.insert("fields".into(), fields);
    }
    c.insert("creationDate".into(), json!(iso_date(item.created)));
    c.insert("revisionDate".into(), json!(iso_date(item.revised)));
    let deleted = spec.deleted.then(|| iso_date(item.revised));
    c.insert("deletedDate".into(), json!(deleted));
    Value::Object(c)
}

/// `GET /api/accounts/revision-date` (§3.4): a bare number, milliseconds since the epoch.
pub fn revision_date(vault: &Vault) -> Value {
    let ms = vault.revision.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    json!(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `GET /api/config` (§3.2).
pub fn config_response(api_version: &str) -> Value {
    json!({
        "version": api_version,
        "server": {"name": "Vaultwarden", "url": "https://github.com/dani-garcia/vaultwarden"},
        "object": "config",
    })
}

/// `GET /api/version`: Vaultwarden's own release, a JSON string.
pub fn version_response(version: &str) -> Value {
    json!(version)
}

/// What Vaultwarden 1.37.2 reports (`/api/version`, and the API version of `/api/config`).
pub const VAULTWARDEN_VERSION: &str = "1.37.2";
pub const API_VERSION: &str = "2026.6.0";

/// `GET /api/organizations/{id}/collections` (§3.5), for `bw list org-collections`.
pub fn org_collections(account: &Account, vault: &Vault) -> Value {
    json!({
        "data": vault.collections.iter().map(|c| json!({
            "id": c.id,
            "organizationId": account.org_id,
            "name": account.org_key.encrypt_str(&c.name),
            "externalId": null,
            "object": "collection",
        })).collect::<Vec<_>>(),
        "object": "list",
        "continuationToken": null,
    })
}

/// Vaultwarden's error body (§3.1). `error` is the OAuth error code: Vaultwarden sends `""`;
/// `"invalid_client"` makes bw replace the message with its own.
pub fn error_body(message: &str, oauth_error: &str) -> Value {
    json!({
        "message": message,
        "validationErrors": {"": [message]},
        "errorModel": {"message": message, "object": "error"},
        "error": oauth_error,
        "error_description": "",
        "exceptionMessage": null,
        "exceptionStackTrace": null,
        "innerExceptionMessage": null,
        "object": "error",
    })
}

/// ISO 8601 with microseconds, as Vaultwarden writes dates.
pub fn iso_date(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// Remove the fields named by `paths` from `doc`, the document of `section` (`token`, `jwt`,
/// `sync`, `config`, `org_collections`). A path is `section.key.key…`; `key[]` steps into every
/// element of an array: `sync.ciphers[].login.password`. Paths of other sections are ignored.
/// Returns the paths of this section that matched nothing, so a typo can be reported.
pub fn omit_fields<'a>(section: &str, doc: &mut Value, paths: &'a [String]) -> Vec<&'a str> {
    let mut unmatched = Vec::new();
    for path in paths {
        let mut segments = path.split('.');
        if segments.next() != Some(section) {
            continue;
        }
        let segments: Vec<&str> = segments.collect();
        if segments.is_empty() || !remove_path(doc, &segments) {
            unmatched.push(path.as_str());
        }
    }
    unmatched
}

fn remove_path(value: &mut Value, segments: &[&str]) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return false;
    };
    let (key, each) = match first.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*first, false),
    };
    let Some(object) = value.as_object_mut() else {
        return false;
    };
    if rest.is_empty() && !each {
        return object.remove(key).is_some();
    }
    let Some(child) = object.get_mut(key) else {
        return false;
    };
    if each {
        let Some(array) = child.as_array_mut() else {
            return false;
        };
        // Every element must be visited, so no short-circuiting `any`.
        array.iter_mut().fold(false, |found, v| remove_path(v, rest) | found)
    } else {
        remove_path(child, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omits_nested_and_array_fields() {
        let mut doc = json!({
            "profile": {"id": 1, "organizations": [{"id": 1, "key": "k"}, {"id": 2, "key": "k"}]},
            "ciphers": [{"login": {"password": "p", "username": "u"}}, {"login": null}],
        });
        let paths: Vec<String> = [
            "sync.profile.organizations[].key",
            "sync.ciphers[].login.password",
            "sync.nope",
            "token.access_token",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let unmatched = omit_fields("sync", &mut doc, &paths);
        assert_eq!(unmatched, ["sync.nope"]);
        assert_eq!(
            doc,
            json!({
                "profile": {"id": 1, "organizations": [{"id": 1}, {"id": 2}]},
                "ciphers": [{"login": {"username": "u"}}, {"login": null}],
            })
        );
    }

    #[test]
    fn error_body_is_vaultwardens() {
        let body = error_body("Incorrect client_secret", "");
        assert_eq!(body["message"], "Incorrect client_secret");
        assert_eq!(body["errorModel"]["message"], "Incorrect client_secret");
        assert_eq!(body["validationErrors"][""][0], "Incorrect client_secret");
        assert_eq!(body["error"], "");
    }
}
