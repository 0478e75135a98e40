//! Pure parsers for what `bw` prints, fed directly by unit tests with recorded output
//! (reference/bw-cli.md). No I/O here.
//!
//! bw prints JSON without a trailing newline; an empty stdout (or a lone `\n`) is what it prints
//! when it wanted to prompt, so empty output is always an error, never an empty list.

use serde::Deserialize;

use crate::secret::Secret;
use crate::source::{Item, ItemContent};

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Collection {
    pub id: String,
    pub name: String,
    #[serde(rename = "organizationId")]
    pub organization_id: Option<String>,
}

#[derive(Deserialize)]
struct RawLogin {
    password: Option<String>,
}

#[derive(Deserialize)]
struct RawItem {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(rename = "collectionIds", default)]
    collection_ids: Vec<String>,
    login: Option<RawLogin>,
    notes: Option<String>,
    #[serde(rename = "deletedDate")]
    deleted_date: Option<String>,
}

/// An item with the collections it belongs to.
pub struct ListedItem {
    pub collection_ids: Vec<String>,
    pub item: Item,
}

/// `serde_json`'s own message can quote input (a secret): keep only its category and position.
fn describe(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}

fn non_empty(stdout: &[u8]) -> Result<&[u8], String> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        Err("bw printed nothing (it wanted to prompt, or failed silently)".into())
    } else {
        Ok(stdout)
    }
}

pub fn collections(stdout: &[u8]) -> Result<Vec<Collection>, String> {
    serde_json::from_slice(non_empty(stdout)?)
        .map_err(|e| format!("could not parse the collection list ({})", describe(&e)))
}

pub fn items(stdout: &[u8]) -> Result<Vec<ListedItem>, String> {
    let raw: Vec<RawItem> = serde_json::from_slice(non_empty(stdout)?)
        // serde_json's message could quote a value: keep only its category and position.
        .map_err(|e| format!("could not parse the item list ({})", describe(&e)))?;
    Ok(raw.into_iter().map(convert).collect())
}

fn convert(raw: RawItem) -> ListedItem {
    // Raw: every sink (log line, stored error) sanitizes, so escaping here would show twice.
    let label = format!("item \"{}\" (id {})", raw.name, raw.id);
    let content = if raw.deleted_date.is_some() {
        ItemContent::Skip("deleted (in the trash)".into())
    } else {
        match raw.kind {
            1 => match raw.login.and_then(|l| l.password) {
                Some(password) => ItemContent::Entry { name: raw.name, value: Secret::new(password) },
                None => ItemContent::Skip("a login item without a password".into()),
            },
            2 => match raw.notes {
                Some(notes) => ItemContent::Bundle(Secret::new(notes)),
                None => ItemContent::Skip("a secure note without notes".into()),
            },
            3 => ItemContent::Skip("a card item is not exported".into()),
            4 => ItemContent::Skip("an identity item is not exported".into()),
            5 => ItemContent::Skip("an SSH key item is not exported".into()),
            other => ItemContent::Skip(format!("an item of unknown type {other} is not exported")),
        }
    };
    ListedItem { collection_ids: raw.collection_ids, item: Item { label, content } }
}

/// The session key printed by `unlock --raw`: base64, no newline. Empty means the sync during
/// login failed (reference/bitwarden-protocol.md §6), so it is an error.
pub fn session_key(stdout: &[u8]) -> Result<Secret, String> {
    let text = std::str::from_utf8(stdout)
        .map_err(|_| "bw unlock printed a session key that is not text".to_owned())?;
    let key = text.trim_end_matches(['\n', '\r']);
    if key.is_empty() {
        return Err("bw unlock succeeded but printed an empty session key (the sync during login probably failed; check the server)".into());
    }
    let plausible =
        key.len() >= 32 && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !plausible {
        return Err("bw unlock printed something that is not a session key".into());
    }
    Ok(Secret::from(key))
}

/// Whether bw's stderr for a failed login/unlock means wrong credentials (exit 77, not 69).
pub fn is_credential_error(stderr: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "Incorrect client_secret",
        "Invalid client_id",
        "Invalid API Key",
        "client_id or client_secret is incorrect",
        "The decryption operation failed",
        "Invalid master password",
        "Username or password is incorrect",
    ];
    MARKERS.iter().any(|m| stderr.contains(m))
}

/// bw's stderr, minus the data-file notices it prints on a fresh app-data dir.
pub fn meaningful_stderr(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("Could not find data file") && !l.starts_with("Could not find dir"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded in reference/bw-cli.md, A43 and A42 (ids shortened).
    const COLLECTIONS: &str = r#"[{"object":"collection","id":"a11d","organizationId":"eb17","name":"proof0","externalId":null},{"object":"collection","id":"2de1","organizationId":"eb17","name":"proof1","externalId":null}]"#;
    const ITEMS: &str = r#"[{"type":2,"name":"bundle","favorite":false,"reprompt":0,"id":"b81a","collectionIds":["a11d"],"object":"item","organizationId":"eb17","notes":"A=1\nB=two words","fields":[],"secureNote":{"type":0},"passwordHistory":[],"creationDate":"2026-11-22T07:41:41.475Z","revisionDate":"2026-11-22T07:41:41.476Z","attachments":[]},{"type":1,"name":"FIRST_PROOF_KEY","favorite":false,"reprompt":0,"id":"9198","collectionIds":["a11d"],"object":"item","organizationId":"eb17","fields":[],"login":{"uris":[],"fido2Credentials":[],"password":"s3cret","passwordRevisionDate":null},"passwordHistory":[],"creationDate":"2026-11-22T07:41:37.389Z","revisionDate":"2026-11-22T07:41:37.391Z","attachments":[]}]"#;

    #[test]
    fn parses_recorded_collections() {
        let c = collections(COLLECTIONS.as_bytes()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[1].id.as_str(), c[1].name.as_str()), ("2de1", "proof1"));
    }

    #[test]
    fn parses_recorded_items() {
        let items = items(ITEMS.as_bytes()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].collection_ids, ["a11d"]);
        assert!(matches!(&items[0].item.content, ItemContent::Bundle(n) if n.expose() == "A=1\nB=two words"));
        assert!(
            matches!(&items[1].item.content, ItemContent::Entry { name, value } if name == "FIRST_PROOF_KEY" && value.expose() == "s3cret")
        );
        assert_eq!(items[1].item.label, "item \"FIRST_PROOF_KEY\" (id 9198)");
    }

    #[test]
    fn other_types_and_deleted_items_are_skipped() {
        let json = r#"[{"type":3,"name":"visa","id":"c1","collectionIds":[]},{"type":1,"name":"old","id":"d1","collectionIds":[],"login":{"password":"x"},"deletedDate":"2026-01-01T00:00:00Z"},{"type":1,"name":"nopw","id":"e1","collectionIds":[],"login":{"password":null}}]"#;
        let items = items(json.as_bytes()).unwrap();
        assert!(items.iter().all(|i| matches!(i.item.content, ItemContent::Skip(_))));
    }

    #[test]
    fn empty_or_garbage_output_is_an_error() {
        assert!(collections(b"").is_err());
        assert!(collections(b"\n").is_err(), "the prompt trap prints a lone newline");
        assert!(items(b"Your vault is locked.").is_err());
        let e =
            items(br#"[{"type":1,"name":"A","id":"1","login":{"password":"s3cret-value"}"#).err().unwrap();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn session_keys() {
        let key = "AAAA5YseB5edq869x+tVRl3exRrofaXGeMfJ5GPoPn2zsW4EH+JzTk6TwL4Vb1cBHOmkA6jsKWj16YYCRfTnPQ==";
        assert_eq!(session_key(key.as_bytes()).unwrap().expose(), key);
        assert!(session_key(b"").err().unwrap().contains("empty session key"));
        assert!(session_key(b"\n").is_err());
        assert!(session_key(b"Your vault is now unlocked!").is_err());
    }

    #[test]
    fn credential_errors_are_recognized() {
        assert!(is_credential_error("Incorrect client_secret"));
        assert!(is_credential_error(
            "ERROR bitwarden_crypto::keys::master_key: error=The decryption operation failed\n\nCryptography error, The decryption operation failed"
        ));
        assert!(!is_credential_error(
            "FetchError: request to https://127.0.0.1:9/identity/connect/token failed, reason: connect ECONNREFUSED 127.0.0.1:9"
        ));
        assert!(!is_credential_error("Rate limit exceeded. Try again later."));
    }

    #[test]
    fn data_file_notices_are_dropped() {
        let stderr =
            b"Could not find data file, \"/x/data.json\"; creating it instead.\nIncorrect client_secret";
        assert_eq!(meaningful_stderr(stderr), "Incorrect client_secret");
    }
}
