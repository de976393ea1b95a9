//! Compose variable interpolation of one string (`$VAR`, `${VAR:-default}`, `$$`, ...).
//!
//! The semantics follow compose-go's `template` package, because users write their files
//! against `docker compose` and expect the same text to produce the same values here.
//! Where compose-go's regex-based implementation has accidental behaviour, this module
//! picks the reading a shell user would expect and says so:
//!
//! - A `$` that is followed by neither `$`, `{` nor a name start (`[A-Za-z_]`) is kept as a
//!   literal `$`, as compose-go does (its pattern simply does not match there): `"a $ b"`,
//!   `"^REGEX$"`, `"$1"`, `"$-"`, `"$}"` and a lone trailing `$` are returned unchanged and
//!   are not errors. The Compose Specification says the same ("In other circumstances, it
//!   will be preserved"). Only a `${` that does not form a valid expression is an error.
//! - The operand of `:-`, `-`, `:?`, `?`, `:+` and `+` is evaluated only when it is used, as
//!   in a shell: `${SET:-${OTHER:?msg}}` succeeds when `SET` is set, and the variables of an
//!   unused default are not reported as unset. compose-go evaluates the operand eagerly. The
//!   *syntax* of the whole string is still checked first, so a malformed unused branch is
//!   an error whatever the environment holds.
//! - Inside an operand, plain `{` and `}` must balance (`${A:-{"k":1}}` has the default
//!   `{"k":1}`); the first `}` that closes no `{` ends the expression. An operand with an
//!   unbalanced `{` is an unterminated expression, not a guess at the intended brace.
//! - Nesting deeper than [`MAX_NESTING`] braced expressions is an error, so hostile input
//!   cannot exhaust the stack.

/// Looks a variable up; None = unset (distinct from Some("") = set but empty).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How many `${...}` may be nested inside one another. Real files use two or three; the
/// bound exists because the parser recurses once per level.
pub const MAX_NESTING: usize = 100;

/// Why a string could not be interpolated.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum InterpolateError {
    /// `${NAME:?message}` met an unset or empty `NAME`, or `${NAME?message}` an unset one.
    /// `message` is the (interpolated) text after the operator, possibly empty; the display
    /// matches compose's so that users can search for the familiar wording.
    #[error("required variable {name} is missing a value{}", colon_prefixed(.message))]
    MissingRequired {
        /// The variable that has no value.
        name: String,
        /// The author's explanation, already interpolated; empty when none was given.
        message: String,
    },
    /// The string is not a valid template: a `${` without a valid name, closing brace or
    /// operator. `template` is the whole string given to [`interpolate`] (not just the
    /// nested part that failed), so the user can find it in the file.
    #[error(
        "invalid interpolation format for {template:?}: {reason}; you may need to escape any $ with another $"
    )]
    InvalidSyntax {
        /// The complete text being interpolated.
        template: String,
        /// What is wrong with it, in words.
        reason: String,
    },
}

/// Compose prints no colon when the message is empty; keeping that avoids a dangling `: `.
fn colon_prefixed(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Interpolates `text`; an unset variable without a default becomes "", as in compose.
///
/// # Errors
///
/// [`InterpolateError::InvalidSyntax`] for a malformed `${...}` anywhere in `text` (even in
/// a branch that is not used), [`InterpolateError::MissingRequired`] for a failed `?`/`:?`.
pub fn interpolate(text: &str, lookup: Lookup) -> Result<String, InterpolateError> {
    // Every string of every service goes through here; most contain no `$` at all.
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut expander = Expander::new(text, lookup, false);
    expander.run()
}

/// Same, also reporting the names of variables that were unset and substituted by "" (compose warns about those).
///
/// Each name is reported once, in order of first use. Only plain `$NAME` / `${NAME}`
/// references count: the operator forms say what to do when the variable is unset, so
/// there is nothing to warn about.
///
/// # Errors
///
/// As [`interpolate`].
pub fn interpolate_report(
    text: &str,
    lookup: Lookup,
) -> Result<(String, Vec<String>), InterpolateError> {
    if !text.contains('$') {
        return Ok((text.to_owned(), Vec::new()));
    }
    let mut expander = Expander::new(text, lookup, true);
    let out = expander.run()?;
    Ok((out, expander.unset))
}

/// The operator of a braced expression, after the variable name.
#[derive(Clone, Copy)]
enum Operator {
    /// `-` / `:-`: substitute the operand when the variable is unset (or empty).
    Default,
    /// `?` / `:?`: fail with the operand as message when the variable is unset (or empty).
    Required,
    /// `+` / `:+`: substitute the operand when the variable is set (and non-empty).
    Alternative,
}

/// One interpolation of one template. Works on bytes: every delimiter is ASCII, so every
/// index at which it slices is a char boundary of the UTF-8 text.
struct Expander<'t, 'l> {
    template: &'t str,
    lookup: Lookup<'l>,
    report: bool,
    unset: Vec<String>,
}

impl<'t, 'l> Expander<'t, 'l> {
    fn new(template: &'t str, lookup: Lookup<'l>, report: bool) -> Self {
        Expander {
            template,
            lookup,
            report,
            unset: Vec::new(),
        }
    }

    /// Validates the whole template, then evaluates it. The separate validation pass makes
    /// syntax errors independent of the environment (and of lazy evaluation skipping
    /// branches), and means a syntax error is reported before any missing variable.
    fn run(&mut self) -> Result<String, InterpolateError> {
        self.sequence(0, false, 0, None)?;
        let mut out = String::with_capacity(self.template.len());
        self.sequence(0, false, 0, Some(&mut out))?;
        Ok(out)
    }

    fn syntax(&self, reason: String) -> InterpolateError {
        InterpolateError::InvalidSyntax {
            template: self.template.to_owned(),
            reason,
        }
    }

    /// Processes text from `start`: to the end of the template at the top level, or, for an
    /// operand (`nested`), up to the `}` that closes the enclosing expression. Returns the
    /// index where it stopped (the closing `}`), or None if an operand ran off the end.
    /// With `out` = None the text is only checked: no lookup, no output, no report.
    fn sequence(
        &mut self,
        start: usize,
        nested: bool,
        depth: usize,
        mut out: Option<&mut String>,
    ) -> Result<Option<usize>, InterpolateError> {
        let bytes = self.template.as_bytes();
        let mut literal_from = start;
        let mut open_braces = 0usize;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'$' => {
                    if let Some(out) = out.as_deref_mut() {
                        out.push_str(&self.template[literal_from..i]);
                    }
                    i = self.dollar(i, depth, out.as_deref_mut())?;
                    literal_from = i;
                }
                b'{' if nested => {
                    open_braces += 1;
                    i += 1;
                }
                b'}' if nested => {
                    if open_braces == 0 {
                        if let Some(out) = out.as_deref_mut() {
                            out.push_str(&self.template[literal_from..i]);
                        }
                        return Ok(Some(i));
                    }
                    open_braces -= 1;
                    i += 1;
                }
                _ => i += 1,
            }
        }
        if nested {
            return Ok(None);
        }
        if let Some(out) = out {
            out.push_str(&self.template[literal_from..]);
        }
        Ok(Some(bytes.len()))
    }

    /// Handles the `$` at `at`; returns the index just after what it consumed.
    fn dollar(
        &mut self,
        at: usize,
        depth: usize,
        out: Option<&mut String>,
    ) -> Result<usize, InterpolateError> {
        let bytes = self.template.as_bytes();
        match bytes.get(at + 1) {
            Some(b'$') => {
                if let Some(out) = out {
                    out.push('$');
                }
                Ok(at + 2)
            }
            Some(b'{') => self.braced(at, depth + 1, out),
            Some(&c) if is_name_start(c) => {
                let end = name_end(bytes, at + 1);
                if let Some(out) = out {
                    let template = self.template;
                    self.substitute(&template[at + 1..end], out);
                }
                Ok(end)
            }
            // Not an expression: compose-go keeps such a `$` as it is (see module docs).
            _ => {
                if let Some(out) = out {
                    out.push('$');
                }
                Ok(at + 1)
            }
        }
    }

    /// Substitutes a plain reference, recording it when unset.
    fn substitute(&mut self, name: &str, out: &mut String) {
        match (self.lookup)(name) {
            Some(value) => out.push_str(&value),
            None => {
                if self.report && !self.unset.iter().any(|n| n == name) {
                    self.unset.push(name.to_owned());
                }
            }
        }
    }

    /// Handles `${...}` whose `$` is at `at`; returns the index after its closing `}`.
    fn braced(
        &mut self,
        at: usize,
        depth: usize,
        out: Option<&mut String>,
    ) -> Result<usize, InterpolateError> {
        let bytes = self.template.as_bytes();
        if depth > MAX_NESTING {
            return Err(self.syntax(format!(
                "more than {MAX_NESTING} nested \"${{...}}\" expressions"
            )));
        }
        let name_start = at + 2;
        match bytes.get(name_start) {
            None => return Err(self.syntax("missing \"}\" to close \"${\"".to_owned())),
            Some(b'}') => return Err(self.syntax("empty variable name in \"${}\"".to_owned())),
            Some(&c) if !is_name_start(c) => {
                return Err(self.syntax(format!(
                    "variable name must start with a letter or \"_\", found {:?}",
                    self.char_at(name_start)
                )))
            }
            Some(_) => {}
        }
        let end = name_end(bytes, name_start);
        let template = self.template;
        let name = &template[name_start..end];
        let unterminated = || format!("missing \"}}\" to close \"${{{name}\"");

        let (operator, colon, operand_start) = match bytes.get(end) {
            None => return Err(self.syntax(unterminated())),
            Some(b'}') => {
                if let Some(out) = out {
                    self.substitute(name, out);
                }
                return Ok(end + 1);
            }
            Some(&c) => {
                let colon = c == b':';
                let op_at = end + usize::from(colon);
                let operator = match bytes.get(op_at) {
                    Some(b'-') => Operator::Default,
                    Some(b'?') => Operator::Required,
                    Some(b'+') => Operator::Alternative,
                    None => return Err(self.syntax(unterminated())),
                    Some(_) if colon => {
                        return Err(self.syntax(format!(
                            "unsupported operator \":{}\" after variable name {name:?} \
                             (expected one of :- - :? ? :+ +)",
                            self.char_at(op_at)
                        )))
                    }
                    Some(_) => {
                        return Err(self.syntax(format!(
                            "unexpected character {:?} after variable name {name:?} \
                             (expected \"}}\" or one of :- - :? ? :+ +)",
                            self.char_at(op_at)
                        )))
                    }
                };
                (operator, colon, op_at + 1)
            }
        };

        let Some(out) = out else {
            // Checking only: walk the operand for its syntax and its closing brace.
            return match self.sequence(operand_start, true, depth, None)? {
                Some(close) => Ok(close + 1),
                None => Err(self.syntax(unterminated())),
            };
        };

        let value = (self.lookup)(name);
        // "Holds" = the condition under which the variable's own value is used.
        let holds = match &value {
            None => false,
            Some(v) => !colon || !v.is_empty(),
        };
        let close = match operator {
            Operator::Default if holds => {
                out.push_str(value.as_deref().unwrap_or_default());
                self.sequence(operand_start, true, depth, None)?
            }
            Operator::Default => self.sequence(operand_start, true, depth, Some(out))?,
            Operator::Alternative if holds => {
                self.sequence(operand_start, true, depth, Some(out))?
            }
            Operator::Alternative => self.sequence(operand_start, true, depth, None)?,
            Operator::Required if holds => {
                out.push_str(value.as_deref().unwrap_or_default());
                self.sequence(operand_start, true, depth, None)?
            }
            Operator::Required => {
                let mut message = String::new();
                if self
                    .sequence(operand_start, true, depth, Some(&mut message))?
                    .is_none()
                {
                    return Err(self.syntax(unterminated()));
                }
                return Err(InterpolateError::MissingRequired {
                    name: name.to_owned(),
                    message,
                });
            }
        };
        match close {
            Some(close) => Ok(close + 1),
            None => Err(self.syntax(unterminated())),
        }
    }

    /// The character starting at byte `at`, for messages; `at` is always a char boundary
    /// because it follows an ASCII delimiter or name.
    fn char_at(&self, at: usize) -> char {
        self.template[at..].chars().next().unwrap_or('\0')
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// Index just past the name starting at `start` (`[A-Za-z0-9_]*`).
fn name_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .map_or(bytes.len(), |n| start + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// compose-go's test environment: FOO set, BAR set but empty, everything else unset.
    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("first".to_owned()),
            "BAR" => Some(String::new()),
            // Set, but not a Compose name: `$É` must stay literal rather than look it up.
            "É" => Some("never".to_owned()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        interpolate(text, &env).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> InterpolateError {
        match interpolate(text, &env) {
            Ok(v) => panic!("{text:?} should fail, gave {v:?}"),
            Err(e) => e,
        }
    }

    fn syntax_message(text: &str) -> String {
        let e = err(text);
        assert!(
            matches!(&e, InterpolateError::InvalidSyntax { template, .. } if template == text),
            "{text:?}: {e:?}"
        );
        e.to_string()
    }

    #[test]
    fn text_without_dollar_is_unchanged_and_never_looks_up() {
        let panicking = |name: &str| -> Option<String> { panic!("looked up {name}") };
        for text in ["", "plain", "{x} }{ :-? é", "multi\nline"] {
            assert_eq!(interpolate(text, &panicking).unwrap(), text);
            assert_eq!(
                interpolate_report(text, &panicking).unwrap(),
                (text.to_owned(), vec![])
            );
        }
    }

    #[test]
    fn plain_references_set_empty_unset() {
        assert_eq!(ok("This $FOO var"), "This first var");
        assert_eq!(ok("This ${FOO} var"), "This first var");
        assert_eq!(ok("This $BAR var"), "This  var");
        assert_eq!(ok("This ${BAR} var"), "This  var");
        assert_eq!(ok("This $missing var"), "This  var");
        assert_eq!(ok("This ${missing} var"), "This  var");
        assert_eq!(ok("$FOO$FOO${FOO}"), "firstfirstfirst");
    }

    #[test]
    fn names_are_ascii_word_characters() {
        assert_eq!(ok("$FOO-bar"), "first-bar");
        assert_eq!(ok("$FOO.bar"), "first.bar");
        assert_eq!(ok("$FOOé"), "firsté");
        assert_eq!(ok("${_a1}x"), "x");
        let lower = |n: &str| (n == "foo_1").then(|| "low".to_owned());
        assert_eq!(interpolate("$foo_1/${foo_1}", &lower).unwrap(), "low/low");
    }

    #[test]
    fn double_dollar_escapes() {
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("$${foo}"), "${foo}");
        assert_eq!(ok("$$FOO"), "$FOO");
        assert_eq!(ok("$$$FOO"), "$first");
        assert_eq!(ok("$$$$"), "$$");
        assert_eq!(ok("${UNSET:-$$}"), "$");
    }

    #[test]
    fn dollar_not_starting_an_expression_is_literal() {
        for text in [
            "a $ string",
            "^REGEX$",
            "$}",
            "$",
            "$1",
            "$1A",
            "$-",
            "$é",
            "$É",
            "x$ $",
        ] {
            assert_eq!(ok(text), text);
        }
        assert_eq!(ok("${UNSET:-$}"), "$");
    }

    #[test]
    fn soft_default() {
        assert_eq!(ok("ok ${FOO:-def}"), "ok first");
        assert_eq!(ok("ok ${BAR:-def}"), "ok def");
        assert_eq!(ok("ok ${missing:-def}"), "ok def");
        assert_eq!(ok("ok ${missing:-}"), "ok ");
    }

    #[test]
    fn hard_default() {
        assert_eq!(ok("ok ${FOO-def}"), "ok first");
        assert_eq!(ok("ok ${BAR-def}"), "ok ");
        assert_eq!(ok("ok ${missing-def}"), "ok def");
    }

    #[test]
    fn required_non_empty() {
        assert_eq!(ok("ok ${FOO:?err}"), "ok first");
        assert_eq!(
            err("not ok ${BAR:?Mandatory Variable Empty}"),
            InterpolateError::MissingRequired {
                name: "BAR".into(),
                message: "Mandatory Variable Empty".into()
            }
        );
        assert_eq!(
            err("not ok ${UNSET_VAR:?Mandatory Variable Unset}").to_string(),
            "required variable UNSET_VAR is missing a value: Mandatory Variable Unset"
        );
    }

    #[test]
    fn required_set() {
        assert_eq!(ok("ok ${FOO?err}"), "ok first");
        assert_eq!(ok("ok ${BAR?err}"), "ok ");
        assert_eq!(
            err("not ok ${UNSET_VAR?Mandatory Variable Unset}").to_string(),
            "required variable UNSET_VAR is missing a value: Mandatory Variable Unset"
        );
    }

    #[test]
    fn required_without_message_has_no_colon() {
        for text in ["${UNSET_VAR:?}", "${UNSET_VAR?}", "${BAR:?}"] {
            let e = err(text);
            let name = if text.contains("BAR") {
                "BAR"
            } else {
                "UNSET_VAR"
            };
            assert_eq!(
                e,
                InterpolateError::MissingRequired {
                    name: name.into(),
                    message: String::new()
                }
            );
            assert_eq!(
                e.to_string(),
                format!("required variable {name} is missing a value")
            );
        }
    }

    #[test]
    fn required_message_is_interpolated() {
        assert_eq!(
            err("not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}").to_string(),
            "required variable UNSET_VAR is missing a value: Mandatory Variable first"
        );
        assert_eq!(
            err("${UNSET_VAR?need $FOO and $$ {braces}}").to_string(),
            "required variable UNSET_VAR is missing a value: need first and $ {braces}"
        );
    }

    #[test]
    fn alternative_non_empty() {
        assert_eq!(ok("ok ${FOO:+presence_value}"), "ok presence_value");
        assert_eq!(ok("ok ${BAR:+presence_value}"), "ok ");
        assert_eq!(ok("ok ${UNSET_VAR:+presence_value}"), "ok ");
    }

    #[test]
    fn alternative_set() {
        assert_eq!(ok("ok ${FOO+presence_value}"), "ok presence_value");
        assert_eq!(ok("ok ${BAR+presence_value}"), "ok presence_value");
        assert_eq!(ok("ok ${UNSET_VAR+presence_value}"), "ok ");
    }

    #[test]
    fn operator_is_the_one_right_after_the_name() {
        assert_eq!(
            err("${UNSET_VAR?bar-baz}"),
            InterpolateError::MissingRequired {
                name: "UNSET_VAR".into(),
                message: "bar-baz".into()
            }
        );
        assert_eq!(ok("${UNSET_VAR-myerror?msg}"), "myerror?msg");
        assert_eq!(ok("${FOO?bar-baz}"), "first");
        assert_eq!(ok("ok ${BAR:-/non:-alphanumeric}"), "ok /non:-alphanumeric");
        assert_eq!(ok("${UNSET:--x}"), "-x");
        assert_eq!(ok("${UNSET--x}"), "-x");
        assert_eq!(ok("${FOO:+:+}"), ":+");
    }

    #[test]
    fn outer_text_does_not_change_the_operator() {
        assert_eq!(ok("-ok ${BAR:-defaultValue}"), "-ok defaultValue");
        assert_eq!(ok("+ok ${UNSET:-${BAR-defaultValue}}"), "+ok ");
        assert_eq!(ok(":-ok ${UNSET-defaultValue}"), ":-ok defaultValue");
        assert_eq!(ok(":?ok ${BAR-defaultValue}"), ":?ok ");
        assert_eq!(ok("?ok ${BAR:-defaultValue}"), "?ok defaultValue");
    }

    #[test]
    fn nesting() {
        let ab = |n: &str| match n {
            "B" => Some("b".to_owned()),
            "E" => Some(String::new()),
            _ => None,
        };
        let run = |t: &str| interpolate(t, &ab).unwrap();
        assert_eq!(run("${A:-${B:-c}}"), "b");
        assert_eq!(run("${A:-${C:-c}}"), "c");
        assert_eq!(run("${A:-${E:-${C-deep}}}"), "deep");
        assert_eq!(run("${A:-x${B}y}"), "xby");
        assert_eq!(run("${A:-x$B-y}"), "xb-y");
        assert_eq!(run("<${B:+[${B}]}>"), "<[b]>");
        assert_eq!(ok("ok ${UNSET_VAR-${FOO} ${FOO}}"), "ok first first");
        assert_eq!(ok("ok ${BAR+$FOO ${FOO:+second}}"), "ok first second");
        assert_eq!(ok("${UNSET:-a}}"), "a}");
        let deep = format!("{}x{}", "${U:-".repeat(50), "}".repeat(50));
        assert_eq!(ok(&deep), "x");
    }

    #[test]
    fn braces_balance_inside_operands() {
        assert_eq!(ok(r#"${UNSET:-{"k":{"n":1}}}"#), r#"{"k":{"n":1}}"#);
        assert_eq!(ok(r#"${FOO:-{"k":1}}!"#), "first!");
        assert_eq!(ok("{}${UNSET:-{}}{}"), "{}{}{}");
        assert_eq!(ok("}{"), "}{");
    }

    #[test]
    fn operands_are_evaluated_only_when_used() {
        assert_eq!(ok("${FOO:-${UNSET:?boom}}"), "first");
        assert_eq!(ok("${UNSET:+${UNSET:?boom}}"), "");
        assert_eq!(ok("${FOO:?${UNSET:?boom}}"), "first");
        let (_, unset) = interpolate_report("${FOO:-$NOPE}${UNSET:-$USED}", &env).unwrap();
        assert_eq!(unset, vec!["USED".to_owned()]);
    }

    #[test]
    fn report_lists_plain_unset_references_once() {
        let (text, unset) =
            interpolate_report("$A ${B} $A ${C:-x} ${D-y} ${E:+z} ${F+w} $FOO $BAR", &env).unwrap();
        assert_eq!(text, "   x y   first ");
        assert_eq!(unset, vec!["A".to_owned(), "B".to_owned()]);
        let (_, none) = interpolate_report("$FOO $BAR $$UNSET", &env).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn multibyte_text_around_expressions() {
        assert_eq!(ok("é${UNSET:-ü€}é$FOO🚀"), "éü€éfirst🚀");
        assert_eq!(ok("€$"), "€$");
    }

    #[test]
    fn invalid_syntax_messages() {
        let cases = [
            ("${", r#"missing "}" to close "${""#),
            ("x ${}", r#"empty variable name in "${}""#),
            (
                "${ }",
                r#"variable name must start with a letter or "_", found ' '"#,
            ),
            (
                "${ foo}",
                r#"variable name must start with a letter or "_", found ' '"#,
            ),
            (
                "${1A}",
                r#"variable name must start with a letter or "_", found '1'"#,
            ),
            (
                "${éA}",
                r#"variable name must start with a letter or "_", found 'é'"#,
            ),
            ("${A", r#"missing "}" to close "${A""#),
            ("${A:", r#"missing "}" to close "${A""#),
            ("${A:-x", r#"missing "}" to close "${A""#),
            ("${A:-{x}", r#"missing "}" to close "${A""#),
            ("${A:-${B}", r#"missing "}" to close "${A""#),
            (
                "${A:x}",
                r#"unsupported operator ":x" after variable name "A" (expected one of :- - :? ? :+ +)"#,
            ),
            (
                "${A:}",
                r#"unsupported operator ":}" after variable name "A" (expected one of :- - :? ? :+ +)"#,
            ),
            (
                "${foo!}",
                r#"unexpected character '!' after variable name "foo" (expected "}" or one of :- - :? ? :+ +)"#,
            ),
            (
                "${foo }",
                r#"unexpected character ' ' after variable name "foo" (expected "}" or one of :- - :? ? :+ +)"#,
            ),
            (
                "${A/x/y}",
                r#"unexpected character '/' after variable name "A" (expected "}" or one of :- - :? ? :+ +)"#,
            ),
            (
                "${Aé}",
                r#"unexpected character 'é' after variable name "A" (expected "}" or one of :- - :? ? :+ +)"#,
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(
                syntax_message(text),
                format!(
                    "invalid interpolation format for {text:?}: {reason}; \
                     you may need to escape any $ with another $"
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn invalid_syntax_display_exact() {
        assert_eq!(
            err("${}").to_string(),
            "invalid interpolation format for \"${}\": empty variable name in \"${}\"; \
             you may need to escape any $ with another $"
        );
    }

    #[test]
    fn syntax_errors_win_over_values_and_unused_branches() {
        // The whole string is reported, not the nested part.
        assert_eq!(
            err("a ${FOO:-${}} b"),
            InterpolateError::InvalidSyntax {
                template: "a ${FOO:-${}} b".into(),
                reason: r#"empty variable name in "${}""#.into()
            }
        );
        // A syntax error later in the string beats a missing variable earlier.
        assert!(matches!(
            err("${UNSET:?boom} ${"),
            InterpolateError::InvalidSyntax { .. }
        ));
        assert!(matches!(
            err("${FOO:+${1}}"),
            InterpolateError::InvalidSyntax { .. }
        ));
    }

    #[test]
    fn excessive_nesting_is_an_error_not_a_stack_overflow() {
        let text = "${A:-".repeat(100_000);
        let InterpolateError::InvalidSyntax { reason, .. } = err(&text) else {
            panic!("expected a syntax error");
        };
        assert_eq!(reason, r#"more than 100 nested "${...}" expressions"#);
        let at_limit = format!(
            "{}x{}",
            "${U:-".repeat(MAX_NESTING),
            "}".repeat(MAX_NESTING)
        );
        assert_eq!(ok(&at_limit), "x");
        let over = format!(
            "{}x{}",
            "${U:-".repeat(MAX_NESTING + 1),
            "}".repeat(MAX_NESTING + 1)
        );
        assert!(matches!(err(&over), InterpolateError::InvalidSyntax { .. }));
    }

    /// xorshift64*: enough randomness to shake the parser, without a dependency.
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
        const ALPHABET: [char; 11] = ['$', '{', '}', ':', '-', '?', '+', 'A', '_', '1', 'x'];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let lookup = |name: &str| match name.len() % 3 {
            0 => None,
            1 => Some(String::new()),
            _ => Some(format!("<{name}>")),
        };
        for _ in 0..5000 {
            let len = (rng.next() % 40) as usize;
            let mut text = String::new();
            for _ in 0..len {
                let r = rng.next();
                let c = match r % 16 {
                    0..=10 => ALPHABET[(r >> 8) as usize % ALPHABET.len()],
                    11 | 12 => 'é',
                    // Arbitrary bytes as chars: ASCII controls, Latin-1, and wider.
                    13 => char::from((r >> 8) as u8),
                    _ => char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('\u{FFFD}'),
                };
                text.push(c);
            }
            let plain = interpolate(&text, &lookup);
            let reported = interpolate_report(&text, &lookup);
            assert_eq!(plain, reported.map(|(s, _)| s), "{text:?}");
            if !text.contains('$') {
                assert_eq!(plain.as_deref(), Ok(text.as_str()));
            }
        }
    }
}
