//! The Dockerfile language: parser directives, comments, line continuations, then one
//! typed [`Instruction`] per logical line, grouped into stages. Values stay as written
//! (variables are substituted when the build reaches them, with the stage's ARG and ENV);
//! every instruction keeps its line, so errors can name it.

pub mod words;

use std::time::Duration;

use crate::error::{BuildError, Result};

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The escape character (`\`, or `` ` `` after `# escape=``).
    pub escape: char,
    /// `ARG`s before the first `FROM`: usable in `FROM` lines.
    pub global_args: Vec<(usize, Vec<String>)>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
pub struct Stage {
    /// `AS name`, lowercased (stage names are case-insensitive).
    pub name: Option<String>,
    /// The base as written (`busybox`, `${BASE}`, `scratch`, an earlier stage's name).
    pub base: String,
    pub platform: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone)]
pub struct Instruction {
    pub line: usize,
    /// The logical line as written (continuations joined), for history and messages.
    pub text: String,
    pub kind: Kind,
}

/// A command: exec form (a JSON array, run as is) or shell form (given to `SHELL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    None,
    Check {
        test: Command,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub add: bool,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    /// Sources then destination, unexpanded words.
    pub sources: Vec<String>,
    pub dest: String,
    /// Exec (JSON) form: words are not split on blanks.
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Run {
        command: Command,
        network: Option<String>,
    },
    Copy(Copy),
    /// Words `k=v` (or one `k v` pair as `[k, v]` with `legacy`).
    Env {
        words: Vec<String>,
        legacy: bool,
    },
    Label {
        words: Vec<String>,
        legacy: bool,
    },
    /// `name` or `name=default` words.
    Arg(Vec<String>),
    Workdir(String),
    User(String),
    Cmd(Command),
    Entrypoint(Command),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    Shell(Vec<String>),
    Onbuild(String),
    Maintainer(String),
}

fn err(line: usize, message: impl Into<String>) -> BuildError {
    BuildError::at(line, message)
}

/// Reads the parser directives (`# syntax=`, `# escape=`, `# check=`) at the top.
fn directives(lines: &[&str]) -> Result<(char, usize)> {
    let mut escape = '\\';
    let mut seen = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(body) = l.trim().strip_prefix('#') else {
            return Ok((escape, i));
        };
        let Some((k, v)) = body.split_once('=') else {
            return Ok((escape, i));
        };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Ok((escape, i));
        }
        if seen.contains(&k) {
            return Err(err(i + 1, format!("the {k} directive is given twice")));
        }
        match k.as_str() {
            "escape" => {
                escape = match v.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(err(
                            i + 1,
                            format!("escape={other:?}: the escape character is \\ or `"),
                        ))
                    }
                }
            }
            // `syntax` names a BuildKit frontend: Berth is its own, so it is ignored.
            "syntax" | "check" => {}
            _ => return Ok((escape, i)),
        }
        seen.push(k);
    }
    Ok((escape, lines.len()))
}

/// Joins continuation lines into logical lines `(first line number, text)`.
fn logical_lines(lines: &[&str], from: usize, escape: char) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in lines.iter().enumerate().skip(from) {
        let t = raw.trim_start();
        // Comments and blank lines are dropped, also inside a continued instruction.
        if t.starts_with('#') || (t.trim().is_empty()) {
            continue;
        }
        let trimmed = raw.trim_end();
        let (body, continues) = match trimmed.strip_suffix(escape) {
            // `\\` at the end is an escaped escape, not a continuation... only where the
            // shell would see it that way; Docker treats any trailing escape as one.
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        match &mut cur {
            Some((_, text)) => text.push_str(body),
            None => cur = Some((i + 1, body.to_string())),
        }
        if !continues {
            out.extend(cur.take());
        }
    }
    out.extend(cur);
    out
}

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let (escape, start) = directives(&lines)?;
    let mut df = Dockerfile {
        escape,
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for (line, text) in logical_lines(&lines, start, escape) {
        let t = text.trim();
        let (kw, rest) = match t.find(char::is_whitespace) {
            Some(p) => (&t[..p], t[p..].trim()),
            None => (t, ""),
        };
        let kw = kw.to_ascii_uppercase();
        if kw == "FROM" {
            df.stages.push(parse_from(line, rest, escape)?);
            continue;
        }
        let kind = parse_instruction(line, &kw, rest, escape)?;
        match df.stages.last_mut() {
            Some(stage) => stage.instructions.push(Instruction {
                line,
                text: t.to_string(),
                kind,
            }),
            None => match kind {
                Kind::Arg(words) => df.global_args.push((line, words)),
                _ => {
                    return Err(err(
                        line,
                        format!("{kw} before the first FROM: a Dockerfile starts with FROM (only ARG may come before it)"),
                    ))
                }
            },
        }
    }
    if df.stages.is_empty() {
        return Err(err(
            lines.len().max(1),
            "no FROM instruction: the Dockerfile builds nothing",
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for s in &df.stages {
        if let Some(n) = &s.name {
            if names.contains(&n.as_str()) {
                return Err(err(s.line, format!("a stage named {n:?} is defined twice")));
            }
            names.push(n);
        }
    }
    Ok(df)
}

/// Leading `--name=value` flags, and what follows them.
fn flags<'a>(
    line: usize,
    kw: &str,
    rest: &'a str,
    allowed: &[&str],
) -> Result<(Vec<(String, String)>, &'a str)> {
    let mut out = Vec::new();
    let mut r = rest.trim_start();
    while let Some(f) = r.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let (name, value) = match f[..end].split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (f[..end].to_string(), "true".to_string()),
        };
        if !allowed.contains(&name.as_str()) {
            return Err(err(
                line,
                format!(
                    "{kw} --{name}: unknown flag (accepted here: {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed
                            .iter()
                            .map(|a| format!("--{a}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        }
        out.push((name, value));
        r = f[end..].trim_start();
    }
    Ok((out, r))
}

fn flag(flags: &[(String, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn parse_from(line: usize, rest: &str, escape: char) -> Result<Stage> {
    let (fl, rest) = flags(line, "FROM", rest, &["platform"])?;
    let w = words::split(rest, escape);
    let (base, name) = match w.as_slice() {
        [b] => (b.clone(), None),
        [b, as_, n] if as_.eq_ignore_ascii_case("as") => (b.clone(), Some(n.to_ascii_lowercase())),
        [] => return Err(err(line, "FROM needs an image: FROM IMAGE [AS NAME]")),
        _ => {
            return Err(err(
                line,
                format!("FROM {rest}: expected FROM IMAGE [AS NAME]"),
            ))
        }
    };
    if let Some(n) = &name {
        let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(err(line, format!("stage name {n:?} must start with a letter and hold only letters, digits, _ . -")));
        }
    }
    Ok(Stage {
        name,
        base,
        platform: flag(&fl, "platform"),
        line,
        instructions: Vec::new(),
    })
}

/// `["a", "b"]` as a list of strings, if the text is one.
fn json_array(text: &str) -> Option<Vec<String>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(text).ok()
}

fn command(rest: &str) -> Command {
    match json_array(rest) {
        Some(a) => Command::Exec(a),
        None => Command::Shell(rest.to_string()),
    }
}

fn need(line: usize, kw: &str, rest: &str, usage: &str) -> Result<()> {
    if rest.is_empty() {
        return Err(err(line, format!("{kw} needs an argument: {usage}")));
    }
    Ok(())
}

fn parse_instruction(line: usize, kw: &str, rest: &str, escape: char) -> Result<Kind> {
    Ok(match kw {
        "RUN" => {
            let (fl, r) = flags(line, kw, rest, &["network", "mount", "security"])?;
            if flag(&fl, "mount").is_some() {
                return Err(err(line, "RUN --mount is not supported by Berth's builder yet: COPY what the step needs instead"));
            }
            if flag(&fl, "security").is_some_and(|s| s != "sandbox") {
                return Err(err(line, "RUN --security=insecure is not supported: build steps run sandboxed"));
            }
            need(line, kw, r, "RUN COMMAND or RUN [\"EXECUTABLE\", \"ARG\"…]")?;
            if r.contains("<<") && r.trim_start().starts_with("<<") {
                return Err(err(line, "heredocs (RUN <<EOF) are not supported yet: write the commands on the RUN line"));
            }
            Kind::Run {
                command: command(r),
                network: flag(&fl, "network"),
            }
        }
        "COPY" | "ADD" => {
            let allowed: &[&str] = if kw == "COPY" {
                &["from", "chown", "chmod", "link", "parents", "exclude"]
            } else {
                &["chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"]
            };
            let (fl, r) = flags(line, kw, rest, allowed)?;
            for unsupported in ["parents", "exclude", "checksum", "keep-git-dir"] {
                if flag(&fl, unsupported).is_some() {
                    return Err(err(
                        line,
                        format!("{kw} --{unsupported} is not supported by Berth's builder yet"),
                    ));
                }
            }
            let (mut list, json) = match json_array(r) {
                Some(a) => (a, true),
                None => (words::split(r, escape), false),
            };
            if list.len() < 2 {
                return Err(err(
                    line,
                    format!("{kw} needs a source and a destination: {kw} SRC… DEST"),
                ));
            }
            let dest = list.pop().unwrap_or_default();
            Kind::Copy(Copy {
                add: kw == "ADD",
                from: flag(&fl, "from"),
                chown: flag(&fl, "chown"),
                chmod: flag(&fl, "chmod"),
                sources: list,
                dest,
                json,
            })
        }
        "ENV" | "LABEL" => {
            need(line, kw, rest, &format!("{kw} KEY=VALUE…"))?;
            let w = words::split(rest, escape);
            let legacy = !w[0].contains('=');
            let words = if legacy {
                // `ENV KEY value with blanks`: one pair, the value is the rest of the line.
                let key = w[0].clone();
                let value = rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..]
                    .trim()
                    .to_string();
                if kw == "ENV" && value.is_empty() {
                    return Err(err(line, format!("ENV {key} needs a value: ENV {key}=VALUE")));
                }
                vec![key, value]
            } else {
                for x in &w {
                    if !x.contains('=') {
                        return Err(err(
                            line,
                            format!("{kw}: {x:?} is not KEY=VALUE (mixing the two forms is not allowed)"),
                        ));
                    }
                }
                w
            };
            if kw == "ENV" {
                Kind::Env { words, legacy }
            } else {
                Kind::Label { words, legacy }
            }
        }
        "ARG" => {
            need(line, kw, rest, "ARG NAME[=DEFAULT]")?;
            let w = words::split(rest, escape);
            for a in &w {
                let name = a.split('=').next().unwrap_or_default();
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(err(line, format!("ARG {a}: {name:?} is not a valid name")));
                }
            }
            Kind::Arg(w)
        }
        "WORKDIR" => {
            need(line, kw, rest, "WORKDIR PATH")?;
            Kind::Workdir(rest.to_string())
        }
        "USER" => {
            need(line, kw, rest, "USER NAME[:GROUP]")?;
            Kind::User(rest.to_string())
        }
        "CMD" => {
            need(line, kw, rest, "CMD [\"EXECUTABLE\", \"ARG\"…]")?;
            Kind::Cmd(command(rest))
        }
        "ENTRYPOINT" => {
            need(line, kw, rest, "ENTRYPOINT [\"EXECUTABLE\", \"ARG\"…]")?;
            Kind::Entrypoint(command(rest))
        }
        "EXPOSE" => {
            need(line, kw, rest, "EXPOSE PORT[/PROTO]…")?;
            Kind::Expose(words::split(rest, escape))
        }
        "VOLUME" => {
            need(line, kw, rest, "VOLUME PATH…")?;
            Kind::Volume(json_array(rest).unwrap_or_else(|| words::split(rest, escape)))
        }
        "STOPSIGNAL" => {
            need(line, kw, rest, "STOPSIGNAL SIGNAL")?;
            Kind::StopSignal(rest.to_string())
        }
        "SHELL" => match json_array(rest) {
            Some(a) if !a.is_empty() => Kind::Shell(a),
            _ => {
                return Err(err(
                    line,
                    "SHELL takes a JSON array: SHELL [\"/bin/sh\", \"-c\"]",
                ))
            }
        },
        "HEALTHCHECK" => Kind::Healthcheck(parse_health(line, rest)?),
        "ONBUILD" => {
            need(line, kw, rest, "ONBUILD INSTRUCTION")?;
            let inner = rest.split_whitespace().next().unwrap_or_default();
            if ["ONBUILD", "FROM", "MAINTAINER"]
                .iter()
                .any(|k| inner.eq_ignore_ascii_case(k))
            {
                return Err(err(line, format!("ONBUILD {inner} is not allowed")));
            }
            Kind::Onbuild(rest.to_string())
        }
        "MAINTAINER" => Kind::Maintainer(rest.to_string()),
        "" => return Err(err(line, "empty instruction")),
        other => {
            return Err(err(
                line,
                format!("unknown instruction {other} (FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD)"),
            ))
        }
    })
}

fn parse_health(line: usize, rest: &str) -> Result<Health> {
    if rest.trim().eq_ignore_ascii_case("none") {
        return Ok(Health::None);
    }
    let (fl, r) = flags(
        line,
        "HEALTHCHECK",
        rest,
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    )?;
    let (kw, cmd) = match r.find(char::is_whitespace) {
        Some(p) => (&r[..p], r[p..].trim()),
        None => (r, ""),
    };
    if !kw.eq_ignore_ascii_case("CMD") || cmd.is_empty() {
        return Err(err(line, "HEALTHCHECK takes NONE or [OPTIONS] CMD COMMAND"));
    }
    let dur = |name: &str| -> Result<Option<Duration>> {
        flag(&fl, name)
            .map(|v| {
                parse_duration(&v).ok_or_else(|| {
                    err(
                        line,
                        format!("HEALTHCHECK --{name}={v}: not a duration (30s, 1m30s, 500ms)"),
                    )
                })
            })
            .transpose()
    };
    Ok(Health::Check {
        test: command(cmd),
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries: flag(&fl, "retries")
            .map(|v| {
                v.parse()
                    .map_err(|_| err(line, format!("HEALTHCHECK --retries={v}: not a count")))
            })
            .transpose()?,
    })
}

/// Go's duration syntax as Docker takes it: `1h2m3.5s`, `500ms`, `10us`, `0`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_continuations_comments_directives() {
        let df = parse(
            "# syntax=docker/dockerfile:1\n# escape=`\nARG BASE=busybox\nFROM --platform=linux/amd64 ${BASE} AS Build\n# a comment\nRUN echo a && `\n  # inside\n  echo b\nCOPY [\"a b\", \"/x/\"]\nFROM scratch\nCOPY --from=build /bin/busybox /\n",
        )
        .unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stages[0].name.as_deref(), Some("build"));
        assert_eq!(df.stages[0].platform.as_deref(), Some("linux/amd64"));
        let i = &df.stages[0].instructions;
        assert_eq!(i[0].line, 6);
        assert_eq!(
            i[0].kind,
            Kind::Run {
                command: Command::Shell("echo a &&   echo b".into()),
                network: None
            }
        );
        match &i[1].kind {
            Kind::Copy(c) => {
                assert!(c.json);
                assert_eq!(c.sources, vec!["a b"]);
                assert_eq!(c.dest, "/x/");
            }
            k => panic!("{k:?}"),
        }
        match &df.stages[1].instructions[0].kind {
            Kind::Copy(c) => assert_eq!(c.from.as_deref(), Some("build")),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn refusals_name_the_line() {
        for (text, line, needle) in [
            (
                "FROM a\nRUN x\nFROBNICATE y\n",
                3,
                "unknown instruction FROBNICATE",
            ),
            ("RUN x\n", 1, "before the first FROM"),
            ("FROM a\n\nCOPY onlyone\n", 3, "source and a destination"),
            ("FROM a\nENV\n", 2, "needs an argument"),
            ("FROM a AS x\nFROM b AS x\n", 2, "defined twice"),
            ("FROM a\nSHELL sh -c\n", 2, "JSON array"),
            ("FROM a b c d\n", 1, "FROM IMAGE [AS NAME]"),
            ("# escape=x\nFROM a\n", 1, "escape"),
            ("FROM a\nCOPY --frm=x a b\n", 2, "unknown flag"),
            (
                "FROM a\nHEALTHCHECK --interval=soon CMD true\n",
                2,
                "duration",
            ),
        ] {
            let e = parse(text).unwrap_err();
            match &e {
                BuildError::Dockerfile {
                    line: l, message, ..
                } => {
                    assert_eq!(*l, line, "{text:?}: {e}");
                    assert!(message.contains(needle), "{text:?}: {message}");
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn env_label_forms_and_health() {
        let df = parse("FROM a\nENV A=1 B=\"two words\"\nENV C three words\nLABEL x=y\nHEALTHCHECK --interval=1m30s --retries=2 CMD [\"true\"]\nHEALTHCHECK NONE\n").unwrap();
        let i = &df.stages[0].instructions;
        assert_eq!(
            i[0].kind,
            Kind::Env {
                words: vec!["A=1".into(), "B=\"two words\"".into()],
                legacy: false
            }
        );
        assert_eq!(
            i[1].kind,
            Kind::Env {
                words: vec!["C".into(), "three words".into()],
                legacy: true
            }
        );
        match &i[3].kind {
            Kind::Healthcheck(Health::Check {
                interval, retries, ..
            }) => {
                assert_eq!(*interval, Some(Duration::from_secs(90)));
                assert_eq!(*retries, Some(2));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(i[4].kind, Kind::Healthcheck(Health::None));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("x"), None);
    }
}
