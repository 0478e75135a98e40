//! Making untrusted strings safe for a terminal and for syslog.
//!
//! Jail names, item names, paths under a jail root and `bw`'s stderr are controlled by
//! someone else. Before any of them reaches stderr or syslog, control characters (ESC, CR, LF,
//! DEL, C1 controls) and Unicode bidi overrides are replaced by visible escapes, and the length
//! is capped, so a hostile string can neither rewrite the operator's terminal nor forge log
//! lines. `scrub` additionally removes known secret values from text we did not produce — in
//! every form a program is likely to print them in: raw, percent-encoded (as in a URL or a form
//! body), base64 (whole, or embedded in a longer base64 string such as an HTTP Basic
//! `Authorization` header) and JSON-escaped.

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

/// Shortest secret (in bytes) `scrub` looks for: shorter ones would redact ordinary words.
const MIN_SECRET: usize = 4;
/// Shortest encoded form looked for (an embedded base64 core loses up to 4 characters).
const MIN_FORM: usize = 4;

/// `text` with every known form of every secret (at least 4 bytes long) replaced by `[redacted]`.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut forms: Vec<String> = secrets
        .iter()
        .map(|s| s.expose())
        .filter(|v| v.len() >= MIN_SECRET)
        .flat_map(forms)
        .filter(|f| f.len() >= MIN_FORM)
        .collect();
    // Longest first, so that a form containing a shorter one is removed whole.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    let mut out = text.to_owned();
    for form in &forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), "[redacted]");
        }
    }
    out
}

/// The forms `value` may take in a program's output: itself, percent-encoded (RFC 3986 and
/// JavaScript's `encodeURIComponent` sets, upper- and lower-case hex, space as `%20` or `+`),
/// JSON-escaped, and the part of its base64 (standard and URL-safe alphabets) that does not
/// depend on what surrounds it, at each of the three byte alignments it can have inside a
/// longer base64 string.
fn forms(value: &str) -> Vec<String> {
    use base64::Engine as _;
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const STRICT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    const COMPONENT: &AsciiSet = &STRICT.remove(b'!').remove(b'*').remove(b'\'').remove(b'(').remove(b')');
    // What may stand unencoded in a URL's userinfo or path (RFC 3986 sub-delims, ':', '@', '/').
    const URL_PART: &AsciiSet = &STRICT
        .remove(b'!')
        .remove(b'$')
        .remove(b'&')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'*')
        .remove(b'+')
        .remove(b',')
        .remove(b';')
        .remove(b'=')
        .remove(b':')
        .remove(b'@')
        .remove(b'/');
    let mut out = vec![value.to_owned()];
    for set in [NON_ALPHANUMERIC, STRICT, COMPONENT, URL_PART] {
        let upper = utf8_percent_encode(value, set).to_string();
        let lower = lower_hex(&upper);
        for encoded in [upper, lower] {
            out.push(encoded.replace("%20", "+"));
            out.push(encoded);
        }
    }
    if let Ok(json) = serde_json::to_string(value) {
        out.push(json[1..json.len() - 1].to_owned());
    }
    let bytes = value.as_bytes();
    for engine in
        [base64::engine::general_purpose::STANDARD_NO_PAD, base64::engine::general_purpose::URL_SAFE_NO_PAD]
    {
        for align in 0..3 {
            let mut shifted = vec![0u8; align];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            // Characters that mix in bits of the bytes before (2 or 3 for 1 or 2 such bytes)
            // or after (the last one unless the value ends on a group boundary).
            let skip = [0, 2, 3][align];
            let drop_last = usize::from(shifted.len() % 3 != 0);
            if encoded.len() > skip + drop_last {
                out.push(encoded[skip..encoded.len() - drop_last].to_owned());
            }
        }
    }
    out
}

/// `%2F` → `%2f`, leaving everything else alone.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut after_percent = 0;
    for c in encoded.chars() {
        if c == '%' {
            after_percent = 2;
            out.push(c);
        } else if after_percent > 0 {
            after_percent -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
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
    fn scrubs_encoded_forms() {
        use base64::Engine as _;
        let value = "p@ss w/rd:+é\"\\ok";
        let secret = Secret::from(value);
        let dotted = Secret::from("a.b-c~d_e f");
        let b64 = base64::engine::general_purpose::STANDARD;
        let url64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let texts = [
            format!("url https://u:{}@h/", utf8_percent(value)),
            format!("dotted {}", utf8_percent("a.b-c~d_e f")),
            format!("form a={}&b=1", utf8_percent(value).replace("%20", "+")),
            format!("lower {}", lower_hex(&utf8_percent(value))),
            format!("json {{\"password\":{}}}", serde_json::to_string(value).unwrap()),
            format!("whole {}", b64.encode(value)),
            format!("basic Authorization: Basic {}", b64.encode(format!("user.id:{value}"))),
            format!("shifted {}", b64.encode(format!("x{value}y"))),
            format!("shifted2 {}", url64.encode(format!("xy{value}"))),
        ];
        for text in &texts {
            let out = scrub(text, &[&secret, &dotted]);
            assert!(out.contains("[redacted]"), "{text} -> {out}");
            // What remains of the encoded secret is at most the few characters mixed with its
            // neighbours: never 4 characters of any of its forms.
            for form in forms(value).iter().chain(&forms("a.b-c~d_e f")).filter(|f| f.len() >= MIN_FORM) {
                assert!(!out.contains(form.as_str()), "{form} left in {out}");
            }
        }
    }

    fn utf8_percent(value: &str) -> String {
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn short_values_and_plain_text_are_left_alone() {
        assert_eq!(scrub("a b c", &[&Secret::from("b")]), "a b c");
        assert_eq!(scrub("nothing here", &[&Secret::from("hunter22")]), "nothing here");
    }

    #[test]
    fn lossy_bytes() {
        assert_eq!(clean_bytes(b"ok\xff\n", 10), "ok\u{fffd}\\n");
    }
}
