//! The `KEY=value` files colibri-vault reads, and the one grammar every such text is read with.
//!
//! The provider env and the `dir` source's secrets hold credentials, so both must be private: a
//! regular file owned by the running uid with no group or other access, opened without blocking
//! and checked on the opened descriptor, not the name (`hostfile`; a secrets file is never
//! reached through a link).
//!
//! The grammar ([`assignments`]) is what `/bin/sh` reads as one assignment per statement,
//! without any expansion: `NAME=word` or `export NAME=word`, blank lines and `#` comments, where
//! the word is any concatenation of `'…'` (literal), `"…"` (a backslash escapes only `$`, `` ` ``,
//! `"`, `\` and a newline, as in sh) and unquoted characters (a backslash escapes any one; a
//! backslash-newline joins lines). Quoted parts may span lines: the `sh` format writes a newline
//! in a value literally inside `'…'`. Whatever sh would expand or read as more than one
//! assignment is refused: an unquoted or double-quoted `$` or backtick, an unquoted `~` where sh
//! expands it, an unquoted `; & | < > ( )`, text after the value. Departures from sh: a carriage
//! return just before a newline outside quotes is dropped (files edited on Windows), and a value
//! may not start with an unquoted `=` (a base64 line ending in `==` is not a `NAME==`
//! assignment, whose name would then be logged; for the same reason a note line may not end
//! at its `=`).
//! Refusals carry the line the assignment starts on and a fixed description, never any of the
//! text, which may be a secret.
//!
//! The same grammar reads our own `sh` and `dotenv` output back before a rename
//! (`envfile::parse`) and Secure Note lines ([`Dialect::Note`]), so there is no second parser.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hostfile;
use crate::secret::Secret;

/// One assignment, with the line it starts on (for messages).
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

/// Parses the file's bytes as sh assignments. `file` is used in messages only.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<Assignment>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::ConfigLine {
        file: file.to_owned(),
        line: bytes[..e.valid_up_to()].split(|&b| b == b'\n').count(),
        problem: "not valid UTF-8".into(),
    })?;
    assignments(text, Dialect::Sh)
        .map(|parsed| {
            parsed.map_err(|refused| Error::ConfigLine {
                file: PathBuf::from(file),
                line: refused.line,
                problem: refused.problem.to_owned(),
            })
        })
        .collect()
}

/// `raw` with spaces, dashes and dots turned into `_`, if the result is a shell name (DESIGN.md
/// step 4: item names and Secure Note keys).
pub fn normalize_name(raw: &str) -> Option<String> {
    let name: String = raw.chars().map(|c| if matches!(c, ' ' | '-' | '.') { '_' } else { c }).collect();
    is_name(&name).then_some(name)
}

pub fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// How names and values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// sh assignments: files on the host and our own output.
    Sh,
    /// Secure Note lines. As `Sh`, with one allowance, which is how notes were written before
    /// this grammar existed: a value with no quote, backslash, `$` or backtick is the rest of
    /// the line, taken literally, spaces included (`B=two words`). An empty value must be
    /// quoted (`NAME=''`): a note line `NAME=` is more likely base64 than a setting, and its
    /// "name" would be logged.
    Note,
}

/// Why an assignment was not read: the line it starts on and a fixed description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub line: usize,
    pub problem: &'static str,
}

const NOT_AN_ASSIGNMENT: &str = "expected KEY=value";
const NOT_A_NOTE_LINE: &str = "not a KEY=VALUE line";
const BAD_NAME: &str = "the name before '=' must match [A-Za-z_][A-Za-z0-9_]*";
const UNTERMINATED_SINGLE: &str = "unterminated single quote";
const UNTERMINATED_DOUBLE: &str = "unterminated double quote";
const FINAL_BACKSLASH: &str = "a backslash at the end of the file";
const EXPANSION: &str = "an unquoted $ or ` (sh would expand it): put the value in single quotes";
const EXPANSION_IN_DOUBLE: &str =
    "a $ or ` inside double quotes (sh would expand it): escape it with \\ or use single quotes";
const TILDE: &str = "an unquoted ~ at the start of the value or after ':' (sh would expand it): quote it";
const OPERATOR: &str = "an unquoted ; & | < > ( or ) (sh would not read one assignment): quote the value";
const STARTS_WITH_EQUALS: &str =
    "a value that starts with '=' (is the line base64?): quote the value if it is meant";
const EMPTY_NOTE_VALUE: &str =
    "an empty value (is the line base64?): write NAME='' if an empty value is meant";
const TRAILING_TEXT: &str =
    "text after the value (sh would run it as a command): quote a value that contains spaces";

/// The assignments of `text`, in order. After a refusal, reading resumes on the line after the
/// one the refused assignment starts on (callers that stop at the first refusal just stop).
pub fn assignments(text: &str, dialect: Dialect) -> Assignments<'_> {
    Assignments { text, pos: 0, line: 1, dialect }
}

pub struct Assignments<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    dialect: Dialect,
}

impl Iterator for Assignments<'_> {
    type Item = std::result::Result<Assignment, Refusal>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return None,
                Some('\n') => self.newline(),
                Some('\r') if self.at_line_end() => self.pos += 1,
                Some('#') => self.skip_to_line_end(),
                Some(_) => break,
            }
        }
        let line = self.line;
        let line_end = self.line_end();
        match self.assignment(line_end) {
            Ok((key, value)) => Some(Ok(Assignment { key, value, line })),
            Err(problem) => {
                self.pos = (line_end + 1).min(self.text.len());
                self.line = line + 1;
                Some(Err(Refusal { line, problem }))
            }
        }
    }
}

impl Assignments<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The byte offset of the end of the current physical line (its `\n`, or the end).
    fn line_end(&self) -> usize {
        self.rest().find('\n').map_or(self.text.len(), |i| self.pos + i)
    }

    /// Whether the text at `pos` is a CR that ends the line (CRLF, or CR at the end).
    fn at_line_end(&self) -> bool {
        self.rest().strip_prefix('\r').is_some_and(|after| after.is_empty() || after.starts_with('\n'))
    }

    fn newline(&mut self) {
        self.pos += 1;
        self.line += 1;
    }

    fn skip_blanks(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t']).len();
    }

    fn skip_to_line_end(&mut self) {
        self.pos = self.line_end();
    }

    fn assignment(&mut self, line_end: usize) -> std::result::Result<(String, Secret), &'static str> {
        let physical = &self.text[self.pos..line_end];
        if let Some(after) = physical.strip_prefix("export")
            && after.starts_with([' ', '\t'])
        {
            self.pos += "export".len();
            self.skip_blanks();
        }
        let physical = &self.text[self.pos..line_end];
        let (key, len) = match self.dialect {
            Dialect::Sh => {
                let len =
                    physical.find(|c: char| c != '_' && !c.is_ascii_alphanumeric()).unwrap_or(physical.len());
                if !physical[len..].starts_with('=') {
                    return Err(if physical.contains('=') { BAD_NAME } else { NOT_AN_ASSIGNMENT });
                }
                if !is_name(&physical[..len]) {
                    return Err(BAD_NAME);
                }
                (physical[..len].to_owned(), len)
            }
            // A note key's dashes and dots become `_` as in item names (DESIGN.md step 4):
            // `API-KEY` and `app.port` give `API_KEY` and `app_port`. Not its inner spaces: text
            // with spaces before an `=` is prose or a token more likely than a name, and a name
            // is logged (`Authorization Bearer x=…` must not become a logged name).
            Dialect::Note => {
                let len = physical.find('=').ok_or(NOT_A_NOTE_LINE)?;
                let raw = physical[..len].trim_end_matches([' ', '\t']);
                if raw.contains([' ', '\t']) {
                    return Err(BAD_NAME);
                }
                (normalize_name(raw).ok_or(BAD_NAME)?, len)
            }
        };
        self.pos += len + 1;
        let rest = &physical[len + 1..];
        if rest.starts_with('=') {
            return Err(STARTS_WITH_EQUALS);
        }
        if self.dialect == Dialect::Note {
            let literal = rest.strip_suffix('\r').unwrap_or(rest);
            if literal.is_empty() {
                return Err(EMPTY_NOTE_VALUE);
            }
            if !literal.contains(['\'', '"', '\\', '$', '`']) {
                self.pos = line_end;
                return Ok((key, Secret::from(literal)));
            }
        }
        let value = self.word(line_end - self.pos)?;
        self.skip_blanks();
        match self.peek() {
            None | Some('\n') => {}
            Some('\r') if self.at_line_end() => {}
            Some('#') => self.skip_to_line_end(),
            Some(_) => return Err(TRAILING_TEXT),
        }
        Ok((key, value))
    }

    /// One sh word, up to an unquoted blank or newline; `expected` sizes the buffer (so that
    /// the value is rarely copied by a reallocation that would leave it behind unzeroed).
    fn word(&mut self, expected: usize) -> std::result::Result<Secret, &'static str> {
        let mut value = Zeroizing::new(String::with_capacity(expected));
        // Where sh would expand a tilde: at the start of the value and after an unquoted ':'.
        let mut tilde_expands = true;
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' => break,
                '\r' if self.at_line_end() => break,
                '\'' => {
                    let body = &self.rest()[1..];
                    let end = body.find('\'').ok_or(UNTERMINATED_SINGLE)?;
                    value.push_str(&body[..end]);
                    self.line += body[..end].matches('\n').count();
                    self.pos += end + 2;
                }
                '"' => self.double_quoted(&mut value)?,
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(FINAL_BACKSLASH),
                        Some('\n') => {
                            // A line continuation: sh removes both characters.
                            self.newline();
                            continue;
                        }
                        Some(escaped) => {
                            value.push(escaped);
                            self.pos += escaped.len_utf8();
                        }
                    }
                }
                '$' | '`' => return Err(EXPANSION),
                ';' | '&' | '|' | '<' | '>' | '(' | ')' => return Err(OPERATOR),
                '~' if tilde_expands => return Err(TILDE),
                c => {
                    value.push(c);
                    self.pos += c.len_utf8();
                    tilde_expands = c == ':';
                    continue;
                }
            }
            tilde_expands = false;
        }
        Ok(Secret::new(std::mem::take(&mut *value)))
    }

    /// A `"…"` part, appended to `value`. `pos` is at the opening quote.
    fn double_quoted(&mut self, value: &mut String) -> std::result::Result<(), &'static str> {
        self.pos += 1;
        loop {
            let c = self.peek().ok_or(UNTERMINATED_DOUBLE)?;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(()),
                '\\' => match self.peek() {
                    None => return Err(UNTERMINATED_DOUBLE),
                    Some('\n') => self.newline(),
                    Some(escaped @ ('$' | '`' | '"' | '\\')) => {
                        value.push(escaped);
                        self.pos += 1;
                    }
                    // Before any other character the backslash is itself (sh semantics).
                    Some(_) => value.push('\\'),
                },
                '$' | '`' => return Err(EXPANSION_IN_DOUBLE),
                '\n' => {
                    self.line += 1;
                    value.push('\n');
                }
                c => value.push(c),
            }
        }
    }
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

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn error(text: &str) -> String {
        match parse(Path::new("/etc/p.env"), text.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {text:?}"),
        }
    }

    fn note(text: &str) -> Vec<std::result::Result<(String, String, usize), Refusal>> {
        assignments(text, Dialect::Note)
            .map(|r| r.map(|a| (a.key, a.value.expose().to_owned(), a.line)))
            .collect()
    }

    #[test]
    fn accepts_the_documented_forms() {
        let text =
            "# comment\n\nA=plain\nexport B=x\nC='it has $ and \"'\nD=\"q\\\"\\$\\\\ \"\n  E=  \nF=''\n";
        assert_eq!(
            values(text),
            pairs(&[
                ("A", "plain"),
                ("B", "x"),
                ("C", "it has $ and \""),
                ("D", "q\"$\\ "),
                ("E", ""),
                ("F", "")
            ])
        );
    }

    #[test]
    fn reads_what_sh_reads_concatenations_escapes_and_lines() {
        let text = concat!(
            "A='it'\\''s'\n",               // what the sh format writes
            "B=\"a\\nb\\x\\`\"\n",          // in "", \ escapes only $ ` \" \\ and newline
            "C=two\\ words\\$\\;\n",        // outside quotes, \ escapes anything
            "D='line1\nline2'\"\n\"x\n",    // quoted newlines
            "E=joined\\\nhere # comment\n", // backslash-newline outside quotes
            "F=\"cont\\\nd\"\n",            // ... and inside double quotes
            "G=a#b=c:d~e\n",                // '#' mid-word, '=', ':' and '~' not after ':'
            "H=x\r\n",                      // CRLF
            "export\tI='é中😀\t\r'\n",
            "J=\"it's\"'\"'\n",
        );
        assert_eq!(
            values(text),
            pairs(&[
                ("A", "it's"),
                ("B", "a\\nb\\x`"),
                ("C", "two words$;"),
                ("D", "line1\nline2\nx"),
                ("E", "joinedhere"),
                ("F", "contd"),
                ("G", "a#b=c:d~e"),
                ("H", "x"),
                ("I", "é中😀\t\r"),
                ("J", "it's\""),
            ])
        );
        let lines: Vec<usize> =
            parse(Path::new("f"), text.as_bytes()).unwrap().iter().map(|a| a.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 7, 9, 11, 12, 13, 14]);
    }

    #[test]
    fn refuses_expansions_and_what_sh_would_not_read_as_one_assignment() {
        for (text, problem) in [
            ("A=$HOME\n", EXPANSION),
            ("A=x$\n", EXPANSION),
            ("A=`id`\n", EXPANSION),
            ("A=\"$(id)\"\n", EXPANSION_IN_DOUBLE),
            ("A=\"`id`\"\n", EXPANSION_IN_DOUBLE),
            ("A='ok'$x\n", EXPANSION),
            ("A=~/x\n", TILDE),
            ("A=/a:~/b\n", TILDE),
            ("A=x;rm\n", OPERATOR),
            ("A=(x)\n", OPERATOR),
            ("A=a|b\n", OPERATOR),
            ("A=two words\n", TRAILING_TEXT),
            ("A='x' y\n", TRAILING_TEXT),
            ("A=1 B=2\n", TRAILING_TEXT),
            ("A='x\n", UNTERMINATED_SINGLE),
            ("A=\"x\\\"\n", UNTERMINATED_DOUBLE),
            ("A=x\\", FINAL_BACKSLASH),
            ("this is not an assignment\n", NOT_AN_ASSIGNMENT),
            ("export\n", NOT_AN_ASSIGNMENT),
            ("1A=x\n", BAD_NAME),
            ("A-B=x\n", BAD_NAME),
            ("A B=x\n", BAD_NAME),
            ("'A'=x\n", BAD_NAME),
            ("A==x\n", STARTS_WITH_EQUALS),
            ("c2VjcmV0a2V5==\n", STARTS_WITH_EQUALS),
        ] {
            assert_eq!(error(text), format!("/etc/p.env:1: {problem}"), "{text:?}");
        }
    }

    #[test]
    fn errors_name_file_and_line_but_not_the_value() {
        let e = error("A=1\nthis is not an assignment s3cret\n");
        assert_eq!(e, "/etc/p.env:2: expected KEY=value");
        let e = error("A=1\n\nB='s3cret\nmore\n");
        assert_eq!(e, format!("/etc/p.env:3: {UNTERMINATED_SINGLE}"));
        let e = error("A='multi\nline'\nB=$(s3cret)\n");
        assert_eq!(e, format!("/etc/p.env:3: {EXPANSION}"));
        let e = parse(Path::new("/p"), b"A=1\nB=\xff\n").err().unwrap().to_string();
        assert_eq!(e, "/p:2: not valid UTF-8");
    }

    #[test]
    fn note_lines_take_plain_values_literally_and_quoted_ones_as_sh_does() {
        let got = note(concat!(
            "A=1\r\n",
            "B=two words=x \n",
            "MODE='prod'\n",
            "SPACED= it is\n",
            "export C=\"q\\\"\"\n",
            "# comment\n",
            "CERT='-----BEGIN\nabc\n-----END'\n",
            "D=a;b&c|d<e>f(g)h~#i\n",
            "E=''\n",
        ));
        let ok: Vec<(String, String, usize)> = got.into_iter().map(Result::unwrap).collect();
        let expected = [
            ("A", "1", 1),
            ("B", "two words=x ", 2),
            ("MODE", "prod", 3),
            ("SPACED", " it is", 4),
            ("C", "q\"", 5),
            ("CERT", "-----BEGIN\nabc\n-----END", 7),
            ("D", "a;b&c|d<e>f(g)h~#i", 10),
            ("E", "", 11),
        ];
        assert_eq!(ok, expected.map(|(k, v, l)| (k.to_owned(), v.to_owned(), l)));
    }

    #[test]
    fn refused_note_lines_are_reported_by_line_and_reading_goes_on() {
        let got = note(concat!(
            "postgres://u:PASS@h/db?sslmode=require\n",
            "just a secret\n",
            "URL=https://x/$y\n",
            "OPEN='unterminated\n",
            "NEXT=1\n",
            "T=\"x\" tail\n",
            "LAST='ok'\n",
            "dGhpcyBpcyBhIHNlY3JldA==\n",
            "db password=x\n",
            "API-KEY=x\n",
            "c2VjcmV0a2V5IGhlcmU=\n",
        ));
        let lines: Vec<std::result::Result<usize, (usize, &str)>> =
            got.into_iter().map(|r| r.map(|a| a.2).map_err(|e| (e.line, e.problem))).collect();
        assert_eq!(
            lines,
            [
                Err((1, BAD_NAME)),
                Err((2, NOT_A_NOTE_LINE)),
                Err((3, EXPANSION)),
                Err((4, UNTERMINATED_SINGLE)),
                Ok(5),
                Err((6, TRAILING_TEXT)),
                Ok(7),
                Err((8, STARTS_WITH_EQUALS)),
                // A key with a space is refused; dashes become '_' (DESIGN.md step 4).
                Err((9, BAD_NAME)),
                Ok(10),
                Err((11, EMPTY_NOTE_VALUE)),
            ]
        );
    }

    #[test]
    fn never_panics_and_refusals_name_a_line_of_the_text() {
        use proptest::prelude::*;
        let chars = prop::sample::select(vec![
            'A', '=', '\'', '"', '\\', '$', '`', '\n', '\r', ' ', '#', '~', ':', ';', 'é', 'x',
        ]);
        proptest!(|(text in prop::collection::vec(chars, 0..40).prop_map(|v| v.into_iter().collect::<String>()))| {
            for dialect in [Dialect::Sh, Dialect::Note] {
                for parsed in assignments(&text, dialect) {
                    if let Err(refused) = parsed {
                        prop_assert!(refused.line >= 1 && refused.line <= 1 + text.matches('\n').count());
                    }
                }
            }
        });
    }
}
