//! Making untrusted strings safe for a terminal and for syslog.
//!
//! Jail names, item names, paths under a jail root and `bw`'s stderr are controlled by
//! someone else. Before any of them reaches stderr or syslog, control characters (ESC, CR, LF,
//! DEL, C1 controls) and Unicode bidi overrides are replaced by visible escapes, and the length
//! is capped, so a hostile string can neither rewrite the operator's terminal nor forge log
//! lines. `scrub` additionally removes known secret values from text we did not produce.

use std::fmt::Write as _;

use crate::secret::Secret;

/// Longest sanitized string, in characters, before it is cut with an ellipsis.
pub const DEFAULT_MAX: usize = 512;

/// The string with every control or bidi character escaped and at most `max` characters kept.
pub fn sanitize(input: &str, max: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max));
    for (count, c) in input.chars().enumerate() {
        if count >= max {
            out.push('…');
            break;
        }
        if c.is_control() || is_bidi_control(c) {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x100 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `sanitize` with the default cap.
pub fn clean(input: &str) -> String {
    sanitize(input, DEFAULT_MAX)
}

/// Bytes that may not be UTF-8 (a child's stderr), decoded lossily, then sanitized.
pub fn clean_bytes(input: &[u8], max: usize) -> String {
    sanitize(&String::from_utf8_lossy(input), max)
}

/// `text` with every non-empty secret replaced by `[redacted]`.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        let value = secret.expose();
        // Very short values would redact ordinary words; bw secrets are long.
        if value.len() >= 4 {
            out = out.replace(value, "[redacted]");
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(clean("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(clean("line\nforged: ok\r"), "line\\nforged: ok\\r");
        assert_eq!(clean("\u{7f}\u{9b}"), "\\x7f\\x9b");
    }

    #[test]
    fn escapes_bidi_overrides() {
        assert_eq!(clean("evil\u{202e}txt"), "evil\\u{202e}txt");
    }

    #[test]
    fn keeps_ordinary_unicode() {
        assert_eq!(clean("colibrí-jail_1 ✓"), "colibrí-jail_1 ✓");
    }

    #[test]
    fn caps_length() {
        assert_eq!(sanitize("abcdef", 3), "abc…");
        assert_eq!(sanitize("abc", 3), "abc");
    }

    #[test]
    fn scrubs_known_secrets() {
        let secret = Secret::from("hunter22");
        assert_eq!(scrub("bad secret hunter22 given", &[&secret]), "bad secret [redacted] given");
    }

    #[test]
    fn lossy_bytes() {
        assert_eq!(clean_bytes(b"ok\xff\n", 10), "ok\u{fffd}\\n");
    }
}
