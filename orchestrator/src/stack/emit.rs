//! YAML output for `berth config`: the resolved stack, printed the way `docker compose
//! config` prints it.
//!
//! The output is meant to be read by people and fed back to `berth` or to other Compose
//! tools, so the one hard rule is that every YAML reader gets the same value back:
//! scalars are written plain only when no YAML 1.1 or 1.2 reader could take them for
//! anything else (a boolean, a null, a number, a timestamp, a structure), and everything
//! else is double-quoted. Keys follow the same rules as values. Block style throughout;
//! the only flow collections are the empty ones, which block style cannot express.

use serde_json::{Map, Number, Value};

/// Spaces per nesting level, and the offset of a sequence under its key (`docker compose
/// config` indents sequences under a key too).
const INDENT: usize = 2;

/// YAML caps implicit keys at 1024 characters (readers stop looking for the `:` after
/// that). Longer keys are written as explicit `? key` entries; the margin covers the
/// indentation and the `:` that some readers count too.
const MAX_IMPLICIT_KEY: usize = 1000;

/// The value as a YAML document in block style, keys in the value's order, ending with a
/// newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0, false),
        Value::Array(seq) if !seq.is_empty() => write_seq(&mut out, seq, 0, false),
        // Block scalars at the top level are indented anyway, so that a content line can
        // never be read as a `---` or `...` document marker.
        scalar => write_scalar(&mut out, scalar, INDENT),
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A block mapping at `indent`. `continued`: the first key goes on the current line,
/// right after a sequence's `- `, which is how sequences of maps read naturally.
fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize, continued: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !continued {
            pad(out, indent);
        }
        let key = key_text(key);
        if key.chars().count() > MAX_IMPLICIT_KEY {
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            pad(out, indent);
        } else {
            out.push_str(&key);
        }
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, indent + INDENT, false);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, indent + INDENT, false);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar, indent + INDENT);
            }
        }
    }
}

/// A block sequence at `indent`; `continued` as for [`write_map`] (a sequence directly in
/// a sequence: `- - a`).
fn write_seq(out: &mut String, seq: &[Value], indent: usize, continued: bool) {
    for (i, item) in seq.iter().enumerate() {
        if i > 0 || !continued {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(inner) if !inner.is_empty() => {
                write_map(out, inner, indent + INDENT, true);
            }
            Value::Array(inner) if !inner.is_empty() => {
                write_seq(out, inner, indent + INDENT, true);
            }
            scalar => write_scalar(out, scalar, indent + INDENT),
        }
    }
}

/// A scalar (or empty collection) after `key: ` or `- `, with its line break. `indent`:
/// where the lines of a block scalar go.
fn write_scalar(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_text(n)),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) if literal_block_fits(s) => {
            write_literal_block(out, s, indent);
            return;
        }
        Value::String(s) if is_plain_safe(s) => out.push_str(s),
        Value::String(s) => push_double_quoted(out, s),
    }
    out.push('\n');
}

/// Floats always with a `.` and a signed exponent: YAML 1.1 readers take `1e300` for a
/// string, `1.0e+300` is a float everywhere.
fn number_text(n: &Number) -> String {
    let text = n.to_string();
    if !n.is_f64() {
        return text;
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (&text[..], None),
    };
    let mut fixed = mantissa.to_owned();
    if !fixed.contains('.') {
        fixed.push_str(".0");
    }
    if let Some(exponent) = exponent {
        fixed.push('e');
        if !exponent.starts_with(['-', '+']) {
            fixed.push('+');
        }
        fixed.push_str(exponent);
    }
    fixed
}

fn key_text(key: &str) -> String {
    if is_plain_safe(key) {
        key.to_owned()
    } else {
        let mut quoted = String::with_capacity(key.len() + 2);
        push_double_quoted(&mut quoted, key);
        quoted
    }
}

/// Printable in the sense of YAML's `c-printable`, minus what readers handle
/// inconsistently: the tab, the YAML 1.1 line breaks (NEL, LS, PS) and the byte order
/// mark. Such strings go double-quoted, where each of them can be spelled as an escape.
fn is_safe_char(c: char) -> bool {
    matches!(c,
        ' '..='~'
        | '\u{A0}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

/// A literal block (`|`) keeps multi-line text (scripts, certificates) readable, but it
/// can carry the string exactly only when: every line is safe text, no line ends in a
/// space (invisible, and some tools strip it), the first line with content does not start
/// with a space (it would be taken as indentation) and there is a line with content at
/// all (a block of only line breaks is read back empty).
fn literal_block_fits(s: &str) -> bool {
    s.contains('\n')
        && s.chars().all(|c| c == '\n' || is_safe_char(c))
        && !s.split('\n').any(|line| line.ends_with(' '))
        && s.split('\n')
            .find(|line| !line.is_empty())
            .is_some_and(|line| !line.starts_with(' '))
}

/// Chomping follows the trailing line breaks: none `|-`, one `|`, more `|+`. Empty lines
/// are written without indentation so no line ends in spaces.
fn write_literal_block(out: &mut String, s: &str, indent: usize) {
    let body = s.trim_end_matches('\n');
    let chomping = match s.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    out.push('|');
    out.push_str(chomping);
    out.push('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    // Keep chomping: the final line break is already there, the others become empty
    // lines.
    for _ in 1..s.len() - body.len() {
        out.push('\n');
    }
}

/// JSON-style escapes (which YAML's double-quoted style shares) for the characters that
/// need them; everything else, including non-ASCII text, as is.
fn push_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{C}' => out.push_str("\\f"),
            c if is_safe_char(c) => out.push(c),
            c => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
        }
    }
    out.push('"');
}

/// Whether `s` can be written as a plain scalar and be read back as this same string, by
/// YAML 1.2 (core schema) and YAML 1.1 readers alike, as a value or as a key, in block
/// context.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false; // empty: null
    };
    if !s.chars().all(is_safe_char) {
        return false; // line breaks, tabs, control characters: escapes needed
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return false; // plain scalars are trimmed
    }
    let second = s[first.len_utf8()..].chars().next();
    match first {
        // `-`, `?` and `:` start a plain scalar only when not followed by a space
        // (`-c`, `--flag`, `:80` are fine; `- x` is a sequence entry).
        '-' | '?' | ':' if second.is_none_or(|c| c == ' ') => return false,
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => return false,
        _ => {}
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false; // a key, a comment
    }
    // Document markers at the start of a line.
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    !(is_reserved_word(s) || looks_numeric(s) || looks_like_timestamp(s))
}

/// Null and boolean spellings of YAML 1.2 and YAML 1.1 (`yes`, `on`, `y`…, which Compose
/// files read by 1.1 tools still hit), compared ignoring case to be safe with lenient
/// readers; plus the YAML 1.1 merge (`<<`) and value (`=`) keys.
fn is_reserved_word(s: &str) -> bool {
    const WORDS: [&str; 11] = [
        "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "<<",
    ];
    s == "=" || WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// Anything a YAML 1.1 or 1.2 reader (or Go's `strconv` behind go-yaml) could take for
/// a number: decimal integers and floats with optional sign, `_` separators, exponent
/// and leading `.`; `0x`/`0o`/`0b` integers; YAML 1.1 sexagesimal (`1:30`, `22:22`); and
/// `.inf`/`.nan`. A superset on purpose: quoting one string too many costs nothing.
fn looks_numeric(s: &str) -> bool {
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if [".inf", ".nan"]
        .iter()
        .any(|w| w.eq_ignore_ascii_case(unsigned))
    {
        return true;
    }
    let bytes = unsigned.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' {
        let digits = &bytes[2..];
        let all = |f: fn(&u8) -> bool| digits.iter().all(|b| *b == b'_' || f(b));
        match bytes[1] {
            b'x' | b'X' => return all(u8::is_ascii_hexdigit),
            b'o' | b'O' => return all(|b| (b'0'..=b'7').contains(b)),
            b'b' | b'B' => return all(|b| matches!(b, b'0' | b'1')),
            _ => {}
        }
    }
    // [0-9_]* (:[0-9_]+)* (. [0-9_]*)? ([eE][-+]?[0-9]+)?, with at least one digit.
    let mut rest = bytes;
    let mut digits = 0;
    let mut take = |rest: &mut &[u8]| {
        let n = rest
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'_')
            .count();
        digits += rest[..n].iter().filter(|b| b.is_ascii_digit()).count();
        *rest = &rest[n..];
        n
    };
    let integral = take(&mut rest);
    while let [b':', tail @ ..] = rest {
        if integral == 0 {
            return false; // `:80` is not sexagesimal
        }
        rest = tail;
        if take(&mut rest) == 0 {
            return false;
        }
    }
    if let [b'.', tail @ ..] = rest {
        rest = tail;
        take(&mut rest);
    }
    if digits == 0 {
        return false;
    }
    if let [b'e' | b'E', tail @ ..] = rest {
        rest = tail
            .strip_prefix(b"-")
            .or(tail.strip_prefix(b"+"))
            .unwrap_or(tail);
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &rest[n..];
    }
    rest.is_empty()
}

/// YAML 1.1 timestamps (`2024-01-31`, `2024-1-31T10:00:00Z`…), which 1.1 readers turn into
/// dates: any string starting with a date followed by nothing, a `T` or whitespace.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |from: usize, min: usize, max: usize| -> Option<usize> {
        let n = b[from.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        (min..=max).contains(&n).then_some(from + n)
    };
    let date_end = digits(0, 4, 4)
        .filter(|&i| b.get(i) == Some(&b'-'))
        .and_then(|i| digits(i + 1, 1, 2))
        .filter(|&i| b.get(i) == Some(&b'-'))
        .and_then(|i| digits(i + 1, 1, 2));
    match date_end {
        Some(end) => matches!(b.get(end), None | Some(b'T' | b't' | b' ' | b'\t')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saphyr_parser::{Event, Parser, ScalarStyle};
    use serde_json::json;

    // ---- golden outputs -------------------------------------------------------------

    #[test]
    fn nested_structure() {
        let value = json!({
            "name": "shop",
            "services": {
                "web": {
                    "image": "nginx:1.27",
                    "command": ["nginx", "-g", "daemon off;"],
                    "ports": [
                        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
                        {"target": 443}
                    ],
                    "depends_on": {
                        "db": {"condition": "service_healthy", "required": true, "restart": false}
                    },
                    "environment": {"DEBUG": "false", "EMPTY": "", "UNSET": null},
                    "labels": {},
                    "dns": [],
                    "cpus": 1.5,
                    "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost/"]},
                },
                "db": {"image": "postgres:16", "matrix": [[1, 2], [], [{"a": null}]]},
            },
        });
        let expected = r#"name: shop
services:
  web:
    image: nginx:1.27
    command:
      - nginx
      - -g
      - daemon off;
    ports:
      - mode: ingress
        target: 80
        published: "8080"
        protocol: tcp
      - target: 443
    depends_on:
      db:
        condition: service_healthy
        required: true
        restart: false
    environment:
      DEBUG: "false"
      EMPTY: ""
      UNSET: null
    labels: {}
    dns: []
    cpus: 1.5
    healthcheck:
      test:
        - CMD
        - curl
        - -f
        - http://localhost/
  db:
    image: postgres:16
    matrix:
      - - 1
        - 2
      - []
      - - a: null
"#;
        assert_eq!(to_yaml(&value), expected);
        assert_eq!(parse(expected), value);
    }

    #[test]
    fn top_level_shapes() {
        assert_eq!(to_yaml(&json!({})), "{}\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
        assert_eq!(to_yaml(&json!(null)), "null\n");
        assert_eq!(to_yaml(&json!(true)), "true\n");
        assert_eq!(to_yaml(&json!(-12)), "-12\n");
        assert_eq!(to_yaml(&json!("a b")), "a b\n");
        assert_eq!(to_yaml(&json!("yes")), "\"yes\"\n");
        assert_eq!(to_yaml(&json!([1, "x", null])), "- 1\n- x\n- null\n");
        assert_eq!(to_yaml(&json!("---\n...\n")), "|\n  ---\n  ...\n");
        assert_eq!(
            to_yaml(&json!([{"a": 1, "b": {"c": [{}]}}])),
            "- a: 1\n  b:\n    c:\n      - {}\n"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(to_yaml(&json!({"k": 0})), "k: 0\n");
        assert_eq!(to_yaml(&json!(u64::MAX)), "18446744073709551615\n");
        assert_eq!(to_yaml(&json!(i64::MIN)), "-9223372036854775808\n");
        assert_eq!(to_yaml(&json!(1.0)), "1.0\n");
        assert_eq!(to_yaml(&json!(-0.25)), "-0.25\n");
        assert_eq!(to_yaml(&json!(1e300)), "1.0e+300\n");
        assert_eq!(to_yaml(&json!(1.5e-7)), "1.5e-7\n");
    }

    #[test]
    fn literal_blocks_and_chomping() {
        let cases = [
            ("a\nb", "s: |-\n  a\n  b\n"),
            ("a\nb\n", "s: |\n  a\n  b\n"),
            ("a\nb\n\n", "s: |+\n  a\n  b\n\n"),
            ("a\n\n\nb\n\n\n", "s: |+\n  a\n\n\n  b\n\n\n"),
            ("\nlead", "s: |-\n\n  lead\n"),
            (
                "x\n  indented\n#not a comment",
                "s: |-\n  x\n    indented\n  #not a comment\n",
            ),
            ("key: value\nyes", "s: |-\n  key: value\n  yes\n"),
            ("é\n{}", "s: |-\n  é\n  {}\n"),
        ];
        for (s, expected) in cases {
            let value = json!({ "s": s });
            assert_eq!(to_yaml(&value), expected, "{s:?}");
            assert_eq!(parse(expected), value, "{s:?}");
        }
        // In sequences and deeper maps the block is indented under its entry.
        let value = json!({"a": [{"script": "set -e\nmake\n"}, "x\ny"]});
        let expected = "a:\n  - script: |\n      set -e\n      make\n  - |-\n    x\n    y\n";
        assert_eq!(to_yaml(&value), expected);
        assert_eq!(parse(expected), value);
    }

    #[test]
    fn multi_line_strings_a_block_cannot_carry() {
        let cases = [
            (" lead\nx", r#"" lead\nx""#),
            ("\n  lead", r#""\n  lead""#),
            ("trail \nx", r#""trail \nx""#),
            ("x\ntrail ", r#""x\ntrail ""#),
            ("x\n \ny", r#""x\n \ny""#),
            ("tab\there\n", r#""tab\there\n""#),
            ("cr\r\nlf", r#""cr\r\nlf""#),
            ("bell\u{7}\n", r#""bell\u0007\n""#),
            ("\n", r#""\n""#),
            ("\n\n", r#""\n\n""#),
        ];
        for (s, quoted) in cases {
            assert_eq!(to_yaml(&json!(s)), format!("{quoted}\n"), "{s:?}");
            assert_eq!(parse(&to_yaml(&json!({ "k": s }))), json!({ "k": s }));
        }
    }

    fn plain(s: &str) -> bool {
        to_yaml(&json!({ s: s })) == format!("{s}: {s}\n")
    }

    /// Each string must come out double-quoted (as key and as value) and come back intact.
    fn assert_quoted(strings: &[&str]) {
        for s in strings {
            let mut quoted = String::new();
            push_double_quoted(&mut quoted, s);
            let value = json!({ *s: *s });
            let text = to_yaml(&value);
            assert_eq!(text, format!("{quoted}: {quoted}\n"), "{s:?}");
            assert_eq!(parse(&text), value, "{s:?}");
        }
    }

    #[test]
    fn quotes_empty_and_reserved_words() {
        assert_quoted(&[
            "", "~", "null", "Null", "NULL", "nULL", "true", "True", "TRUE", "false", "False",
            "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y",
            "n", "N", "<<", "=",
        ]);
        for s in ["nulls", "yess", "o", "truth", "offset", "<<<", "==", "~x"] {
            assert!(plain(s), "{s:?}");
        }
    }

    #[test]
    fn quotes_numbers() {
        assert_quoted(&[
            "0",
            "12",
            "-1",
            "+1",
            "007",
            "1.",
            ".5",
            "-.5",
            "+.5",
            "1.5",
            "1e3",
            "1E3",
            "1e+3",
            "1.5e-3",
            "1_000",
            "1__0",
            "0x1F",
            "0X1f",
            "-0x1F",
            "0x_1",
            "0o17",
            "0O17",
            "0b101",
            "0B1",
            ".inf",
            ".Inf",
            ".INF",
            "-.inf",
            "+.inf",
            ".nan",
            ".NaN",
            ".NAN",
            "1:30",
            "22:22",
            "190:20:30",
            "1:20.5",
            "-1:00",
        ]);
        for s in [
            "1.2.3",
            "v1",
            "1a",
            "0x",
            "0xg",
            "0o8",
            "0b2",
            "1e",
            "1e+",
            "e3",
            ".",
            "_",
            "-_",
            "1-2",
            ":1",
            "1::2",
            "3d",
            "inf",
            "nan",
            "0.1.2-beta",
        ] {
            assert!(plain(s), "{s:?}");
        }
    }

    #[test]
    fn quotes_timestamps() {
        assert_quoted(&[
            "2024-01-31",
            "2024-1-1",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
        ]);
        for s in ["2024-01-31x", "24-01-31", "2024-01", "20240-01-31"] {
            assert!(plain(s), "{s:?}");
        }
    }

    #[test]
    fn quotes_leading_indicators() {
        assert_quoted(&[
            "-", "- x", "?", "? x", ":", ": x", ",x", "[x", "]x", "{x", "}x", "#x", "&x", "*x",
            "!x", "|x", ">x", "'x", "\"x", "%x", "@x", "`x", "[]", "{}",
        ]);
        // `-`, `?` and `:` followed by a non-space start a plain scalar.
        // Indicators after the first character are fine.
        for s in [
            "-c",
            "--verbose",
            "?x",
            ":80",
            "-x- y",
            "a-",
            "a?",
            "a,b",
            "a[0]",
            "a{}",
        ] {
            assert!(plain(s), "{s:?}");
        }
    }

    #[test]
    fn quotes_comments_keys_and_whitespace() {
        assert_quoted(&[
            "a: b",
            "a:",
            "a #b",
            "x ",
            " x",
            " ",
            "a\tb",
            "\t",
            "---",
            "--- x",
            "...",
            "...x",
            "a\u{0}b",
            "a\u{7f}",
            "\u{85}",
            "a\u{2028}b",
            "\u{feff}x",
            "\u{9b}",
        ]);
        for s in [
            "a:b",
            "a#b",
            "http://x:80/#frag",
            "a b",
            "é",
            "日本",
            "😀",
            "x'y\"z",
        ] {
            assert!(plain(s), "{s:?}");
        }
    }

    #[test]
    fn double_quoted_escapes() {
        let cases = [
            ("\"", r#""\"""#),
            ("\\", r#""\\""#),
            ("\u{8}\u{c}\r\t", r#""\b\f\r\t""#),
            ("\u{1}\u{1f}\u{7f}", r#""\u0001\u001F\u007F""#),
            (
                "\u{85}\u{2028}\u{2029}\u{feff}\u{fffe}",
                r#""\u0085\u2028\u2029\uFEFF\uFFFE""#,
            ),
            ("é ü", r#""é ü""#),
        ];
        for (s, quoted) in cases {
            let mut out = String::new();
            push_double_quoted(&mut out, s);
            assert_eq!(out, quoted, "{s:?}");
            assert_eq!(parse(&to_yaml(&json!([s]))), json!([s]), "{s:?}");
        }
    }

    #[test]
    fn long_keys_are_explicit() {
        let key = "k".repeat(1500);
        let value = json!({ key.clone(): {"a": 1}, "short": [key.clone()] });
        let text = to_yaml(&value);
        assert_eq!(
            text,
            format!("? {key}\n:\n  a: 1\nshort:\n  - {key}\n"),
            "long plain key"
        );
        assert_eq!(parse(&text), value);
        let value = json!([{ key.clone(): "v", "x": 1 }, { "x": 1, key.clone(): "v" }]);
        let text = to_yaml(&value);
        assert_eq!(
            text,
            format!("- ? {key}\n  : v\n  x: 1\n- x: 1\n  ? {key}\n  : v\n")
        );
        assert_eq!(parse(&text), value);
        let quoted = format!("\"{}\"", "a: ".repeat(400));
        assert!(to_yaml(&json!({ "a: ".repeat(400): null }))
            .starts_with(&format!("? {quoted}\n: null")));
    }

    #[test]
    fn output_is_deterministic_in_input_order() {
        let value = json!({"z": 1, "a": 2, "m": {"x": 1, "b": 2}});
        assert_eq!(to_yaml(&value), "z: 1\na: 2\nm:\n  x: 1\n  b: 2\n");
        assert!(to_yaml(&value).ends_with('\n'));
    }

    // ---- round trip through a YAML 1.2 parser ----------------------------------------

    /// Parses one YAML document into JSON, plain scalars resolved by the YAML 1.2 core
    /// schema, all other scalar styles as strings. Panics on anything `to_yaml` must never
    /// produce (anchors, tags, several documents, non-string keys).
    fn parse(text: &str) -> Value {
        let mut events = Parser::new_from_str(text).map(|event| match event {
            Ok((event, _span)) => event,
            Err(e) => panic!("invalid YAML: {e}\n{text}"),
        });
        assert!(matches!(events.next(), Some(Event::StreamStart)));
        assert!(matches!(events.next(), Some(Event::DocumentStart(_))));
        let first = events.next().expect("a document");
        let value = build(first, &mut events, text);
        assert!(matches!(events.next(), Some(Event::DocumentEnd)));
        assert!(matches!(events.next(), Some(Event::StreamEnd)));
        value
    }

    fn build<'a>(
        event: Event<'a>,
        events: &mut impl Iterator<Item = Event<'a>>,
        text: &str,
    ) -> Value {
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                assert!(anchor == 0 && tag.is_none(), "anchor or tag in\n{text}");
                scalar(&value, style)
            }
            Event::SequenceStart(anchor, tag) => {
                assert!(anchor == 0 && tag.is_none(), "anchor or tag in\n{text}");
                let mut seq = Vec::new();
                loop {
                    match events.next().expect("sequence end") {
                        Event::SequenceEnd => return Value::Array(seq),
                        item => seq.push(build(item, events, text)),
                    }
                }
            }
            Event::MappingStart(anchor, tag) => {
                assert!(anchor == 0 && tag.is_none(), "anchor or tag in\n{text}");
                let mut map = Map::new();
                loop {
                    let key = match events.next().expect("mapping end") {
                        Event::MappingEnd => return Value::Object(map),
                        key => build(key, events, text),
                    };
                    let Value::String(key) = key else {
                        panic!("key {key:?} does not read back as a string in\n{text}");
                    };
                    let value = build(events.next().expect("a value"), events, text);
                    assert!(map.insert(key, value).is_none(), "duplicate key in\n{text}");
                }
            }
            other => panic!("unexpected {other:?} in\n{text}"),
        }
    }

    fn scalar(s: &str, style: ScalarStyle) -> Value {
        if style != ScalarStyle::Plain {
            return Value::String(s.to_owned());
        }
        match s {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            _ => {}
        }
        let is_int = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
        if is_int(unsigned) {
            let negative = s.starts_with('-');
            let digits = unsigned.trim_start_matches('0');
            let digits = if digits.is_empty() { "0" } else { digits };
            let normalized = if negative {
                format!("-{digits}")
            } else {
                digits.to_owned()
            };
            return serde_json::from_str(&normalized)
                .unwrap_or_else(|_| json!(normalized.parse::<f64>().unwrap()));
        }
        if let Some(octal) = s.strip_prefix("0o").filter(|d| !d.is_empty()) {
            if let Ok(n) = u64::from_str_radix(octal, 8) {
                return json!(n);
            }
        }
        if let Some(hex) = s.strip_prefix("0x").filter(|d| !d.is_empty()) {
            if let Ok(n) = u64::from_str_radix(hex, 16) {
                return json!(n);
            }
        }
        if is_core_float(s) {
            let f: f64 = s.parse().expect("core float");
            return json!(f);
        }
        if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
            panic!("plain {s:?} is not representable in JSON");
        }
        Value::String(s.to_owned())
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    fn is_core_float(s: &str) -> bool {
        let b = s.strip_prefix(['-', '+']).unwrap_or(s).as_bytes();
        let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut i = digits(b);
        if i == 0 {
            if b.first() != Some(&b'.') || digits(&b[1..]) == 0 {
                return false;
            }
            i = 1 + digits(&b[1..]);
        } else if b.get(i) == Some(&b'.') {
            i += 1 + digits(&b[i + 1..]);
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'-' | b'+')) {
                i += 1;
            }
            let n = digits(&b[i..]);
            if n == 0 {
                return false;
            }
            i += n;
        }
        i == b.len()
    }

    #[test]
    fn parser_resolves_core_schema() {
        assert_eq!(
            parse("a: 1\nb: -2\nc: 1.5\nd: .5\ne: 1e3\nf: 0x1F\ng: 0o17\nh: ~\ni: True\nj: yes\nk: '1'\n"),
            json!({"a": 1, "b": -2, "c": 1.5, "d": 0.5, "e": 1000.0, "f": 31, "g": 15,
                   "h": null, "i": true, "j": "yes", "k": "1"})
        );
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Characters that exercise every quoting rule, with enough letters and digits mixed
    /// in to make words, numbers and reserved words by accident.
    const ALPHABET: &[&str] = &[
        ":", " ", "#", "-", "'", "\"", "\n", "\t", "é", "{", "}", "[", "]", "?", ",", "&", "*",
        "!", "|", ">", "%", "@", "`", "~", ".", "_", "+", "\\", "\r", "\u{0}", "\u{85}",
        "\u{2028}", "\u{feff}", "😀", "a", "e", "x", "y", "n", "o", "0", "1", "7", "9", "T",
    ];

    const WORDS: &[&str] = &[
        "",
        "yes",
        "No",
        "on",
        "OFF",
        "null",
        "~",
        "true",
        "False",
        "y",
        "0x1F",
        "1e3",
        ".5",
        "1_000",
        "0o17",
        ".inf",
        "-.NaN",
        "12:30",
        "2024-01-31",
        "<<",
        "=",
        "---",
        "...",
        "- x",
        "a: b",
        "a #b",
        "k:",
        " lead",
        "trail ",
        "x\n",
        "x\n\n",
        "\nx",
        "a\n b \n",
        " x\ny",
        "\n  z\n",
        "a\n\n b\n\n\n",
        "#!/bin/sh\nset -e\n",
    ];

    fn gen_string(rng: &mut XorShift) -> String {
        if rng.below(4) == 0 {
            return WORDS[rng.below(WORDS.len())].to_owned();
        }
        let len = rng.below(9);
        (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect()
    }

    fn gen_value(rng: &mut XorShift, depth: usize) -> Value {
        let kinds = if depth == 0 { 6 } else { 8 };
        match rng.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => match rng.below(3) {
                0 => json!(rng.next() as i64),
                1 => json!(rng.below(100)),
                _ => {
                    let f = f64::from_bits(rng.next());
                    if f.is_finite() {
                        json!(f)
                    } else {
                        json!(rng.below(1000) as f64 / 8.0)
                    }
                }
            },
            3..=5 => Value::String(gen_string(rng)),
            6 => (0..rng.below(4))
                .map(|_| gen_value(rng, depth - 1))
                .collect(),
            _ => Value::Object(
                (0..rng.below(4))
                    .map(|_| (gen_string(rng), gen_value(rng, depth - 1)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn round_trip_generated_values() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for case in 0..4000 {
            let value = gen_value(&mut rng, 1 + case % 4);
            let text = to_yaml(&value);
            assert!(text.ends_with('\n'));
            assert_eq!(parse(&text), value, "case {case}:\n{text}");
        }
    }

    #[test]
    fn round_trip_every_alphabet_pair() {
        // Every two-character string (as key and value), deterministic and exhaustive.
        for a in ALPHABET {
            for b in ALPHABET {
                let s = format!("{a}{b}");
                let value = json!({ s.clone(): [s.clone(), {"k": s}] });
                let text = to_yaml(&value);
                assert_eq!(parse(&text), value, "{text}");
            }
        }
    }
}
