//! The `KEY=value` files colibri-vault reads: the provider env and the `dir` source's secrets.
//!
//! Both hold credentials, so both must be private: a regular file owned by the running uid with
//! no group or other access, opened without blocking and checked on the opened descriptor, not
//! the name (`hostfile`; a secrets file is never reached through a link). The syntax is the
//! sh-compatible subset operators already write: `KEY=value`, `export KEY=value`, single- and
//! double-quoted values, `#` comments and blank lines. Anything else is an error naming the file
//! and line — never the value, which may be a secret.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hostfile;
use crate::secret::Secret;

/// One assignment, with the line it came from (for messages).
pub struct Assignment {
    pub key: String,
    pub value: Secret,
    pub line: usize,
}

/// Reads `path` if it exists and is private under `rules` (`hostfile::PROVIDER_ENV` or
/// `hostfile::SECRETS_FILE`); `Ok(None)` if it does not exist. Opened without blocking, checked
/// on the opened descriptor (see `hostfile`).
pub fn read_private(path: &Path, rules: &hostfile::Rules) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    hostfile::read(path, rules)
}

/// Parses the file's bytes. `file` is used in messages only.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<Assignment>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::ConfigLine {
        file: file.to_owned(),
        line: 1 + bytes[..e.valid_up_to()].split(|&b| b == b'\n').count() - 1,
        problem: "not valid UTF-8".into(),
    })?;
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let err = |problem: &str| Error::ConfigLine {
            file: PathBuf::from(file),
            line,
            problem: problem.to_owned(),
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").map_or(trimmed, str::trim_start);
        let Some((key, rest)) = body.split_once('=') else {
            return Err(err("expected KEY=value"));
        };
        if !is_name(key) {
            return Err(err("the name before '=' must match [A-Za-z_][A-Za-z0-9_]*"));
        }
        let value = parse_value(rest).map_err(err)?;
        out.push(Assignment { key: key.to_owned(), value: Secret::new(value), line });
    }
    Ok(out)
}

pub fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The value part: `'…'` literally, `"…"` with sh's backslash escapes, or bare.
fn parse_value(rest: &str) -> std::result::Result<String, &'static str> {
    if let Some(inner) = rest.strip_prefix('\'') {
        let Some(end) = inner.find('\'') else {
            return Err("unterminated single quote");
        };
        if !inner[end + 1..].trim().is_empty() {
            return Err("unexpected text after the closing quote");
        }
        return Ok(inner[..end].to_owned());
    }
    if let Some(inner) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    if !chars.as_str().trim().is_empty() {
                        return Err("unexpected text after the closing quote");
                    }
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => value.push(e),
                    Some('n') => value.push('\n'),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err("unterminated double quote"),
                },
                '$' | '`' => {
                    return Err("unescaped $ or ` in a double-quoted value (no expansion is done)");
                }
                c => value.push(c),
            }
        }
        return Err("unterminated double quote");
    }
    if rest.contains(['\'', '"', '`', '$', '\\']) || rest.contains(char::is_whitespace) {
        return Err("quote a value that contains spaces, quotes, $, ` or \\");
    }
    Ok(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(Path::new("f"), text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|a| (a.key, a.value.expose().to_owned()))
            .collect()
    }

    fn error(text: &str) -> String {
        match parse(Path::new("/etc/p.env"), text.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {text:?}"),
        }
    }

    #[test]
    fn accepts_the_documented_forms() {
        let text =
            "# comment\n\nA=plain\nexport B=x\nC='it has $ and \"'\nD=\"q\\\"\\$\\\\ \"\n  E=  \nF=''\n";
        assert_eq!(
            values(text),
            [("A", "plain"), ("B", "x"), ("C", "it has $ and \""), ("D", "q\"$\\ "), ("E", ""), ("F", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn errors_name_file_and_line_but_not_the_value() {
        let e = error("A=1\nthis is not an assignment s3cret\n");
        assert_eq!(e, "/etc/p.env:2: expected KEY=value");
        let e = error("A=1\nB='s3cret\n");
        assert!(e.starts_with("/etc/p.env:2: unterminated"), "{e}");
        assert!(!e.contains("s3cret"));
        assert!(error("1A=x\n").contains(":1:"));
        assert!(error("A=\"$(rm -rf /)\"\n").contains("unescaped $"));
        assert!(error("A=two words\n").contains("quote a value"));
    }
}
