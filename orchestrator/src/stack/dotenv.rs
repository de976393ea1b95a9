//! The env-file parser: the project's `.env`, `--env-file`, and services' `env_file`.
//!
//! The format is compose-go's `dotenv` package (a fork of godotenv), because users'
//! `.env` files are written for `docker compose`; its quirks are kept where a file that
//! compose accepts would otherwise load differently here:
//!
//! - `KEY=VALUE` and, as compose-go also accepts, the YAML-like `KEY: VALUE`.
//! - A key may hold letters, digits, `_`, `.`, `-`, `[` and `]`. Keys that start with an
//!   ASCII digit are parsed (so their errors are reported) and then dropped, as compose does
//!   when it reads a file.
//! - After a quoted value, the rest of the line is read as the next statement: a `#`
//!   starts a comment, anything else is another `KEY=VALUE` or bare `KEY` (compose-go).
//! - Values are interpolated with [`crate::stack::interpolate`]; a variable resolves from
//!   the lookup environment first, then from keys set earlier in the same file.
//!
//! Deliberate differences, each for a case where compose-go's result is accidental:
//!
//! - `KEY= # comment` is the empty value with a comment (the Compose Specification: an
//!   inline comment is a `#` preceded by a space). compose-go yields `# comment` because it
//!   strips the blanks before looking for ` #`. `KEY=# x` is still the value `# x`.
//! - A bare `KEY` on the last line without a newline is a bare key like any other;
//!   compose-go stores the line as the value of an empty key there.
//! - `=VALUE` (no key) is an error; compose-go silently sets the empty-named variable.
//! - Any blank inside a key (tab, carriage return, ...) is "key cannot contain a space";
//!   compose-go only checks for the space character and would accept a tab.
//! - `export` is a prefix only when a blank follows it on the same line; alone on its line
//!   it is the bare key `export`.
//! - In double quotes, `\0` followed by exactly three octal digits is that byte's character
//!   (as compose-go); any other `\0...` is kept verbatim, where compose-go drops the `0`.
//! - An unterminated quote is reported at the line where the quote opens; compose-go
//!   reports the line where the scan reached the end of the file.

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::stack::interpolate::{self, InterpolateError, Lookup};

/// A file that could not be read or parsed.
///
/// Displayed `PATH:LINE: REASON` (e.g. `.env:7: key cannot contain a space`), or
/// `line LINE: REASON` when the text did not come from a file, like compose's message.
#[derive(Debug, thiserror::Error)]
pub struct DotenvError {
    /// The file, when the text came from one ([`parse_file`]).
    pub path: Option<PathBuf>,
    /// 1-based line of the statement at fault; None when the file could not be read at all.
    pub line: Option<usize>,
    /// What went wrong.
    pub kind: DotenvErrorKind,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => write!(f, "{}:{line}: {}", path.display(), self.kind),
            (Some(path), None) => write!(f, "{}: {}", path.display(), self.kind),
            (None, Some(line)) => write!(f, "line {line}: {}", self.kind),
            (None, None) => write!(f, "{}", self.kind),
        }
    }
}

/// The reason of a [`DotenvError`], without its location.
#[derive(Debug, thiserror::Error)]
pub enum DotenvErrorKind {
    /// A key with a blank inside, usually a line that is not `KEY=VALUE` at all (prose
    /// pasted into the file, a shell command). Worded as compose words it.
    #[error("key cannot contain a space")]
    KeyContainsSpace {
        /// The key as read, blanks included.
        key: String,
    },
    /// A character that cannot be part of a key appeared before `=`.
    #[error(
        "unexpected character \"{}\" in variable name {line_text:?}",
        .character.escape_debug()
    )]
    UnexpectedCharacter {
        /// The offending character.
        character: char,
        /// The statement's line, to show the user what was read.
        line_text: String,
    },
    /// `=VALUE` or `: VALUE` with nothing before the separator.
    #[error("missing variable name before \"{separator}\"")]
    EmptyKey {
        /// `=` or `:`.
        separator: char,
    },
    /// A `'` or `"` value that the file never closes.
    #[error("unterminated quoted value {text}")]
    UnterminatedQuote {
        /// The value from its opening quote to the end of that line.
        text: String,
    },
    /// Interpolating the value failed (a `${VAR:?msg}` with VAR missing, bad syntax).
    #[error("in the value of {key}: {error}")]
    Interpolation {
        /// The key whose value failed.
        key: String,
        /// The interpolation error.
        error: InterpolateError,
    },
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(std::io::Error),
    /// The file is not UTF-8; the line is the one holding the first invalid byte.
    #[error("the file is not valid UTF-8")]
    InvalidUtf8,
}

/// Parses env-file text that did not come from a file (errors then carry no path).
///
/// A leading UTF-8 BOM is skipped: Windows editors add one, and it would otherwise become
/// part of the first key.
///
/// # Errors
///
/// The first statement that cannot be parsed or interpolated, with its line.
pub fn parse(text: &str, lookup: Lookup) -> Result<IndexMap<String, String>, DotenvError> {
    parse_text(text, lookup).map_err(|(line, kind)| DotenvError {
        path: None,
        line: Some(line),
        kind,
    })
}

/// Reads and parses an env file; every error names `path`, so the user knows which of the
/// project's `.env`, `--env-file` and `env_file` entries is at fault.
///
/// # Errors
///
/// As [`parse`], plus [`DotenvErrorKind::Io`] when the file cannot be read and
/// [`DotenvErrorKind::InvalidUtf8`] when it is not text.
pub fn parse_file(path: &Path, lookup: Lookup) -> Result<IndexMap<String, String>, DotenvError> {
    let error = |line, kind| DotenvError {
        path: Some(path.to_owned()),
        line,
        kind,
    };
    let bytes = std::fs::read(path).map_err(|e| error(None, DotenvErrorKind::Io(e)))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + count_newlines(&bytes[..e.valid_up_to()]);
        error(Some(line), DotenvErrorKind::InvalidUtf8)
    })?;
    parse_text(text, lookup).map_err(|(line, kind)| error(Some(line), kind))
}

type Failure = (usize, DotenvErrorKind);

fn parse_text(text: &str, lookup: Lookup) -> Result<IndexMap<String, String>, Failure> {
    let src = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut out = IndexMap::new();
    let mut lines = LineCounter::default();
    let mut pos = 0;
    loop {
        pos = skip_while(src, pos, char::is_whitespace);
        if pos >= src.len() {
            break;
        }
        if src.as_bytes()[pos] == b'#' {
            pos = line_end(src, pos);
            continue;
        }
        let line = lines.line_at(src, pos);
        let fail = |kind| (line, kind);

        let statement = scan_key(src, pos).map_err(fail)?;
        let key = src[statement.key_start..statement.key_end].trim_end();
        if key.contains(is_blank) {
            return Err(fail(DotenvErrorKind::KeyContainsSpace {
                key: key.to_owned(),
            }));
        }
        // compose ignores keys starting with a digit (they cannot be environment names).
        let ignored = key.starts_with(|c: char| c.is_ascii_digit());

        match statement.separator {
            None => {
                pos = statement.next;
                if key.is_empty() || ignored {
                    continue;
                }
                if let Some(value) = lookup(key) {
                    out.insert(key.to_owned(), value);
                }
            }
            Some(separator) => {
                if key.is_empty() {
                    return Err(fail(DotenvErrorKind::EmptyKey { separator }));
                }
                let (value, next) =
                    parse_value(src, statement.next, key, &out, lookup).map_err(fail)?;
                pos = next;
                if !ignored {
                    out.insert(key.to_owned(), value);
                }
            }
        }
    }
    Ok(out)
}

/// Where a statement's key lies, and what follows it.
struct Statement {
    key_start: usize,
    key_end: usize,
    /// `=` or `:` for `KEY=VALUE`; None for a bare `KEY` (value taken from the lookup).
    separator: Option<char>,
    /// Just past the separator, or the start of the next line for a bare key.
    next: usize,
}

/// Reads the key starting at `start` (not blank, not a comment).
fn scan_key(src: &str, start: usize) -> Result<Statement, DotenvErrorKind> {
    let mut key_start = start;
    if let Some(rest) = src[start..].strip_prefix("export") {
        if rest.starts_with(is_blank) {
            key_start = skip_while(src, start + "export".len(), is_blank);
        }
    }
    for (offset, c) in src[key_start..].char_indices() {
        let at = key_start + offset;
        match c {
            '=' | ':' => {
                return Ok(Statement {
                    key_start,
                    key_end: at,
                    separator: Some(c),
                    next: at + 1,
                })
            }
            '\n' => {
                return Ok(Statement {
                    key_start,
                    key_end: at,
                    separator: None,
                    next: at + 1,
                })
            }
            c if is_blank(c) || is_key_char(c) => {}
            c => {
                return Err(DotenvErrorKind::UnexpectedCharacter {
                    character: c,
                    line_text: src[start..line_end(src, start)].to_owned(),
                })
            }
        }
    }
    Ok(Statement {
        key_start,
        key_end: src.len(),
        separator: None,
        next: src.len(),
    })
}

/// Parses the value starting just after the separator; returns it and where the next
/// statement may start.
fn parse_value(
    src: &str,
    after_separator: usize,
    key: &str,
    earlier: &IndexMap<String, String>,
    lookup: Lookup,
) -> Result<(String, usize), DotenvErrorKind> {
    let expand = |raw: &str| {
        let resolve = |name: &str| lookup(name).or_else(|| earlier.get(name).cloned());
        interpolate::interpolate(raw, &resolve).map_err(|error| DotenvErrorKind::Interpolation {
            key: key.to_owned(),
            error,
        })
    };

    let start = skip_while(src, after_separator, is_blank);
    let quote = match src.as_bytes().get(start) {
        Some(&q @ (b'"' | b'\'')) => char::from(q),
        _ => {
            let end = line_end(src, after_separator);
            let mut raw = &src[after_separator..end];
            if let Some(comment) = raw.find(" #") {
                raw = &raw[..comment];
            }
            let raw = raw.trim_start_matches(is_blank).trim_end();
            return Ok((expand(raw)?, end));
        }
    };

    // A backslash escapes the quote character (and is dropped); before anything else it
    // is kept, for the double-quote escapes below (or as is, in single quotes).
    let mut raw = String::new();
    let mut escaped = false;
    for (offset, c) in src[start + 1..].char_indices() {
        if escaped {
            escaped = false;
            if c != quote {
                raw.push('\\');
            }
            raw.push(c);
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            let next = start + 1 + offset + 1;
            let value = if quote == '"' {
                expand(&expand_escapes(&raw))?
            } else {
                raw
            };
            return Ok((value, next));
        } else {
            raw.push(c);
        }
    }
    Err(DotenvErrorKind::UnterminatedQuote {
        text: src[start..line_end(src, start)].to_owned(),
    })
}

/// Expands the escapes compose-go supports in double quotes. `\$` becomes `$$` so that
/// interpolation, which runs next, yields a literal `$`. Unknown escapes stay as written.
fn expand_escapes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let after = &rest[backslash + 1..];
        let Some(c) = after.chars().next() else {
            out.push('\\');
            rest = after;
            break;
        };
        let replacement = match c {
            'a' => Some("\x07"),
            'b' => Some("\x08"),
            'f' => Some("\x0C"),
            'n' => Some("\n"),
            'r' => Some("\r"),
            't' => Some("\t"),
            'v' => Some("\x0B"),
            '\\' => Some("\\"),
            '"' => Some("\""),
            '$' => Some("$$"),
            _ => None,
        };
        if let Some(replacement) = replacement {
            out.push_str(replacement);
            rest = &after[1..];
            continue;
        }
        if c == '0' {
            let digits = &after[1..];
            let len = digits
                .bytes()
                .take(3)
                .take_while(u8::is_ascii_digit)
                .count();
            if len == 3 {
                if let Ok(byte) = u8::from_str_radix(&digits[..3], 8) {
                    out.push(char::from(byte));
                    rest = &digits[3..];
                    continue;
                }
            }
        }
        // Not an escape: keep the backslash; the character is copied as ordinary text.
        out.push('\\');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Blanks that may surround keys and values: whitespace except the line break (the same
/// set as compose-go's `isSpace`).
fn is_blank(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    )
}

fn is_key_char(c: char) -> bool {
    matches!(c, '_' | '.' | '-' | '[' | ']') || c.is_alphabetic() || c.is_numeric()
}

fn skip_while(src: &str, from: usize, skip: fn(char) -> bool) -> usize {
    src[from..]
        .char_indices()
        .find(|&(_, c)| !skip(c))
        .map_or(src.len(), |(offset, _)| from + offset)
}

/// Index of the `\n` ending the line that holds `from`, or the end of the text.
fn line_end(src: &str, from: usize) -> usize {
    src[from..].find('\n').map_or(src.len(), |n| from + n)
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Turns byte offsets into line numbers; statements only move forward, so it counts each
/// byte once.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, src: &str, pos: usize) -> usize {
        self.newlines += count_newlines(&src.as_bytes()[self.pos..pos]);
        self.pos = pos;
        self.newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFORMANCE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/dotenv/compose-go"
    );

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn fixture(rel: &str) -> PathBuf {
        Path::new(CONFORMANCE).join(rel)
    }

    fn load(rel: &str, env: &[(&str, &str)]) -> IndexMap<String, String> {
        let path = fixture(rel);
        parse_file(&path, &env_of(env)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parsed(text: &str) -> IndexMap<String, String> {
        parse(text, &|_| None).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn pairs(map: &IndexMap<String, String>) -> Vec<(&str, &str)> {
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn assert_contains(map: &IndexMap<String, String>, expected: &[(&str, &str)]) {
        for (key, value) in expected {
            assert_eq!(
                map.get(*key).map(String::as_str),
                Some(*value),
                "key {key} in {map:?}"
            );
        }
    }

    // --- EXPECTED.md, first table: one test per row ---

    #[test]
    fn expected_plain() {
        let map = load("dotenv/fixtures/plain.env", &[]);
        assert_eq!(
            pairs(&map),
            [
                ("OPTION_A", "1"),
                ("OPTION_B", "2"),
                ("OPTION_C", "3"),
                ("OPTION_D", "4"),
                ("OPTION_E", "5"),
                ("OPTION_F", ""),
                ("OPTION_G", ""),
                ("OPTION_H", "my string"),
            ]
        );
    }

    #[test]
    fn expected_exported() {
        let map = load("dotenv/fixtures/exported.env", &[]);
        assert_eq!(pairs(&map), [("OPTION_A", "2"), ("OPTION_B", "\\n")]);
    }

    #[test]
    fn expected_equals() {
        let map = load("dotenv/fixtures/equals.env", &[]);
        assert_eq!(
            pairs(&map),
            [(
                "OPTION_A",
                "postgres://localhost:5432/database?sslmode=disable"
            )]
        );
    }

    #[test]
    fn expected_quoted() {
        let map = load("dotenv/fixtures/quoted.env", &[]);
        assert_eq!(
            pairs(&map),
            [
                ("OPTION_A", "1"),
                ("OPTION_B", "2"),
                ("OPTION_C", ""),
                ("OPTION_D", "\\n"),
                ("OPTION_E", "1"),
                ("OPTION_F", "2"),
                ("OPTION_G", ""),
                ("OPTION_H", "\n"),
                ("OPTION_I", "echo 'asd'"),
                ("OPTION_J", "first line\nsecond line\nthird line\nand so on"),
                ("OPTION_K", "Let's go!"),
                ("OPTION_Z", "last value"),
            ]
        );
    }

    #[test]
    fn expected_unquoted() {
        let map = load("dotenv/fixtures/unquoted.env", &[]);
        assert_eq!(
            pairs(&map),
            [
                ("OPTION_A", "some quoted phrase"),
                ("OPTION_B", "first one with an unquoted phrase"),
                ("OPTION_C", "then another one with an unquoted phrase"),
                (
                    "OPTION_D",
                    "then another one with an unquoted phrase special è char"
                ),
                ("OPTION_E", "then another one quoted phrase"),
            ]
        );
    }

    #[test]
    fn expected_substitutions_without_lookup() {
        let map = load("dotenv/fixtures/substitutions.env", &[]);
        assert_eq!(
            pairs(&map),
            [
                ("OPTION_A", "1"),
                ("OPTION_B", "1"),
                ("OPTION_C", "1"),
                ("OPTION_D", "1_1"),
                ("OPTION_E", ""),
            ]
        );
    }

    #[test]
    fn expected_substitutions_lookup_wins() {
        let map = load("dotenv/fixtures/substitutions.env", &[("OPTION_A", "5")]);
        assert_eq!(
            pairs(&map),
            [
                ("OPTION_A", "1"),
                ("OPTION_B", "5"),
                ("OPTION_C", "5"),
                ("OPTION_D", "5_5"),
                ("OPTION_E", ""),
            ]
        );
    }

    #[test]
    fn expected_substitutions_default_without_lookup() {
        let map = load("dotenv/fixtures/substitutions-default.env", &[]);
        assert_eq!(
            pairs(&map),
            [
                ("OPTION_A", "1"),
                ("OPTION_B", "1"),
                ("OPTION_C", "1"),
                ("OPTION_D", "1_1"),
                ("OPTION_E", ""),
            ]
        );
    }

    #[test]
    fn expected_substitutions_default_lookup_wins() {
        let map = load(
            "dotenv/fixtures/substitutions-default.env",
            &[("OPTION_A", "5")],
        );
        assert_eq!(
            pairs(&map),
            [
                ("OPTION_A", "5"),
                ("OPTION_B", "5"),
                ("OPTION_C", "5"),
                ("OPTION_D", "5_5"),
                ("OPTION_E", ""),
            ]
        );
    }

    #[test]
    fn expected_utf8_bom() {
        let map = load("dotenv/fixtures/utf8-bom.env", &[]);
        assert_contains(
            &map,
            &[
                ("OPTION_A", "1"),
                ("OPTION_B", "2"),
                ("OPTION_C", "3"),
                ("OPTION_D", "4"),
                ("OPTION_E", "5"),
            ],
        );
        assert!(map.keys().all(|k| !k.contains('\u{FEFF}')), "{map:?}");
    }

    #[test]
    fn expected_special_keys() {
        let map = load("dotenv/fixtures/special.env", &[]);
        assert_eq!(
            pairs(&map),
            [
                ("VAR.WITH.DOTS", "dots"),
                ("VAR_WITH_UNDERSCORES", "underscores"),
                ("VAR-WITH-DASHES", "dashes"),
            ]
        );
    }

    #[test]
    fn expected_inherited_multi_var() {
        let map = load(
            "dotenv/fixtures/inherited-multi-var.env",
            &[("VAR_TO_BE_LOADED_FROM_OS_ENV", "SOME_RANDOM_VALUE")],
        );
        assert_eq!(map.len(), 3, "{map:?}");
        assert_contains(
            &map,
            &[
                ("VAR_TO_BE_LOADED_FROM_OS_ENV", "SOME_RANDOM_VALUE"),
                ("foo", "bar"),
                ("bar", "baz"),
            ],
        );
    }

    #[test]
    fn expected_inherited_single_var() {
        let map = load(
            "dotenv/fixtures/inherited-single-var.env",
            &[("VAR_TO_BE_LOADED_FROM_OS_ENV", "SOME_RANDOM_VALUE")],
        );
        assert_eq!(
            pairs(&map),
            [("VAR_TO_BE_LOADED_FROM_OS_ENV", "SOME_RANDOM_VALUE")]
        );
    }

    #[test]
    fn expected_inherited_not_found() {
        let map = load("dotenv/fixtures/inherited-not-found.env", &[]);
        assert!(!map.contains_key("VARIABLE_NOT_FOUND"));
        assert!(map.is_empty(), "{map:?}");
    }

    #[test]
    fn expected_invalid1_key_with_space_at_line_7() {
        let path = fixture("dotenv/fixtures/invalid1.env");
        let text = std::fs::read_to_string(&path).unwrap();
        let e = parse(&text, &|_| None).unwrap_err();
        assert_eq!(e.to_string(), "line 7: key cannot contain a space");
        assert_eq!(e.line, Some(7));
        assert!(
            matches!(e.kind, DotenvErrorKind::KeyContainsSpace { ref key } if key == "INVALID LINE")
        );

        let e = parse_file(&path, &|_| None).unwrap_err();
        assert_eq!(e.path.as_deref(), Some(path.as_path()));
        assert_eq!(
            e.to_string(),
            format!("{}:7: key cannot contain a space", path.display())
        );
    }

    // --- types/fixtures: interpolation precedence inside env files ---

    #[test]
    fn types_base_env_project_then_service_environment_then_file() {
        // The loader's lookup for a service's env_file: the project environment, then the
        // service's `environment`.
        let project = [("FOO", "FOO_from_os.env"), ("QIX", "QIX_from_os.env")];
        let service = [
            ("FOO", "foo_from_environment"),
            ("BAR", "bar_from_environment"),
        ];
        let lookup = |name: &str| env_of(&project)(name).or_else(|| env_of(&service)(name));
        let map = parse_file(&fixture("types/fixtures/base.env"), &lookup).unwrap();
        assert_eq!(
            pairs(&map),
            [
                ("FOO", "foo_from_base.env"),
                ("INTERPOLATED_FOO", "FOO_from_os.env"),
                ("BAR", "bar_from_base.env"),
                ("INTERPOLATED_BAR", "bar_from_environment"),
                ("ZOT", "zot_from_base.env"),
                ("INTERPOLATED_ZOT", "zot_from_base.env"),
            ]
        );
    }

    // --- syntax ---

    #[test]
    fn comments_blank_lines_and_crlf() {
        let map = parsed("\n# c\n  # indented\r\n\r\nA=1\r\nB = 2 \r\n\tC=3\n#D=4\n");
        assert_eq!(pairs(&map), [("A", "1"), ("B", "2"), ("C", "3")]);
    }

    #[test]
    fn inline_comments_need_a_preceding_space() {
        let map =
            parsed("A=VAL # comment\nB=VAL# not a comment\nC= # only a comment\nD=#x\nE=a\t#tab\n");
        assert_eq!(
            pairs(&map),
            [
                ("A", "VAL"),
                ("B", "VAL# not a comment"),
                ("C", ""),
                ("D", "#x"),
                ("E", "a\t#tab"),
            ]
        );
    }

    #[test]
    fn export_prefix() {
        let map = parsed("export A=1\nexport\tB=2\nexport=3\nexportC=4\nexport  D\n");
        assert_eq!(
            pairs(&map),
            [("A", "1"), ("B", "2"), ("export", "3"), ("exportC", "4")]
        );
        let looked_up = parse("export D\nexport\n", &|n| Some(format!("<{n}>"))).unwrap();
        assert_eq!(pairs(&looked_up), [("D", "<D>"), ("export", "<export>")]);
    }

    #[test]
    fn colon_separator_like_compose_go() {
        let map = parsed("A: 1\nB:2\nURL: http://x:80\n");
        assert_eq!(
            pairs(&map),
            [("A", "1"), ("B", "2"), ("URL", "http://x:80")]
        );
    }

    #[test]
    fn key_characters() {
        let map = parsed("a.b-c_d[0]=1\nÉTÉ=summer\nK9=9\n");
        assert_eq!(
            pairs(&map),
            [("a.b-c_d[0]", "1"), ("ÉTÉ", "summer"), ("K9", "9")]
        );
    }

    #[test]
    fn keys_starting_with_a_digit_are_dropped() {
        let map = parsed("1A=x\n 2=y\nB=b\n3 = 'multi\nline'\nC=c\n");
        assert_eq!(pairs(&map), [("B", "b"), ("C", "c")]);
        let bare = parse("9LIVES\n", &|_| Some("cat".into())).unwrap();
        assert!(bare.is_empty());
    }

    #[test]
    fn later_assignment_wins_in_place() {
        let map = parsed("A=1\nB=2\nA=3\n");
        assert_eq!(pairs(&map), [("A", "3"), ("B", "2")]);
    }

    #[test]
    fn bare_keys_take_the_lookup_only() {
        let lookup = |n: &str| (n == "SET").then(|| "from-env".to_owned());
        let map = parse("A=1\nSET\nA\nUNSET\nLAST_NO_NEWLINE", &lookup).unwrap();
        assert_eq!(pairs(&map), [("A", "1"), ("SET", "from-env")]);
        let map = parse("SET", &lookup).unwrap();
        assert_eq!(pairs(&map), [("SET", "from-env")]);
    }

    #[test]
    fn value_edge_cases() {
        let map = parsed("A=\nB=   \nC=a=b=c\nD=  spaced  value  \nE='  kept  '\nF=\"\"");
        assert_eq!(
            pairs(&map),
            [
                ("A", ""),
                ("B", ""),
                ("C", "a=b=c"),
                ("D", "spaced  value"),
                ("E", "  kept  "),
                ("F", ""),
            ]
        );
    }

    #[test]
    fn single_quotes_are_literal() {
        let map = parsed(
            "A='$OTHER'\nB='${OTHER}'\nC='some\\tvalue'\nD='Let\\'s go!'\nE='a \"b\" # c'\nF='\\\\'\n",
        );
        assert_eq!(
            pairs(&map),
            [
                ("A", "$OTHER"),
                ("B", "${OTHER}"),
                ("C", "some\\tvalue"),
                ("D", "Let's go!"),
                ("E", "a \"b\" # c"),
                ("F", "\\\\"),
            ]
        );
    }

    #[test]
    fn double_quote_escapes() {
        let map = parsed(concat!(
            r#"A="some\tvalue""#,
            "\n",
            r#"B="{\"hello\": \"json\"}""#,
            "\n",
            r#"C="\a\b\f\n\r\t\v\\""#,
            "\n",
            r#"D="\$HOME and $$HOME""#,
            "\n",
            r#"E="\0101\0060 \0 \01 \0999 \0777""#,
            "\n",
            r#"F="\c \x41 \u0041 \' \é""#,
            "\n",
            r#"G="end\\""#,
            "\n",
        ));
        assert_eq!(
            pairs(&map),
            [
                ("A", "some\tvalue"),
                ("B", r#"{"hello": "json"}"#),
                ("C", "\x07\x08\x0C\n\r\t\x0B\\"),
                ("D", "$HOME and $HOME"),
                ("E", "A0 \\0 \\01 \\0999 \\0777"),
                ("F", r"\c \x41 \u0041 \' \é"),
                ("G", "end\\"),
            ]
        );
    }

    #[test]
    fn unquoted_values_have_no_escapes() {
        let map = parsed("A=some\\tvalue\nB=\\$X\n");
        assert_eq!(pairs(&map), [("A", "some\\tvalue"), ("B", "\\")]);
    }

    #[test]
    fn multi_line_double_quotes_are_interpolated() {
        let lookup = |n: &str| (n == "WHO").then(|| "world".to_owned());
        let map = parse("A=\"hello\n  ${WHO}\n\"\nB=after\n", &lookup).unwrap();
        assert_eq!(pairs(&map), [("A", "hello\n  world\n"), ("B", "after")]);
    }

    #[test]
    fn interpolation_uses_lookup_then_earlier_keys() {
        let lookup = |n: &str| (n == "A").then(|| "env".to_owned());
        let map = parse(
            "A=file\nB=file-b\nX=$A ${B} ${C:-none} ${B:+has-b}\nC=late\nY=\"$C\"\nZ='$C'\n",
            &lookup,
        )
        .unwrap();
        assert_contains(
            &map,
            &[
                ("A", "file"),
                ("X", "env file-b none has-b"),
                ("Y", "late"),
                ("Z", "$C"),
            ],
        );
    }

    #[test]
    fn rest_of_line_after_closing_quote_is_a_new_statement() {
        let lookup = |n: &str| (n == "junk").then(|| "J".to_owned());
        let map = parse("A=\"x\" # comment\nB='y' C=z\nD=\"w\" junk\n", &lookup).unwrap();
        assert_eq!(
            pairs(&map),
            [
                ("A", "x"),
                ("B", "y"),
                ("C", "z"),
                ("D", "w"),
                ("junk", "J")
            ]
        );
    }

    #[test]
    fn bom_only_at_start() {
        let map = parsed("\u{FEFF}A=1\nB=\u{FEFF}\n");
        assert_eq!(pairs(&map), [("A", "1"), ("B", "\u{FEFF}")]);
        let e = parse("A=1\n\u{FEFF}B=2\n", &|_| None).unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn empty_and_blank_texts() {
        assert!(parsed("").is_empty());
        assert!(parsed("\u{FEFF}").is_empty());
        assert!(parsed(" \n\t\n# only comments").is_empty());
    }

    // --- errors: exact text and line ---

    fn failure(text: &str) -> DotenvError {
        match parse(text, &|n| (n == "SET").then(String::new)) {
            Ok(map) => panic!("{text:?} should fail, gave {map:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn error_key_with_space() {
        let e = failure("A=1\n\nMY KEY=2\n");
        assert_eq!(e.to_string(), "line 3: key cannot contain a space");
        assert_eq!(
            failure("A\tB=1").to_string(),
            "line 1: key cannot contain a space"
        );
        assert_eq!(
            failure("# c\nthis is prose\n").to_string(),
            "line 2: key cannot contain a space"
        );
    }

    #[test]
    fn error_unexpected_character() {
        let e = failure("A=1\nFOO/BAR=1\n");
        assert_eq!(
            e.to_string(),
            r#"line 2: unexpected character "/" in variable name "FOO/BAR=1""#
        );
        assert!(matches!(
            e.kind,
            DotenvErrorKind::UnexpectedCharacter { character: '/', .. }
        ));
        assert_eq!(
            failure("$X=1").to_string(),
            r#"line 1: unexpected character "$" in variable name "$X=1""#
        );
        assert_eq!(
            failure("A\"B=1").to_string(),
            r#"line 1: unexpected character "\"" in variable name "A\"B=1""#
        );
    }

    #[test]
    fn error_empty_key() {
        assert_eq!(
            failure("A=1\n=2\n").to_string(),
            r#"line 2: missing variable name before "=""#
        );
        assert_eq!(
            failure(": x").to_string(),
            r#"line 1: missing variable name before ":""#
        );
    }

    #[test]
    fn error_unterminated_quote_at_its_opening_line() {
        assert_eq!(
            failure("A=1\nB=\"abc\nC=2\nD=3\n").to_string(),
            r#"line 2: unterminated quoted value "abc"#
        );
        assert_eq!(
            failure("A='it\\'s").to_string(),
            r"line 1: unterminated quoted value 'it\'s"
        );
        assert_eq!(
            failure("A=\"ends with escape\\\"").to_string(),
            r#"line 1: unterminated quoted value "ends with escape\""#
        );
    }

    #[test]
    fn error_interpolation_carries_key_and_line() {
        let e = failure("A=1\nB=\"x\ny\"\nC=${UNSET:?C needs it}\n");
        assert_eq!(
            e.to_string(),
            "line 4: in the value of C: required variable UNSET is missing a value: C needs it"
        );
        assert!(matches!(
            e.kind,
            DotenvErrorKind::Interpolation { ref key, error: InterpolateError::MissingRequired { .. } } if key == "C"
        ));
        assert_eq!(
            failure("A=\"${}\"").to_string(),
            "line 1: in the value of A: invalid interpolation format for \"${}\": \
             empty variable name in \"${}\"; you may need to escape any $ with another $"
        );
        // Set but empty satisfies `?` and not `:?`.
        assert_eq!(
            parse("A=${SET?x}", &|n| (n == "SET").then(String::new)).unwrap()["A"],
            ""
        );
        assert_eq!(failure("A=${SET:?}").line, Some(1));
        // Single quotes are not interpolated, so no error.
        assert_eq!(parsed("A='${}'")["A"], "${}");
    }

    #[test]
    fn parse_file_errors_name_the_path() {
        let missing = Path::new(CONFORMANCE).join("no-such-file.env");
        let e = parse_file(&missing, &|_| None).unwrap_err();
        assert_eq!(e.path.as_deref(), Some(missing.as_path()));
        assert_eq!(e.line, None);
        assert!(matches!(e.kind, DotenvErrorKind::Io(_)));
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}: cannot read the file: ", missing.display())),
            "{shown}"
        );
    }

    #[test]
    fn error_display_forms() {
        let kind = || DotenvErrorKind::KeyContainsSpace { key: "A B".into() };
        let at = |path: Option<&str>, line| DotenvError {
            path: path.map(PathBuf::from),
            line,
            kind: kind(),
        };
        assert_eq!(
            at(Some(".env"), Some(7)).to_string(),
            ".env:7: key cannot contain a space"
        );
        assert_eq!(
            at(Some(".env"), None).to_string(),
            ".env: key cannot contain a space"
        );
        assert_eq!(
            at(None, Some(7)).to_string(),
            "line 7: key cannot contain a space"
        );
        assert_eq!(at(None, None).to_string(), "key cannot contain a space");
        assert_eq!(
            DotenvErrorKind::InvalidUtf8.to_string(),
            "the file is not valid UTF-8"
        );
    }

    /// xorshift64*, so the fuzz test needs no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn random_input_never_panics() {
        const ALPHABET: [char; 20] = [
            'A', 'b', '_', '1', '=', ':', ' ', '\t', '\n', '\r', '#', '\'', '"', '\\', '$', '{',
            '}', '-', 'é', '\u{FEFF}',
        ];
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let lookup = |name: &str| (name.len() % 2 == 0).then(|| format!("<{name}>"));
        for _ in 0..5000 {
            let len = (rng.next() % 60) as usize;
            let text: String = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if r % 8 == 0 {
                        char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('\u{FFFD}')
                    } else {
                        ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                    }
                })
                .collect();
            if let Err(e) = parse(&text, &lookup) {
                let line = e.line.expect("parse errors carry a line");
                let lines = text.lines().count().max(1);
                assert!((1..=lines).contains(&line), "{text:?}: {e}");
            }
        }
    }
}
