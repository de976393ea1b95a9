//! Words of a Dockerfile line, as Docker's shell lexer sees them: split on blanks
//! outside quotes (quotes kept, for [`expand`] to remove), and variable substitution
//! with quote removal (`$A`, `${A}`, `${A:-x}`, `${A-x}`, `${A:+x}`, `${A+x}`, `${A:?msg}`).

/// Splits `text` into words at unquoted blanks; quotes and escapes stay in the words.
pub fn split(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Expands variables in one word and removes its quotes and escapes. `lookup` gives
/// a variable's value (None: unset). Errors are messages for the caller to place.
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else {
                    out.push(c);
                }
                i += 1;
            }
            Some(_) => {
                if c == '"' {
                    quote = None;
                    i += 1;
                } else if c == escape && i + 1 < chars.len() {
                    let n = chars[i + 1];
                    // Inside double quotes only these are escapes; the rest stays as written.
                    if n == '"' || n == '$' || n == escape {
                        out.push(n);
                    } else {
                        out.push(c);
                        out.push(n);
                    }
                    i += 2;
                } else if c == '$' {
                    i = dollar(&chars, i, escape, lookup, &mut out)?;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    i += 1;
                } else if c == escape {
                    if let Some(n) = chars.get(i + 1) {
                        out.push(*n);
                    } else {
                        out.push(c);
                    }
                    i += 2;
                } else if c == '$' {
                    i = dollar(&chars, i, escape, lookup, &mut out)?;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unmatched {q} quote in {word:?}"));
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the `$…` at `chars[i]`; returns the index after it.
fn dollar(
    chars: &[char],
    i: usize,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<usize, String> {
    let Some(&n) = chars.get(i + 1) else {
        out.push('$');
        return Ok(i + 1);
    };
    if n == '{' {
        let mut j = i + 2;
        let mut name = String::new();
        while j < chars.len() && is_name_char(chars[j]) {
            name.push(chars[j]);
            j += 1;
        }
        if name.is_empty() {
            return Err("a variable in ${…} needs a name (letters, digits, _)".into());
        }
        // The word after the modifier runs to the matching brace (nesting allowed).
        let mut depth = 1;
        let start = j;
        while j < chars.len() {
            match chars[j] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if j >= chars.len() {
            return Err(format!("missing }} after ${{{name}"));
        }
        let rest: String = chars[start..j].iter().collect();
        let value = lookup(&name);
        let sub = |w: &str| expand(w, escape, lookup);
        let text = if rest.is_empty() {
            value.unwrap_or_default()
        } else if let Some(w) = rest.strip_prefix(":-") {
            match value.filter(|v| !v.is_empty()) {
                Some(v) => v,
                None => sub(w)?,
            }
        } else if let Some(w) = rest.strip_prefix(":+") {
            match value.filter(|v| !v.is_empty()) {
                Some(_) => sub(w)?,
                None => String::new(),
            }
        } else if let Some(w) = rest.strip_prefix(":?") {
            match value.filter(|v| !v.is_empty()) {
                Some(v) => v,
                None => {
                    let msg = sub(w)?;
                    return Err(format!(
                        "{name}: {}",
                        if msg.is_empty() {
                            "is not set".to_string()
                        } else {
                            msg
                        }
                    ));
                }
            }
        } else if let Some(w) = rest.strip_prefix('-') {
            match value {
                Some(v) => v,
                None => sub(w)?,
            }
        } else if let Some(w) = rest.strip_prefix('+') {
            match value {
                Some(_) => sub(w)?,
                None => String::new(),
            }
        } else if let Some(w) = rest.strip_prefix('?') {
            match value {
                Some(v) => v,
                None => return Err(format!("{name}: {}", sub(w)?)),
            }
        } else {
            return Err(format!(
                "unsupported modifier {rest:?} in ${{{name}{rest}}} (use :- - :+ + :? ?)"
            ));
        };
        out.push_str(&text);
        return Ok(j + 1);
    }
    if is_name_char(n) && !n.is_ascii_digit() {
        let mut j = i + 1;
        let mut name = String::new();
        while j < chars.len() && is_name_char(chars[j]) {
            name.push(chars[j]);
            j += 1;
        }
        out.push_str(&lookup(&name).unwrap_or_default());
        return Ok(j);
    }
    out.push('$');
    Ok(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("one".into()),
            "E" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitution_forms() {
        let x = |w: &str| expand(w, '\\', &env).unwrap();
        assert_eq!(x("$A"), "one");
        assert_eq!(x("${A}x"), "onex");
        assert_eq!(x("${B:-two}"), "two");
        assert_eq!(x("${E:-two}"), "two");
        assert_eq!(x("${E-two}"), "");
        assert_eq!(x("${A:+set}"), "set");
        assert_eq!(x("${B:+set}"), "");
        assert_eq!(x("${B:-$A}"), "one");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "one b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("a$"), "a$");
        assert!(expand("${B:?must be set}", '\\', &env)
            .unwrap_err()
            .contains("must be set"));
        assert!(expand("${A", '\\', &env).is_err());
        assert!(expand("\"open", '\\', &env).is_err());
    }

    #[test]
    fn splitting_keeps_quotes() {
        assert_eq!(split(r#"a="x y" b=1"#, '\\'), vec![r#"a="x y""#, "b=1"]);
        assert_eq!(split(r"a\ b c", '\\'), vec![r"a\ b", "c"]);
        assert_eq!(split("  ", '\\'), Vec::<String>::new());
    }
}
