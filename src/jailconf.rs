//! Adding and removing colibri-vault's hook lines in one jail's `jail.conf`.
//!
//! What it is for: `colibri-vault jail enable|disable` on a Bastille jail. [`enable`] makes the
//! jail's block end with
//! `exec.created += "<sbin>/colibri-vault hook start $name ${path}";` (or the `exec.poststart`
//! form) and, when asked, `exec.poststop += "<sbin>/colibri-vault hook stop $name ${path}";`,
//! indented like the block, just before its closing `}`. [`disable`] removes exactly those lines.
//!
//! Guarantees:
//! - Text in, text out: nothing here touches the jail.conf file. The caller replaces it atomically.
//! - Every byte outside the lines added or removed is kept. `enable` twice equals `enable` once;
//!   switching the stage replaces our line; `disable` of `enable` gives the original text back
//!   for files laid out like Bastille's.
//! - `+=` only, appended after everything else in the block: a plain `=` for the same parameter
//!   replaces every earlier value (jail(8)), so a line of ours is only left in place while no
//!   plain `=` follows it.
//! - A file this module cannot read the way jail(8) reads it (the lexer and grammar in FreeBSD's
//!   `usr.sbin/jail/jaillex.l` and `jailparse.y`) is an error that says where, never a guess:
//!   no block for the jail, several blocks for it, unbalanced braces, nested blocks, unterminated
//!   strings, comments or variables, a parameter without its `;`.
//!
//! Not for: expanding variables or deciding what jail(8) will run; `.include`d files are not
//! followed (Bastille does not use them). Reading Bastille's own settings is `bastille`'s job.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The jail(8) parameter that runs our stop hook.
const STOP_PARAM: &str = "exec.poststop";

/// The hook parameters a line of ours may use.
const OUR_PARAMS: [&str; 3] = ["exec.created", "exec.poststart", STOP_PARAM];

/// When `hook start` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// `exec.created`: the jail exists, nothing runs in it yet (before its `/etc/rc`).
    #[default]
    Created,
    /// `exec.poststart`: after the jail's `/etc/rc`, when its services have already started.
    Poststart,
}

impl Stage {
    /// The jail(8) parameter for this stage.
    pub fn param(self) -> &'static str {
        match self {
            Stage::Created => "exec.created",
            Stage::Poststart => "exec.poststart",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Created => "created",
            Stage::Poststart => "poststart",
        })
    }
}

impl FromStr for Stage {
    type Err = JailConfError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created" => Ok(Stage::Created),
            "poststart" => Ok(Stage::Poststart),
            other => Err(JailConfError::UnknownStage(other.to_owned())),
        }
    }
}

/// One of our hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Start(Stage),
    Stop,
}

impl Hook {
    fn param(self) -> &'static str {
        match self {
            Hook::Start(stage) => stage.param(),
            Hook::Stop => STOP_PARAM,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Hook::Start(_) => "start",
            Hook::Stop => "stop",
        }
    }
}

/// The result of [`enable`] or [`disable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Whether `text` differs from the input (when false, `text` is the input unchanged and the
    /// file need not be rewritten).
    pub changed: bool,
    /// The whole new jail.conf.
    pub text: String,
    /// Things the operator should know that are not errors, e.g. another line in the block that
    /// also runs colibri-vault (the Bastille template's `exec.poststart = '…'`).
    pub notes: Vec<String>,
}

/// A line of ours found by [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookLine {
    pub hook: Hook,
    /// The directory of the colibri-vault binary the line runs.
    pub sbin: String,
    /// 1-based line number in the jail.conf.
    pub line: usize,
    /// False when a later plain `=` for the same parameter in the block replaces it.
    pub effective: bool,
}

/// What [`inspect`] found in a jail's block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspection {
    pub hooks: Vec<HookLine>,
    pub notes: Vec<String>,
    /// The block's `path` (what jail(8) passes to the hook as `${path}`).
    pub path: JailPath,
    /// The block's `mount` and `mount.fstab` statements, in order.
    pub mounts: Vec<MountParam>,
}

/// A `mount` (one fstab(5) line per value) or `mount.fstab` (a file of them) statement: what
/// jail(8) mounts before any `exec.*` hook runs and unmounts after `exec.poststop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountParam {
    /// `mount` or `mount.fstab`.
    pub param: String,
    /// 1-based line number in the jail.conf.
    pub line: usize,
    /// Each value, when it is literal text (`None`: only jail(8) can work it out).
    pub values: Vec<Option<String>>,
}

/// The `path` parameter of a jail's block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum JailPath {
    /// The block does not set it.
    #[default]
    Unset,
    /// One literal value, escapes decoded.
    Literal(String),
    /// A value only jail(8) can work out (variables, `+=`, a list): the statement's text.
    Computed(String),
}

/// Why a jail.conf (or Bastille's settings) could not be used. Line numbers are 1-based; the
/// caller adds the file's path.
#[derive(Debug, thiserror::Error)]
pub enum JailConfError {
    #[error("line {line}: unterminated {what}")]
    Unterminated { what: &'static str, line: usize },

    #[error("line {line}: unexpected character {found:?} outside a quoted string")]
    UnexpectedChar { found: char, line: usize },

    #[error("line {line}: {problem}")]
    Syntax { line: usize, problem: String },

    #[error("line {line}: `}}` closes a block that was never opened (unbalanced braces)")]
    UnbalancedClose { line: usize },

    #[error("line {line}: the block of jail {jail:?} opened here is never closed (unbalanced braces)")]
    UnclosedBlock { jail: String, line: usize },

    #[error("line {line}: a block inside a block; jail.conf has no nested blocks")]
    NestedBlock { line: usize },

    #[error("line {line}: parameter {param} has no `;` before the `}}` that closes the block")]
    MissingSemicolon { param: String, line: usize },

    #[error("no block for jail {jail:?} (expected a line `{jail} {{`); nothing was changed")]
    NoBlock { jail: String },

    #[error(
        "jail {jail:?} is defined by {} blocks (lines {}); refusing to guess which one to edit",
        lines.len(),
        join_lines(lines)
    )]
    SeveralBlocks { jail: String, lines: Vec<usize> },

    #[error(
        "{sbin:?} cannot be the binary's directory in a jail.conf line: it must be an absolute \
         path of letters, digits and `._-/`"
    )]
    InvalidSbin { sbin: String },

    #[error("unknown stage {0:?}: expected `created` or `poststart`")]
    UnknownStage(String),

    #[error(
        "{name:?} is not a jail name colibri-vault can look up: use letters, digits, `_`, `-` \
         and `.`, not starting with `.` or `-`"
    )]
    InvalidJailName { name: String },
}

fn join_lines(lines: &[usize]) -> String {
    lines.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The statement [`enable`] writes for `hook`, without indentation or newline.
pub fn hook_statement(hook: Hook, sbin: &str) -> Result<String, JailConfError> {
    let sbin = check_sbin(sbin)?;
    Ok(statement(hook, sbin))
}

fn statement(hook: Hook, sbin: &str) -> String {
    format!("{} += {};", hook.param(), hook_value(hook, sbin))
}

/// The double-quoted value of our line: double quotes keep `$name` and `${path}` expanding (in
/// single quotes jail(8) would pass them literally), so the line survives `bastille rename`.
fn hook_value(hook: Hook, sbin: &str) -> String {
    format!("\"{sbin}/colibri-vault hook {} $name ${{path}}\"", hook.verb())
}

/// Make the hook lines in `jail`'s block exactly: the start hook at `stage`, plus the stop hook
/// when `with_stop`. Lines of ours that are already right stay where they are; the others are
/// removed; missing ones are appended before the block's closing `}`.
pub fn enable(
    text: &str,
    jail: &str,
    stage: Stage,
    with_stop: bool,
    sbin: &str,
) -> Result<Edit, JailConfError> {
    let sbin = check_sbin(sbin)?;
    let conf = parse(text)?;
    let block = conf.block(jail)?;
    let ours = block.ours(text, &conf.toks);

    let mut wanted = vec![Hook::Start(stage)];
    if with_stop {
        wanted.push(Hook::Stop);
    }
    let mut kept = vec![false; ours.len()];
    let mut missing = Vec::new();
    for hook in wanted {
        let found = ours
            .iter()
            .enumerate()
            .position(|(i, o)| !kept[i] && o.hook == hook && o.sbin == sbin && o.effective);
        match found {
            Some(i) => kept[i] = true,
            None => missing.push(hook),
        }
    }

    let removals: Vec<(usize, usize)> = ours
        .iter()
        .zip(&kept)
        .filter(|(_, k)| !**k)
        .map(|(o, _)| statement_lines(text, o.start, o.end))
        .collect();
    let insertion = if missing.is_empty() {
        None
    } else {
        let statements: Vec<String> = missing.iter().map(|h| statement(*h, sbin)).collect();
        Some(block.insertion(text, &conf.toks, &statements))
    };
    let notes = block.foreign_notes(text, &conf.toks);
    Ok(finish(text, &removals, insertion, notes))
}

/// Remove every line of ours from `jail`'s block, whatever stage or binary directory it names.
pub fn disable(text: &str, jail: &str) -> Result<Edit, JailConfError> {
    let conf = parse(text)?;
    let block = conf.block(jail)?;
    let removals: Vec<(usize, usize)> =
        block.ours(text, &conf.toks).iter().map(|o| statement_lines(text, o.start, o.end)).collect();
    let notes = block.foreign_notes(text, &conf.toks);
    Ok(finish(text, &removals, None, notes))
}

/// The lines of ours in `jail`'s block, for `status` and `doctor`.
pub fn inspect(text: &str, jail: &str) -> Result<Inspection, JailConfError> {
    let conf = parse(text)?;
    let block = conf.block(jail)?;
    let hooks = block
        .ours(text, &conf.toks)
        .into_iter()
        .map(|o| HookLine { hook: o.hook, sbin: o.sbin, line: o.line, effective: o.effective })
        .collect();
    Ok(Inspection {
        hooks,
        notes: block.foreign_notes(text, &conf.toks),
        path: block.path(text, &conf.toks),
        mounts: block.mounts(text, &conf.toks),
    })
}

/// `<jailsdir>/<jail>/jail.conf`, after checking that `jail` is a plain name (it becomes a path
/// component, so `..` or `/` must never get through).
pub fn jail_conf_path(jailsdir: &Path, jail: &str) -> Result<PathBuf, JailConfError> {
    let plain = !jail.is_empty()
        && jail.len() <= 255
        && !jail.starts_with(['.', '-'])
        && !jail.contains("..")
        && jail.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !plain {
        return Err(JailConfError::InvalidJailName { name: jail.to_owned() });
    }
    Ok(jailsdir.join(jail).join("jail.conf"))
}

fn check_sbin(sbin: &str) -> Result<&str, JailConfError> {
    let trimmed = sbin.trim_end_matches('/');
    if is_sbin(trimmed) { Ok(trimmed) } else { Err(JailConfError::InvalidSbin { sbin: sbin.to_owned() }) }
}

/// An absolute path we can put inside a double-quoted jail.conf string as is: no quote,
/// backslash, `$` or whitespace to escape.
fn is_sbin(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('/')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

/// Applies the removals (sorted, disjoint byte ranges) and the insertion to `text`.
fn finish(
    text: &str,
    removals: &[(usize, usize)],
    insertion: Option<(usize, String)>,
    notes: Vec<String>,
) -> Edit {
    // (start, end, replacement): removals are disjoint, the insertion is an empty range.
    let mut edits: Vec<(usize, usize, String)> =
        removals.iter().map(|&(s, e)| (s, e, String::new())).collect();
    edits.extend(insertion.map(|(pos, s)| (pos, pos, s)));
    edits.sort_unstable_by_key(|&(s, e, _)| (s, e));
    let mut out = String::with_capacity(text.len() + 200);
    let mut at = 0;
    for (start, end, replacement) in edits {
        out.push_str(&text[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    Edit { changed: out != text, text: out, notes }
}

/// The byte range to delete for a statement: its whole line(s) when nothing else shares them,
/// otherwise only the statement itself.
fn statement_lines(text: &str, start: usize, end: usize) -> (usize, usize) {
    let b = text.as_bytes();
    let line_start = line_start(b, start);
    let line_end = b[end..].iter().position(|&c| c == b'\n').map(|i| end + i);
    let alone_before = b[line_start..start].iter().all(|&c| c == b' ' || c == b'\t');
    let alone_after = b[end..line_end.unwrap_or(b.len())].iter().all(|&c| matches!(c, b' ' | b'\t' | b'\r'));
    if alone_before && alone_after { (line_start, line_end.map_or(b.len(), |i| i + 1)) } else { (start, end) }
}

fn line_start(b: &[u8], pos: usize) -> usize {
    b[..pos].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1)
}

fn only_blanks(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b' ' || c == b'\t')
}

// ---------------------------------------------------------------------------------------------
// Lexer: the token rules of FreeBSD's usr.sbin/jail/jaillex.l.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An unquoted token: a run of word characters, one backslash escape, or one of `$*+/\`.
    Word,
    Single,
    Double,
    /// `$name` or `${name}` outside quotes.
    Var,
    PlusEq,
    Eq,
    Comma,
    Semi,
    Open,
    Close,
}

impl Kind {
    fn is_piece(self) -> bool {
        matches!(self, Kind::Word | Kind::Single | Kind::Double | Kind::Var)
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Word | Kind::Single | Kind::Double | Kind::Var => "a word",
            Kind::PlusEq => "`+=`",
            Kind::Eq => "`=`",
            Kind::Comma => "`,`",
            Kind::Semi => "`;`",
            Kind::Open => "`{`",
            Kind::Close => "`}`",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
    line: usize,
    /// A piece directly after another piece (no blank or comment between): jail(8) joins them
    /// into one string (its STR1/VAR1 tokens).
    glued: bool,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_!%&()-.:<>?@[]^`|~".contains(&b)
}

fn lex(text: &str) -> Result<Vec<Tok>, JailConfError> {
    let b = text.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // Whether the previous token was a piece with nothing between it and here.
    let mut after_piece = false;
    while i < b.len() {
        if let Some(after) = skip_blank(b, i, &mut line)? {
            i = after;
            after_piece = false;
            continue;
        }
        let c = b[i];
        let next = b.get(i + 1).copied();
        let start = i;
        let start_line = line;
        let kind = match c {
            b'+' if next == Some(b'=') => {
                i += 2;
                Kind::PlusEq
            }
            b'=' | b',' | b';' | b'{' | b'}' => {
                i += 1;
                match c {
                    b'=' => Kind::Eq,
                    b',' => Kind::Comma,
                    b';' => Kind::Semi,
                    b'{' => Kind::Open,
                    _ => Kind::Close,
                }
            }
            b'\'' | b'"' => {
                i = quoted_end(b, i, &mut line)?;
                if c == b'"' {
                    check_braced_vars(&b[start..i], start_line)?;
                    Kind::Double
                } else {
                    Kind::Single
                }
            }
            b'$' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == b'_') => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Kind::Var
            }
            b'$' if next == Some(b'{') => {
                i = braced_var_end(b, i, &mut line)
                    .ok_or(JailConfError::Unterminated { what: "variable", line: start_line })?;
                Kind::Var
            }
            b'\\' if next.is_some() => {
                line += usize::from(next == Some(b'\n'));
                // A multi-byte character after the backslash stays whole.
                i += 1 + text[i + 1..].chars().next().map_or(1, char::len_utf8);
                Kind::Word
            }
            b'$' | b'*' | b'+' | b'/' | b'\\' => {
                i += 1;
                Kind::Word
            }
            c if is_word_byte(c) => {
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                return Err(JailConfError::UnexpectedChar {
                    found: text[i..].chars().next().unwrap_or('\u{fffd}'),
                    line,
                });
            }
        };
        let piece = kind.is_piece();
        toks.push(Tok { kind, start, end: i, line: start_line, glued: piece && after_piece });
        after_piece = piece;
    }
    Ok(toks)
}

/// If a blank or a comment starts at `i`, where it ends.
fn skip_blank(b: &[u8], i: usize, line: &mut usize) -> Result<Option<usize>, JailConfError> {
    let next = b.get(i + 1).copied();
    let end = match b[i] {
        b' ' | b'\t' | b'\r' => i + 1,
        b'\n' => {
            *line += 1;
            i + 1
        }
        b'#' => end_of_line(b, i),
        b'/' if next == Some(b'/') => end_of_line(b, i),
        b'/' if next == Some(b'*') => {
            let Some(close) = find(b, i + 2, b"*/") else {
                return Err(JailConfError::Unterminated { what: "comment", line: *line });
            };
            *line += count_newlines(&b[i..close]);
            close + 2
        }
        _ => return Ok(None),
    };
    Ok(Some(end))
}

fn end_of_line(b: &[u8], from: usize) -> usize {
    b[from..].iter().position(|&c| c == b'\n').map_or(b.len(), |i| from + i)
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| from + i)
}

fn count_newlines(b: &[u8]) -> usize {
    b.split(|&c| c == b'\n').count() - 1
}

/// The end (after the closing quote) of the quoted string starting at `start`. Backslash escapes
/// anything, newlines included, in both kinds of quotes.
fn quoted_end(b: &[u8], start: usize, line: &mut usize) -> Result<usize, JailConfError> {
    let quote = b[start];
    let start_line = *line;
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                *line += usize::from(b.get(i + 1) == Some(&b'\n'));
                i += 2;
            }
            b'\n' => {
                *line += 1;
                i += 1;
            }
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(JailConfError::Unterminated { what: "string", line: start_line })
}

/// The end of `${…}` starting at `start`: no newline or brace inside, backslash escapes allowed.
fn braced_var_end(b: &[u8], start: usize, line: &mut usize) -> Option<usize> {
    let mut i = start + 2;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                *line += usize::from(b[i + 1] == b'\n');
                i += 2;
            }
            b'}' => return Some(i + 1),
            b'\n' | b'{' => return None,
            _ => i += 1,
        }
    }
    None
}

/// jail(8) rejects a `${` inside double quotes that is not closed before the string ends.
fn check_braced_vars(quoted: &[u8], line: usize) -> Result<(), JailConfError> {
    let mut i = 1;
    let end = quoted.len() - 1;
    while i < end {
        match quoted[i] {
            b'\\' => i += 2,
            b'$' if quoted.get(i + 1) == Some(&b'{') => {
                let close = quoted[i + 2..end]
                    .iter()
                    .position(|&c| matches!(c, b'}' | b'\n' | b'"' | b'{'))
                    .map(|p| i + 2 + p);
                match close {
                    Some(p) if quoted[p] == b'}' => i = p + 1,
                    _ => {
                        return Err(JailConfError::Unterminated {
                            what: "variable",
                            line: line + count_newlines(&quoted[..i]),
                        });
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The literal text of one token, backslash escapes decoded (jaillex.l's `text2lval`); `None` for
/// a variable or a double-quoted string that refers to one.
fn literal(text: &str, tok: &Tok) -> Option<String> {
    let raw = &text.as_bytes()[tok.start..tok.end];
    let inner = match tok.kind {
        Kind::Word => raw,
        Kind::Single => &raw[1..raw.len() - 1],
        Kind::Double => {
            let inner = &raw[1..raw.len() - 1];
            if has_variable(inner) {
                return None;
            }
            inner
        }
        _ => return None,
    };
    Some(String::from_utf8_lossy(&unescape(inner)).into_owned())
}

fn has_variable(inner: &[u8]) -> bool {
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' => i += 2,
            b'$' if inner.get(i + 1).is_some_and(|&n| n.is_ascii_alphabetic() || n == b'_' || n == b'{') => {
                return true;
            }
            _ => i += 1,
        }
    }
    false
}

fn unescape(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut pos = 0;
    while pos < src.len() {
        if src[pos] != b'\\' || pos + 1 >= src.len() {
            out.push(src[pos]);
            pos += 1;
            continue;
        }
        let escaped = src[pos + 1];
        pos += 2;
        match escaped {
            b'0'..=b'7' => {
                // Up to three octal digits.
                let mut value = u32::from(escaped - b'0');
                let mut digits = 1;
                while digits < 3 && pos < src.len() && matches!(src[pos], b'0'..=b'7') {
                    value = value * 8 + u32::from(src[pos] - b'0');
                    pos += 1;
                    digits += 1;
                }
                out.push(u8::try_from(value & 0xff).unwrap_or(0));
            }
            b'x' => {
                // Up to two hex digits.
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    let Some(digit) = src.get(pos).and_then(|d| char::from(*d).to_digit(16)) else {
                        break;
                    };
                    value = value * 16 + digit;
                    pos += 1;
                    digits += 1;
                }
                out.push(u8::try_from(value).unwrap_or(0));
            }
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'\n' => {}
            other => out.push(other),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parser: the grammar of FreeBSD's usr.sbin/jail/jailparse.y, keeping byte positions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `name;` or `name value;` (a bare value replaces, like `=`).
    Plain,
    Append,
}

#[derive(Debug)]
struct Param {
    name: Option<String>,
    op: Op,
    /// Token index ranges `[from, to)` of each value string.
    values: Vec<(usize, usize)>,
    /// Byte range from the name to the `;` included.
    start: usize,
    end: usize,
    line: usize,
}

#[derive(Debug)]
struct Block {
    name: Option<String>,
    line: usize,
    /// Token index of the closing `}`.
    close: usize,
    params: Vec<Param>,
}

struct Conf {
    toks: Vec<Tok>,
    blocks: Vec<Block>,
}

/// A line of ours, as found in a block.
struct Ours {
    hook: Hook,
    sbin: String,
    start: usize,
    end: usize,
    line: usize,
    effective: bool,
}

fn parse(text: &str) -> Result<Conf, JailConfError> {
    let toks = lex(text)?;
    let mut blocks = Vec::new();
    let mut p = 0;
    while p < toks.len() {
        let t = toks[p];
        match t.kind {
            Kind::Semi => p += 1,
            Kind::Close => return Err(JailConfError::UnbalancedClose { line: t.line }),
            _ if t.kind.is_piece() && toks.get(p + 1).is_some_and(|n| n.kind == Kind::Open) => {
                let (block, next) = parse_block(text, &toks, p)?;
                blocks.push(block);
                p = next;
            }
            _ if t.kind.is_piece() => {
                let (_, next) = parse_param(text, &toks, p)?;
                p = next;
            }
            Kind::Open => {
                return Err(JailConfError::Syntax {
                    line: t.line,
                    problem: "`{` without a jail name before it".to_owned(),
                });
            }
            other => {
                return Err(JailConfError::Syntax {
                    line: t.line,
                    problem: format!("unexpected {} outside a parameter", other.describe()),
                });
            }
        }
    }
    Ok(Conf { toks, blocks })
}

/// `name { param; … }` with `toks[at]` the name and `toks[at + 1]` the `{`.
fn parse_block(text: &str, toks: &[Tok], at: usize) -> Result<(Block, usize), JailConfError> {
    let name_tok = toks[at];
    let name = literal(text, &name_tok);
    let mut params = Vec::new();
    let mut p = at + 2;
    loop {
        let Some(t) = toks.get(p) else {
            return Err(JailConfError::UnclosedBlock {
                jail: name.unwrap_or_else(|| text[name_tok.start..name_tok.end].to_owned()),
                line: name_tok.line,
            });
        };
        match t.kind {
            Kind::Semi => p += 1,
            Kind::Close => {
                let block = Block { name, line: name_tok.line, close: p, params };
                return Ok((block, p + 1));
            }
            Kind::Open => return Err(JailConfError::NestedBlock { line: t.line }),
            k if k.is_piece() => {
                if toks.get(p + 1).is_some_and(|n| n.kind == Kind::Open) {
                    return Err(JailConfError::NestedBlock { line: t.line });
                }
                let (param, next) = parse_param(text, toks, p)?;
                params.push(param);
                p = next;
            }
            other => {
                return Err(JailConfError::Syntax {
                    line: t.line,
                    problem: format!("unexpected {} where a parameter name belongs", other.describe()),
                });
            }
        }
    }
}

/// `name;`, `name = v, …;`, `name += v, …;` or `name v, …;` with `toks[at]` the name.
fn parse_param(text: &str, toks: &[Tok], at: usize) -> Result<(Param, usize), JailConfError> {
    let name_tok = toks[at];
    let name = literal(text, &name_tok);
    let shown = || text[name_tok.start..name_tok.end].to_owned();
    let syntax = |line: usize, problem: String| JailConfError::Syntax { line, problem };
    let mut p = at + 1;
    if toks.get(p).is_some_and(|t| t.glued) {
        return Err(syntax(name_tok.line, format!("parameter name {} runs into the next word", shown())));
    }
    let op = match toks.get(p).map(|t| t.kind) {
        Some(Kind::PlusEq) => {
            p += 1;
            Op::Append
        }
        Some(Kind::Eq) => {
            p += 1;
            Op::Plain
        }
        _ => Op::Plain,
    };
    let mut values = Vec::new();
    let valueless = op == Op::Plain && toks.get(p).is_some_and(|t| t.kind == Kind::Semi);
    if !valueless {
        loop {
            match toks.get(p) {
                Some(t) if t.kind.is_piece() => {}
                Some(t) if t.kind == Kind::Close => {
                    return Err(JailConfError::MissingSemicolon { param: shown(), line: name_tok.line });
                }
                Some(t) => {
                    return Err(syntax(
                        t.line,
                        format!("expected a value for {}, found {}", shown(), t.kind.describe()),
                    ));
                }
                None => {
                    return Err(syntax(
                        name_tok.line,
                        format!("parameter {} is cut off at the end of the file", shown()),
                    ));
                }
            }
            let from = p;
            p += 1;
            while toks.get(p).is_some_and(|t| t.glued) {
                p += 1;
            }
            values.push((from, p));
            match toks.get(p).map(|t| t.kind) {
                Some(Kind::Comma) => p += 1,
                Some(Kind::Semi) => break,
                Some(Kind::Close) | None => {
                    return Err(JailConfError::MissingSemicolon { param: shown(), line: name_tok.line });
                }
                Some(other) => {
                    return Err(syntax(
                        toks[p].line,
                        format!("expected `;` after {}, found {}", shown(), other.describe()),
                    ));
                }
            }
        }
    }
    let semi = toks[p];
    let param = Param { name, op, values, start: name_tok.start, end: semi.end, line: name_tok.line };
    Ok((param, p + 1))
}

impl Conf {
    fn block(&self, jail: &str) -> Result<&Block, JailConfError> {
        let found: Vec<&Block> = self.blocks.iter().filter(|b| b.name.as_deref() == Some(jail)).collect();
        match found.as_slice() {
            [] => Err(JailConfError::NoBlock { jail: jail.to_owned() }),
            [one] => Ok(one),
            several => Err(JailConfError::SeveralBlocks {
                jail: jail.to_owned(),
                lines: several.iter().map(|b| b.line).collect(),
            }),
        }
    }
}

impl Block {
    /// The lines of ours in this block, in order.
    fn ours(&self, text: &str, toks: &[Tok]) -> Vec<Ours> {
        self.params
            .iter()
            .enumerate()
            .filter_map(|(i, param)| {
                let (hook, sbin) = our_hook(text, toks, param)?;
                // A later plain `=` (or bare value) for the same parameter replaces this one.
                let effective = !self.params[i + 1..]
                    .iter()
                    .any(|later| later.name == param.name && later.op == Op::Plain);
                Some(Ours { hook, sbin, start: param.start, end: param.end, line: param.line, effective })
            })
            .collect()
    }

    /// The block's last `path` statement, as far as it can be read without jail(8).
    fn path(&self, text: &str, toks: &[Tok]) -> JailPath {
        let Some(last) = self.params.iter().rev().find(|p| p.name.as_deref() == Some("path")) else {
            return JailPath::Unset;
        };
        let computed = || JailPath::Computed(text[last.start..last.end].to_owned());
        let [(from, to)] = last.values.as_slice() else {
            return computed();
        };
        if last.op == Op::Append {
            return computed();
        }
        let mut value = String::new();
        for tok in &toks[*from..*to] {
            match literal(text, tok) {
                Some(piece) => value.push_str(&piece),
                None => return computed(),
            }
        }
        JailPath::Literal(value)
    }

    /// The block's `mount` and `mount.fstab` statements.
    fn mounts(&self, text: &str, toks: &[Tok]) -> Vec<MountParam> {
        self.params
            .iter()
            .filter_map(|p| {
                let param = p.name.as_deref().filter(|n| matches!(*n, "mount" | "mount.fstab"))?;
                let values = p
                    .values
                    .iter()
                    .map(|(from, to)| {
                        toks[*from..*to].iter().map(|tok| literal(text, tok)).collect::<Option<String>>()
                    })
                    .collect();
                Some(MountParam { param: param.to_owned(), line: p.line, values })
            })
            .collect()
    }

    /// Notes about other statements in the block that run colibri-vault too.
    fn foreign_notes(&self, text: &str, toks: &[Tok]) -> Vec<String> {
        self.params
            .iter()
            .filter(|p| our_hook(text, toks, p).is_none())
            .filter(|p| text[p.start..p.end].contains("colibri-vault"))
            .map(|p| {
                let shown: String = text[p.start..p.end].lines().next().unwrap_or("").to_owned();
                format!(
                    "line {}: `{shown}` also runs colibri-vault but is not a line `jail enable` \
                     manages (the Bastille template colibri/provision writes one like it); if \
                     the hook should run once, delete that line",
                    p.line
                )
            })
            .collect()
    }

    /// Where and what to insert for `statements`: before the closing `}`, indented like the
    /// block's last parameter that starts its own line.
    fn insertion(&self, text: &str, toks: &[Tok], statements: &[String]) -> (usize, String) {
        let b = text.as_bytes();
        let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let indent = self
            .params
            .iter()
            .rev()
            .find_map(|p| {
                let ls = line_start(b, p.start);
                only_blanks(&b[ls..p.start]).then(|| &text[ls..p.start])
            })
            .filter(|s| !s.is_empty())
            .unwrap_or("  ");
        let mut lines = String::new();
        for s in statements {
            lines.push_str(indent);
            lines.push_str(s);
            lines.push_str(nl);
        }
        let close = toks[self.close].start;
        let ls = line_start(b, close);
        if only_blanks(&b[ls..close]) { (ls, lines) } else { (close, format!("{nl}{lines}")) }
    }
}

/// Whether `param` is a line of ours: `exec.created`/`exec.poststart` `+=` one double-quoted
/// `"<sbin>/colibri-vault hook start $name ${path}"`, or `exec.poststop +=` the `hook stop` form.
fn our_hook(text: &str, toks: &[Tok], param: &Param) -> Option<(Hook, String)> {
    let name = param.name.as_deref()?;
    if param.op != Op::Append || !OUR_PARAMS.contains(&name) {
        return None;
    }
    let [(from, to)] = param.values.as_slice() else {
        return None;
    };
    if to - from != 1 || toks[*from].kind != Kind::Double {
        return None;
    }
    let tok = toks[*from];
    let inner = &text[tok.start + 1..tok.end - 1];
    let (sbin, rest) = inner.split_once("/colibri-vault hook ")?;
    let hook = match (name, rest) {
        ("exec.created", "start $name ${path}") => Hook::Start(Stage::Created),
        ("exec.poststart", "start $name ${path}") => Hook::Start(Stage::Poststart),
        (STOP_PARAM, "stop $name ${path}") => Hook::Stop,
        _ => return None,
    };
    is_sbin(sbin).then(|| (hook, sbin.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_statements_are_found_with_their_literal_values() {
        let text = "web {\n  path = /j/web/root;\n  mount.fstab = /j/web/fstab;\n  mount += \"tmpfs /j/web/root/var/run tmpfs rw 0 0\";\n  mount += \"$x /y\";\n}\n";
        let found = inspect(text, "web").unwrap();
        assert_eq!(
            found.mounts,
            [
                MountParam {
                    param: "mount.fstab".into(),
                    line: 3,
                    values: vec![Some("/j/web/fstab".into())]
                },
                MountParam {
                    param: "mount".into(),
                    line: 4,
                    values: vec![Some("tmpfs /j/web/root/var/run tmpfs rw 0 0".into())]
                },
                MountParam { param: "mount".into(), line: 5, values: vec![None] },
            ]
        );
    }

    const SBIN: &str = "/usr/local/sbin";
    const STANDARD: &str = include_str!("../tests/fixtures/jailconf/standard.conf");
    const VNET: &str = include_str!("../tests/fixtures/jailconf/vnet.conf");
    const VNET_ENABLED: &str = include_str!("../tests/fixtures/jailconf/vnet.enabled.conf");
    const ZFS: &str = include_str!("../tests/fixtures/jailconf/zfs.conf");
    const OCI: &str = include_str!("../tests/fixtures/jailconf/oci.conf");
    const TEMPLATE: &str = include_str!("../tests/fixtures/jailconf/template.conf");

    /// (fixture, jail name) for every Bastille-made fixture.
    const FIXTURES: [(&str, &str); 5] =
        [(STANDARD, "web"), (VNET, "db"), (ZFS, "files"), (OCI, "app"), (TEMPLATE, "shop")];

    const START_CREATED: &str =
        r#"  exec.created += "/usr/local/sbin/colibri-vault hook start $name ${path}";"#;
    const START_POSTSTART: &str =
        r#"  exec.poststart += "/usr/local/sbin/colibri-vault hook start $name ${path}";"#;
    const STOP: &str = r#"  exec.poststop += "/usr/local/sbin/colibri-vault hook stop $name ${path}";"#;

    /// `text` with `lines` inserted before its final line, `}` (Bastille's layout).
    fn with_lines_before_close(text: &str, lines: &[&str]) -> String {
        let body = text.strip_suffix("}\n").expect("fixture ends with }");
        let mut out = body.to_owned();
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str("}\n");
        out
    }

    fn enable_ok(text: &str, jail: &str, stage: Stage, stop: bool) -> Edit {
        enable(text, jail, stage, stop, SBIN).expect("enable")
    }

    #[test]
    fn the_block_path_is_read_as_jail8_would_pass_it() {
        assert_eq!(
            inspect(STANDARD, "web").unwrap().path,
            JailPath::Literal("/usr/local/bastille/jails/web/root".into())
        );
        let cases = [
            ("j { path = \"/a b/\\x41\"; }", JailPath::Literal("/a b/A".into())),
            ("j { path = '/x'; path = /y; }", JailPath::Literal("/y".into())),
            ("j { path = /x/\"$name\"; }", JailPath::Computed("path = /x/\"$name\";".into())),
            ("j { path = \"/x/${name}\"; }", JailPath::Computed("path = \"/x/${name}\";".into())),
            ("j { path = /x; path += /y; }", JailPath::Computed("path += /y;".into())),
            ("j { path = /x, /y; }", JailPath::Computed("path = /x, /y;".into())),
            ("j { host.hostname = j; }", JailPath::Unset),
        ];
        for (text, expected) in cases {
            assert_eq!(inspect(text, "j").unwrap().path, expected, "{text}");
        }
    }

    #[test]
    fn fixtures_parse_like_jail8_would() {
        for (text, jail) in FIXTURES {
            let conf = parse(text).expect(jail);
            assert_eq!(conf.blocks.len(), 1, "{jail}");
            assert_eq!(conf.blocks[0].name.as_deref(), Some(jail));
        }
        let conf = parse(VNET).unwrap();
        let prestart = conf.blocks[0]
            .params
            .iter()
            .filter(|p| p.name.as_deref() == Some("exec.prestart") && p.op == Op::Append)
            .count();
        assert_eq!(prestart, 5);
    }

    #[test]
    fn enable_appends_created_line_before_the_closing_brace_of_every_fixture() {
        for (text, jail) in FIXTURES {
            let edit = enable_ok(text, jail, Stage::Created, false);
            assert!(edit.changed, "{jail}");
            assert_eq!(edit.text, with_lines_before_close(text, &[START_CREATED]), "{jail}");
        }
    }

    #[test]
    fn enable_with_stop_on_vnet_matches_the_expected_file() {
        let edit = enable_ok(VNET, "db", Stage::Created, true);
        assert_eq!(edit.text, VNET_ENABLED);
        // Bastille's own poststop line stays, ours comes after it.
        let ours = edit.text.find("hook stop").unwrap();
        let theirs = edit.text.find("ifconfig e0a_db destroy").unwrap();
        assert!(theirs < ours);
    }

    #[test]
    fn enable_poststart_keeps_the_oci_jails_own_poststart() {
        let edit = enable_ok(OCI, "app", Stage::Poststart, true);
        assert_eq!(edit.text, with_lines_before_close(OCI, &[START_POSTSTART, STOP]));
        assert!(edit.text.contains("  exec.poststart = 'daemon -f -o"));
    }

    #[test]
    fn enable_keeps_the_zfs_created_line_and_adds_ours_after_it() {
        let edit = enable_ok(ZFS, "files", Stage::Created, false);
        let zfs = edit.text.find(r#"exec.created += "zfs jail files"#).unwrap();
        let ours = edit.text.find("colibri-vault hook start").unwrap();
        assert!(zfs < ours);
    }

    #[test]
    fn enable_twice_equals_enable_once() {
        for (text, jail) in FIXTURES {
            for stage in [Stage::Created, Stage::Poststart] {
                for stop in [false, true] {
                    let once = enable_ok(text, jail, stage, stop);
                    let twice = enable_ok(&once.text, jail, stage, stop);
                    assert!(!twice.changed, "{jail} {stage} {stop}");
                    assert_eq!(twice.text, once.text, "{jail} {stage} {stop}");
                }
            }
        }
    }

    #[test]
    fn disable_restores_every_fixture_byte_for_byte() {
        for (text, jail) in FIXTURES {
            for stage in [Stage::Created, Stage::Poststart] {
                for stop in [false, true] {
                    let enabled = enable_ok(text, jail, stage, stop);
                    let disabled = disable(&enabled.text, jail).unwrap();
                    assert!(disabled.changed);
                    assert_eq!(disabled.text, text, "{jail} {stage} {stop}");
                }
            }
        }
    }

    #[test]
    fn disable_without_our_lines_changes_nothing() {
        for (text, jail) in FIXTURES {
            let edit = disable(text, jail).unwrap();
            assert!(!edit.changed);
            assert_eq!(edit.text, text);
        }
    }

    #[test]
    fn switching_stage_replaces_our_line() {
        let created = enable_ok(STANDARD, "web", Stage::Created, true);
        let poststart = enable_ok(&created.text, "web", Stage::Poststart, true);
        assert!(poststart.changed);
        assert!(!poststart.text.contains("exec.created"));
        assert_eq!(poststart.text.matches("hook start").count(), 1);
        assert_eq!(poststart.text.matches("hook stop").count(), 1);
        // The stop line was right and stays where it was; the new start line goes last.
        let expected = with_lines_before_close(STANDARD, &[STOP, START_POSTSTART]);
        assert_eq!(poststart.text, expected);
    }

    #[test]
    fn enable_without_stop_removes_a_stale_stop_line() {
        let with = enable_ok(STANDARD, "web", Stage::Created, true);
        let without = enable_ok(&with.text, "web", Stage::Created, false);
        assert_eq!(without.text, with_lines_before_close(STANDARD, &[START_CREATED]));
    }

    #[test]
    fn a_new_sbin_replaces_the_old_line() {
        let old = enable(STANDARD, "web", Stage::Created, false, "/opt/colibri/sbin").unwrap();
        let new = enable_ok(&old.text, "web", Stage::Created, false);
        assert_eq!(new.text, with_lines_before_close(STANDARD, &[START_CREATED]));
        let found = inspect(&old.text, "web").unwrap();
        assert_eq!(found.hooks[0].sbin, "/opt/colibri/sbin");
    }

    #[test]
    fn duplicates_of_our_line_collapse_to_one() {
        let doubled = with_lines_before_close(STANDARD, &[START_CREATED, START_CREATED]);
        let edit = enable_ok(&doubled, "web", Stage::Created, false);
        assert_eq!(edit.text, with_lines_before_close(STANDARD, &[START_CREATED]));
    }

    #[test]
    fn our_line_replaced_by_a_later_plain_assignment_moves_to_the_end() {
        let clobbered = with_lines_before_close(
            STANDARD,
            &[START_CREATED, r#"  exec.created = "/usr/local/bin/other";"#],
        );
        let found = inspect(&clobbered, "web").unwrap();
        assert!(!found.hooks[0].effective);
        let edit = enable_ok(&clobbered, "web", Stage::Created, false);
        let expected = with_lines_before_close(
            STANDARD,
            &[r#"  exec.created = "/usr/local/bin/other";"#, START_CREATED],
        );
        assert_eq!(edit.text, expected);
        assert!(inspect(&edit.text, "web").unwrap().hooks[0].effective);
    }

    #[test]
    fn inspect_reports_our_lines() {
        let edit = enable_ok(VNET, "db", Stage::Poststart, true);
        let found = inspect(&edit.text, "db").unwrap();
        let hooks: Vec<Hook> = found.hooks.iter().map(|h| h.hook).collect();
        assert_eq!(hooks, [Hook::Start(Stage::Poststart), Hook::Stop]);
        assert!(found.hooks.iter().all(|h| h.effective && h.sbin == SBIN));
        assert_eq!(found.hooks[0].line, VNET.lines().count());
        assert!(inspect(VNET, "db").unwrap().hooks.is_empty());
    }

    #[test]
    fn the_bastille_template_line_is_not_ours_but_is_noted() {
        let edit = enable_ok(TEMPLATE, "shop", Stage::Created, false);
        assert_eq!(edit.text, with_lines_before_close(TEMPLATE, &[START_CREATED]));
        assert_eq!(edit.notes.len(), 1, "{:?}", edit.notes);
        assert!(edit.notes[0].contains("exec.poststart = '/usr/local/sbin/colibri-vault"));
        // disable leaves the template's line alone.
        let disabled = disable(&edit.text, "shop").unwrap();
        assert_eq!(disabled.text, TEMPLATE);
        assert!(enable_ok(STANDARD, "web", Stage::Created, false).notes.is_empty());
    }

    #[test]
    fn lines_resembling_ours_are_left_alone() {
        for other in [
            // plain `=`, single quotes, wrong verb for the parameter, extra argument, literal
            // name, relative binary
            r#"  exec.created = "/usr/local/sbin/colibri-vault hook start $name ${path}";"#,
            r"  exec.created += '/usr/local/sbin/colibri-vault hook start $name ${path}';",
            r#"  exec.poststop += "/usr/local/sbin/colibri-vault hook start $name ${path}";"#,
            r#"  exec.created += "/usr/local/sbin/colibri-vault hook start $name ${path} x";"#,
            r#"  exec.created += "/usr/local/sbin/colibri-vault hook start web ${path}";"#,
            r#"  exec.created += "colibri-vault hook start $name ${path}";"#,
            r#"  exec.prestart += "/usr/local/sbin/colibri-vault hook start $name ${path}";"#,
        ] {
            let text = with_lines_before_close(STANDARD, &[other]);
            let edit = disable(&text, "web").unwrap();
            assert!(!edit.changed, "{other}");
            assert_eq!(edit.notes.len(), 1, "{other}");
        }
    }

    #[test]
    fn other_jails_blocks_are_untouched() {
        let text = format!("{STANDARD}\nother {{\n\tpath = /jails/other;\n}}\n");
        let edit = enable_ok(&text, "other", Stage::Created, false);
        let expected = format!(
            "{STANDARD}\nother {{\n\tpath = /jails/other;\n\texec.created += \
             \"/usr/local/sbin/colibri-vault hook start $name ${{path}}\";\n}}\n"
        );
        assert_eq!(edit.text, expected, "indented with the block's tab");
        assert!(edit.text.starts_with(STANDARD));
        let back = disable(&edit.text, "other").unwrap();
        assert_eq!(back.text, text);
    }

    #[test]
    fn one_line_block_gets_our_lines_on_their_own_lines() {
        let text = "web { path = /j/web; persist; }\n";
        let edit = enable_ok(text, "web", Stage::Created, false);
        assert_eq!(
            edit.text,
            "web { path = /j/web; persist; \n  exec.created += \
             \"/usr/local/sbin/colibri-vault hook start $name ${path}\";\n}\n"
        );
        assert!(!enable_ok(&edit.text, "web", Stage::Created, false).changed);
    }

    #[test]
    fn empty_block_and_quoted_name_and_crlf() {
        let edit = enable_ok("\"web\" {\n}\n", "web", Stage::Created, false);
        assert_eq!(edit.text, format!("\"web\" {{\n{START_CREATED}\n}}\n"));
        let crlf = "web {\r\n  path = /j;\r\n}\r\n";
        let edit = enable_ok(crlf, "web", Stage::Created, false);
        assert_eq!(edit.text, format!("web {{\r\n  path = /j;\r\n{START_CREATED}\r\n}}\r\n"));
        assert_eq!(disable(&edit.text, "web").unwrap().text, crlf);
    }

    #[test]
    fn braces_in_comments_strings_and_variables_do_not_count() {
        let text = concat!(
            "# a } in a comment\n",
            "// and { here\n",
            "/* and } { here,\n   over lines */\n",
            "$base = \"/j\";\n",
            "web {\n",
            "  path = \"${base}/web\";\n",
            "  exec.prestart += \"echo '}' \\\"{\\\"\";\n",
            "  exec.start = '/bin/sh -c \\'echo }\\'';\n",
            "  host.hostname = ${name};\n",
            "}\n",
        );
        let edit = enable_ok(text, "web", Stage::Created, false);
        assert_eq!(edit.text, with_lines_before_close(text, &[START_CREATED]));
    }

    #[test]
    fn parameters_without_values_and_lists_parse() {
        let text = "web {\n  persist;\n  ip4.addr = 10.0.0.1, 10.0.0.2;\n  exec.start \"/bin/sh /etc/rc\";\n  ;\n}\n";
        let edit = enable_ok(text, "web", Stage::Created, false);
        assert_eq!(edit.text, with_lines_before_close(text, &[START_CREATED]));
    }

    #[test]
    fn unparsable_files_are_refused_with_the_line() {
        let cases: [(&str, &str); 12] = [
            ("other {\n}\n", "no block for jail \"web\""),
            ("web {\n}\nweb {\n}\n", "2 blocks (lines 1, 3)"),
            ("web {\n  path = /j;\n}\n}\n", "line 4: `}` closes a block"),
            ("web {\n  path = /j;\n", "line 1: the block of jail \"web\""),
            ("web {\n  inner {\n  }\n}\n", "line 2: a block inside a block"),
            ("web {\n  path = /j\n}\n", "line 2: parameter path has no `;`"),
            ("web {\n  path = \"/j;\n}\n", "line 2: unterminated string"),
            ("web {\n  /* path = /j;\n}\n", "line 2: unterminated comment"),
            ("web {\n  path = ${x;\n}\n", "line 2: unterminated variable"),
            ("web {\n  path = \"${x\";\n}\n", "line 2: unterminated variable"),
            ("web {\n  path = /j;\n  é = 1;\n}\n", "line 3: unexpected character 'é'"),
            ("web {\n  = /j;\n}\n", "line 2: unexpected `=`"),
        ];
        for (text, message) in cases {
            for result in [enable(text, "web", Stage::Created, true, SBIN), disable(text, "web")] {
                let err = result.expect_err(text).to_string();
                assert!(err.contains(message), "{text:?}: {err}");
            }
        }
    }

    #[test]
    fn invalid_sbin_is_refused_and_trailing_slash_trimmed() {
        for bad in ["", "/", "usr/local/sbin", "/usr/local/s bin", "/a\"b", "/a$b", "/a\\b"] {
            let err = enable(STANDARD, "web", Stage::Created, false, bad).unwrap_err();
            assert!(matches!(err, JailConfError::InvalidSbin { .. }), "{bad:?}");
        }
        let edit = enable(STANDARD, "web", Stage::Created, false, "/usr/local/sbin/").unwrap();
        assert_eq!(edit.text, with_lines_before_close(STANDARD, &[START_CREATED]));
    }

    #[test]
    fn hook_statement_is_the_documented_line() {
        assert_eq!(hook_statement(Hook::Start(Stage::Created), SBIN).unwrap(), START_CREATED.trim_start());
        assert_eq!(hook_statement(Hook::Stop, SBIN).unwrap(), STOP.trim_start());
    }

    #[test]
    fn stage_names_round_trip() {
        for stage in [Stage::Created, Stage::Poststart] {
            assert_eq!(stage.to_string().parse::<Stage>().unwrap(), stage);
        }
        assert_eq!(Stage::default(), Stage::Created);
        assert!("prestart".parse::<Stage>().is_err());
    }

    #[test]
    fn unescape_follows_jaillex() {
        assert_eq!(unescape(b"a\\x41\\101\\n\\q\\\nb"), b"aAA\nqb");
        let toks = lex(r"'it\'s' w\.x").unwrap();
        assert_eq!(literal(r"'it\'s' w\.x", &toks[0]).as_deref(), Some("it's"));
        assert!(toks[2].glued && toks[3].glued && !toks[1].glued);
    }

    #[test]
    fn jail_conf_path_accepts_plain_names_only() {
        let base = Path::new("/usr/local/bastille/jails");
        assert_eq!(
            jail_conf_path(base, "web-1.a_b").unwrap(),
            Path::new("/usr/local/bastille/jails/web-1.a_b/jail.conf")
        );
        for bad in ["", ".", "..", "a/b", "../x", ".hidden", "-x", "a..b", "a b", "é"] {
            assert!(jail_conf_path(base, bad).is_err(), "{bad:?}");
        }
    }
}
