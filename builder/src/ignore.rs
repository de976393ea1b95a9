//! `.dockerignore` and the glob patterns of `COPY` sources, with Docker's rules: Go's
//! `filepath.Match` per path segment, `**` for any number of segments, `!` re-includes,
//! the last matching pattern wins, and a pattern that matches a directory matches
//! everything under it.

/// Whether `pattern` matches all of `path` (both `/`-separated, relative, clean).
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = path.chars().collect();
    matches(&p, &s)
}

fn matches(p: &[char], s: &[char]) -> bool {
    if p.is_empty() {
        return s.is_empty();
    }
    // `**` (a whole segment): zero or more segments.
    if p.len() >= 2 && p[0] == '*' && p[1] == '*' {
        let rest = &p[2..];
        let rest = rest.strip_prefix(&['/']).unwrap_or(rest);
        if rest.is_empty() {
            return true;
        }
        for i in 0..=s.len() {
            if (i == 0 || s[i - 1] == '/') && matches(rest, &s[i..]) {
                return true;
            }
        }
        return false;
    }
    match p[0] {
        '*' => {
            for i in 0..=s.len() {
                if matches(&p[1..], &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == '/' {
                    break;
                }
            }
            false
        }
        '?' => !s.is_empty() && s[0] != '/' && matches(&p[1..], &s[1..]),
        '[' => {
            let Some(c) = s.first().filter(|c| **c != '/') else {
                return false;
            };
            let Some(end) = p.iter().skip(1).position(|x| *x == ']').map(|e| e + 1) else {
                // An unclosed class matches a literal `[`.
                return *c == '[' && matches(&p[1..], &s[1..]);
            };
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some('^') | Some('!'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negate && matches(&p[end + 1..], &s[1..])
        }
        '\\' if p.len() > 1 => !s.is_empty() && s[0] == p[1] && matches(&p[2..], &s[1..]),
        c => !s.is_empty() && s[0] == c && matches(&p[1..], &s[1..]),
    }
}

/// Whether a pattern holds glob characters.
pub fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Cleans a path the way Go's `filepath.Clean` does, relative to the root: no leading
/// `/`, no `.` segments, `..` resolved (never above the root: `None`).
pub fn clean(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    Some(out.join("/"))
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<(String, bool)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            // `../x` cannot match anything in the context; keep it harmlessly empty.
            let p = clean(p).unwrap_or_default();
            if p.is_empty() {
                continue;
            }
            patterns.push((p, neg));
        }
        Ignore { patterns }
    }

    /// Whether `path` (relative, clean) is left out of the context.
    pub fn excluded(&self, path: &str) -> bool {
        let mut out = false;
        for (p, neg) in &self.patterns {
            if Self::hits(p, path) {
                out = !neg;
            }
        }
        out
    }

    /// Whether an excluded directory may still hold a re-included path (then the walk
    /// must go into it).
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        self.patterns
            .iter()
            .any(|(p, neg)| *neg && (p.starts_with(&format!("{dir}/")) || p.starts_with("**")))
    }

    /// The pattern matches the path or one of its parent directories.
    fn hits(p: &str, path: &str) -> bool {
        if glob_match(p, path) {
            return true;
        }
        let mut cur = path;
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if glob_match(p, parent) {
                return true;
            }
            cur = parent;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("**/*.txt", "d/e/a.txt"));
        assert!(glob_match("**/*.txt", "a.txt"));
        assert!(glob_match("d/**", "d/e/f"));
        assert!(glob_match("f?le[0-9]", "file7"));
        assert!(!glob_match("f?le[!0-9]", "file7"));
        assert!(glob_match("a\\*b", "a*b"));
    }

    #[test]
    fn ignore_rules() {
        let i = Ignore::parse("# comment\n*.log\nsecret/\n!keep.log\n/build\n");
        assert!(i.excluded("x.log"));
        assert!(!i.excluded("keep.log"));
        assert!(i.excluded("secret/key"));
        assert!(i.excluded("build/out/a"));
        assert!(!i.excluded("src/x.log"));
        assert!(!i.excluded("main.c"));
        assert_eq!(clean("/a/./b/../c"), Some("a/c".into()));
        assert_eq!(clean("../x"), None);
    }
}
