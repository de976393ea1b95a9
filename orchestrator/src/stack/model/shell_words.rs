//! Splitting the string form of `command`, `entrypoint` and hook commands into words.
//!
//! Compose never runs the string form through a shell: it splits it into the exec form
//! the way a POSIX shell splits words, and runs that. So `echo "a b" c` is
//! `["echo", "a b", "c"]`, quotes are removed, and nothing else a shell would do
//! (variables, globs, `&&`, redirections) happens: those characters stay in the words.
//!
//! Rules (POSIX word splitting, minus expansions):
//! - blanks (space, tab, newline) separate words; runs of blanks count as one;
//! - `'…'` keeps everything inside literally;
//! - `"…"` keeps everything inside, except that a backslash escapes `"`, `\`, `$`,
//!   `` ` `` and a newline (a backslash before anything else stays);
//! - outside quotes a backslash keeps the next character literally (a
//!   backslash-newline joins lines);
//! - `""` or `''` alone is an empty word.
//!
//! An unterminated quote or a trailing lone backslash is an error, as in a shell.
//!
//! Compose's reader (go-shellwords) differs in two corners, where this follows the
//! shell instead: it drops a backslash before any character inside double quotes, and
//! it silently drops everything from an unquoted `;`, `&`, `|`, `<` or `>` onwards.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::de::Text;

/// Splits `line` into words. The error names the problem and quotes the line.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started even if it is still empty (`""`).
    let mut in_word = false;
    let mut chars = line.chars();

    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
                None => {
                    return Err(format!(
                        "cannot split command {line:?} into words: it ends with a lone backslash"
                    ))
                }
            },
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => {
                            return Err(format!(
                                "cannot split command {line:?} into words: a single quote is not closed"
                            ))
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => word.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => {
                                return Err(format!(
                                    "cannot split command {line:?} into words: a double quote is not closed"
                                ))
                            }
                        },
                        Some(ch) => word.push(ch),
                        None => {
                            return Err(format!(
                                "cannot split command {line:?} into words: a double quote is not closed"
                            ))
                        }
                    }
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

// --- serde glue for `command`, `entrypoint` and hook commands ---------------------------

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Option<Vec<String>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command string or a list of arguments")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        split(v).map(Some).map_err(E::custom)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut args = Vec::new();
        // Numbers are taken as their text (`[sleep, 10]`).
        while let Some(Text(arg)) = seq.next_element()? {
            args.push(arg);
        }
        Ok(Some(args))
    }
}

/// `command` / `entrypoint`: null keeps the image's value (`None`); the string form is
/// split into words; `[]` and `""` clear the image's value (`Some(vec![])`).
pub(crate) fn opt_command<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    d.deserialize_any(CommandVisitor)
}

/// A command that must be given (hooks).
pub(crate) fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    opt_command(d)?.ok_or_else(|| de::Error::custom("the command must not be null"))
}

#[cfg(test)]
mod tests {
    use super::split;

    fn ok(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn plain_words() {
        assert_eq!(
            ok("bundle exec thin -p 3000"),
            ["bundle", "exec", "thin", "-p", "3000"]
        );
        assert_eq!(ok("  a \t b\n c  "), ["a", "b", "c"]);
        assert!(ok("").is_empty());
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn quotes() {
        assert_eq!(
            ok(r#"/bin/sh -c 'echo "hello $HOSTNAME"'"#),
            ["/bin/sh", "-c", r#"echo "hello $HOSTNAME""#]
        );
        assert_eq!(
            ok(r#"/bin/ash -c "rm -rf /tmp/might-not-exist""#),
            ["/bin/ash", "-c", "rm -rf /tmp/might-not-exist"]
        );
        assert_eq!(ok(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(ok(r#"x "" ''"#), ["x", "", ""]);
        assert_eq!(
            ok(r#"nginx -g 'daemon off;'"#),
            ["nginx", "-g", "daemon off;"]
        );
    }

    #[test]
    fn backslashes() {
        assert_eq!(ok(r"a\ b c"), ["a b", "c"]);
        assert_eq!(ok(r#""say \"hi\"""#), [r#"say "hi""#]);
        assert_eq!(ok(r#""a\.b""#), [r"a\.b"]);
        assert_eq!(ok(r#"'a\b'"#), [r"a\b"]);
        assert_eq!(ok("a\\\nb"), ["ab"]);
    }

    #[test]
    fn shell_operators_stay_words() {
        assert_eq!(ok("echo a && echo b"), ["echo", "a", "&&", "echo", "b"]);
        assert_eq!(ok("echo $HOME"), ["echo", "$HOME"]);
    }

    #[derive(Debug, serde::Deserialize)]
    struct Svc {
        #[serde(default, deserialize_with = "super::opt_command")]
        command: Option<Vec<String>>,
    }

    fn command(v: serde_json::Value) -> Result<Option<Vec<String>>, String> {
        serde_json::from_value::<Svc>(serde_json::json!({ "command": v }))
            .map(|s| s.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn command_forms() {
        use serde_json::json;
        assert_eq!(
            command(json!("bundle exec thin")).unwrap().unwrap(),
            ["bundle", "exec", "thin"]
        );
        assert_eq!(
            command(json!(["echo", "a b", 10])).unwrap().unwrap(),
            ["echo", "a b", "10"]
        );
        assert_eq!(command(json!(null)).unwrap(), None);
        assert_eq!(command(json!("")).unwrap(), Some(vec![]));
        assert_eq!(command(json!([])).unwrap(), Some(vec![]));
        let err = command(json!("sh -c 'x")).unwrap_err();
        assert!(err.contains("a single quote is not closed"), "{err}");
        let err = command(json!({"a": 1})).unwrap_err();
        assert!(
            err.contains("a command string or a list of arguments"),
            "{err}"
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            split("echo 'oops").unwrap_err(),
            "cannot split command \"echo 'oops\" into words: a single quote is not closed"
        );
        assert_eq!(
            split("echo \"oops").unwrap_err(),
            "cannot split command \"echo \\\"oops\" into words: a double quote is not closed"
        );
        assert_eq!(
            split("echo \\").unwrap_err(),
            "cannot split command \"echo \\\\\" into words: it ends with a lone backslash"
        );
    }
}
