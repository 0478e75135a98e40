//! Entries (name = value) and the env file formats.
//!
//! Items from a secrets source become entries (DESIGN.md step 4): names are normalized
//! (space, `-`, `.` → `_`) and must then be POSIX shell names, or the item is skipped with a
//! warning; two items giving one name is an error naming both. A Secure Note's lines are read
//! with the `KEY=value` grammar of `kvfile` ([`Dialect::Note`]); a line it refuses is skipped
//! with a warning. Warnings and errors name the item and the line, never any of a note's text
//! or a value: a line that is not an assignment may well be a password.
//!
//! Entries are rendered sorted, in one of three formats (step 5), each for a stated consumer:
//! - `sh`: `NAME='value'`, `'` written as `'\''`. For /bin/sh, which FreeBSD's rc.subr uses to
//!   source `${name}_env_file` as root, and bash; safe to source: nothing is expanded.
//! - `dotenv`: `NAME="value"` with `\`, `"` and `$` escaped by a backslash, a newline written
//!   as itself inside the quotes, and a backtick as ``"'`'"`` (sh would run a backtick pair
//!   inside double quotes, and dotenv readers do not know a backslash-backtick escape). For
//!   dotenv readers (checked against the dotenvy crate) and sh alike; safe to source.
//! - `json`: one object of strings. For JSON parsers; not a shell file.
//!
//! `parse` reads `sh` and `dotenv` output back with the same grammar as every other `KEY=value`
//! text (`kvfile`), so the check the writer makes before the rename is what sh would read.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kvfile::{self, Dialect};
use crate::secret::Secret;
use crate::source::{Item, ItemContent};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Sh,
    Dotenv,
    Json,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sh" => Ok(Format::Sh),
            "dotenv" => Ok(Format::Dotenv),
            "json" => Ok(Format::Json),
            _ => Err(Error::Usage(format!(
                "format must be sh, dotenv or json, not {}",
                crate::sanitize::clean(s)
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Sh => "sh",
            Format::Dotenv => "dotenv",
            Format::Json => "json",
        })
    }
}

/// One variable of the env file. `origin` names where it came from (for messages).
pub struct Entry {
    pub name: String,
    pub value: Secret,
    pub origin: String,
}

/// Entries sorted by name, keyed by name.
pub type Entries = BTreeMap<String, Entry>;

pub use crate::kvfile::normalize_name;

/// Turns a collection's items into entries. `warn` receives one message per skipped item or line.
pub fn entries_from_items(tenant: &str, items: &[Item], warn: &mut dyn FnMut(String)) -> Result<Entries> {
    let mut entries = Entries::new();
    let mut add = |raw_name: &str, value: &str, origin: String, warn: &mut dyn FnMut(String)| -> Result<()> {
        let Some(name) = normalize_name(raw_name) else {
            // Not the name itself: for a note line it is text of the note (maybe a secret);
            // for a Login item it is the item name, which `origin` already gives.
            warn(format!(
                "{origin}: skipped: not a valid variable name after normalization ([A-Za-z_][A-Za-z0-9_]*)"
            ));
            return Ok(());
        };
        if value.contains('\0') {
            return Err(Error::bad_data(
                tenant,
                format!("{origin}: the value of {name} contains a NUL byte"),
            ));
        }
        if let Some(first) = entries.get(&name) {
            return Err(Error::bad_data(
                tenant,
                format!("duplicate variable {name}: from {} and from {origin}", first.origin),
            ));
        }
        entries.insert(name.clone(), Entry { name, value: Secret::from(value), origin });
        Ok(())
    };
    for item in items {
        match &item.content {
            ItemContent::Entry { name, value } => {
                add(name, value.expose(), item.label.clone(), warn)?;
            }
            ItemContent::Bundle(notes) => {
                for parsed in kvfile::assignments(notes.expose(), Dialect::Note) {
                    match parsed {
                        Ok(line) => {
                            let origin = format!("{} line {}", item.label, line.line);
                            add(&line.key, line.value.expose(), origin, warn)?;
                        }
                        Err(refused) => {
                            warn(format!(
                                "{} line {}: skipped: {}",
                                item.label, refused.line, refused.problem
                            ));
                        }
                    }
                }
            }
            ItemContent::Skip(reason) => warn(format!("{}: skipped: {reason}", item.label)),
        }
    }
    Ok(entries)
}

/// The file's bytes in `format`: sorted by name, trailing newline.
pub fn render(format: Format, entries: &Entries) -> Result<Zeroizing<Vec<u8>>> {
    // Sized up front, so that growing does not leave copies of the values behind unzeroed.
    let size: usize = entries.values().map(|e| e.name.len() + 2 * e.value.expose().len() + 16).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    match format {
        Format::Sh => {
            for entry in entries.values() {
                out.extend_from_slice(entry.name.as_bytes());
                out.extend_from_slice(b"='");
                for c in entry.value.expose().chars() {
                    match c {
                        '\'' => out.extend_from_slice(b"'\\''"),
                        c => push_char(&mut out, c),
                    }
                }
                out.extend_from_slice(b"'\n");
            }
        }
        Format::Dotenv => {
            for entry in entries.values() {
                out.extend_from_slice(entry.name.as_bytes());
                out.extend_from_slice(b"=\"");
                for c in entry.value.expose().chars() {
                    match c {
                        '\\' | '"' | '$' => {
                            out.push(b'\\');
                            push_char(&mut out, c);
                        }
                        // Closes the double quotes for a single-quoted backtick: sh would run
                        // `…` inside "", and dotenv readers refuse \`.
                        '`' => out.extend_from_slice(b"\"'`'\""),
                        c => push_char(&mut out, c),
                    }
                }
                out.extend_from_slice(b"\"\n");
            }
        }
        Format::Json => {
            let map: BTreeMap<&str, &str> =
                entries.values().map(|e| (e.name.as_str(), e.value.expose())).collect();
            serde_json::to_writer_pretty(&mut *out, &map).map_err(|e| Error::Config(e.to_string()))?;
            out.push(b'\n');
        }
    }
    Ok(out)
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Reads bytes produced by `render` back into (name, value) pairs, in file order: `json` with
/// `serde_json`, `sh` and `dotenv` with the sh grammar of `kvfile`, the grammar sh itself applies.
/// Messages carry a line number, never a value.
pub fn parse(format: Format, bytes: &[u8]) -> std::result::Result<Vec<(String, Secret)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    match format {
        Format::Json => {
            let map: BTreeMap<String, String> =
                serde_json::from_str(text).map_err(|e| format!("invalid JSON at line {}", e.line()))?;
            Ok(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
        }
        Format::Sh | Format::Dotenv => {
            // `render` ends every line: a missing last newline means the file was cut short.
            if !text.is_empty() && !text.ends_with('\n') {
                return Err("no newline at the end".into());
            }
            kvfile::assignments(text, Dialect::Sh)
                .map(|parsed| match parsed {
                    Ok(a) => Ok((a.key, a.value)),
                    Err(refused) => Err(format!("line {}: {}", refused.line, refused.problem)),
                })
                .collect()
        }
    }
}

/// Whether `bytes` (parsed as `format`) say exactly `entries`.
pub fn round_trips(format: Format, bytes: &[u8], entries: &Entries) -> bool {
    match parse(format, bytes) {
        Ok(pairs) => {
            pairs.len() == entries.len()
                && pairs
                    .iter()
                    .zip(entries.values())
                    .all(|((name, value), e)| *name == e.name && value.expose() == e.value.expose())
        }
        Err(_) => false,
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    sha2::Sha256::digest(bytes).iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(label: &str, content: ItemContent) -> Item {
        Item { label: label.into(), content }
    }

    fn login(name: &str, value: &str) -> Item {
        item(&format!("item {name:?}"), ItemContent::Entry { name: name.into(), value: Secret::from(value) })
    }

    fn entries(items: &[Item]) -> (Result<Entries>, Vec<String>) {
        let mut warnings = Vec::new();
        let result = entries_from_items("t", items, &mut |w| warnings.push(w));
        (result, warnings)
    }

    #[test]
    fn names_are_normalized_then_checked() {
        assert_eq!(normalize_name("db password").as_deref(), Some("db_password"));
        assert_eq!(normalize_name("api-key.v2").as_deref(), Some("api_key_v2"));
        assert_eq!(normalize_name("9lives"), None);
        assert_eq!(normalize_name("a$b"), None);
        assert_eq!(normalize_name(""), None);
    }

    #[test]
    fn logins_and_notes_become_sorted_entries() {
        let items = [
            login("Z key", "z"),
            item(
                "note \"bundle\"",
                ItemContent::Bundle(Secret::from("A=1\r\n\n# c\nB=two words=x\nnot a line\n")),
            ),
            login("bad$name", "x"),
            item("card \"visa\"", ItemContent::Skip("a card item (type 3) has no value to export".into())),
        ];
        let (result, warnings) = entries(&items);
        let e = result.unwrap();
        let got: Vec<(&str, &str)> = e.values().map(|e| (e.name.as_str(), e.value.expose())).collect();
        assert_eq!(got, [("A", "1"), ("B", "two words=x"), ("Z_key", "z")]);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].starts_with("note \"bundle\" line 5: skipped"), "{warnings:?}");
        assert!(warnings[1].contains("bad$name"));
        assert!(warnings[2].starts_with("card \"visa\": skipped"));
        assert!(!warnings.iter().any(|w| w.contains("two words")), "no values in warnings");
    }

    #[test]
    fn note_lines_use_the_kvfile_grammar() {
        let notes = "MODE='prod'\nB=two words\nC=\"it's \\\"x\\\"\"\nD='multi\nline'\nexport E=1\n";
        let (result, warnings) = entries(&[item("note", ItemContent::Bundle(Secret::from(notes)))]);
        let e = result.unwrap();
        let got: Vec<(&str, &str)> = e.values().map(|e| (e.name.as_str(), e.value.expose())).collect();
        assert_eq!(
            got,
            [("B", "two words"), ("C", "it's \"x\""), ("D", "multi\nline"), ("E", "1"), ("MODE", "prod")]
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(e["E"].origin, "note line 6");
    }

    #[test]
    fn warnings_about_note_lines_name_the_item_and_line_only() {
        let notes = concat!(
            "postgres://u:PgPass-Zq81@h/db?sslmode=require\n",
            "AbC+/dEf9Kx7Ww==\n",
            "OPEN='unterminated Xy77\n",
            "RUN=$(cat Vv31)\n",
            "T=\"x\" Tr55\n",
            "just-a-secret-Nn12\n",
            "9lives-Ll40=x\n",
        );
        let (result, warnings) =
            entries(&[item("item \"n\" (id 1)", ItemContent::Bundle(Secret::from(notes)))]);
        assert!(result.unwrap().is_empty());
        assert_eq!(warnings.len(), 7, "{warnings:?}");
        for (i, w) in warnings.iter().enumerate() {
            assert!(w.starts_with(&format!("item \"n\" (id 1) line {}: skipped: ", i + 1)), "{w}");
            for part in [
                "postgres", "PgPass", "Zq81", "sslmode", "dEf9", "Kx7", "Xy77", "Vv31", "cat", "Tr55",
                "Nn12", "Ll40", "9lives",
            ] {
                assert!(!w.contains(part), "{part} in {w}");
            }
        }
    }

    #[test]
    fn duplicates_name_both_sources() {
        let (result, _) = entries(&[login("API-KEY", "1"), login("API KEY", "2")]);
        let e = result.err().unwrap();
        assert_eq!(e.exit_code(), 65);
        assert_eq!(
            e.to_string(),
            "duplicate variable API_KEY: from item \"API-KEY\" and from item \"API KEY\""
        );
    }

    #[test]
    fn nul_is_an_error() {
        let (result, _) = entries(&[login("A", "x\0y")]);
        assert_eq!(result.err().unwrap().exit_code(), 65);
    }

    #[test]
    fn renders_each_format() {
        let (e, _) = entries(&[login("B", "it's $HOME `x` \\"), login("A", "line1\nline2")]);
        let e = e.unwrap();
        assert_eq!(
            String::from_utf8(render(Format::Sh, &e).unwrap().to_vec()).unwrap(),
            "A='line1\nline2'\nB='it'\\''s $HOME `x` \\'\n"
        );
        assert_eq!(
            String::from_utf8(render(Format::Dotenv, &e).unwrap().to_vec()).unwrap(),
            "A=\"line1\nline2\"\nB=\"it's \\$HOME \"'`'\"x\"'`'\" \\\\\"\n"
        );
        assert_eq!(
            String::from_utf8(render(Format::Json, &e).unwrap().to_vec()).unwrap(),
            "{\n  \"A\": \"line1\\nline2\",\n  \"B\": \"it's $HOME `x` \\\\\"\n}\n"
        );
        for f in [Format::Sh, Format::Dotenv, Format::Json] {
            assert!(round_trips(f, &render(f, &e).unwrap(), &e), "{f}");
        }
        assert_eq!(render(Format::Sh, &Entries::new()).unwrap().len(), 0);
        assert!(round_trips(Format::Dotenv, b"", &Entries::new()));
    }

    #[test]
    fn parse_back_rejects_tampering() {
        let (e, _) = entries(&[login("A", "x")]);
        let e = e.unwrap();
        assert!(round_trips(Format::Sh, b"A='x'\n", &e));
        assert!(!round_trips(Format::Sh, b"A='y'\n", &e));
        assert!(!round_trips(Format::Sh, b"A='x'", &e), "cut short");
        assert!(!round_trips(Format::Sh, b"A='x'\nB='z'\n", &e));
        assert!(!round_trips(Format::Dotenv, b"A=\"$x\"\n", &e));
        assert!(!round_trips(Format::Dotenv, b"A=\"`x`\"\n", &e));
        assert_eq!(parse(Format::Sh, b"A='x\n").err().unwrap(), "line 1: unterminated single quote");
    }
}
